/**
 * Feature synthesis (activation maximisation): a closed-form optimum, exact adjoints of every host-side linear map,
 * finite differences through the whole pipeline, regulariser monotonicity, determinism, and a real MNIST CNN whose
 * synthesised inputs beat its best natural examples.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { decodePng } from '../../../src/data/png.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { cnn } from '../../../src/model/builders/cnn.js';
import { mlp } from '../../../src/model/builders/mlp.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { attr, encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { ascentProblem, diversityTerm, synthesize, SYNTHESIS_METHODS } from '../../../src/methods/neurons/synthesis.js';
import { COLOR_SVD_SQRT, fourierParam, gaussianBlur, mixColors, normalizedColor, pixelParam, type ImageShape } from '../../../src/methods/neurons/parametrization.js';
import { compose, drawTransform, roll, totalVariation, warp, type ImageTransform } from '../../../src/methods/neurons/transforms.js';
import { gridOrigin, imageGrid } from '../../../src/report/grid.js';
import { bitMismatches } from '../../helpers.js';

const randoms = (n: number, seed: number) => {
  const r = mulberry32(seed);
  return Float64Array.from({ length: n }, () => 2 * r() - 1);
};
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
/** |⟨T x, y⟩ − ⟨x, Tᵀ y⟩| relative to their size. */
function adjointGap(apply: (x: Float64Array) => Float64Array, adjoint: (y: Float64Array) => Float64Array, nIn: number, nOut: number, seed: number): number {
  const x = randoms(nIn, seed);
  const y = randoms(nOut, seed + 1);
  const a = dot(apply(x), y);
  const b = dot(x, adjoint(y));
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);
}

/** y = w · flatten(x) for x [N, 1, 8, 8]: a single linear unit. */
async function linearUnit(w: Float64Array): Promise<Model> {
  const net = new Net(0);
  const f = net.op('flat', 'Flatten', ['x']);
  net.op('lin', 'MatMul', [f, net.param('lin.weight', Tensor.float32(w, [w.length, 1]))], [], ['y']);
  return Model.load(encodeModel(net.model({ name: 'lin', doc: 'w·x', input: { name: 'x', dtype: 'float32', shape: ['N', 1, 8, 8] }, output: { name: 'y', shape: ['N', 1] } })));
}

/** Conv (c → 3, 3×3, same) → Tanh on [N, c, 8, 8]: smooth, for finite differences. */
async function tinyConv(c: number): Promise<Model> {
  const net = new Net(3);
  const w = net.param('conv.weight', Tensor.float32(randoms(3 * c * 9, 7).map((v) => v * 0.6), [3, c, 3, 3]));
  const h = net.op('conv', 'Conv', ['x', w], [attr('kernel_shape', { ints: [3, 3] }), attr('pads', { ints: [1, 1, 1, 1] })]);
  net.op('act', 'Tanh', [h], [], ['y']);
  return Model.load(encodeModel(net.model({ name: 'tiny', doc: 'conv tanh', input: { name: 'x', dtype: 'float32', shape: ['N', c, 8, 8] }, output: { name: 'y', shape: ['N', 3, 8, 8] } })));
}

/** A small CNN trained here on 3000 MNIST images (about 92% test accuracy; fixtures/torch/cnn.onnx has random weights). */
let trained: Promise<Model> | undefined;
const mnistCnn = () =>
  (trained ??= (async () => {
    const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [8, 16], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
    await t.fit((await loadMnist('train')).slice(0, 3000), { epochs: 2, batchSize: 32, seed: 1 });
    return Model.load(encodeModel(t.exportModel()));
  })());

test('closed form: a linear unit with L2 decay converges to w / (2λ) in pixel and Fourier parametrisations', async () => {
  const w = randoms(64, 11);
  const model = await linearUnit(w);
  const lambda = 0.25;
  const cases = [
    { parametrization: 'pixel', optimizer: 'adam' },
    { parametrization: 'fourier', optimizer: 'adam' },
    { parametrization: 'pixel', optimizer: 'ascent' },
  ] as const;
  for (const c of cases) {
    const s = await synthesize(model, { kind: 'class', index: 0 }, { ...c, l2: lambda, range: null, steps: 300, lr: c.optimizer === 'ascent' ? 0.5 : 0.05, initScale: 0.5 });
    let err = 0;
    for (let i = 0; i < 64; i++) err = Math.max(err, Math.abs(s.images.data[i] - w[i] / (2 * lambda)));
    assert.ok(err < 1e-3, `${c.parametrization}/${c.optimizer}: max |x − w/2λ| = ${err}`);
    // The optimum's objective is w·x* = ‖w‖²/(2λ).
    assert.ok(Math.abs(s.activation[0] - dot(w, w) / (2 * lambda)) < 1e-2, `activation ${s.activation[0]}`);
    assert.equal(s.checks.find((k) => k.name === 'converged')?.passed, true);
  }
});

