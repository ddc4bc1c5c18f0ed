/**
 * The residual graph of a transformer as a site convention: nodes (embedding, attention heads, MLP blocks, logits)
 * that each write an additive contribution to the residual stream (an `output` site) and read the stream through
 * private copies (`inputs` sites: Identity nodes, one per receiver, as `attnOnly` builds them with a q, k and v copy
 * per head). Edges are sender → receiver-input pairs where the sender's output reaches that input in the graph. With
 * private copies, edges into different receivers are separable: `edgeModel` rewrites every receiver input as
 *
 *   input = stream + Σ_senders mask[edge] · (sender_corrupted − sender_live)
 *
 * (Conmy et al. 2023, "Towards Automated Circuit Discovery", App. on the residual rewrite), so that one compiled
 * session ablates any set of edges by its fed masks. Also path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023)
 * over the same nodes.
 *
 * Models with fused heads (a PyTorch export, the `gpt` builder) have no per-head sites: there, one head is index h on
 * axis 1 of the [N, H, T, Dh] value softmax·V (`blocks.L.attn.matmul_1`), which activation and attribution patching
 * reach with `axis: 1`. Edges into single heads are not separable in such a graph (q, k and v read one shared
 * LayerNorm output), so circuit discovery needs the private copies that `attnOnly` builds.
 */
import type { ResidualNode } from '../../model/builders/attn-only.js';
import { Model } from '../../model/model.js';
import { makeNode, makeValueInfo, type NodeProto } from '../../onnx/proto.js';
import { addInputs, insertNodes, interpose } from '../../onnx/rewrite.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { captureRun, checkPair, evalMetric, metricGap, type Inputs, type Metric } from './patching.js';

export type { ResidualNode } from '../../model/builders/attn-only.js';

export interface Edge {
  readonly sender: string;
  readonly receiver: string;
  /** The receiver's input site the edge enters. */
  readonly site: string;
}

export const edgeId = (e: Edge) => `${e.sender}->${e.site}`;

/** Checks the node table against the model: unique names, known sites (an unknown one lists the nearest). */
export function checkNodes(model: Model, nodes: readonly ResidualNode[]): void {
  if (nodes.length < 2) throw new Error(`the residual graph needs at least 2 nodes, got ${nodes.length}`);
  const names = new Set<string>();
  for (const n of nodes) {
    if (names.has(n.name)) throw new Error(`node '${n.name}' appears twice in the node table`);
    names.add(n.name);
    for (const s of [...n.inputs, ...(n.output ? [n.output] : [])]) model.site(s);
  }
}

/** Values the given value depends on (itself included). */
function ancestors(model: Model, value: string): Set<string> {
  const seen = new Set([value]);
  const stack = [value];
  while (stack.length) {
    const p = model.graph.values.get(stack.pop()!)?.producer;
    if (p === undefined) continue;
    for (const i of model.graph.nodes[p].input) {
      if (i && !seen.has(i)) {
        seen.add(i);
        stack.push(i);
      }
    }
  }
  return seen;
}

/** Every sender → receiver-input edge of the node table: the sender's output is upstream of the input. */
export function residualEdges(model: Model, nodes: readonly ResidualNode[]): Edge[] {
  checkNodes(model, nodes);
  const edges: Edge[] = [];
  for (const r of nodes) {
    for (const site of r.inputs) {
      const up = ancestors(model, model.site(site).value);
      for (const s of nodes) if (s !== r && s.output && up.has(model.site(s.output).value)) edges.push({ sender: s.name, receiver: r.name, site });
    }
  }
  if (edges.length === 0) throw new Error('the node table has no edges: no node output reaches another node input');
  return edges;
}

/** A model whose receiver inputs take per-edge masks and the senders' corrupted outputs as extra inputs. */
export interface EdgeModel {
  readonly model: Model;
  readonly edges: readonly Edge[];
  /** Feeds for the clean inputs with the given edges ablated. */
  feeds(clean: Inputs, ablated: ReadonlySet<string>): Record<string, Tensor>;
}

/** Builds the edge-ablation rewrite of `model` for the given edges; `corrupted` holds each sender's corrupted output. */
export async function edgeModel(model: Model, nodes: readonly ResidualNode[], edges: readonly Edge[], corrupted: Readonly<Record<string, Tensor>>): Promise<EdgeModel> {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  let g = model.graph;
  const corr = new Map<string, string>(); // sender → input name
  const diff = new Map<string, string>(); // sender → corrupted − live
  const extra: NodeProto[] = [];
  const inputs = [];
  for (const s of new Set(edges.map((e) => e.sender))) {
    const out = byName.get(s)!.output!;
    const t = corrupted[out];
    const name = `glassbox_corrupted_${corr.size}`;
    corr.set(s, name);
    inputs.push(makeValueInfo(name, ONNX_DTYPE.float32, ['N', ...t.shape.slice(1)]));
    diff.set(s, `glassbox_edge_diff_${diff.size}`);
    extra.push(makeNode('Sub', [name, model.site(out).value], [diff.get(s)!], { name: `glassbox/edge_diff_${s}` }));
  }
  edges.forEach((_, j) => inputs.push(makeValueInfo(`glassbox_edge_${j}`, ONNX_DTYPE.float32, [1])));
  g = insertNodes(addInputs(g, inputs), extra);
  const sites = [...new Set(edges.map((e) => e.site))];
  for (const site of sites) {
    const v = model.site(site).value;
    const mine = edges.map((e, j) => [e, j] as const).filter(([e]) => e.site === site);
    g = interpose(g, v, (source) => {
      const built: NodeProto[] = [];
      let acc = source;
      mine.forEach(([e, j], k) => {
        const scaled = `${v}__edge_${j}`;
        built.push(makeNode('Mul', [diff.get(e.sender)!, `glassbox_edge_${j}`], [scaled], { name: `glassbox/edge_mul_${j}` }));
        const sum = k === mine.length - 1 ? v : `${v}__edge_acc_${j}`;
        built.push(makeNode('Add', [acc, scaled], [sum], { name: `glassbox/edge_add_${j}` }));
        acc = sum;
      });
      return { nodes: built };
    });
  }
  const m = await Model.load(g.encode(), { probe: false });
  const ids = edges.map(edgeId);
  return {
    model: m,
    edges,
    feeds(clean, ablated) {
      const f: Record<string, Tensor> = { ...clean };
      for (const [s, name] of corr) f[name] = corrupted[byName.get(s)!.output!];
      ids.forEach((id, j) => (f[`glassbox_edge_${j}`] = Tensor.float32([ablated.has(id) ? 1 : 0], [1])));
      return f;
    },
  };
}

