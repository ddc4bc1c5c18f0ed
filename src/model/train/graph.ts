/**
 * The two graphs a Trainer runs, both with the weights as graph inputs (fed each call, never re-serialised):
 *
 * - the step graph: forward → cross-entropy (mean) → the backward of the loss w.r.t. every weight, built by
 *   buildGradGraph from the VJP rules, all in one session that returns the loss, the correct count and every weight
 *   gradient. The backward depends on concrete shapes (a reduction's count, broadcast axes), so one is built per
 *   input shape (batch size) from a probe run that learns every value's dtype and shape.
 * - the evaluation graph: forward → cross-entropy (sum) → argmax, valid for any batch size.
 */
import { buildGradGraph } from '../../autodiff/grad.js';
import type { RuleTable, ValueShape } from '../../autodiff/types.js';
import type { Graph } from '../../onnx/graph.js';
import { addOutputs, selectOutputs } from '../../onnx/rewrite.js';
import type { Runtime } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import { appendClassifierHead, HEAD } from './loss.js';
import { promoteInitializers } from './promote.js';

export interface StepGraph {
  readonly bytes: Uint8Array;
  /** The seed input of the backward (fed a scalar 1: the gradient of the loss itself). */
  readonly seed: string;
  /** For each weight, the output holding its gradient. */
  readonly grads: Readonly<Record<string, string>>;
  /** Outputs in fetch order: loss, correct, then the gradients in weight order. */
  readonly fetches: readonly string[];
}

/** Runs the graph once with every node output exposed and records each value's dtype and shape. */
export async function probeShapes(runtime: Runtime, g: Graph, feeds: Readonly<Record<string, Tensor>>): Promise<Map<string, ValueShape>> {
  const values = g.nodes.flatMap((n) => n.output.filter((o) => o !== ''));
  const session = await runtime.createSession(addOutputs(g, values).encode());
  try {
    const out = await session.run(feeds, values);
    const shapes = new Map<string, ValueShape>();
    for (const [name, t] of Object.entries(feeds)) shapes.set(name, { dtype: t.dtype, shape: t.shape });
    for (const [name, v] of g.values) if (v.kind === 'initializer') shapes.set(name, { dtype: v.dtype, shape: v.shape });
    for (const [name, t] of Object.entries(out)) shapes.set(name, { dtype: t.dtype, shape: t.shape });
    return shapes;
  } finally {
    await session.release();
  }
}

/** The step graph for inputs of the shapes of `sample` (its values are not used: zeros are probed). */
export async function buildStepGraph(
  runtime: Runtime,
  forward: Graph,
  weights: readonly string[],
  sample: { readonly input: string; readonly x: Tensor; readonly y: Tensor },
  rules: RuleTable,
): Promise<StepGraph> {
  const withLoss = appendClassifierHead(forward, { reduction: 'mean' });
  const feeds = { [sample.input]: Tensor.zeros(sample.x.dtype, sample.x.shape), [HEAD.labels]: Tensor.zeros('int64', sample.y.shape) };
  const shapes = await probeShapes(runtime, withLoss, feeds);
  const info = (v: string): ValueShape => shapes.get(v) ?? withLoss.values.get(v) ?? {};
  const gg = buildGradGraph(promoteInitializers(withLoss, weights), { of: HEAD.loss, wrt: weights, rules, info });
  const fetches = [HEAD.loss, HEAD.correct, ...weights.map((w) => gg.grads[w])];
  return { bytes: selectOutputs(gg.graph, fetches).encode(), seed: gg.seed, grads: gg.grads, fetches };
}

/** The evaluation graph: summed loss, correct count and argmax predictions, for batches of any size. */
export function buildEvalGraph(forward: Graph, weights: readonly string[]): Uint8Array {
  return promoteInitializers(appendClassifierHead(forward, { reduction: 'sum' }), weights).encode();
}
