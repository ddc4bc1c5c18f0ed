/** Evaluation metrics against closed forms on linear and ReLU toys, and the bias-absorbing rewrite on PyTorch fixtures. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { Net } from '../../src/model/builders/net.js';
import { mlp } from '../../src/model/builders/mlp.js';
import { attr, encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { gradient, gradientXInput, integratedGradients } from '../../src/methods/attribution/gradient.js';
import type { Attribution } from '../../src/methods/attribution/explanation.js';
import { absorbShift, completeness, completenessOf, deletion, infidelity, inputInvarianceAll, insertion, maxSensitivity, METRICS, pixelFlipping, type MetricEntry } from '../../src/evaluate/index.js';
import { igToy } from '../methods/toys.js';
import { maxAbsDiff, seeded, torchFixture } from '../helpers.js';

const W = [1, 2, -4, 0.5];
const BIAS = 0.75;
const X = [3, -1, 0.25, 2, /* example 2 */ -1, 2, 1, 0.5];

/** f(x) = w·x + b as ONNX (MatMul + Add), input [N, ...shape] flattened first when it is an image. */
function linear(w: number[], shape: number[] = [w.length], bias = BIAS): ModelProto {
  const net = new Net(0);
  const flat = shape.length > 1 ? net.op('flatten', 'Flatten', ['x'], [attr('axis', { int: 1 })]) : 'x';
  const y = net.op('fc', 'MatMul', [flat, net.param('fc.weight', Tensor.float32(w, [w.length, 1]))]);
  net.op('fc', 'Add', [y, net.param('fc.bias', Tensor.float32([bias], [1]))], [], ['y']);
  return net.model({ name: 'linear', doc: 'f = w·x + b', input: { name: 'x', dtype: 'float32', shape: ['N', ...shape] }, output: { name: 'y', shape: ['N', 1] } });
}

const load = (m: ModelProto) => Model.load(encodeModel(m));
const phiOf = (x: number[], w: number[]) => x.map((v, k) => v * w[k % w.length]);
const trap = (x: readonly number[], y: readonly number[]) => y.slice(1).reduce((s, v, i) => s + ((x[i + 1] - x[i]) * (v + y[i])) / 2, 0);
const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
};
/** An attribution with given values, for testing metrics on good, reversed and random maps. */
const fake = (base: Attribution, values: number[]): Attribution => ({ ...base, method: 'fake', attributions: Tensor.float32(values, base.attributions.shape) });
/** Cumulative sums of φ taken in ranked order (most important first, ties by index), one per count. */
function rankedSums(phi: number[], counts: number[], descending = true): number[] {
  const order = phi.map((_, j) => j).sort((a, b) => (descending ? phi[b] - phi[a] : phi[a] - phi[b]) || a - b);
  return counts.map((c) => order.slice(0, c).reduce((s, j) => s + phi[j], 0));
}

test('deletion and insertion on f = w·x + b with Φ = w ⊙ x: curves and AUCs in closed form, chunking-independent', async () => {
  const model = await load(linear(W));
  const x = Tensor.float32(X, [2, 4]);
  const gxi = await gradientXInput(model, { x }, { target: 0 });
  for (const step of [1, 3]) {
    // Tiny budget: one row per runtime call, so every chunk boundary is crossed.
    for (const maxBatchBytes of [undefined, 64]) {
      const del = await deletion(model, { x }, gxi, { step, maxBatchBytes });
      const ins = await insertion(model, { x }, gxi, { step, maxBatchBytes });
      const counts = step === 1 ? [0, 1, 2, 3, 4] : [0, 3, 4];
      const fractions = counts.map((c) => c / 4);
      assert.deepEqual(del.curve?.x, fractions);
      for (let i = 0; i < 2; i++) {
        const phi = phiOf(X.slice(4 * i, 4 * i + 4), W);
        const total = phi.reduce((a, b) => a + b, 0);
        const sums = rankedSums(phi, counts);
        // Removing feature j towards 0 lowers f by φ_j exactly; inserting it into 0 raises f by φ_j.
        const delCurve = sums.map((s) => BIAS + total - s);
        const insCurve = sums.map((s) => BIAS + s);
        close(del.curve!.scores[i], delCurve, 1e-5, `deletion curve ${i}, step ${step}`);
        close(ins.curve!.scores[i], insCurve, 1e-5, `insertion curve ${i}, step ${step}`);
        close([del.values[i], ins.values[i]], [trap(fractions, delCurve), trap(fractions, insCurve)], 1e-5, `AUC ${i}`);
      }
    }
  }
  // Example 1, step 1: φ = (3, −2, −1, 1), f(x) = 1.75; order 0, 3, 2, 1 → curve 1.75, −1.25, −2.25, −1.25, 0.75.
  const del = await deletion(model, { x }, gxi, { step: 1 });
  close(del.curve!.scores[0], [1.75, -1.25, -2.25, -1.25, 0.75], 1e-6, 'worked example');
  close([del.values[0]], [0.25 * (0.25 + -1.75 + -1.75 + -0.25)], 1e-6, 'worked AUC');
  assert.equal(del.higherIsBetter, false);
  // A reversed map deletes the least important first: a higher deletion AUC, a lower insertion AUC.
  const rev = fake(gxi, Array.from(gxi.attributions.data, (v) => -v));
  assert.ok((await deletion(model, { x }, rev, { step: 1 })).mean > del.mean);
  assert.ok((await insertion(model, { x }, rev, { step: 1 })).mean < (await insertion(model, { x }, gxi, { step: 1 })).mean);
  await model.dispose();
});