export interface PathPatchingOptions {
  readonly clean: Inputs;
  readonly corrupted: Inputs;
  readonly metric: Metric;
  /** The site whose corrupted value is sent. */
  readonly sender: string;
  /** The site(s) that receive it (a receiver input such as `blocks.1.head.0.k_in.identity`, or a node's output). */
  readonly receiver: string | readonly string[];
  /** Sites held at their clean values in the sender run (default: the node outputs between sender and receiver). */
  readonly freeze?: readonly string[];
  /** The residual node table the default `freeze` comes from. */
  readonly nodes?: readonly ResidualNode[];
}

export interface PathPatchingResult {
  readonly method: 'path-patching';
  /** (metric with the receiver patched − clean) / (corrupted − clean). */
  readonly effect: number;
  readonly metric: number;
  /** The sender's total effect (activation patching of the sender alone), for comparison. */
  readonly total: number;
  readonly clean: number;
  readonly corrupted: number;
  readonly frozen: readonly string[];
  readonly checks: readonly Check[];
  readonly ms: number;
}

/**
 * Path patching: run the clean inputs with the sender set to its corrupted value and every frozen site set to its
 * clean value, read the receiver(s); then run the clean inputs with only the receiver(s) set to what was read. With
 * the default freeze — the output sites of every residual node that lies strictly between sender and receiver in graph
 * order — only the direct path sender → residual stream → receiver carries the change: paths through other heads
 * or MLPs are cut at their outputs, which stay clean.
 */
export async function pathPatching(model: Model, options: PathPatchingOptions): Promise<PathPatchingResult> {
  const t0 = performance.now();
  const { clean, corrupted, metric } = options;
  checkPair(model, clean, corrupted);
  const receivers = typeof options.receiver === 'string' ? [options.receiver] : [...options.receiver];
  if (receivers.length === 0) throw new Error('pathPatching: no receiver');
  const order = new Map(model.sites.map((s, i) => [s.value, i]));
  const at = (s: string) => order.get(model.site(s).value)!;
  const first = at(options.sender);
  for (const r of receivers) if (at(r) <= first) throw new Error(`pathPatching: receiver '${r}' does not come after sender '${options.sender}' in the graph`);
  let frozen: string[];
  if (options.freeze) frozen = [...options.freeze];
  else if (options.nodes) {
    checkNodes(model, options.nodes);
    const last = Math.max(...receivers.map(at));
    frozen = options.nodes.flatMap((n) => (n.output ? [n.output] : [])).filter((s) => at(s) > first && at(s) < last && !receivers.includes(s));
  } else throw new Error('pathPatching: give `freeze` (the sites to hold clean) or `nodes` (the residual node table they come from)');
  for (const s of frozen) model.site(s);
  const all = [options.sender, ...frozen, ...receivers];
  const c = await captureRun(model, clean, all);
  const k = await captureRun(model, corrupted, [options.sender]);
  const mClean = evalMetric(metric, c.outputs, 'clean');
  const mCorrupt = evalMetric(metric, k.outputs, 'corrupted');
  const gap = metricGap(mClean, mCorrupt);
  const sender = { kind: 'set' as const, site: options.sender, value: k.values[options.sender] };
  const held = frozen.map((s) => ({ kind: 'set' as const, site: s, value: c.values[s] }));
  const sent = await model.run(clean, { capture: receivers, interventions: [sender, ...held] });
  const total = (evalMetric(metric, sent.outputs, 'sender-patched') - mClean) / gap;
  const set = receivers.map((s) => ({ kind: 'set' as const, site: s, value: sent.captures[s] }));
  const m = evalMetric(metric, (await model.run(clean, { interventions: set })).outputs, 'receiver-patched');
  const moved = receivers.map((s) => relChange(c.values[s], sent.captures[s]));
  return {
    method: 'path-patching',
    effect: (m - mClean) / gap,
    metric: m,
    total: frozen.length === 0 ? total : (await senderOnly(model, clean, sender, metric, mClean, gap)),
    clean: mClean,
    corrupted: mCorrupt,
    frozen,
    checks: [{ name: 'receiver-moved', value: moved, detail: `‖receiver after − before‖ / ‖before‖ in the sender run, per receiver (0: no path from sender to receiver)` }],
    ms: performance.now() - t0,
  };
}

async function senderOnly(model: Model, clean: Inputs, iv: { kind: 'set'; site: string; value: Tensor }, metric: Metric, mClean: number, gap: number): Promise<number> {
  return (evalMetric(metric, (await model.run(clean, { interventions: [iv] })).outputs, 'sender-patched') - mClean) / gap;
}

function relChange(a: Tensor, b: Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let d = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    d += (y[i] - x[i]) ** 2;
    n += x[i] ** 2;
  }
  return Math.sqrt(d) / Math.max(1e-12, Math.sqrt(n));
}