test('adjoints: roll, warp, their composition, Fourier, colour mixing and blur satisfy ⟨Tx, y⟩ = ⟨x, Tᵀy⟩', () => {
  const shape: ImageShape = [2, 3, 12, 10];
  const n = 2 * 3 * 12 * 10;
  const rand = mulberry32(4);
  const transforms: [string, ImageTransform][] = [
    ['roll', roll(shape, 3, -4)],
    ['warp zoom in + rotate', warp(shape, 1.3, 17)],
    ['warp zoom out', warp(shape, 0.7, -40)],
    ['composition', compose([roll(shape, -2, 5), warp(shape, 0.9, 8)])],
    ['drawn', drawTransform(rand, shape, { jitter: 3, scale: [0.8, 1.2], rotate: 30 })],
  ];
  for (const [name, t] of transforms) assert.ok(adjointGap(t.apply, t.adjoint, n, n, 1) < 1e-9, name);
  for (const s of [[1, 1, 28, 28], [1, 3, 48, 192], [2, 1, 7, 9]] as ImageShape[]) {
    const f = fourierParam(s);
    const size = s.reduce((a, b) => a * b, 1);
    assert.ok(adjointGap(f.toImage, f.adjoint, f.size, size, 2) < 1e-9, `fourier ${s.join('x')}`);
    // Onto: the image of fromImage(x) is x (an independent forward DFT inverts the inverse one).
    const x = randoms(size, 3);
    const back = f.toImage(f.fromImage(x));
    assert.ok(x.every((v, i) => Math.abs(v - back[i]) < 1e-9), `fourier ${s.join('x')} round trip`);
  }
  // One bin in closed form: real part 1 at (ky, kx) = (1, 2) of an H×W = 6×8 image is 2·s·cos(2π(y/6 + 2x/8)) / 48.
  const f = fourierParam([1, 1, 6, 8]);
  const p = new Float64Array(f.size);
  p[(1 * 5 + 2) * 2] = 1;
  const s12 = Math.sqrt(48) / 4 / Math.hypot(1 / 6, 2 / 8);
  const img = f.toImage(p);
  for (let y = 0; y < 6; y++) for (let x = 0; x < 8; x++) assert.ok(Math.abs(img[y * 8 + x] - (2 * s12 * Math.cos(2 * Math.PI * (y / 6 + (2 * x) / 8))) / 48) < 1e-12);
  const m = normalizedColor(COLOR_SVD_SQRT);
  assert.ok(adjointGap((u) => mixColors(u, shape, m), (g) => mixColors(g, shape, m, true), n, n, 5) < 1e-9, 'colour');
  assert.ok(adjointGap((u) => gaussianBlur(u, shape, 1.2), (g) => gaussianBlur(g, shape, 1.2), n, n, 6) < 1e-9, 'blur');
  const px = pixelParam(shape);
  assert.ok(adjointGap(px.toImage, px.adjoint, n, n, 8) < 1e-12, 'pixel');
});

test('finite differences: the gradient through parametrisation, colour, squash, transforms, model, penalties and diversity', async () => {
  const configs = [
    { channels: 1, objective: { kind: 'unit', site: 'y', unit: 1 }, options: { diversity: { weight: 0.5 } } },
    { channels: 3, objective: { kind: 'unit', site: 'y', unit: 2 }, options: { diversity: { weight: 0.5, site: 'conv.conv', measure: 'activation' } } },
    { channels: 1, objective: { kind: 'direction', site: 'y', vector: [0.5, -1, 2] }, options: { parametrization: 'pixel', range: null } },
  ] as const;
  for (const c of configs) {
    const model = await tinyConv(c.channels);
    const problem = await ascentProblem(model, c.objective, { batch: 2, parametrization: 'fourier', tv: 0.02, l2: 0.05, l1: 0.01, ...c.options });
    const t = drawTransform(mulberry32(9), problem.shape, { jitter: 2, scale: [0.8, 1.2], rotate: 20 });
    const p = randoms(problem.pipe.param.size, 12).map((v) => v * 0.3);
    const { grad } = await problem.evaluate(p, t);
    for (let k = 0; k < 3; k++) {
      const d = randoms(p.length, 20 + k);
      const eps = 1e-3;
      const plus = await problem.evaluate(p.map((v, i) => v + eps * d[i]), t);
      const minus = await problem.evaluate(p.map((v, i) => v - eps * d[i]), t);
      const fd = (plus.total - minus.total) / (2 * eps);
      const an = dot(grad, d);
      assert.ok(Math.abs(fd - an) <= 1e-3 * Math.max(1, Math.abs(an)), `${c.channels} channels, direction ${k}: finite difference ${fd} vs gradient ${an}`);
    }
  }
});