test('deletion groups the channels of a pixel, and insertion starts from a blurred image by default', async () => {
  const shape = [2, 3, 3];
  const w = Array.from({ length: 18 }, (_, k) => ((k * 7) % 5) - 2);
  const model = await load(linear(w, shape, 0));
  const rand = seeded(3);
  const xs = Array.from({ length: 18 }, () => rand());
  const x = Tensor.float32(xs, [1, ...shape]);
  const gxi = await gradientXInput(model, { x }, { target: 0 });
  const del = await deletion(model, { x }, gxi, { step: 2 });
  const phi = phiOf(xs, w);
  const pixel = Array.from({ length: 9 }, (_, p) => phi[p] + phi[9 + p]);
  const counts = [0, 2, 4, 6, 8, 9];
  const total = phi.reduce((a, b) => a + b, 0);
  close(del.curve!.scores[0], rankedSums(pixel, counts).map((s) => total - s), 1e-5, 'pixel deletion');
  assert.equal(del.params.substrate, '0');
  const ins = await insertion(model, { x }, gxi, { step: 9 });
  assert.equal(ins.params.substrate, 'blur');
  assert.ok(Math.abs(ins.curve!.scores[0][1] - gxi.scores[0]) < 1e-5, 'all pixels inserted: f(x)');
  await model.dispose();
});

test('MoRF and LeRF AOPC in closed form: MoRF ≥ LeRF for w ⊙ x, the reverse for its negation; patches equal a mask', async () => {
  const model = await load(linear(W));
  const x = Tensor.float32(X, [2, 4]);
  const gxi = await gradientXInput(model, { x }, { target: 0 });
  const counts = [0, 1, 2, 3, 4];
  const aopc = (sums: number[]) => sums.reduce((a, b) => a + b, 0) / sums.length; // f(x) − f(x⁽ᵏ⁾) = Σ top-k φ
  const morf = await pixelFlipping(model, { x }, gxi, { order: 'morf', fill: 0 });
  const lerf = await pixelFlipping(model, { x }, gxi, { order: 'lerf', fill: 0 });
  for (let i = 0; i < 2; i++) {
    const phi = phiOf(X.slice(4 * i, 4 * i + 4), W);
    close([morf.values[i], lerf.values[i]], [aopc(rankedSums(phi, counts)), aopc(rankedSums(phi, counts, false))], 1e-5, `AOPC ${i}`);
  }
  // Example 1: φ = (3, −2, −1, 1): MoRF drops 0, 3, 4, 3, 1 → 11/5; LeRF 0, −2, −3, −2, 1 → −6/5.
  close([morf.values[0], lerf.values[0]], [2.2, -1.2], 1e-5, 'worked AOPC');
  assert.ok(morf.mean > lerf.mean);
  const rev = fake(gxi, Array.from(gxi.attributions.data, (v) => -v));
  const [morfRev, lerfRev] = [await pixelFlipping(model, { x }, rev, { order: 'morf', fill: 0 }), await pixelFlipping(model, { x }, rev, { order: 'lerf', fill: 0 })];
  assert.ok(morfRev.mean < lerfRev.mean, `reversed: MoRF ${morfRev.mean} < LeRF ${lerfRev.mean}`);
  close(morfRev.values, lerf.values, 1e-6, 'reversed MoRF is LeRF');
  // Seeded uniform noise: the same seed gives the same curve, another seed another.
  const u1 = await pixelFlipping(model, { x }, gxi, { seed: 1, maxBatchBytes: 64 });
  const u1b = await pixelFlipping(model, { x }, gxi, { seed: 1 });
  const u2 = await pixelFlipping(model, { x }, gxi, { seed: 2 });
  assert.deepEqual(u1.values, u1b.values);
  assert.notDeepEqual(u1.values, u2.values);
  await model.dispose();

  const img = await load(linear(Array.from({ length: 16 }, (_, k) => (k % 3) - 1 + k / 10), [1, 4, 4], 0));
  const xi = Tensor.float32(Array.from({ length: 16 }, (_, k) => Math.sin(k + 1)), [1, 1, 4, 4]);
  const a = await gradientXInput(img, { x: xi }, { target: 0 });
  const mask = Tensor.int64(Array.from({ length: 16 }, (_, k) => 10 * Math.floor(Math.floor(k / 4) / 2) + Math.floor((k % 4) / 2)), [1, 1, 4, 4]);
  const byPatch = await pixelFlipping(img, { x: xi }, a, { patch: [2, 2], fill: 0 });
  const byMask = await pixelFlipping(img, { x: xi }, a, { featureMask: mask, fill: 0 });
  assert.equal(byPatch.params.regions, 4);
  close(byPatch.curve!.scores[0], byMask.curve!.scores[0], 0, 'patch [2, 2] = its mask');
  await img.dispose();
});

