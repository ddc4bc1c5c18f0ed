/**
 * An attention-only transformer with its residual stream spelled out per head (Elhage et al. 2021, "A Mathematical
 * Framework for Transformer Circuits"): no MLPs, no LayerNorm, so the logits are a sum of paths through heads.
 * Every head reads its own copies of the residual stream for its query, key and value (Identity nodes), and writes its
 * own contribution to the stream, so circuit methods can patch one head, or one edge into one head, by site name.
 *
 * Sites (aliases): `embed.add` (token + position embedding; `embed.identity` with relative positions), `blocks.L.head.H.{q_in,k_in,v_in}.identity` (the head's
 * inputs), `blocks.L.head.H.pattern.softmax` ([N, T, T] attention), `blocks.L.head.H.out.matmul` (its [N, T, D]
 * contribution to the stream), `unembed.in.identity` (the final stream). `attnOnlyNodes` lists them as a node table.
 *
 * @example
 * const proto = attnOnly({ vocab: 24, context: 20, dModel: 32, heads: 4, layers: 2, seed: 1 });
 */
import { attr, type ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { normal } from './init.js';
import { checkSizes } from './mlp.js';
import { int64s, Net } from './net.js';

export interface AttnOnlySpec {
  readonly vocab: number;
  readonly context: number;
  readonly dModel: number;
  readonly heads: number;
  readonly layers: number;
  /** Width of each head (default dModel / heads). */
  readonly dHead?: number;
  /**
   * 'absolute' (default): a learned position embedding added to the tokens. 'relative': no position embedding, a
   * learned bias per head and distance t − j on the attention scores (Raffel et al. 2020, T5), so heads can find a
   * token by content or by its offset only, never by its absolute position.
   */
  readonly positions?: 'absolute' | 'relative';
  readonly seed: number;
}

/** One node of the residual graph: the sites it reads the stream through, and the site of what it writes to it. */
export interface ResidualNode {
  readonly name: string;
  /** Receiver sites: this node's private copies of the stream (none for the embedding). */
  readonly inputs: readonly string[];
  /** The node's additive contribution to the stream (none for the logits). */
  readonly output?: string;
}

const head = (l: number, h: number) => `blocks.${l}.head.${h}`;

/** The node table of an `attnOnly` model: embedding, every head (q/k/v inputs), logits; in graph order. */
export function attnOnlyNodes(spec: Pick<AttnOnlySpec, 'heads' | 'layers' | 'positions'>): ResidualNode[] {
  const nodes: ResidualNode[] = [{ name: 'embed', inputs: [], output: spec.positions === 'relative' ? 'embed.identity' : 'embed.add' }];
  for (let l = 0; l < spec.layers; l++) {
    for (let h = 0; h < spec.heads; h++) {
      const p = head(l, h);
      nodes.push({ name: `${l}.${h}`, inputs: ['q_in', 'k_in', 'v_in'].map((c) => `${p}.${c}.identity`), output: `${p}.out.matmul` });
    }
  }
  nodes.push({ name: 'logits', inputs: ['unembed.in.identity'] });
  return nodes;
}

/**
 * The node table of an `attnOnly` model read off its site names (a file written by `glassbox train induction-attn`
 * carries no spec): layers and heads from `blocks.L.head.H.out.matmul`, relative positions from `embed.identity`.
 * Throws naming what is missing for a model of another architecture.
 */
export function nodesFromSites(sites: readonly string[]): ResidualNode[] {
  const have = new Set(sites);
  let layers = 0;
  let heads = 0;
  for (const s of sites) {
    const m = /^blocks\.(\d+)\.head\.(\d+)\.out\.matmul$/.exec(s);
    if (m) [layers, heads] = [Math.max(layers, Number(m[1]) + 1), Math.max(heads, Number(m[2]) + 1)];
  }
  if (layers === 0) throw new Error('circuit discovery needs an attention-only model with per-head sites (blocks.L.head.H.out.matmul), as glassbox train induction-attn writes; this model has none');
  const nodes = attnOnlyNodes({ layers, heads, positions: have.has('embed.identity') ? 'relative' : 'absolute' });
  for (const n of nodes) {
    for (const s of [...n.inputs, ...(n.output ? [n.output] : [])]) {
      if (!have.has(s)) throw new Error(`circuit discovery: the model has per-head sites but not '${s}' (node ${n.name})`);
    }
  }
  return nodes;
}

export function attnOnly(spec: AttnOnlySpec): ModelProto {
  const { vocab, context, dModel: d, heads, layers } = spec;
  const dh = spec.dHead ?? d / heads;
  checkSizes('attnOnly', { vocab, context, dModel: d, heads, layers, dHead: dh });
  const net = new Net(spec.seed);
  const scalar = (v: number) => new Tensor('int64', BigInt64Array.of(BigInt(v)), []);
  const t = net.op('', 'Gather', [net.op('', 'Shape', ['tokens']), net.constant('', scalar(1))]);
  const lower = Tensor.bool(Array.from({ length: context * context }, (_, i) => i % context <= Math.floor(i / context)), [context, context]);
  const tt = net.op('', 'Concat', [0, 1].map(() => net.op('', 'Unsqueeze', [t, net.constant('', int64s([0]))])), [attr('axis', { int: 0 })]);
  const mask = net.op('', 'Slice', [net.constant('', lower), net.constant('', int64s([0, 0])), tt, net.constant('', int64s([0, 1]))]); // [T, T]

  // Small embeddings (std 1/√d): without LayerNorm, N(0, 1) would saturate the first softmaxes.
  const std = 1 / Math.sqrt(d);
  const tok = net.op('tok_emb', 'Gather', [net.param('tok_emb.weight', normal(net.rand, [vocab, d], std)), 'tokens']); // [N, T, D]
  const relative = spec.positions === 'relative';
  let resid: string;
  let distance = '';
  if (relative) {
    resid = net.op('embed', 'Identity', [tok]);
    // t − j for key j ≤ query t (0 above the diagonal, masked anyway), cut to [T, T].
    const dist = Tensor.int64(Array.from({ length: context * context }, (_, i) => Math.max(0, Math.floor(i / context) - (i % context))), [context, context]);
    distance = net.op('', 'Slice', [net.constant('', dist), net.constant('', int64s([0, 0])), tt, net.constant('', int64s([0, 1]))]);
  } else {
    const positions = net.op('', 'Range', [net.constant('', scalar(0)), t, net.constant('', scalar(1))]);
    const pos = net.op('pos_emb', 'Gather', [net.param('pos_emb.weight', normal(net.rand, [context, d], std)), positions]); // [T, D]
    resid = net.op('embed', 'Add', [tok, pos]);
  }
  const w = (name: string, rows: number, cols: number) => net.param(name, normal(net.rand, [rows, cols], 1 / Math.sqrt(rows)));
  for (let l = 0; l < layers; l++) {
    const outs: string[] = [];
    for (let h = 0; h < heads; h++) {
      const p = head(l, h);
      const read = (c: string) => net.op(`${p}/${c}_in`, 'Identity', [resid]); // this head's copy of the stream
      const q = net.op(`${p}/q`, 'MatMul', [read('q'), w(`${p}.q.weight`, d, dh)]); // [N, T, Dh]
      const k = net.op(`${p}/k`, 'MatMul', [read('k'), w(`${p}.k.weight`, d, dh)]);
      const v = net.op(`${p}/v`, 'MatMul', [read('v'), w(`${p}.v.weight`, d, dh)]);
      const kT = net.op(`${p}/k`, 'Transpose', [k], [attr('perm', { ints: [0, 2, 1] })]); // [N, Dh, T]
      let s = net.op(`${p}/scores`, 'MatMul', [q, kT]); // [N, T, T]
      s = net.op(`${p}/scores`, 'Mul', [s, net.constant(`${p}/scores`, Tensor.float32([1 / Math.sqrt(dh)], []))]);
      if (relative) s = net.op(`${p}/scores`, 'Add', [s, net.op(`${p}/rel`, 'Gather', [net.param(`${p}.rel.weight`, new Tensor('float32', new Float32Array(context), [context])), distance])]); // + bias[t − j]
      s = net.op(`${p}/scores`, 'Where', [mask, s, net.constant(`${p}/scores`, Tensor.float32([-Infinity], []))]);
      const pattern = net.op(`${p}/pattern`, 'Softmax', [s], [attr('axis', { int: -1 })]);
      const z = net.op(`${p}/z`, 'MatMul', [pattern, v]); // [N, T, Dh]
      outs.push(net.op(`${p}/out`, 'MatMul', [z, w(`${p}.o.weight`, dh, d)])); // [N, T, D]
    }
    resid = net.op(`blocks.${l}`, 'Sum', [resid, ...outs]);
  }
  const final = net.op('unembed/in', 'Identity', [resid]);
  net.op('unembed', 'MatMul', [final, w('unembed.weight', d, vocab)], [], ['logits']);
  return net.model({
    name: 'attn-only',
    doc: `glassbox attention-only transformer: vocab ${vocab}, context ${context}, ${layers} layers of d ${d} with ${heads} heads of ${dh}`,
    input: { name: 'tokens', dtype: 'int64', shape: ['N', 'T'] },
    output: { name: 'logits', shape: ['N', 'T', vocab] },
  });
}
