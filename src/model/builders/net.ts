/**
 * A small emitter of forward graphs with PyTorch's naming, shared by the builders: nodes `/c1/Conv` (so sites get
 * aliases like `c1.conv`), their outputs `/c1/Conv_output_0`, trainable weights as initializers `c1.weight`, and
 * everything else (shapes, axes, masks) as Constant nodes, so that a model's initializers are exactly its weights.
 */
import { attr, makeGraph, makeModel, makeNode, makeValueInfo, type AttributeProto, type Dim, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/proto.js';
import { ONNX_DTYPE, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor, type DType } from '../../runtime/tensor.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { defaultBound, uniform, type Rand } from './init.js';

/** The default-domain opset of every builder (LayerNormalization needs 17; Gather and MaxPool gradients need 16). */
export const OPSET = 17;

export class Net {
  readonly rand: Rand;
  private readonly nodes: NodeProto[] = [];
  private readonly weights: TensorProto[] = [];
  private readonly names = new Set<string>();

  constructor(seed: number) {
    this.rand = mulberry32(seed);
  }

  /** A trainable weight, stored as an initializer under `name` (`c1.weight`). */
  param(name: string, t: Tensor): string {
    if (this.names.has(name)) throw new Error(`Net: weight '${name}' is defined twice`);
    this.names.add(name);
    this.weights.push(tensorToProto(t, name));
    return name;
  }

  /**
   * One node in `scope` (a module path like `blocks.0/attn`): named `/scope/Op`, `/scope/Op_1`… as PyTorch's exporter
   * names repeats; its outputs are `<node>_output_k` unless `outputs` names them.
   */
  op(scope: string, opType: string, inputs: readonly string[], attributes: readonly AttributeProto[] = [], outputs?: readonly string[]): string {
    return this.ops(scope, opType, inputs, attributes, outputs ?? 1)[0];
  }

  ops(scope: string, opType: string, inputs: readonly string[], attributes: readonly AttributeProto[], outputs: number | readonly string[]): string[] {
    const base = scope ? `/${scope}/${opType}` : `/${opType}`;
    let name = base;
    for (let k = 1; this.names.has(name); k++) name = `${base}_${k}`;
    this.names.add(name);
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, k) => `${name}_output_${k}`) : [...outputs];
    this.nodes.push(makeNode(opType, inputs, outs, { name, attributes }));
    return outs;
  }

  /** A constant (not a weight): a Constant node in `scope`. */
  constant(scope: string, t: Tensor): string {
    return this.op(scope, 'Constant', [], [attr('value', { tensor: tensorToProto(t) })]);
  }

  /** nn.Linear as PyTorch exports it for 2-D inputs: Gemm with W [out, in] and transB = 1. */
  linear(scope: string, x: string, inFeatures: number, outFeatures: number, output?: string): string {
    const bound = defaultBound(inFeatures);
    const w = this.param(`${dotted(scope)}.weight`, uniform(this.rand, [outFeatures, inFeatures], bound));
    const b = this.param(`${dotted(scope)}.bias`, uniform(this.rand, [outFeatures], bound));
    return this.op(scope, 'Gemm', [x, w, b], [attr('transB', { int: 1 })], output === undefined ? undefined : [output]);
  }

  /**
   * nn.Linear on inputs of any rank: MatMul with W stored as [in, out] (the layout PyTorch's exporter writes for
   * MatMul), then Add of the bias. Initialised as nn.Linear (the bound depends only on fan_in).
   */
  dense(scope: string, x: string, inFeatures: number, outFeatures: number, opts: { bias?: boolean; output?: string } = {}): string {
    const bound = defaultBound(inFeatures);
    const w = this.param(`${dotted(scope)}.weight`, uniform(this.rand, [inFeatures, outFeatures], bound));
    const bias = opts.bias ?? true;
    const y = this.op(scope, 'MatMul', [x, w], [], !bias && opts.output ? [opts.output] : undefined);
    if (!bias) return y;
    const b = this.param(`${dotted(scope)}.bias`, uniform(this.rand, [outFeatures], bound));
    return this.op(scope, 'Add', [y, b], [], opts.output === undefined ? undefined : [opts.output]);
  }

  /** A model with one input and one output (declared element type and shape, symbolic dims by name). */
  model(spec: { name: string; doc: string; input: { name: string; dtype: DType; shape: readonly Dim[] }; output: { name: string; shape: readonly Dim[] } }): ModelProto {
    const graph = makeGraph({
      name: spec.name,
      docString: spec.doc,
      node: this.nodes,
      initializer: this.weights,
      input: [makeValueInfo(spec.input.name, ONNX_DTYPE[spec.input.dtype], spec.input.shape)],
      output: [makeValueInfo(spec.output.name, ONNX_DTYPE.float32, spec.output.shape)],
    });
    return makeModel({
      irVersion: 8n,
      producerName: 'glassbox',
      opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: BigInt(OPSET) }],
      graph,
    });
  }
}

/** `blocks.0/attn/q` → `blocks.0.attn.q`: a scope as a weight-name prefix. */
export function dotted(scope: string): string {
  return scope.split('/').filter(Boolean).join('.');
}

export const int64s = (v: readonly number[]) => Tensor.int64(v);