test('infidelity: 0 for the gradient of a linear f; σ² Σ w²(x − 1)² for w ⊙ x (and its optimally scaled form)', async () => {
  const model = await load(linear(W));
  const x = Tensor.float32(X, [2, 4]);
  const sigma = 0.5;
  const g = await gradient(model, { x }, { target: 0 });
  const zero = await infidelity(model, { x }, g, { samples: 64, sigma, seed: 3 });
  for (const v of zero.values) assert.ok(v < 1e-8, `gradient infidelity ${v}`);
  const gxi = await gradientXInput(model, { x }, { target: 0 });
  const S = 4000;
  const inf = await infidelity(model, { x }, gxi, { samples: S, sigma, seed: 7 });
  for (let i = 0; i < 2; i++) {
    const xi = X.slice(4 * i, 4 * i + 4);
    // Iᵀ(w ⊙ x) − w·I = Σ I_j w_j (x_j − 1): Gaussian with variance σ² Σ w_j²(x_j − 1)².
    const plain = sigma ** 2 * xi.reduce((s, v, j) => s + W[j] ** 2 * (v - 1) ** 2, 0);
    const [a, b, c] = [W.reduce((s, w) => s + w * w, 0), xi.reduce((s, v, j) => s + W[j] ** 2 * v, 0), xi.reduce((s, v, j) => s + W[j] ** 2 * v * v, 0)];
    const scaled = sigma ** 2 * (a - (b * b) / c); // Var(Δf | IᵀΦ): what the best β leaves
    // Estimates of a χ²₁-scaled mean from S samples: relative sd √(2/S) ≈ 2.2 %; allow 5 sd.
    assert.ok(Math.abs(inf.values[i] / plain - 1) < 0.11, `plain ${inf.values[i]} vs ${plain}`);
    const est = (inf.extra?.optimallyScaled as number[])[i];
    assert.ok(Math.abs(est / scaled - 1) < 0.11, `scaled ${est} vs ${scaled}`);
  }
  const opt = await infidelity(model, { x }, gxi, { samples: S, sigma, seed: 7, scaling: 'optimal' });
  assert.deepEqual(opt.values, inf.extra?.optimallyScaled);
  await model.dispose();
});