test('diversity term: the analytic gradient of the mean pairwise cosine similarity matches finite differences', () => {
  for (const measure of ['gram', 'activation'] as const) {
    const a = Tensor.float32(randoms(3 * 4 * 5, 30), [3, 4, 5]);
    const { grad } = diversityTerm(a, measure);
    const d = randoms(a.size, 31);
    const at = (e: number) => diversityTerm(Tensor.float64(Float64Array.from(a.data as Float32Array, (v, i) => v + e * d[i]), a.shape), measure).value;
    const fd = (at(1e-5) - at(-1e-5)) / 2e-5;
    assert.ok(Math.abs(fd - dot(grad, d)) < 1e-6, `${measure}: ${fd} vs ${dot(grad, d)}`);
  }
});

test('MNIST CNN: class maximisation beats the best of 300 test images and is classified as its class; a conv channel beats its top example', async () => {
  const model = await mnistCnn();
  const reference = (await loadMnist('test')).slice(0, 300);
  for (const c of [0, 3, 7]) {
    const s = await synthesize(model, { kind: 'class', index: c }, { steps: 96, jitter: 1, tv: 0.01, reference });
    const logits = (await model.run({ x: s.images })).outputs.logits.data as Float32Array;
    const predicted = Array.from(logits).indexOf(Math.max(...logits));
    assert.equal(predicted, c, `class ${c} synthesis is classified as ${predicted}`);
    const beats = s.checks.find((k) => k.name === 'beats-dataset');
    assert.equal(beats?.passed, true, beats?.detail);
    assert.ok(s.activation[0] > s.reference!.best, `logit ${s.activation[0]} vs best natural ${s.reference!.best}`);
    assert.ok(s.images.data.every((v) => v >= 0 && v <= 1), 'images stay in the default range [0, 1]');
  }
  for (const channel of [0, 5]) {
    const s = await synthesize(model, { kind: 'channel', site: 'c2.conv', channel }, { steps: 96, jitter: 1, parametrization: 'pixel', reference });
    const beats = s.checks.find((k) => k.name === 'beats-dataset');
    assert.equal(beats?.passed, true, `c2.conv channel ${channel}: ${beats?.detail}`);
  }
});

test('regularisers: TV of the result falls as the TV weight grows; blurring lowers it too', async () => {
  const model = await mnistCnn();
  const tvOf = (t: Tensor) => totalVariation(Float64Array.from(t.data as Float32Array), [1, 1, 28, 28], 0).value;
  const base = { steps: 64, parametrization: 'pixel', seed: 3 } as const;
  const tvs = [];
  for (const tv of [0, 0.05, 0.5]) tvs.push(tvOf((await synthesize(model, { kind: 'class', index: 3 }, { ...base, tv })).images));
  assert.ok(tvs[0] > tvs[1] && tvs[1] > tvs[2], `TV by weight 0, 0.05, 0.5: ${tvs.join(', ')}`);
  const blurred = tvOf((await synthesize(model, { kind: 'class', index: 3 }, { ...base, blur: { sigma: 1, every: 4 } })).images);
  assert.ok(blurred < tvs[0], `TV with blur ${blurred} vs without ${tvs[0]}`);
});

test('reproducibility: the same seed gives bit-identical images, another seed different ones', async () => {
  const model = await mnistCnn();
  const opts = { steps: 24, batch: 2, jitter: 2, scale: [0.9, 1.1], rotate: 10, tv: 0.01, diversity: { weight: 1 } } as const;
  const objective = { kind: 'channel', site: 'c1.conv', channel: 2 } as const;
  const a = await synthesize(model, objective, { ...opts, seed: 5 });
  const b = await synthesize(model, objective, { ...opts, seed: 5 });
  const c = await synthesize(model, objective, { ...opts, seed: 6 });
  assert.equal(bitMismatches(a.images, b.images), 0);
  assert.deepEqual(Array.from(a.curve), Array.from(b.curve));
  assert.ok(bitMismatches(a.images, c.images) > a.images.size / 2);
});

test('diversity: the term lowers the mean pairwise similarity of a batch of 4', async () => {
  const model = await mnistCnn();
  const objective = { kind: 'channel', site: 'c2.conv', channel: 3 } as const;
  const sim = async (weight: number) => {
    const s = await synthesize(model, objective, { steps: 48, batch: 4, jitter: 1, diversity: { weight }, seed: 1 });
    return s.checks.find((k) => k.name === 'diversity')!.value as number;
  };
  const [without, withTerm] = [await sim(0), await sim(10)];
  assert.ok(withTerm < without - 0.05, `similarity with the term ${withTerm} vs without ${without}`);
});

