/**
 * Representer points (Yeh, Kim, Yen, Ravikumar 2018, "Representer Point Selection for Explaining Deep Neural
 * Networks"). At a stationary point of (1/n) Σ L(z_i) + λ‖Θ‖² over the last layer Θ, the optimality condition
 * gives Θ = Σ_i α_i f̃_iᵀ with α_i = −1/(2λn) ∂L/∂logits_i = −(p_i − onehot(y_i)) / (2λn), so every test logit
 * decomposes over the training set: logits_t = Σ_i α_i (f̃_i · f̃_t). The representer value of training point i for
 * test t is α_i[c] (f̃_i · f̃_t) for the class c explained (default: the predicted one). Here f̃ = [f, 1]: the bias is
 * the weight of a constant feature and is regularised with the rest, which keeps the decomposition exact.
 *
 * As in the paper, the last layer is first fitted to the regularised optimum (Newton's method with conjugate
 * gradients on the host, warm-started from the model's weights; the objective is strongly convex), and the fit's
 * agreement with the model is reported.
 *
 * @example
 * const r = await representerPoints(model, train, test.slice(0, 1), { l2: 1e-3 });
 * r.helpful(0, 5); // excitatory training points of test example 0's predicted class
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import type { Model } from '../../model/model.js';
import type { Check } from '../attribution/explanation.js';
import { conjugateGradient, hessianVector, lastLayer, lastLayerFeatures, objective, probabilities, topExamples, type Features, type RankedExample, type StageProgress } from './influence.js';

const l2norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

export interface FitResult {
  readonly theta: Float64Array;
  readonly loss: number;
  /** ‖∇‖ of the regularised objective at the returned Θ. */
  readonly gradNorm: number;
  readonly iterations: number;
}

/**
 * Minimises (1/n) Σ CE(Θ ã_i, y_i) + l2‖Θ‖² by Newton-CG with backtracking (Nocedal & Wright, ch. 7), from theta0.
 */
export function fitSoftmax(F: Omit<Features, 'p'>, l2: number, theta0: Float64Array, { tol = 1e-9, maxIter = 50 } = {}): FitResult {
  if (!(l2 > 0)) throw new Error(`fitSoftmax: l2 must be positive (the optimum is otherwise not unique), got ${l2}`);
  if (theta0.length !== F.c * F.d) throw new Error(`fitSoftmax: theta0 has ${theta0.length} values, expected ${F.c}·${F.d}`);
  let theta = theta0.slice();
  let cur = { ...F, p: probabilities(theta, F) };
  let obj = objective(theta, cur, l2);
  let it = 0;
  for (; it < maxIter; it++) {
    const gn = l2norm(obj.grad);
    if (gn < tol) break;
    const at = cur;
    // Inexact Newton (Eisenstat & Walker forcing term): solve only as precisely as the gradient is small.
    const step = conjugateGradient((v) => hessianVector(at, v, 2 * l2), obj.grad, { tol: Math.min(0.1, Math.sqrt(gn)), maxIter: 500 }).x;
    let t = 1;
    for (; t > 1e-10; t /= 2) {
      const next = theta.map((w, k) => w - t * step[k]);
      const nf = { ...F, p: probabilities(next, F) };
      const no = objective(next, nf, l2);
      if (no.loss <= obj.loss + 1e-12 * Math.abs(obj.loss) || l2norm(no.grad) < gn) {
        theta = next;
        cur = nf;
        obj = no;
        break;
      }
    }
    if (t <= 1e-10) break;
  }
  return { theta, loss: obj.loss, gradNorm: l2norm(obj.grad), iterations: it };
}

export interface RepresenterOptions {
  /** λ of the regulariser λ‖Θ‖² the last layer is fitted with (required, positive). */
  readonly l2: number;
  /** The class each test example is explained for (default: its predicted class under the fitted layer). */
  readonly classes?: readonly number[];
  readonly batchSize?: number;
  readonly onProgress?: StageProgress;
}

