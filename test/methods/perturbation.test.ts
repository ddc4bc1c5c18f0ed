/** Perturbation attribution methods against closed forms on toy models, their mask helpers, and a real PyTorch CNN. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { Net } from '../../src/model/builders/net.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { sumPerExample } from '../../src/methods/attribution/explanation.js';
import { featureAblation, kernelShap, lime, occlusion, patchMask, perturbationMethods, shapleySampling, superpixels } from '../../src/methods/attribution/perturbation/index.js';
import { featureGroups } from '../../src/methods/attribution/perturbation/features.js';
import { torchFixture } from '../helpers.js';
import { shapleyToy } from './toys.js';

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
};

/** f = w·x, no bias: every attribution method that is exact for additive models must give w ⊙ (x − baseline). */
async function linearModel(w: number[]): Promise<Model> {
  const net = new Net(0);
  net.op('out', 'MatMul', ['x', net.constant('w', Tensor.float32(w, [w.length, 1]))], [], ['y']);
  return Model.load(encodeModel(net.model({ name: 'linear', doc: 'f = w·x', input: { name: 'x', dtype: 'float32', shape: ['N', w.length] }, output: { name: 'y', shape: ['N', 1] } })));
}

// f = ReLU(s − 10) + 3·ReLU(s + 1) − 1, s = x1 + x2 + x3: f(20, 50, 30) = 392, f(0) = 2.
const SHAPLEY = [76.667, 196.667, 116.667];
const x0 = Tensor.float32([20, 50, 30], [1, 3]);

test('occlusion of the Shapley toy: window 1 gives (80, 200, 120); overlapping windows average', async () => {
  const model = await Model.load(encodeModel(shapleyToy()));
  const one = await occlusion(model, { x: x0 }, { target: 0 });
  close(one.attributions.data, [80, 200, 120], 1e-3, 'window [1]');
  assert.deepEqual(one.params.window, [1]);
  assert.equal(one.checks[0].name, 'coverage');
  assert.equal(one.checks[0].passed, true);
  // Windows {x1, x2} (f = 112, Δ 280) and {x2, x3} (f = 72, Δ 320): x2 gets their mean.
  const two = await occlusion(model, { x: x0 }, { target: 0, window: [2], stride: [1] });
  close(two.attributions.data, [280, 300, 320], 1e-3, 'window [2] stride [1]');
  // Stride 2 over 3 values: windows at 0 and, flush with the end, at 1.
  const flush = await occlusion(model, { x: x0 }, { target: 0, window: [2], stride: [2] });
  close(flush.attributions.data, [280, 300, 320], 1e-3, 'flush last window');
  const gaps = await occlusion(model, { x: x0 }, { target: 0, window: [1], stride: [2] });
  close(gaps.attributions.data, [80, 0, 120], 1e-3, 'stride > window leaves x2 uncovered');
  assert.equal(gaps.checks[0].passed, false);
  await model.dispose();
});

test('Shapley values of the toy: exact enumeration, KernelSHAP over all coalitions, and sampling agree', async () => {
  const model = await Model.load(encodeModel(shapleyToy()));
  const exact = await shapleySampling(model, { x: x0 }, { target: 0, exact: true });
  close(exact.attributions.data, SHAPLEY, 1e-3, 'exact');
  close(sumPerExample(exact.attributions), [390], 1e-3, 'Σ exact');
  assert.equal(exact.checks[0].name, 'completeness');
  assert.ok(exact.checks[0].passed, exact.checks[0].detail);

  const ks = await kernelShap(model, { x: x0 }, { target: 0 });
  assert.deepEqual(ks.params.enumerated, [true]);
  close(ks.attributions.data, SHAPLEY, 1e-3, 'kernel SHAP');
  assert.ok(ks.checks[0].passed, ks.checks[0].detail);

  // 2000 permutations: the standard error of each value is below 0.5, so 2 is four standard errors.
  const sampled = await shapleySampling(model, { x: x0 }, { target: 0, samples: 2000, seed: 1 });
  close(sampled.attributions.data, SHAPLEY, 2, 'sampled');
  const se = sampled.checks[1].value as number[];
  assert.ok(se[0] > 0 && se[0] < 0.5, `standard error ${se[0]}`);
  // Completeness holds for every permutation, so even three of them pass.
  const few = await shapleySampling(model, { x: x0 }, { target: 0, samples: 3, seed: 1 });
  assert.ok(few.checks[0].passed, few.checks[0].detail);
  close(sumPerExample(few.attributions), [390], 1e-3, 'Σ of 3 permutations');
  await model.dispose();
});

