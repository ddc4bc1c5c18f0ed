/**
 * The loss appended to a classifier's graph: softmax cross-entropy over the last axis of the logits, as
 * PyTorch's F.cross_entropy computes it (log-softmax, the label's log-probability picked by a one-hot product,
 * negated), averaged over every label (batch, or batch × time for a language model) or summed. The graph also counts
 * correct argmax predictions, so accuracy comes from the same run.
 */
import type { Graph } from '../../onnx/graph.js';
import { attr, makeNode, makeValueInfo, type NodeProto } from '../../onnx/proto.js';
import { ONNX_DTYPE, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';

/** Names the loss head adds: the labels input and three outputs. */
export const HEAD = { labels: 'labels', loss: 'loss', correct: 'correct', pred: 'pred' } as const;

export interface HeadOptions {
  /** The logits value (default: the graph's first output); classes on its last axis. */
  readonly logits?: string;
  /** 'mean' over all labels (training) or 'sum' (evaluation over batches of any size). */
  readonly reduction: 'mean' | 'sum';
}

/**
 * Adds input `labels` (int64, the logits' shape without the class axis) and outputs `loss` (float32 scalar), `correct`
 * (float32 scalar: how many argmax predictions equal the label) and `pred` (int64 argmax, the labels' shape); these
 * replace the graph's outputs. Constants are Constant nodes, so the graph's initializers stay its weights.
 */
export function appendClassifierHead(g: Graph, options: HeadOptions): Graph {
  const logits = options.logits ?? g.outputs[0]?.name;
  if (!logits || !g.values.has(logits)) throw new Error(`loss: the graph has no logits value '${logits}'`);
  for (const n of Object.values(HEAD)) if (g.values.has(n)) throw new Error(`loss: the graph already has a value named '${n}'`);
  const shape = g.values.get(logits)?.shape;
  const classes = shape?.[shape.length - 1];
  if (typeof classes !== 'number') throw new Error(`loss: the class axis of '${logits}' must have a declared size, got [${shape?.join(', ') ?? '?'}]`);

  const nodes: NodeProto[] = [];
  let k = 0;
  const op = (opType: string, inputs: string[], attributes: ReturnType<typeof attr>[] = [], output?: string): string => {
    const name = `/loss/${opType}${k ? `_${k}` : ''}`;
    k++;
    const out = output ?? `${name}_output_0`;
    nodes.push(makeNode(opType, inputs, [out], { name, attributes }));
    return out;
  };
  const constant = (t: Tensor) => op('Constant', [], [attr('value', { tensor: tensorToProto(t) })]);

  const logp = op('LogSoftmax', [logits], [attr('axis', { int: -1 })]);
  const picked = pickLabels(g, op, constant, logp, classes); // [N] or [N, T]
  const total = options.reduction === 'mean' ? op('ReduceMean', [picked], [attr('keepdims', { int: 0 })]) : op('ReduceSum', [picked], [attr('keepdims', { int: 0 })]);
  op('Neg', [total], [], HEAD.loss);
  op('ArgMax', [logits], [attr('axis', { int: -1 }), attr('keepdims', { int: 0 })], HEAD.pred);
  const hits = op('Cast', [op('Equal', [HEAD.pred, HEAD.labels])], [attr('to', { int: ONNX_DTYPE.float32 })]);
  op('ReduceSum', [hits], [attr('keepdims', { int: 0 })], HEAD.correct);

  const labelShape = shape!.slice(0, -1);
  return g.withGraph({
    node: [...g.nodes, ...nodes],
    input: [...g.proto.input, makeValueInfo(HEAD.labels, ONNX_DTYPE.int64, labelShape)],
    output: [
      makeValueInfo(HEAD.loss, ONNX_DTYPE.float32, []),
      makeValueInfo(HEAD.correct, ONNX_DTYPE.float32, []),
      makeValueInfo(HEAD.pred, ONNX_DTYPE.int64, labelShape),
    ],
  });
}

type Op = (opType: string, inputs: string[], attributes?: ReturnType<typeof attr>[], output?: string) => string;

/**
 * Each label's log-probability. From opset 16 by GatherElements (its gradient scatter-adds, which needs opset 16),
 * which reads one value per label; before, through a one-hot product, which writes and reads [labels × classes]
 * (about a tenth of a training step for a 4096-word language model).
 */
function pickLabels(g: Graph, op: Op, constant: (t: Tensor) => string, logp: string, classes: number): string {
  const last = constant(Tensor.int64([-1]));
  if ((g.opset.get('') ?? 0) >= 16) {
    const at = op('Unsqueeze', [HEAD.labels, last]);
    return op('Squeeze', [op('GatherElements', [logp, at], [attr('axis', { int: -1 })]), last]);
  }
  const oneHot = op('OneHot', [HEAD.labels, constant(new Tensor('int64', BigInt64Array.of(BigInt(classes)), [])), constant(Tensor.float32([0, 1]))], [attr('axis', { int: -1 })]);
  return op('ReduceSum', [op('Mul', [logp, oneHot]), last], [attr('keepdims', { int: 0 })]);
}
