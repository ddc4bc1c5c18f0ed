/**
 * Influence functions (Koh & Liang 2017) on the last layer: the closed-form Hessian against finite differences, CG
 * and LiSSA against the explicit inverse Hessian, and on MNIST (an MLP trained here, its last layer refitted to the
 * L2-regularised optimum so the problem is convex): predicted against actual leave-one-out changes of a test loss,
 * and removing the most helpful examples against removing random ones.
 */
import '../../../src/index.js';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { loadMnist } from '../../../src/data/datasets/images.js';
import type { Dataset } from '../../../src/data/datasets/dataset.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel, type ModelProto } from '../../../src/onnx/proto.js';
import { tensorToProto } from '../../../src/onnx/tensor-proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  conjugateGradient,
  cosine,
  fitSoftmax,
  hessianVector,
  influenceFunctions,
  lastLayer,
  lastLayerFeatures,
  lissa,
  objective,
  probabilities,
  type Features,
} from '../../../src/methods/examples/index.js';
import { seeded } from '../../helpers.js';

/** Random features [n, d] (last column 1), labels and probabilities at a random θ. */
function toyFeatures(n: number, D: number, c: number, seed: number): { F: Features; theta: Float64Array } {
  const r = seeded(seed);
  const d = D + 1;
  const a = Float64Array.from({ length: n * d }, (_, k) => (k % d === D ? 1 : 2 * r() - 1));
  const y = Int32Array.from({ length: n }, () => Math.floor(r() * c));
  const theta = Float64Array.from({ length: c * d }, () => r() - 0.5);
  const base = { n, d, c, a, y };
  return { F: { ...base, p: probabilities(theta, base) }, theta };
}

/** Solves A x = b (A dense [m, m]) by Gaussian elimination with partial pivoting. */
function solveDense(A: Float64Array, b: Float64Array): Float64Array {
  const m = b.length;
  const M = A.slice();
  const x = b.slice();
  for (let col = 0; col < m; col++) {
    let piv = col;
    for (let r = col + 1; r < m; r++) if (Math.abs(M[r * m + col]) > Math.abs(M[piv * m + col])) piv = r;
    for (let k = 0; k < m; k++) [M[col * m + k], M[piv * m + k]] = [M[piv * m + k], M[col * m + k]];
    [x[col], x[piv]] = [x[piv], x[col]];
    for (let r = col + 1; r < m; r++) {
      const f = M[r * m + col] / M[col * m + col];
      for (let k = col; k < m; k++) M[r * m + k] -= f * M[col * m + k];
      x[r] -= f * x[col];
    }
  }
  for (let r = m - 1; r >= 0; r--) {
    for (let k = r + 1; k < m; k++) x[r] -= M[r * m + k] * x[k];
    x[r] /= M[r * m + r];
  }
  return x;
}

const relErr = (u: Float64Array, v: Float64Array) => Math.sqrt(u.reduce((s, x, k) => s + (x - v[k]) ** 2, 0) / v.reduce((s, x) => s + x * x, 0));

test('the closed-form Hessian-vector product matches central differences of the gradient', () => {
  const { F, theta } = toyFeatures(30, 4, 3, 1);
  const l2 = 0.01;
  const v = Float64Array.from({ length: theta.length }, (_, k) => Math.sin(k + 1));
  const eps = 1e-5;
  const gradAt = (t: Float64Array) => objective(t, { ...F, p: probabilities(t, F) }, l2).grad;
  const plus = gradAt(theta.map((w, k) => w + eps * v[k]));
  const minus = gradAt(theta.map((w, k) => w - eps * v[k]));
  const fd = plus.map((g, k) => (g - minus[k]) / (2 * eps));
  assert.ok(relErr(hessianVector(F, v, 2 * l2), fd) < 1e-7, `relative error ${relErr(hessianVector(F, v, 2 * l2), fd)}`);
});