test('feature ablation of the toy with groups {x1, x2} and {x3}: (280, 280, 120), interaction 10', async () => {
  const model = await Model.load(encodeModel(shapleyToy()));
  const mask = new Tensor('int32', Int32Array.of(0, 0, 1), [3]);
  const ab = await featureAblation(model, { x: x0 }, { target: 0, featureMask: mask });
  close(ab.attributions.data, [280, 280, 120], 1e-3, 'ablation');
  assert.equal(ab.checks[0].name, 'additivity');
  close(ab.checks[0].value as number[], [280 + 120 - 390], 1e-3, 'additivity gap');
  // The same ids as int64 in a batch-shaped mask give the same result; grouped Shapley shares φ within the group.
  const big = new Tensor('int64', BigInt64Array.from([7n, 7n, -2n]), [1, 3]);
  close((await featureAblation(model, { x: x0 }, { target: 0, featureMask: big })).attributions.data, [280, 280, 120], 1e-3, 'int64 ids');
  // One mask per example ([N, ...]): example 1 groups {x1} and {x2, x3} (ablating them leaves s = 80 and s = 20).
  const two = Tensor.float32([20, 50, 30, 20, 50, 30], [2, 3]);
  const perExample = new Tensor('int32', Int32Array.of(0, 0, 1, 0, 1, 1), [2, 3]);
  close((await featureAblation(model, { x: two }, { target: 0, featureMask: perExample })).attributions.data, [280, 280, 120, 80, 320, 320], 1e-3, 'per-example masks');
  const grouped = await shapleySampling(model, { x: x0 }, { target: 0, exact: true, featureMask: mask });
  // Players A = {x1, x2}, B = {x3}: v(A) = 272, v(B) = 112, v(∅) = 2, v(AB) = 392, so φ_A = 275 (137.5 per value), φ_B = 115.
  close(grouped.attributions.data, [137.5, 137.5, 115], 1e-3, 'grouped exact Shapley');
  close((grouped.extra!.groupValues as Tensor).data as Float32Array, [275, 115], 1e-3, 'group values');
  await model.dispose();
});

test('LIME recovers the weights of a linear model (R² = 1); the lasso zeroes the irrelevant one', async () => {
  const w = [2, -3, 0, 4, 1];
  const model = await linearModel(w);
  const x = Tensor.float32([1, 1, 1, 1, 1], [1, 5]);
  const exact = await lime(model, { x }, { target: 0, alpha: 0, seed: 3 });
  close(exact.attributions.data, w, 1e-4, 'ridge α = 0');
  close(exact.checks[0].value as number[], [1], 1e-9, 'fidelity');
  close(exact.extra!.intercept as number[], [0], 1e-4, 'intercept');
  const ridge = await lime(model, { x }, { target: 0, seed: 3 });
  close(ridge.attributions.data, w, 0.05, 'ridge α = 1');
  assert.ok((ridge.checks[0].value as number[])[0] > 0.999);
  const lasso = await lime(model, { x }, { target: 0, surrogate: 'lasso', seed: 3 });
  close(lasso.attributions.data, w, 0.1, 'lasso');
  assert.equal(lasso.attributions.data[2], 0, 'lasso zeroes the weight-0 feature');
  // Sampled KernelSHAP (2^12 − 2 > 100 coalitions) is exact on an additive model: any full-rank design fits it.
  const w12 = Array.from({ length: 12 }, (_, j) => j - 5.5);
  const m12 = await linearModel(w12);
  const x12 = Tensor.float32(Array.from({ length: 12 }, (_, j) => 1 + j / 4), [1, 12]);
  const ks = await kernelShap(m12, { x: x12 }, { target: 0, samples: 100, seed: 2 });
  assert.deepEqual(ks.params.enumerated, [false]);
  close(ks.attributions.data, w12.map((v, j) => v * x12.data[j]), 1e-3, 'sampled kernel SHAP');
  assert.ok(ks.checks[0].passed, ks.checks[0].detail);
  await model.dispose();
  await m12.dispose();
});

