/**
 * One linear layer (Gemm, MatMul with a constant weight, Conv) seen by an LRP rule: its input x, weight W, bias b,
 * output y and the modified gradient g flowing into y, with the two primitives every rule is made of — the layer's
 * own op on other operands (z = ρ(W)·x′ + ρ(b)) and its input-VJP with the weight replaced (ρ(W)ᵀ·s), the latter
 * borrowed from the exact rule table so that strides, pads, groups and transposes are handled once.
 */
import { defaultRules } from '../../../autodiff/rules/index.js';
import type { VjpArgs } from '../../../autodiff/types.js';
import { attr } from '../../../onnx/proto.js';
import { tensorToProto } from '../../../onnx/tensor-proto.js';
import { Tensor, type DType } from '../../../runtime/tensor.js';
import { nodeKey } from './path.js';

export class Layer {
  readonly x: string;
  readonly w: string;
  readonly b?: string;
  readonly y: string;
  readonly t: DType;

  constructor(readonly a: VjpArgs) {
    const op = a.node.opType;
    const where = `${op} '${nodeKey(a.node)}'`;
    if (!a.grads[0] || !a.wants[0]) throw new Error(`LRP: ${where} has no relevance to pass to its input`);
    if (a.wants[1]) throw new Error(`LRP: ${where} multiplies two values that depend on the input; LRP rules need its second operand to be a weight`);
    if (a.wants[2]) throw new Error(`LRP: ${where} has a bias that depends on the input`);
    [this.x, this.w] = a.inputs;
    this.b = op !== 'MatMul' && a.inputs[2] ? a.inputs[2] : undefined;
    this.y = a.outputs[0];
    this.t = (a.info(this.x).dtype ?? 'float32') as DType;
  }

  get e() {
    return this.a.emit;
  }

  /** The incoming relevance R = y ⊙ g (relevance is a value times its modified gradient everywhere). */
  get relevance(): string {
    return this.e.op1('Mul', [this.y, this.a.grads[0]!]);
  }

  /** The layer's op on other operands, with its own attributes (no bias when `b` is undefined). */
  forward(x: string, w: string, b?: string): string {
    const inputs = this.a.node.opType === 'MatMul' ? [x, w] : b ? [x, w, b] : [x, w];
    return this.e.op1(this.a.node.opType, inputs, this.a.node.attribute);
  }

  /** ρ(W)ᵀ·s: the gradient at the layer's input of Σ s ⊙ (layer with weight `w`). */
  backward(w: string, s: string): string {
    const info = (v: string) => this.a.info(v === w ? this.w : v);
    const inputs = this.a.inputs.map((v, i) => (i === 1 ? w : v));
    const rule = defaultRules[this.a.node.opType as 'Gemm' | 'MatMul' | 'Conv'];
    const out = rule({ ...this.a, inputs, info, grads: [s], wants: inputs.map((_, i) => i === 0) })[0];
    if (!out) throw new Error(`LRP: ${this.a.node.opType} '${nodeKey(this.a.node)}' produced no input gradient`);
    return out;
  }

  scalar(v: number): string {
    return this.e.scalar(v, this.t);
  }

  /** max(v, 0) and min(v, 0), exactly. */
  pos(v: string): string {
    return this.e.op1('Relu', [v]);
  }
  neg(v: string): string {
    return this.e.op1('Sub', [v, this.pos(v)]);
  }

  /** A tensor of `v`'s shape filled with `value`. */
  fill(v: string, value: number): string {
    const one = Tensor.zeros(this.t, [1]);
    (one.data as Float32Array)[0] = value;
    return this.e.op1('ConstantOfShape', [this.e.op1('Shape', [v])], [attr('value', { tensor: tensorToProto(one) })]);
  }

  /** The least or greatest value of each example of `v` ([N, 1, …]), for bounds taken from the data. */
  extreme(op: 'ReduceMin' | 'ReduceMax', v: string): string {
    const rank = this.a.info(v).shape?.length;
    if (rank === undefined) throw new Error(`LRP: ${this.a.node.opType} '${nodeKey(this.a.node)}': the rank of '${v}' is unknown`);
    const axes = Array.from({ length: rank - 1 }, (_, i) => i + 1);
    const keep = attr('keepdims', { int: 1 });
    return this.e.opset >= 18 ? this.e.op1(op, [v, this.e.constant(Tensor.int64(axes))], [keep]) : this.e.op1(op, [v], [attr('axes', { ints: axes }), keep]);
  }

  /** s = R / (z + ε·sign z), with sign 0 = +1: the stabilised share of each output. */
  share(r: string, z: string, eps: number): string {
    const e = this.e;
    const signed = e.op1('Where', [e.op1('Less', [z, this.scalar(0)]), this.scalar(-eps), this.scalar(eps)]);
    return e.op1('Div', [r, e.op1('Add', [z, signed])]);
  }
}
