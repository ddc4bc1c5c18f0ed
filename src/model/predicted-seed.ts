/**
 * A gradient graph whose seed is computed inside it: the one-hot of each row's predicted class (the first argmax over
 * the last axis of `of`; for [N, T, C], at the last position only), so "the gradient of the predicted class" is one
 * forward + backward run instead of a forward run to find the class and a second one for the gradient.
 */
import type { Graph } from '../onnx/graph.js';
import { attr, makeNode, type NodeProto } from '../onnx/proto.js';
import { ONNX_DTYPE, tensorToProto } from '../onnx/tensor-proto.js';
import { insertNodes } from '../onnx/rewrite.js';
import { Tensor } from '../runtime/tensor.js';

export function withPredictedSeed(g: Graph, of: string, seed: string, rank: number): Graph {
  if (rank !== 2 && rank !== 3) throw new Error(`grad: a predicted-class seed needs '${of}' to be [N, C] or [N, T, C], it has rank ${rank}`);
  const nodes: NodeProto[] = [];
  let k = 0;
  const op = (type: string, inputs: string[], attributes: ReturnType<typeof attr>[] = [], output?: string) => {
    const out = output ?? `${seed}__predicted_${k++}`;
    nodes.push(makeNode(type, inputs, [out], { name: `glassbox/predicted/${type}_${k}`, attributes }));
    return out;
  };
  const constant = (t: Tensor) => op('Constant', [], [attr('value', { tensor: tensorToProto(t) })]);
  const last = constant(Tensor.int64([-1]));
  // [N, 1, C] at the last position for a sequence; the whole row for a classifier.
  const scores = rank === 3 ? op('Slice', [of, last, constant(Tensor.int64([2 ** 62])), constant(Tensor.int64([1]))]) : of;
  const classes = op('ArgMax', [scores], [attr('axis', { int: -1 }), attr('keepdims', { int: 0 })]); // [N] or [N, 1]
  const depth = op('Gather', [op('Shape', [of]), last]);
  const oneHot = op('OneHot', [classes, depth, constant(Tensor.float32([0, 1]))], [attr('axis', { int: -1 })], rank === 2 ? seed : undefined);
  if (rank === 3) {
    // Zeros for positions 0..T−2, then the one-hot row: [N, T, C].
    const earlier = op('Slice', [of, constant(Tensor.int64([0])), last, constant(Tensor.int64([1]))]);
    op('Concat', [op('Sub', [earlier, earlier]), oneHot], [attr('axis', { int: 1 })], seed);
  }
  const dtype = g.values.get(of)?.elemType;
  if (dtype !== undefined && dtype !== ONNX_DTYPE.float32) throw new Error(`grad: a predicted-class seed needs float32 '${of}'`);
  const withoutInput = g.withGraph({ input: g.proto.input.filter((i) => i.name !== seed) });
  return insertNodes(withoutInput, nodes);
}