test('patchMask: a grid of ids covering every value, all channels together, smaller edge patches', () => {
  const m = patchMask([3, 28, 28], 4);
  assert.deepEqual(m.shape, [3, 28, 28]);
  const counts = (t: Tensor<'int32'>) => t.data.reduce((acc, id) => acc.set(id, (acc.get(id) ?? 0) + 1), new Map<number, number>());
  assert.deepEqual([...counts(m).values()], new Array(49).fill(48));
  for (let p = 0; p < 28 * 28; p++) assert.ok(m.data[p] === m.data[784 + p] && m.data[p] === m.data[2 * 784 + p]);
  const five = counts(patchMask([3, 28, 28], 5)); // 6 × 6 patches: 5 × 5, edges 3 × 5, corner 3 × 3
  assert.equal(five.size, 36);
  assert.deepEqual([...new Set(five.values())].sort((a, b) => a - b), [27, 45, 75]);
  assert.deepEqual(Array.from(patchMask([5], 2).data), [0, 0, 1, 1, 2]);
  assert.throws(() => patchMask([3, 28, 28], 29), /patch size 29 on axis 1 must be an integer in \[1, 28\]/);
  assert.throws(() => patchMask([3, 28, 28], [2, 2, 2, 2]), /needs 2 \(the last axes\) or 3 sizes/);
});

