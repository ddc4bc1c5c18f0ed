/**
 * Folds inference-mode BatchNormalization into the Conv before it, a graph rewrite LRP needs (Montavon et al. 2019
 * §10.3 "Handling batch normalization": a conv followed by BN is one affine layer, and LRP rules apply to that layer,
 * not to two). With k = γ/√(σ² + ε) per output channel: W′ = W·k, b′ = (b − μ)·k + β. The folded Conv writes BN's
 * output name, so every site after it keeps its name; the rest of the model is unchanged.
 *
 * @example
 * const folded = foldBatchNorm(model.graph); // folded.graph computes the same outputs, folded.count BNs fewer
 */
import type { Graph } from '../../../onnx/graph.js';
import { getAttr, makeNode, type NodeProto } from '../../../onnx/proto.js';
import { freshName, prune } from '../../../onnx/rewrite.js';
import { tensorFromProto, tensorToProto } from '../../../onnx/tensor-proto.js';
import type { Model } from '../../../model/model.js';
import { Tensor } from '../../../runtime/tensor.js';

/** The value of an initializer or Constant output as float64, or undefined. */
function constantValues(g: Graph, name: string): { data: Float64Array; shape: number[] } | undefined {
  const init = g.initializers.get(name);
  const p = init ? undefined : g.producerOf(name);
  const proto = init ?? (p?.opType === 'Constant' ? getAttr(p, 'value')?.t : undefined);
  if (!proto) return undefined;
  const t = tensorFromProto(proto);
  if (t.dtype !== 'float32' && t.dtype !== 'float64') return undefined;
  return { data: Float64Array.from(t.data as Float32Array), shape: [...t.shape] };
}

/** Which BN nodes fold into which Conv: the Conv's output is read by the BN alone and every parameter is constant. */
function foldable(g: Graph, bn: NodeProto): NodeProto | undefined {
  const conv = g.producerOf(bn.input[0]);
  if (!conv || conv.opType !== 'Conv' || (conv.domain && conv.domain !== 'ai.onnx')) return undefined;
  const outputs = new Set(g.proto.output.map((o) => o.name));
  if (outputs.has(conv.output[0]) || (g.consumers.get(conv.output[0]) ?? []).length !== 1) return undefined;
  // Before opset 7, spatial = 0 means statistics per element, not per channel; training outputs must go unread.
  if (getAttr(bn, 'spatial') && Number(getAttr(bn, 'spatial')!.i) === 0) return undefined;
  if (getAttr(bn, 'training_mode') && Number(getAttr(bn, 'training_mode')!.i) === 1) return undefined;
  if (bn.output.slice(1).some((o) => o && ((g.consumers.get(o) ?? []).length > 0 || outputs.has(o)))) return undefined;
  const params = [conv.input[1], ...bn.input.slice(1, 5), ...(conv.input[2] ? [conv.input[2]] : [])];
  return params.every((p) => p && constantValues(g, p)) ? conv : undefined;
}

export interface Folded {
  readonly graph: Graph;
  /** BatchNormalization nodes folded away. */
  readonly count: number;
}

export function foldBatchNorm(g: Graph): Folded {
  const replace = new Map<NodeProto, NodeProto>();
  const drop = new Set<NodeProto>();
  const inits = [];
  const taken = new Set<string>();
  const fresh = (base: string) => {
    const n = freshName(g, base, taken);
    taken.add(n);
    return n;
  };
  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization' || (bn.domain && bn.domain !== 'ai.onnx')) continue;
    const conv = foldable(g, bn);
    if (!conv) continue;
    const w = constantValues(g, conv.input[1])!;
    const [scale, beta, mean, variance] = bn.input.slice(1, 5).map((p) => constantValues(g, p)!.data);
    const eps = getAttr(bn, 'epsilon')?.f ?? 1e-5;
    const outC = w.shape[0];
    if ([scale, beta, mean, variance].some((v) => v.length !== outC)) {
      throw new Error(`foldBatchNorm: BatchNormalization '${bn.name || bn.output[0]}' has parameters of length ≠ ${outC}, the output channels of Conv '${conv.name || conv.output[0]}'`);
    }
    const bias = conv.input[2] ? constantValues(g, conv.input[2])!.data : new Float64Array(outC);
    const per = w.data.length / outC;
    const wf = new Float32Array(w.data.length);
    const bf = new Float32Array(outC);
    for (let o = 0; o < outC; o++) {
      const k = scale[o] / Math.sqrt(variance[o] + eps);
      for (let j = 0; j < per; j++) wf[o * per + j] = w.data[o * per + j] * k;
      bf[o] = (bias[o] - mean[o]) * k + beta[o];
    }
    const wName = fresh(`${conv.input[1]}_bnfolded`);
    const bName = fresh(`${conv.input[2] || conv.input[1]}_bnfolded_bias`);
    inits.push(tensorToProto(Tensor.float32(wf, w.shape), wName), tensorToProto(Tensor.float32(bf, [outC]), bName));
    replace.set(conv, makeNode('Conv', [conv.input[0], wName, bName], [bn.output[0]], { name: conv.name, attributes: conv.attribute }));
    drop.add(bn);
  }
  if (drop.size === 0) return { graph: g, count: 0 };
  const node = g.nodes.filter((n) => !drop.has(n)).map((n) => replace.get(n) ?? n);
  const gone = new Set([...replace.keys()].map((c) => c.output[0]));
  const valueInfo = g.proto.valueInfo.filter((v) => !gone.has(v.name));
  return { graph: prune(g.withGraph({ node, valueInfo, initializer: [...g.proto.initializer, ...inits] })), count: drop.size };
}

const cache = new WeakMap<Model, Promise<Model>>();

/** The model with its Conv+BatchNormalization pairs folded (the model itself where there are none); cached per model. */
export function foldedModel(model: Model): Promise<Model> {
  let m = cache.get(model);
  if (!m) {
    const { graph, count } = foldBatchNorm(model.graph);
    const ModelClass = model.constructor as typeof Model;
    m = count === 0 ? Promise.resolve(model) : ModelClass.load(graph.encode(), { runtime: model.runtime });
    cache.set(model, m);
  }
  return m;
}
