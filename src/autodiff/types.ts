/**
 * The vocabulary of reverse-mode autodiff over ONNX graphs. A VJP rule reads one forward node and the gradients
 * flowing into its outputs and emits plain ONNX ops that compute the gradients of its inputs; rules live in typed
 * tables (one file per op family), and a method can pass its own table (guided backprop, LRP, DeepLIFT).
 */
import type { Dim } from '../onnx/proto.js';
import type { AttributeProto, NodeProto } from '../onnx/proto.js';
import type { DType, Tensor } from '../runtime/tensor.js';

/** What is known of a value: its dtype and shape (symbolic dims as names, unknown as null). */
export interface ValueShape {
  readonly dtype?: DType;
  readonly shape?: readonly Dim[];
}

/** Writes backward ops into the gradient graph; every name it returns is fresh. */
export interface Emitter {
  /** Emits one node and returns its output names (`outputs` of them, default 1). */
  op(opType: string, inputs: readonly string[], attributes?: readonly AttributeProto[], outputs?: number): string[];
  /** Emits one single-output node and returns the output name. */
  op1(opType: string, inputs: readonly string[], attributes?: readonly AttributeProto[]): string;
  /** A constant tensor (an initializer of the gradient graph). */
  constant(t: Tensor): string;
  /** A scalar constant of the given dtype. */
  scalar(value: number, dtype: DType): string;
  /** The default-domain opset of the graph; rules choose attribute or input forms by it. */
  readonly opset: number;
}

export interface VjpArgs {
  readonly node: NodeProto;
  /** Forward input names ('' for an absent optional input). */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** The gradient of the loss with respect to each output; undefined where none flows. */
  readonly grads: readonly (string | undefined)[];
  /** Which inputs need a gradient (the rest may return undefined and are never computed). */
  readonly wants: readonly boolean[];
  /** Dtype and shape of any forward value. */
  readonly info: (name: string) => ValueShape;
  /** The value of an initializer or Constant output (axes, shapes given as inputs), or undefined. */
  readonly constant: (name: string) => Tensor | undefined;
  readonly emit: Emitter;
}

/** Returns the gradient name for each input (undefined: not wanted, or not differentiable). */
export type VjpRule = (a: VjpArgs) => readonly (string | undefined)[];

/** Rules keyed by op type (`domain::Op` outside the default domain). */
export type RuleTable = Readonly<Record<string, VjpRule>>;