export interface RepresenterResult {
  readonly method: 'representer-points';
  readonly lambda: number;
  /** The fitted last layer [classes, features + 1]. */
  readonly theta: Float64Array;
  /** α_i per training example [n, classes]. */
  readonly alpha: Float64Array;
  /** The class explained for each test example. */
  readonly classes: readonly number[];
  /** Representer values α_i[c_t] (f̃_i · f̃_t) per test example t, per training example i. */
  readonly values: readonly Float64Array[];
  /** The fitted layer's logits per test example. */
  readonly logits: readonly Float64Array[];
  /** Largest positive (excitatory) or negative (inhibitory) representer values. */
  helpful(t: number, k: number): RankedExample[];
  harmful(t: number, k: number): RankedExample[];
  readonly checks: Check[];
}

/** Representer values of every training example for every test example, through the refitted last dense layer. */
export async function representerPoints(model: Model, train: Dataset, test: Dataset, options: RepresenterOptions): Promise<RepresenterResult> {
  const lambda = options.l2;
  if (!(lambda > 0) || !Number.isFinite(lambda)) throw new Error(`representer points: l2 must be a positive number, got ${lambda}`);
  const layer = lastLayer(model);
  const F = await lastLayerFeatures(model, layer, train, options.batchSize, options.onProgress, 'training features');
  const T = await lastLayerFeatures(model, layer, test, options.batchSize, options.onProgress, 'test features');
  options.onProgress?.({ stage: 'fitting the last layer', done: 0, total: 1 });
  const fit = fitSoftmax(F, lambda, layer.theta);
  const { n, c, d } = F;
  const p = probabilities(fit.theta, F);
  const alpha = new Float64Array(n * c);
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) alpha[i * c + k] = -(p[i * c + k] - (F.y[i] === k ? 1 : 0)) / (2 * lambda * n);

  const values: Float64Array[] = [];
  const logits: Float64Array[] = [];
  const classes: number[] = [];
  let decomposition = 0;
  for (let t = 0; t < T.n; t++) {
    const z = new Float64Array(c);
    for (let k = 0; k < c; k++) for (let j = 0; j < d; j++) z[k] += fit.theta[k * d + j] * T.a[t * d + j];
    const cls = options.classes?.[t] ?? z.indexOf(Math.max(...z));
    if (!(Number.isInteger(cls) && cls >= 0 && cls < c)) throw new Error(`representer points: class ${cls} for test example ${t} is not one of ${c}`);
    const v = new Float64Array(n);
    const sums = new Float64Array(c);
    for (let i = 0; i < n; i++) {
      let k2 = 0;
      for (let j = 0; j < d; j++) k2 += F.a[i * d + j] * T.a[t * d + j];
      for (let k = 0; k < c; k++) sums[k] += alpha[i * c + k] * k2;
      v[i] = alpha[i * c + cls] * k2;
    }
    for (let k = 0; k < c; k++) decomposition = Math.max(decomposition, Math.abs(sums[k] - z[k]) / Math.max(1, Math.abs(z[k])));
    values.push(v);
    logits.push(z);
    classes.push(cls);
  }
  let agree = 0;
  for (let i = 0; i < n; i++) {
    const row = (q: Float64Array) => Array.from(q.subarray(i * c, (i + 1) * c));
    const [a, b] = [row(F.p), row(p)];
    if (a.indexOf(Math.max(...a)) === b.indexOf(Math.max(...b))) agree++;
  }
  const checks: Check[] = [
    { name: 'last layer at the regularised optimum', value: fit.gradNorm, passed: fit.gradNorm < 1e-6, detail: `‖∇‖ of mean CE + ${lambda}·‖Θ‖² after ${fit.iterations} Newton-CG steps` },
    { name: 'representer decomposition reproduces the logits', value: decomposition, passed: decomposition < 1e-4, detail: 'max |Σ_i α_i f̃_i·f̃_t − logits_t| / max(1, |logits_t|) over test examples and classes' },
    { name: 'fitted layer agrees with the model', value: agree / n, detail: 'fraction of training examples with the same argmax under the refitted last layer as under the model' },
  ];
  const at = (t: number) => {
    if (!(t >= 0 && t < values.length)) throw new Error(`representer points: test example ${t} out of range [0, ${values.length})`);
    return values[t];
  };
  return {
    method: 'representer-points',
    lambda,
    theta: fit.theta,
    alpha,
    classes,
    values,
    logits,
    helpful: (t, k) => topExamples(at(t), k, 'largest'),
    harmful: (t, k) => topExamples(at(t), k, 'smallest'),
    checks,
  };
}
