/**
 * Loss terms: what active interpretability adds to training (issue: rules and active interpretability). A term is
 * either part of the step graph — ONNX nodes appended after the forward pass and the cross-entropy head, reading any
 * value of the model (a site, a weight, the logits, the labels, extra per-batch inputs) and returning a scalar that
 * the backward differentiates with everything else — or computed on the host from the weights (a penalty whose
 * gradient is added before the optimiser step, or an update applied after it, such as a proximal shrinkage).
 *
 * The step minimises `cross-entropy + Σ weight·term` (or `Σ weight·term` alone with `head: 'none'`, for
 * autoencoders and VAEs), and reports each term's weighted value every step.
 *
 * @example
 * // an L1 penalty on one layer's activations, in the graph
 * const sparse: LossTerm = { name: 'l1', weight: 1e-3, build: (b) => b.op('ReduceMean', [b.op('Abs', [b.site('relu1.relu')])], [attr('keepdims', { int: 0 })]) };
 * const trainer = await Trainer.create(model, { optimizer: { kind: 'adam', lr: 1e-3 }, terms: [sparse] });
 */
import { buildGradGraph } from '../../autodiff/grad.js';
import type { RuleTable, ValueShape } from '../../autodiff/types.js';
import type { Graph } from '../../onnx/graph.js';
import { attr, makeNode, makeValueInfo, type AttributeProto, type NodeProto, type TensorProto } from '../../onnx/proto.js';
import { freshName } from '../../onnx/rewrite.js';
import { ONNX_DTYPE, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor, type DType } from '../../runtime/tensor.js';
import { listSites, SiteIndex } from '../sites.js';

/** What a term's `build` appends nodes with. Names are made unique; every value returned can be read by later ops. */
export interface TermBuilder {
  /** The model's input (the batch `x`). */
  readonly input: string;
  /** The logits the classifier head reads. */
  readonly logits: string;
  /** The int64 labels input (the batch `y`), present unless the trainer has `head: 'none'`. */
  readonly labels?: string;
  /** The forward graph, with the head: look up values, weights (initializers become inputs when trained). */
  readonly graph: Graph;
  /** Dtype and shape of every value of the forward graph with the head, for the batch shape being built. */
  info(value: string): ValueShape;
  /** The value of a site, by alias (`relu1.relu`) or raw value name. */
  site(name: string): string;
  /** One node; returns its first output. */
  op(opType: string, inputs: readonly string[], attributes?: readonly AttributeProto[]): string;
  /** One node with several outputs. */
  ops(opType: string, inputs: readonly string[], attributes: readonly AttributeProto[], outputs: number): string[];
  /** A constant (a Constant node, so the graph's initializers stay its weights). */
  constant(t: Tensor): string;
  /**
   * The gradient of Σ(of ⊙ seed) with respect to `wrt` (values of the forward graph: the input, sites), as values the
   * term can read — so a term can penalise gradients (input-gradient attribution priors), and the step's backward
   * differentiates through them (double backpropagation). `seed` is a value of of's shape, e.g. a one-hot of the labels.
   */
  grad(of: string, wrt: readonly string[], seed: string): string[];
  /**
   * A graph input fed every step from the batch's `extra[name]` (FitOptions.extra, or step's second argument):
   * concept labels, masks, teacher outputs. The name is kept as given.
   */
  feed(name: string, dtype: DType, shape: readonly (number | string)[]): string;
}

/** A loss term computed by the step graph. */
export interface LossTerm {
  /** Reported in StepResult.terms and EpochRecord.terms. */
  readonly name: string;
  /** Its weight in the total loss. */
  readonly weight: number;
  /** Appends the term's nodes; returns a float32 scalar value (not yet weighted). */
  build(b: TermBuilder): string;
}

/** A term computed on the host from the current weights, each step. */
export interface HostTerm {
  readonly name: string;
  /**
   * Before the optimiser step: add the term's gradient into `grads` (same layout as the weights) and return its
   * (weighted) value, for reporting. Optional: a term may act only after the step.
   */
  penalty?(weights: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): number;
  /** After the optimiser step: e.g. a proximal shrinkage, a mask, or bookkeeping over the step (synaptic intelligence). */
  afterStep?(weights: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lr: number): void;
}

/** Names the terms add to the step graph. */
export const TERM_PREFIX = '/terms';
export const TOTAL_LOSS = 'objective';

