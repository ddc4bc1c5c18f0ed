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
import { appendTerms, TOTAL_LOSS, type LossTerm } from './terms.js';

export interface StepGraph {
  readonly bytes: Uint8Array;
  /** The value the step minimises: the cross-entropy `loss`, or `objective` when there are loss terms. */
  readonly objective: string;
  /** The value of each graph loss term (unweighted), in term order. */
  readonly terms: readonly string[];
  /** Extra inputs the terms read, fed from the batch's `extra`. */
  readonly feeds: readonly string[];
  /** The seed input of the backward (fed a scalar 1: the gradient of the loss itself). */
  readonly seed: string;
  /** For each weight, the output holding its gradient. */
  readonly grads: Readonly<Record<string, string>>;
  /** Outputs in fetch order: the objective, loss and correct (with the head), the terms, then the weight gradients. */
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

/** What a step graph is made of besides the forward pass and the weights. */
export interface StepSpec {
  /** 'classifier' (default): cross-entropy on the logits; 'none': the terms alone are the objective. */
  readonly head?: 'classifier' | 'none';
  readonly terms?: readonly LossTerm[];
}

/** The step graph for inputs of the shapes of `sample` (its values are not used: zeros are probed). */
export async function buildStepGraph(
  runtime: Runtime,
  forward: Graph,
  weights: readonly string[],
  sample: { readonly input: string; readonly x: Tensor; readonly y?: Tensor; readonly extra?: Readonly<Record<string, Tensor>> },
  rules: RuleTable,
  spec: StepSpec = {},
): Promise<StepGraph> {
  const head = (spec.head ?? 'classifier') === 'classifier';
  const terms = spec.terms ?? [];
  if (head && !sample.y) throw new Error('step: a classifier needs labels y');
  const withLoss = head ? appendClassifierHead(forward, { reduction: 'mean' }) : forward;
  const zeros = (t: Tensor) => Tensor.zeros(t.dtype, t.shape);
  const feeds: Record<string, Tensor> = { [sample.input]: zeros(sample.x), ...(head ? { [HEAD.labels]: Tensor.zeros('int64', sample.y!.shape) } : {}) };
  let shapes = await probeShapes(runtime, withLoss, feeds);
  let graph = withLoss;
  let objective: string = HEAD.loss;
  let termValues: readonly string[] = [];
  let termFeeds: readonly string[] = [];
  if (terms.length || !head) {
    const known = shapes;
    const logits = forward.outputs[0].name;
    const built = appendTerms(withLoss, terms, {
      input: sample.input,
      logits,
      labels: head ? HEAD.labels : undefined,
      base: head ? HEAD.loss : undefined,
      info: (v) => known.get(v) ?? withLoss.values.get(v) ?? {},
      rules,
    });
    for (const f of built.feeds) {
      const t = sample.extra?.[f];
      if (!t) throw new Error(`step: the loss terms read '${f}'; pass it in the batch's extra inputs`);
      feeds[f] = zeros(t);
    }
    graph = addOutputs(built.graph, [TOTAL_LOSS, ...built.values]);
    shapes = await probeShapes(runtime, graph, feeds);
    objective = TOTAL_LOSS;
    termValues = built.values;
    termFeeds = built.feeds;
  }
  const info = (v: string): ValueShape => shapes.get(v) ?? graph.values.get(v) ?? {};
  const gg = buildGradGraph(promoteInitializers(graph, weights), { of: objective, wrt: weights, rules, info });
  const fetches = [...new Set([objective, ...(head ? [HEAD.loss, HEAD.correct] : []), ...termValues]), ...weights.map((w) => gg.grads[w])];
  return { bytes: selectOutputs(gg.graph, fetches).encode(), objective, terms: termValues, feeds: termFeeds, seed: gg.seed, grads: gg.grads, fetches };
}

/**
 * The gradient of the mean cross-entropy with respect to the model's input, for the current weights (fed as inputs):
 * what PGD adversarial training steps along. Outputs `loss` and the gradient's value name.
 */
export async function buildInputGradGraph(
  runtime: Runtime,
  forward: Graph,
  weights: readonly string[],
  sample: { readonly input: string; readonly x: Tensor; readonly y: Tensor },
  rules: RuleTable,
): Promise<{ readonly bytes: Uint8Array; readonly seed: string; readonly grad: string }> {
  const withLoss = appendClassifierHead(forward, { reduction: 'mean' });
  const feeds = { [sample.input]: Tensor.zeros(sample.x.dtype, sample.x.shape), [HEAD.labels]: Tensor.zeros('int64', sample.y.shape) };
  const shapes = await probeShapes(runtime, withLoss, feeds);
  const info = (v: string): ValueShape => shapes.get(v) ?? withLoss.values.get(v) ?? {};
  const gg = buildGradGraph(promoteInitializers(withLoss, weights), { of: HEAD.loss, wrt: [sample.input], rules, info });
  const grad = gg.grads[sample.input];
  return { bytes: selectOutputs(gg.graph, [HEAD.loss, grad]).encode(), seed: gg.seed, grad };
}

/** The evaluation graph: summed loss, correct count and argmax predictions, for batches of any size. */
export function buildEvalGraph(forward: Graph, weights: readonly string[]): Uint8Array {
  return promoteInitializers(appendClassifierHead(forward, { reduction: 'sum' }), weights).encode();
}