test('feature masks: one example, [1, ...] or [N, ...], size-1 axes broadcast over channels', () => {
  const [g] = featureGroups(new Tensor('int32', Int32Array.of(5, 5, 9, 9), [1, 2, 2]), [3, 2, 2], 1, 'test');
  assert.deepEqual(Array.from(g.index), [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
  assert.deepEqual(g.ids, [5, 9]);
  assert.deepEqual(Array.from(g.sizes), [6, 6]);
  const groups = featureGroups(undefined, [1, 28, 28], 2, 'test');
  assert.deepEqual(groups.map((x) => x.count), [49, 49], 'default: 4 × 4 patches of a 28 × 28 image');
  assert.throws(() => featureGroups(Tensor.float32([0, 1], [2, 1]), [3], 3, 'lime'), /lime: featureMask \[2, 1\] fits neither/);
  assert.throws(() => featureGroups(Tensor.bool([1, 0, 1], [3]), [3], 1, 'lime'), /must hold integer group ids, got dtype bool/);
});

test('superpixels of two flat colour regions never straddle the boundary; ids are 0…K−1 on every channel', () => {
  const [C, H, W, cut] = [3, 16, 24, 10];
  const data = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) data[c * H * W + p] = p % W < cut ? [0.2, 0.4, 0.6][c] : [0.9, 0.1, 0.3][c];
  const image = new Tensor('float32', data, [C, H, W]);
  const seg = superpixels(image, { segments: 12 });
  assert.deepEqual(seg.shape, [C, H, W]);
  const side = new Map<number, boolean>();
  for (let p = 0; p < H * W; p++) {
    const id = seg.data[p];
    const left = p % W < cut;
    assert.equal(side.get(id) ?? left, left, `segment ${id} straddles the boundary at pixel ${p}`);
    side.set(id, left);
    for (let c = 1; c < C; c++) assert.equal(seg.data[c * H * W + p], id);
  }
  const ids = [...side.keys()].sort((a, b) => a - b);
  assert.deepEqual(ids, ids.map((_, k) => k), 'ids are 0…K−1');
  assert.ok(ids.length >= 4 && ids.length <= 24, `${ids.length} segments for 12 asked`);
  assert.deepEqual(superpixels(image, { segments: 12 }).data, seg.data, 'deterministic');
  assert.throws(() => superpixels(Tensor.float32([1, 2], [2]), {}), /expected a float32 image \[C, H, W\]/);
});

test('batching: a tiny memory budget (one row per call) gives the same results; seeds give determinism and batch invariance', async () => {
  const model = await Model.load(encodeModel(shapleyToy()));
  const x = Tensor.float32([20, 50, 30, -5, 8, 3, 1, 2, 3], [3, 3]);
  for (const [name, entry] of Object.entries(perturbationMethods)) {
    const options = { target: 0, samples: 40, seed: 5 };
    const big = await entry.explain(model, { x }, options);
    let calls = 0;
    const tiny = await entry.explain(model, { x }, { ...options, maxBatchBytes: 48, onProgress: () => calls++ });
    assert.ok(calls >= 9, `${name}: ${calls} chunks`);
    close(tiny.attributions.data, big.attributions.data, 1e-4, `${name} batched`);
    const alone = await entry.explain(model, { x: Tensor.float32([-5, 8, 3], [1, 3]) }, options);
    close(alone.attributions.data, big.attributions.data.slice(3, 6), 1e-4, `${name} alone vs in a batch`);
  }
  const a = await lime(model, { x: x0 }, { target: 0, samples: 30, seed: 4 });
  const b = await lime(model, { x: x0 }, { target: 0, samples: 30, seed: 4 });
  const c = await lime(model, { x: x0 }, { target: 0, samples: 30, seed: 5 });
  assert.deepEqual(a.attributions.data, b.attributions.data);
  assert.notDeepEqual(a.attributions.data, c.attributions.data);
  await model.dispose();
});

test('bad input: errors name the culprit', async () => {
  const model = await Model.load(encodeModel(shapleyToy()));
  await assert.rejects(occlusion(model, { x: x0 }, { window: [4] }), /window \[4\] is larger than the example \[3\] on axis 0/);
  await assert.rejects(occlusion(model, { x: x0 }, { window: [1, 1] }), /window \[1, 1\] needs one size per axis/);
  await assert.rejects(occlusion(model, { x: x0 }, { window: [1], stride: [0] }), /stride \[0\] must hold positive integers/);
  await assert.rejects(featureAblation(model, { x: x0 }, { featureMask: new Tensor('int32', Int32Array.of(0, 1), [2]) }), /featureMask \[2\] fits neither one example \[3\] nor the batch \[1, 3\]/);
  await assert.rejects(lime(model, { x: x0 }, { featureMask: Tensor.float32([0, 0.5, 1], [3]) }), /featureMask value 0.5 at index 1 is not an integer group id/);
  await assert.rejects(lime(model, { x: x0 }, { surrogate: 'tree' as 'ridge' }), /surrogate must be 'ridge' or 'lasso'/);
  await assert.rejects(kernelShap(model, { x: x0 }, { samples: 0 }), /samples must be a positive integer, got 0/);
  const wide = await linearModel(new Array(17).fill(1));
  await assert.rejects(shapleySampling(wide, { x: Tensor.float32(new Array(17).fill(1), [1, 17]) }, { exact: true }), /example 0 has d = 17 features \(at most 16\)/);
  await model.dispose();
  await wide.dispose();
});

test('the PyTorch CNN: a window over the whole image gives f(x) − f(0) everywhere; Shapley and KernelSHAP are complete', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const x = new Tensor('float32', (fx.input.data as Float32Array).slice(0, 2 * 784), [2, 1, 28, 28]);
  const occ = await occlusion(model, { x }, { window: [1, 28, 28] });
  const zero = await model.run({ x: Tensor.zeros('float32', [2, 1, 28, 28]) });
  const logits = Object.values(zero.outputs)[0].data as Float32Array;
  for (let i = 0; i < 2; i++) {
    const delta = occ.scores[i] - logits[i * 10 + occ.targets![i]];
    close(occ.attributions.data.subarray(i * 784, (i + 1) * 784), new Array(784).fill(delta), 1e-4 * Math.max(1, Math.abs(delta)), `example ${i}`);
  }
  const featureMask = patchMask([1, 28, 28], 7); // 16 players
  const sv = await shapleySampling(model, { x }, { featureMask, samples: 4, seed: 0 });
  assert.ok(sv.checks[0].passed, sv.checks[0].detail);
  const ks = await kernelShap(model, { x }, { featureMask, samples: 300, seed: 0 });
  assert.deepEqual(ks.params.enumerated, [false, false]);
  assert.ok(ks.checks[0].passed, ks.checks[0].detail);
  // Both estimate the same Shapley values: their group values correlate.
  const [a, b] = [sv.extra!.groupValues as Tensor, ks.extra!.groupValues as Tensor];
  const corr = correlation(Array.from(a.data as Float32Array), Array.from(b.data as Float32Array));
  assert.ok(corr > 0.8, `sampling vs kernel SHAP correlation ${corr}`);
  await model.dispose();
});

function correlation(u: number[], v: number[]): number {
  const mean = (t: number[]) => t.reduce((s, x) => s + x, 0) / t.length;
  const [mu, mv] = [mean(u), mean(v)];
  let [uv, uu, vv] = [0, 0, 0];
  for (let i = 0; i < u.length; i++) [uv, uu, vv] = [uv + (u[i] - mu) * (v[i] - mv), uu + (u[i] - mu) ** 2, vv + (v[i] - mv) ** 2];
  return uv / Math.sqrt(uu * vv);
}