/**
 * Appends the terms to a graph that already has the classifier head (or only the forward, with `head: 'none'`): each
 * term's value, and `objective` = base + Σ weight·value, where base is the cross-entropy `loss` (or nothing).
 * Returns the graph, the value of every term (unweighted), and the extra inputs the terms read.
 */
export function appendTerms(
  g: Graph,
  terms: readonly LossTerm[],
  ctx: { input: string; logits: string; labels?: string; base?: string; info: (v: string) => ValueShape; rules: RuleTable },
): { graph: Graph; values: readonly string[]; feeds: readonly string[] } {
  const names = new Set<string>();
  for (const t of terms) {
    if (names.has(t.name)) throw new Error(`loss terms: two terms are named '${t.name}'`);
    names.add(t.name);
    if (!Number.isFinite(t.weight)) throw new Error(`loss term '${t.name}': weight must be finite, got ${t.weight}`);
  }
  if (!ctx.base && terms.length === 0) throw new Error("loss terms: with head 'none' the trainer needs at least one loss term");
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const inputs = [...g.proto.input];
  let grads = 0;
  const taken = new Set<string>();
  const fresh = (base: string) => {
    const n = freshName(g, base, taken);
    taken.add(n);
    return n;
  };
  let sites: SiteIndex | undefined;
  const feeds: string[] = [];
  const b: TermBuilder = {
    input: ctx.input,
    logits: ctx.logits,
    labels: ctx.labels,
    graph: g,
    info: ctx.info,
    site(name) {
      if (g.values.has(name)) return name;
      sites ??= new SiteIndex(listSites(g));
      return sites.get(name).value;
    },
    ops(opType, ins, attributes, outputs) {
      const node = fresh(`${TERM_PREFIX}/${opType}`);
      const outs = Array.from({ length: outputs }, (_, k) => `${node}_output_${k}`);
      for (const o of outs) taken.add(o);
      nodes.push(makeNode(opType, [...ins], outs, { name: node, attributes: [...attributes] }));
      return outs;
    },
    op(opType, ins, attributes = []) {
      return this.ops(opType, ins, attributes, 1)[0];
    },
    constant(t) {
      return this.op('Constant', [], [attr('value', { tensor: tensorToProto(t) })]);
    },
    grad(of, wrt, seed) {
      const gg = buildGradGraph(g, { of, wrt, rules: ctx.rules, info: ctx.info });
      // Its new names are fresh in g but not across calls: give this call's values their own prefix.
      const tag = `${TERM_PREFIX}/grad${grads++}/`;
      const own = new Set([...gg.graph.nodes.slice(g.nodes.length).flatMap((n) => n.output), ...gg.graph.proto.initializer.filter((t) => !g.initializers.has(t.name)).map((t) => t.name)]);
      const rename = (v: string) => (v === gg.seed ? seed : own.has(v) ? tag + v : v);
      for (const n of gg.graph.nodes.slice(g.nodes.length)) nodes.push({ ...n, name: tag + n.name, input: n.input.map(rename), output: n.output.map(rename) });
      for (const t of gg.graph.proto.initializer) if (own.has(t.name)) initializers.push({ ...t, name: tag + t.name });
      for (const v of own) taken.add(tag + v);
      return wrt.map((w) => rename(gg.grads[w]));
    },
    feed(name, dtype, shape) {
      if (g.values.has(name) || taken.has(name)) throw new Error(`loss terms: cannot add input '${name}': the graph already has a value of that name`);
      taken.add(name);
      inputs.push(makeValueInfo(name, ONNX_DTYPE[dtype], shape));
      feeds.push(name);
      return name;
    },
  };
  const values = terms.map((t) => t.build(b));
  const weighted = terms.map((t, i) => b.op('Mul', [values[i], b.constant(Tensor.float32([t.weight], []))]));
  const parts = ctx.base ? [ctx.base, ...weighted] : weighted;
  const total = parts.length === 1 ? b.op('Identity', parts) : b.op('Sum', parts);
  nodes.push(makeNode('Identity', [total], [TOTAL_LOSS], { name: fresh(`${TERM_PREFIX}/objective`) }));
  return { graph: g.withGraph({ node: [...g.nodes, ...nodes], input: inputs, initializer: [...g.proto.initializer, ...initializers] }), values, feeds };
}
