/**
 * A small GPT-style decoder (Radford et al. 2019) as PyTorch would export it: token and position embeddings
 * (Gather), pre-LayerNorm blocks of causal multi-head self-attention and a GELU MLP (exact GELU, through Erf), a final
 * LayerNorm and a bias-free LM head. Input `tokens` int64 [N, T] (T ≤ context), output `logits` [N, T, vocab].
 *
 * Weights follow the PyTorch fixture's names: `tok_emb.weight`, `pos_emb.weight`, `blocks.0.ln1.weight`,
 * `blocks.0.attn.q.weight`, …, `blocks.0.mlp.fc.weight`, `ln_f.weight`, `head.weight`. Dense weights are stored
 * [in, out] (the layout PyTorch's exporter writes for MatMul); initialisation is PyTorch's default.
 *
 * @example
 * const model = gpt({ vocab: 96, context: 32, dModel: 64, heads: 4, layers: 2, seed: 1 });
 */
import { attr, type ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { filled, normal } from './init.js';
import { checkSizes } from './mlp.js';
import { dotted, int64s, Net } from './net.js';

export interface GptSpec {
  readonly vocab: number;
  /** The longest sequence (rows of the position embedding and the causal mask). */
  readonly context: number;
  readonly dModel: number;
  readonly heads: number;
  readonly layers: number;
  /** Hidden width of each MLP (default 4·dModel). */
  readonly mlp?: number;
  readonly seed: number;
}

export function gpt(spec: GptSpec): ModelProto {
  const { vocab, context, dModel: d, heads, layers } = spec;
  const hidden = spec.mlp ?? 4 * d;
  checkSizes('gpt', { vocab, context, dModel: d, heads, layers, mlp: hidden });
  if (d % heads !== 0) throw new Error(`gpt: dModel ${d} is not divisible by heads ${heads}`);
  const dh = d / heads;
  const net = new Net(spec.seed);
  const scalar = (v: number) => new Tensor('int64', BigInt64Array.of(BigInt(v)), []);

  // T from the input, positions 0..T−1, and the causal mask cut to [T, T].
  const t = net.op('', 'Gather', [net.op('', 'Shape', ['tokens']), net.constant('', scalar(1))]);
  const positions = net.op('', 'Range', [net.constant('', scalar(0)), t, net.constant('', scalar(1))]);
  const lower = Tensor.bool(Array.from({ length: context * context }, (_, i) => i % context <= Math.floor(i / context)), [context, context]);
  const tt = net.op('', 'Concat', [0, 1].map(() => net.op('', 'Unsqueeze', [t, net.constant('', int64s([0]))])), [attr('axis', { int: 0 })]);
  const mask = net.op('', 'Slice', [net.constant('', lower), net.constant('', int64s([0, 0])), tt, net.constant('', int64s([0, 1]))]); // [T, T]

  const tok = net.op('tok_emb', 'Gather', [net.param('tok_emb.weight', normal(net.rand, [vocab, d], 1)), 'tokens']); // [N, T, D]
  const pos = net.op('pos_emb', 'Gather', [net.param('pos_emb.weight', normal(net.rand, [context, d], 1)), positions]); // [T, D]
  let h = net.op('', 'Add', [tok, pos]);

  const layerNorm = (scope: string, x: string) => {
    const w = net.param(`${dotted(scope)}.weight`, filled([d], 1));
    const b = net.param(`${dotted(scope)}.bias`, filled([d], 0));
    return net.op(scope, 'LayerNormalization', [x, w, b], [attr('axis', { int: -1 }), attr('epsilon', { float: 1e-5 })]);
  };
  const splitHeads = (scope: string, x: string, perm: number[]) => {
    const r = net.op(scope, 'Reshape', [x, net.constant(scope, int64s([0, 0, heads, dh]))]); // [N, T, H, Dh]
    return net.op(scope, 'Transpose', [r], [attr('perm', { ints: perm })]);
  };

  for (let i = 0; i < layers; i++) {
    const blk = `blocks.${i}`;
    const a = layerNorm(`${blk}/ln1`, h);
    const at = `${blk}/attn`;
    const q = splitHeads(at, net.dense(`${at}/q`, a, d, d), [0, 2, 1, 3]); // [N, H, T, Dh]
    const kT = splitHeads(at, net.dense(`${at}/k`, a, d, d), [0, 2, 3, 1]); // [N, H, Dh, T]
    const v = splitHeads(at, net.dense(`${at}/v`, a, d, d), [0, 2, 1, 3]); // [N, H, T, Dh]
    let s = net.op(at, 'MatMul', [q, kT]); // [N, H, T, T]
    s = net.op(at, 'Mul', [s, net.constant(at, Tensor.float32([1 / Math.sqrt(dh)], []))]);
    s = net.op(at, 'Where', [mask, s, net.constant(at, Tensor.float32([-Infinity], []))]);
    const p = net.op(at, 'Softmax', [s], [attr('axis', { int: -1 })]);
    let o = net.op(at, 'MatMul', [p, v]); // [N, H, T, Dh]
    o = net.op(at, 'Transpose', [o], [attr('perm', { ints: [0, 2, 1, 3] })]);
    o = net.op(at, 'Reshape', [o, net.constant(at, int64s([0, 0, d]))]); // [N, T, D]
    h = net.op(blk, 'Add', [h, net.dense(`${at}/proj`, o, d, d)]);

    const m = layerNorm(`${blk}/ln2`, h);
    const mp = `${blk}/mlp`;
    const f = net.dense(`${mp}/fc`, m, d, hidden);
    // GELU: x·½·(1 + erf(x/√2)), as nn.GELU() exports.
    const erf = net.op(`${mp}/act`, 'Erf', [net.op(`${mp}/act`, 'Div', [f, net.constant(`${mp}/act`, Tensor.float32([Math.SQRT2], []))])]);
    const gelu = net.op(`${mp}/act`, 'Mul', [net.op(`${mp}/act`, 'Mul', [f, net.op(`${mp}/act`, 'Add', [erf, net.constant(`${mp}/act`, Tensor.float32([1], []))])]), net.constant(`${mp}/act`, Tensor.float32([0.5], []))]);
    h = net.op(blk, 'Add', [h, net.dense(`${mp}/proj`, gelu, hidden, d)]);
  }
  h = layerNorm('ln_f', h);
  net.dense('head', h, d, vocab, { bias: false, output: 'logits' });
  return net.model({
    name: 'gpt',
    doc: `glassbox gpt: vocab ${vocab}, context ${context}, ${layers} layers of d ${d} with ${heads} heads`,
    input: { name: 'tokens', dtype: 'int64', shape: ['N', 'T'] },
    output: { name: 'logits', shape: ['N', 'T', vocab] },
  });
}