test('max-sensitivity of the gradient: 0 on a linear f, 1 next to a ReLU kink, 0 away from it', async () => {
  const lin = await load(linear(W));
  const x = Tensor.float32(X, [2, 4]);
  const s0 = await maxSensitivity(lin, { x }, 'gradient', { target: 0, radius: 0.5, samples: 8 });
  assert.deepEqual(s0.values, [0, 0]);
  await lin.dispose();
  // f = ReLU(ReLU(x1) − 1 − ReLU(x2)): ∇f = (1, −1) where the sum is positive, 0 where it is not.
  const toy = await load(igToy());
  const near = Tensor.float32([2.01, 1, 3, 1], [2, 2]);
  const s = await maxSensitivity(toy, { x: near }, gradient, { target: 0, radius: 0.1, samples: 16, seed: 1 });
  close(s.values, [1, 0], 1e-6, '‖∇f(x′) − ∇f(x)‖ / ‖∇f(x)‖');
  close(s.extra?.absolute as number[], [Math.SQRT2, 0], 1e-6, 'absolute');
  await toy.dispose();
});

test('completeness: integrated gradients sum to f(x) − f(0) on a linear f; gradient × input misses by 1 on the ReLU toy', async () => {
  const model = await load(linear(W));
  const x = Tensor.float32(X, [2, 4]);
  const ig = await integratedGradients(model, { x }, { target: 0, steps: 8 });
  const c = await completenessOf(model, { x }, ig);
  assert.ok(c.checks[0].passed && c.mean < 1e-5, c.checks[0].detail);
  await model.dispose();
  const toy = await load(igToy());
  const xt = Tensor.float32([3, 1], [1, 2]);
  const gxi = await gradientXInput(toy, { x: xt }, { target: 0 });
  const bad = await completenessOf(toy, { x: xt }, gxi);
  // Σ (3, −1) = 2, f(3, 1) − f(0, 0) = 1.
  close(bad.values, [1], 1e-6, '|delta|');
  assert.equal(bad.checks[0].passed, false);
  close(completeness(gxi, [0]).extra?.delta as number[], [1], 1e-6, 'delta with f(baseline) given');
  assert.throws(() => completeness(gxi, [0, 1]), /2 baseline scores for 1 examples/);
  await toy.dispose();
});

test('input invariance (Kindermans et al.): gradient and IG from a shifted baseline are invariant, gradient × input and IG from zero are not', async () => {
  const model = await load(mlp({ inputs: 6, hidden: [8], classes: 3, seed: 4 }));
  const rand = seeded(5);
  const x = Tensor.float32(Array.from({ length: 12 }, () => rand()), [2, 6]);
  const [g, gxi, ig0, igShift] = await inputInvarianceAll(model, { x }, [
    { method: 'gradient' },
    { method: 'gradient-x-input' },
    { method: 'integrated-gradients', explain: { steps: 16 } },
    { method: integratedGradients, explain: { steps: 16 }, shiftBaseline: true },
  ], { shift: -1, target: 1 });
  assert.equal(g.checks[1].passed, true, g.checks[1].detail);
  assert.deepEqual([g, gxi, ig0, igShift].map((e) => e.checks[0].passed), [true, false, false, true]);
  assert.ok(gxi.mean > 0.1 && ig0.mean > 0.1 && g.mean < 1e-4 && igShift.mean < 1e-4, [g, gxi, ig0, igShift].map((e) => e.mean).join(', '));
  assert.equal(g.params.layer, '/fc1/Gemm');
  await model.dispose();
});