test('grid PNG: decoded pixels equal the input images at their grid positions', () => {
  const grey = Tensor.float32(randoms(3 * 4 * 5, 40).map((v) => (v + 1) / 2), [3, 1, 4, 5]);
  const opts = { columns: 2, pad: 1, scale: 2 };
  const g = decodePng(imageGrid(grey, opts), { channels: 1 });
  const [gh, gw] = g.shape.slice(2);
  assert.deepEqual([gh, gw], [2 * (8 + 1) + 1, 2 * (10 + 1) + 1]);
  for (let b = 0; b < 3; b++) {
    const [y0, x0] = gridOrigin(b, 4, 5, { ...opts, count: 3 });
    for (let y = 0; y < 8; y++) for (let x = 0; x < 10; x++) {
      const want = grey.data[b * 20 + Math.floor(y / 2) * 5 + Math.floor(x / 2)];
      assert.ok(Math.abs(g.data[(y0 + y) * gw + x0 + x] - want) <= 0.5 / 255 + 1e-6, `image ${b} (${y}, ${x})`);
    }
  }
  assert.equal(g.data[0], 1, 'padding is white');
  assert.equal(g.data[(gh - 1) * gw + gw - 1], 1, 'the empty fourth cell is background');
  const rgb = Tensor.float32(randoms(2 * 3 * 3 * 3, 41).map((v) => v * 5), [2, 3, 3, 3]);
  const c = decodePng(imageGrid(rgb, { columns: 1, pad: 0, normalize: 'each' }), { channels: 3 });
  assert.deepEqual(c.shape, [1, 3, 6, 3]);
  for (let b = 0; b < 2; b++) {
    const own = Array.from(rgb.data.slice(b * 27, (b + 1) * 27));
    const [lo, hi] = [Math.min(...own), Math.max(...own)];
    for (let ch = 0; ch < 3; ch++) for (let q = 0; q < 9; q++) {
      const got = c.data[ch * 18 + b * 9 + q];
      assert.ok(Math.abs(got - (own[ch * 9 + q] - lo) / (hi - lo)) <= 0.5 / 255 + 1e-6, `rgb image ${b} channel ${ch} pixel ${q}`);
    }
  }
});

test('bad input: unknown site, unit out of range, non-image input, NaN start image, bad options', async () => {
  const model = await mnistCnn();
  await assert.rejects(synthesize(model, { kind: 'channel', site: 'c9.conv', channel: 0 }), /c9\.conv/);
  await assert.rejects(synthesize(model, { kind: 'channel', site: 'c1.conv', channel: 8 }), /channel 8 is out of range for 'c1\.conv' with 8 units/);
  await assert.rejects(synthesize(model, { kind: 'class', index: 10 }), /class index 10 is out of range/);
  await assert.rejects(synthesize(model, { kind: 'direction', site: 'c1.conv', vector: [1, 2] }), /direction has 2 values; 'c1\.conv' has 8 units/);
  const flat = await Model.load(encodeModel(mlp({ inputs: 784, hidden: [8], classes: 10, seed: 1 })));
  await assert.rejects(synthesize(flat, { kind: 'class', index: 0 }), /input 'x' has shape \[N, 784\]; feature synthesis needs an image input/);
  const start = Tensor.float32(new Float32Array(784).fill(0.5), [1, 1, 28, 28]);
  start.data[100] = NaN;
  await assert.rejects(synthesize(model, { kind: 'class', index: 0 }, { start }), /start image has a non-finite value \(NaN\) at flat index 100/);
  await assert.rejects(synthesize(model, { kind: 'class', index: 0 }, { steps: 0 }), /steps must be a positive integer/);
  await assert.rejects(synthesize(model, { kind: 'class', index: 0 }, { jitter: -1 }), /jitter/);
  assert.throws(() => imageGrid(Tensor.float32(new Float32Array(8), [2, 2, 2])), /1 \(grey\) or 3 \(RGB\) channels/);
});

test('start image: synthesis from a given image and the registry entry', async () => {
  const model = await mnistCnn();
  const x = (await loadMnist('test')).gather([0]).x;
  // One step of tiny lr barely moves the start: the Fourier, sigmoid and inverse maps reproduce the image.
  const s = await synthesize(model, { kind: 'class', index: 7 }, { start: x, steps: 1, lr: 1e-9 });
  let err = 0;
  for (let i = 0; i < 784; i++) err = Math.max(err, Math.abs(s.images.data[i] - Math.min(1 - 1e-4, Math.max(1e-4, x.data[i]))));
  assert.ok(err < 1e-5, `start image reproduced to ${err}`);
  const entry = SYNTHESIS_METHODS['activation-maximization'];
  assert.equal(entry.info.taxonomy.rauker?.section, 'III: feature synthesis');
  assert.equal(entry.run, synthesize);
});