test('CG and LiSSA both match the explicit inverse Hessian on a small problem, and agree with each other', () => {
  const { F } = toyFeatures(60, 5, 3, 2);
  const shift = 0.05;
  const P = F.c * F.d; // 18 parameters
  const H = new Float64Array(P * P);
  for (let j = 0; j < P; j++) {
    const e = new Float64Array(P);
    e[j] = 1;
    hessianVector(F, e, shift).forEach((h, i) => (H[i * P + j] = h));
  }
  for (let i = 0; i < P; i++) for (let j = 0; j < i; j++) assert.ok(Math.abs(H[i * P + j] - H[j * P + i]) < 1e-12, 'H is symmetric');
  const b = Float64Array.from({ length: P }, (_, k) => Math.cos(3 * k));
  const exact = solveDense(H, b);
  const cg = conjugateGradient((v) => hessianVector(F, v, shift), b);
  assert.ok(relErr(cg.x, exact) < 1e-8, `CG error ${relErr(cg.x, exact)}`);
  assert.ok(cg.iterations <= P + 5, `CG took ${cg.iterations} iterations for ${P} unknowns`);
  const li = lissa(F, b, shift, { depth: 3000, batch: 20, repeats: 2, seed: 1 });
  assert.ok(relErr(li.x, exact) < 0.1, `LiSSA error ${relErr(li.x, exact)}`);
  assert.ok(cosine(li.x, cg.x) > 0.99, `cosine ${cosine(li.x, cg.x)}`);
  // The same seed gives the same estimate; too small a scale diverges with a clear error.
  assert.deepEqual(lissa(F, b, shift, { depth: 3000, batch: 20, repeats: 2, seed: 1 }).x, li.x);
  assert.throws(() => lissa(F, b, shift, { depth: 3000, scale: 1e-3 }), /LiSSA diverged/);
});

// MNIST: an MLP 784 → 32 → 10 trained on 1000 images, then its last layer refitted to the regularised optimum.
const L2 = 1e-3;
let train: Dataset<'float32'>;
let test_: Dataset<'float32'>;
let model: Model;
let F: Features;
let theta: Float64Array;

/** The model with its last layer replaced by θ [classes, features + 1]. */
function withLastLayer(proto: ModelProto, w: string, b: string, th: Float64Array, c: number, D: number): ModelProto {
  const W = Tensor.float32(Array.from({ length: c * D }, (_, k) => th[Math.floor(k / D) * (D + 1) + (k % D)]), [c, D]);
  const B = Tensor.float32(Array.from({ length: c }, (_, k) => th[k * (D + 1) + D]), [c]);
  const initializer = proto.graph!.initializer.map((t) => (t.name === w ? tensorToProto(W, w) : t.name === b ? tensorToProto(B, b) : t));
  return { ...proto, graph: { ...proto.graph!, initializer } };
}

before(async () => {
  const all = await loadMnist('train');
  train = all.slice(0, 1000);
  test_ = (await loadMnist('test')).slice(0, 200);
  const trainer = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await trainer.fit(train, { epochs: 4, batchSize: 32, seed: 1 });
  const trained = await Model.load(encodeModel(trainer.exportModel()));
  const layer = lastLayer(trained);
  const feats = await lastLayerFeatures(trained, layer, train);
  const fit = fitSoftmax(feats, L2, layer.theta);
  assert.ok(fit.gradNorm < 1e-8, `refit gradient norm ${fit.gradNorm}`);
  model = await Model.load(encodeModel(withLastLayer(trainer.exportModel(), layer.weight, layer.bias!, fit.theta, layer.classes, layer.features)));
  F = await lastLayerFeatures(model, lastLayer(model), train);
  theta = lastLayer(model).theta;
  await trainer.dispose();
});

/** The loss on test features Tt (row t) after refitting the last layer to the optimum without the `removed` rows. */
function refitLoss(removed: readonly number[], T: Features, t: number): number {
  const drop = new Set(removed);
  const keep = Int32Array.from({ length: F.n }, (_, i) => i).filter((i) => !drop.has(i));
  const d = F.d;
  const sub = { n: keep.length, d, c: F.c, a: new Float64Array(keep.length * d), y: new Int32Array(keep.length) };
  keep.forEach((i, r) => {
    sub.a.set(F.a.subarray(i * d, (i + 1) * d), r * d);
    sub.y[r] = F.y[i];
  });
  const fit = fitSoftmax(sub, L2, theta, { tol: 1e-11 });
  const one = { n: 1, d, c: F.c, a: T.a.subarray(t * d, (t + 1) * d), y: T.y.subarray(t, t + 1) };
  return -Math.log(probabilities(fit.theta, one)[T.y[t]]);
}