test('the bias-absorbing rewrite keeps outputs equal on the PyTorch MLP and CNN, a flattened MLP and an unpadded Conv', async () => {
  for (const name of ['mlp', 'cnn'] as const) {
    const fx = torchFixture(name);
    const model = await Model.load(fx.path);
    const rowShape = fx.input.shape.slice(1);
    const rand = seeded(11);
    for (const shift of [Tensor.float32(new Array(fx.input.size / fx.input.shape[0]).fill(-1), rowShape), Tensor.float32(Array.from({ length: fx.input.size / fx.input.shape[0] }, () => rand() - 0.5), rowShape)]) {
      const s = await absorbShift(model, shift);
      assert.equal(s.mode, name === 'mlp' ? 'bias' : 'per-position'); // the PyTorch CNN pads its convolutions
      const R = shift.size;
      const moved = Tensor.float32(Array.from(fx.input.data as Float32Array, (v, k) => v + shift.data[k % R]), fx.input.shape);
      const [a, b] = [(await model.run({ x: fx.input })).outputs.logits, (await s.model.run({ x: moved })).outputs.logits];
      assert.ok(maxAbsDiff(a, b) <= 1e-5, `${name}: ${maxAbsDiff(a, b)}`);
      await s.model.dispose();
    }
    await model.dispose();
  }
  // An unpadded Conv with a per-channel constant shift folds into its [M] bias.
  const net = new Net(2);
  const w = net.param('c.weight', Tensor.float32(Array.from({ length: 3 * 2 * 9 }, () => net.rand() - 0.5), [3, 2, 3, 3]));
  const cb = net.param('c.bias', Tensor.float32([0.1, -0.2, 0.3], [3]));
  const h = net.op('c', 'Relu', [net.op('c', 'Conv', ['x', w, cb], [attr('kernel_shape', { ints: [3, 3] })])]);
  net.op('sum', 'ReduceSum', [h, net.constant('sum', Tensor.int64([2, 3]))], [attr('keepdims', { int: 0 })], ['y']);
  const conv = await load(net.model({ name: 'conv', doc: 'conv', input: { name: 'x', dtype: 'float32', shape: ['N', 2, 5, 5] }, output: { name: 'y', shape: ['N', 3] } }));
  const xs = Tensor.float32(Array.from({ length: 100 }, (_, k) => Math.cos(k)), [2, 2, 5, 5]);
  const shift = Tensor.float32(Array.from({ length: 50 }, (_, k) => (k < 25 ? 0.5 : -2)), [2, 5, 5]);
  const s = await absorbShift(conv, shift);
  assert.equal(s.mode, 'bias');
  const moved = Tensor.float32(Array.from(xs.data, (v, k) => v + shift.data[k % 50]), xs.shape);
  assert.ok(maxAbsDiff((await conv.run({ x: xs })).outputs.y, (await s.model.run({ x: moved })).outputs.y) <= 1e-5);
  await s.model.dispose();
  const flat = await load(mlp({ inputs: [1, 3, 3], hidden: [5], classes: 2, seed: 1 }));
  const s2 = await absorbShift(flat, Tensor.float32(new Array(9).fill(0.3), [1, 1, 3, 3]));
  assert.equal(s2.layer, '/fc1/Gemm');
  await Promise.all([s2.model.dispose(), flat.dispose()]);
  // Two readers of the input: no single first layer.
  const two = new Net(0);
  two.op('o', 'Add', ['x', two.op('r', 'Relu', ['x'])], [], ['y']);
  const bad = await load(two.model({ name: 'two', doc: 'two', input: { name: 'x', dtype: 'float32', shape: ['N', 2] }, output: { name: 'y', shape: ['N', 2] } }));
  await assert.rejects(absorbShift(bad, Tensor.float32([1, 1], [2])), /'x' is read by 2 nodes \(Relu, Add\)/);
  await Promise.all([conv.dispose(), bad.dispose()]);
});

test('METRICS: every entry runs through the uniform call; bad input names the culprit', async () => {
  const model = await load(linear(W));
  const x = Tensor.float32(X, [2, 4]);
  for (const [name, entry] of Object.entries(METRICS) as [string, MetricEntry][]) {
    assert.ok(entry.title && entry.reference.match(/\d{4}/) && entry.measures, name);
    const e = await entry.evaluate(model, { x }, 'gradient-x-input', { target: 0, samples: 8, explain: { steps: 8 } });
    assert.equal(e.metric, name);
    assert.equal(e.higherIsBetter, entry.higherIsBetter, name);
    assert.equal(e.values.length, 2, name);
    for (const v of e.values) assert.ok(Number.isFinite(v), `${name}: ${v}`);
  }
  const gxi = await gradientXInput(model, { x }, { target: 0 });
  await assert.rejects(deletion(model, { x }, { ...gxi, attributions: Tensor.float32([1, 2, 3], [1, 3]) }), /attributions are float32 \[1, 3\], the examples at 'x' are float32 \[2, 4\]/);
  await assert.rejects(deletion(model, { x }, gxi, { step: 0 }), /deletion: step must be a positive integer, got 0/);
  await assert.rejects(pixelFlipping(model, { x }, gxi, { regions: 9 }), /regions \(9\) exceeds the 4 regions/);
  await assert.rejects(METRICS.deletion.evaluate(model, { x }, 'no-such-method' as never, {}), /unknown attribution method 'no-such-method'/);
  await assert.rejects(infidelity(model, { x }, { ...gxi, targets: null }), /custom seed, which it does not carry; pass the same \{ target \}/);
  await assert.rejects(pixelFlipping(model, { x }, gxi, { featureMask: Tensor.int64([0, 1, 2], [3]) }), /featureMask \[3\] fits neither one example \[4\]/);
  await model.dispose();
});