test('on MNIST, influence predicts leave-one-out retraining (convex last layer), and LiSSA agrees with CG', async () => {
  const tests = test_.subset([0, 1]);
  const last = new Map<string, [number, number]>();
  const onProgress = (p: { stage: string; done: number; total: number }) => void last.set(p.stage, [p.done, p.total]);
  const r = await influenceFunctions(model, train, tests, { l2: L2, damping: 0, crossCheck: true, lissa: { depth: 4000, batch: 50, seed: 1 }, onProgress });
  // Progress reaches the end of every stage: 1000 training and 2 test feature rows, then 2 test examples solved.
  assert.deepEqual([...last], [['training features', [1000, 1000]], ['test features', [2, 2]], ['influence (cg)', [2, 2]]]);
  for (const c of r.checks) assert.ok(c.passed !== false, `${c.name}: ${JSON.stringify(c.value)} (${c.detail})`);
  assert.equal(r.parameters.count, 10 * 33);
  const T = await lastLayerFeatures(model, lastLayer(model), tests);
  const base = refitLoss([], T, 0);
  // Koh & Liang Fig. 2: the examples of largest |influence| on the test loss, each left out and the layer retrained.
  const ranked = Array.from(r.scores[0], (s, i) => [Math.abs(s), i]).sort((a, b) => b[0] - a[0]).slice(0, 16).map(([, i]) => i);
  const predicted = ranked.map((i) => -r.scores[0][i] / F.n);
  const actual = ranked.map((i) => refitLoss([i], T, 0) - base);
  const pearson = correlation(predicted, actual);
  console.log(`leave-one-out: Pearson ${pearson.toFixed(4)} over ${ranked.length} examples; LiSSA·CG cosine ${JSON.stringify(r.checks.find((c) => c.name === 'LiSSA and CG agree')?.value)}`);
  assert.ok(pearson > 0.9, `Pearson ${pearson}`);
});

test('on MNIST, removing the most helpful examples raises the test loss more than removing random ones', async () => {
  const points = [0, 1, 2, 3];
  const tests = test_.subset(points);
  const r = await influenceFunctions(model, train, tests, { l2: L2, damping: 0 });
  const T = await lastLayerFeatures(model, lastLayer(model), tests);
  const k = 30;
  const rand = seeded(7);
  let helpfulDelta = 0;
  let randomDelta = 0;
  for (let t = 0; t < points.length; t++) {
    const base = refitLoss([], T, t);
    helpfulDelta += refitLoss(r.helpful(t, k).map((e) => e.index), T, t) - base;
    for (let rep = 0; rep < 2; rep++) {
      const random = Array.from(new Set(Array.from({ length: 3 * k }, () => Math.floor(rand() * F.n)))).slice(0, k);
      randomDelta += (refitLoss(random, T, t) - base) / 2;
    }
  }
  console.log(`mean Δ test loss, removing ${k}: helpful ${(helpfulDelta / points.length).toExponential(3)}, random ${(randomDelta / points.length).toExponential(3)}`);
  assert.ok(helpfulDelta > 0, 'removing helpful examples raised the test loss');
  assert.ok(helpfulDelta > 5 * Math.abs(randomDelta), `helpful ${helpfulDelta} vs random ${randomDelta}`);
});

test('influence refuses a singular Hessian, and an unknown solver', async () => {
  await assert.rejects(influenceFunctions(model, train.slice(0, 10), test_.slice(0, 1), { l2: 0, damping: 0 }), /singular/);
  await assert.rejects(influenceFunctions(model, train.slice(0, 10), test_.slice(0, 1), { solver: 'newton' as 'cg' }), /unknown solver 'newton'/);
  assert.throws(() => fitSoftmax(F, 0, theta), /l2 must be positive/);
});

function correlation(x: readonly number[], y: readonly number[]): number {
  const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const [mx, my] = [mean(x), mean(y)];
  let [sxy, sxx, syy] = [0, 0, 0];
  x.forEach((xi, i) => {
    sxy += (xi - mx) * (y[i] - my);
    sxx += (xi - mx) ** 2;
    syy += (y[i] - my) ** 2;
  });
  return sxy / Math.sqrt(sxx * syy);
}
