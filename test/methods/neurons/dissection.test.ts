import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import '../../../src/index.js';
import { classRegionConcepts, conceptDataset, maskCount, packMask, unpackMask, withConcepts, type ConceptDataset } from '../../../src/data/datasets/concepts.js';
import { dataset, mapInputs } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { cnn } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { beamSearch, explainCompositional, type ConceptBank } from '../../../src/methods/neurons/compositional.js';
import { DISSECTION_METHODS, dissect, type UnitLabel } from '../../../src/methods/neurons/dissection.js';
import { attr, encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { PADDLE_CLS, seeded } from '../../helpers.js';

const report = (...xs: unknown[]) => console.log('  ·', ...xs);

/** Images [N, 1, side, side] with given masks, as a concept dataset. */
function tinyConcepts(images: number[][], side: number, names: string[], masks: number[][][]): ConceptDataset {
  const ds = dataset<'float32'>({
    name: 'tiny',
    size: images.length,
    inputShape: [1, side, side],
    inputDType: 'float32',
    gather: (ix) => ({ x: Tensor.float32(Array.from(ix).flatMap((i) => images[i]), [ix.length, 1, side, side]), y: Tensor.int64(Array.from(ix, () => 0), [ix.length]) }),
  });
  return withConcepts(ds, names, (i) => masks[i].map((m) => packMask(Array.from({ length: side * side }, (_, p) => (m.includes(p) ? 1 : 0)))));
}

/** x [N, 1, 4, 4] → AveragePool 2×2 stride 2 → `pool.averagepool` [N, 1, 2, 2]. */
async function poolModel(): Promise<Model> {
  const net = new Net(0);
  const y = net.op('pool', 'AveragePool', ['x'], [attr('kernel_shape', { ints: [2, 2] }), attr('strides', { ints: [2, 2] })], ['y']);
  return Model.load(encodeModel(net.model({ name: 'pool', doc: 'pool', input: { name: 'x', dtype: 'float32', shape: ['N', 1, 4, 4] }, output: { name: y, shape: ['N', 1, 2, 2] } })));
}

test('dissection IoU matches a hand computation (exact threshold, bilinear upsampling, dataset IoU)', async () => {
  const model = await poolModel();
  const block = (v: number, ps: number[]) => Array.from({ length: 16 }, (_, p) => (ps.includes(p) ? v : 0));
  // Pooled maps: image 0 [[4, 0], [0, 0]], image 1 [[0, 0], [0, 2]]; 8 raw values, top 25% = 2 values → T = 2.
  const images = [block(4, [0, 1, 4, 5]), block(2, [10, 11, 14, 15])];
  // Image 0 upsampled (half-pixel, 2 → 4): rows [4 3 1 0], [3 2.25 .75 0], [1 .75 .25 0], [0 0 0 0] → S > 2 at 0, 1, 4, 5.
  // Image 1 peaks at exactly 2 (not above T): no pixels. |U| = 4.
  const concepts = tinyConcepts(images, 4, ['A', 'B', 'C', 'D'], [
    [[0, 1, 4, 5], [0, 1, 2, 3], [], [0]],
    [[], [0, 1, 2, 3], [10, 11, 14, 15], []],
  ]);
  const d = await dissect(model, 'pool.averagepool', concepts, { quantile: 0.25, randomUnits: 0, randomInit: false, iouThreshold: 0.04 });
  const u = d.units[0];
  assert.equal(u.threshold, 2);
  // A: I 4, |A| 4 → 1. B: I 2, |B| 8, union 10 → 0.2. C: 0. D: I 1, |D| 1, union 4 → 0.25.
  assert.deepEqual(Array.from(d.iou), [1, 0.2, 0, 0.25]);
  assert.equal(u.label, 'A');
  assert.deepEqual(u.top.map((t) => t.concept), ['A', 'D', 'B']);
  assert.equal(u.beatsRandom, null);
  assert.equal(d.checks.find((c) => c.name === 'threshold quantile')!.passed, true);
  await model.dispose();
});

test('compositional beam search finds a hand-checked length-3 formula', () => {
  // One image of 4×4; unit pixels {0, 1, 4, 5}. E = {0, 1}, F = {4, 5, 6}, G = {6}.
  // Singles: E 2/4 = 0.5, F 2/5 = 0.4; E OR F 4/5 = 0.8; (E OR F) AND NOT G = {0, 1, 4, 5} → 1.
  const sets = [[0, 1], [4, 5, 6], [6]];
  const bits = sets.map((s) => {
    const m = packMask(Array.from({ length: 16 }, (_, p) => (s.includes(p) ? 1 : 0)));
    return Uint32Array.of(m[0] | (m[1] << 8));
  });
  const bank: ConceptBank = { names: ['E', 'F', 'G'], images: 1, pixels: 16, words: 1, bits, totals: Float64Array.from(sets, (s) => s.length) };
  const r = beamSearch(Int32Array.of(0, 1, 4, 5), bank, 3, 5);
  assert.equal(r.formula, '(E OR F) AND NOT G');
  assert.equal(r.iou, 1);
  assert.deepEqual(r.single, { concept: 'E', iou: 0.5 });
  assert.equal(r.gain, 0.5);
  const two = beamSearch(Int32Array.of(0, 1, 4, 5), bank, 2, 5);
  assert.equal(two.formula, 'E OR F');
  assert.equal(two.iou, 0.8);
});

test('the concept dataset is deterministic and its masks describe its pixels', () => {
  const a = conceptDataset({ size: 50, seed: 3 });
  const b = conceptDataset({ size: 50, seed: 3 });
  const c = conceptDataset({ size: 50, seed: 4 });
  assert.deepEqual(a.gather([7, 8]).x.data, b.gather([7, 8]).x.data);
  assert.notDeepEqual(a.gather([7]).x.data, c.gather([7]).x.data);
  const bright = a.conceptNames.indexOf('colour:bright');
  const dim = a.conceptNames.indexOf('colour:dim');
  let pixels = 0;
  for (let i = 0; i < 50; i++) {
    const x = a.gather([i]).x.data;
    const m = a.masks(i);
    const [br, di] = [unpackMask(m[bright], 784), unpackMask(m[dim], 784)];
    for (let p = 0; p < 784; p++) {
      if (br[p]) assert.ok(x[p] >= 0.77, `bright pixel ${p} of image ${i} is ${x[p]}`);
      if (di[p]) assert.ok(x[p] >= 0.32 && x[p] <= 0.58, `dim pixel ${p} of image ${i} is ${x[p]}`);
      if (!br[p] && !di[p]) assert.ok(x[p] <= 0.6, `pixel ${p} of image ${i} is ${x[p]} but neither bright nor dim`);
      pixels += br[p] + di[p];
    }
  }
  assert.ok(pixels > 0);
  const rgb = conceptDataset({ size: 4, height: 48, width: 192, channels: 3, seed: 1 });
  assert.deepEqual(rgb.gather([0]).x.shape, [1, 3, 48, 192]);
  assert.equal(rgb.masks(0)[0].length, (48 * 192) / 8);
  const freq = a.conceptNames.map((n, k) => [n, (Array.from({ length: 50 }, (_, i) => maskCount(a.masks(i)[k])).reduce((s, v) => s + v, 0) / (50 * 784)).toFixed(4)]);
  report('concept frequencies (28×28 grey):', freq.map(([n, f]) => `${n} ${f}`).join(', '));
});

const H_STRIPES = 'texture:stripes-horizontal';
const V_STRIPES = 'texture:stripes-vertical';

/**
 * A hand-wired two-layer detector bank (the dataset's stripes have period 4). c1 (7×7, ReLU): four phases of a
 * zero-mean period-4 square wave along y (horizontal stripes), the same along x (vertical stripes), a bright-pixel
 * detector ReLU(x − 0.6), and 12 seeded random filters as distractors. c2 (1×1) sums the phases — phase-invariant
 * "complex cells": unit 0 = horizontal stripes, 1 = vertical stripes, 2 = bright, 3 = horizontal + vertical (an OR),
 * 4–15 = the distractors passed through.
 */
async function wiredModel(): Promise<Model> {
  const [c1, k2] = [21, 16];
  const net = new Net(0);
  const w1 = new Float32Array(c1 * 49);
  const b1 = new Float32Array(c1);
  for (let s = 0; s < 4; s++) {
    const wave = Array.from({ length: 7 }, (_, i) => ((i + s) % 4 < 2 ? 1 : -1));
    const mean = wave.reduce((a, b) => a + b, 0) / 7;
    for (let y = 0; y < 7; y++) {
      for (let x = 0; x < 7; x++) {
        w1[s * 49 + y * 7 + x] = (wave[y] - mean) / 7;
        w1[(4 + s) * 49 + y * 7 + x] = (wave[x] - mean) / 7;
      }
    }
  }
  [w1[8 * 49 + 24], b1[8]] = [1, -0.6];
  const r = seeded(5);
  for (let i = 9 * 49; i < c1 * 49; i++) w1[i] = (2 * r() - 1) / 7;
  for (let k = 9; k < c1; k++) b1[k] = 0.1 * (2 * r() - 1);
  const w2 = new Float32Array(k2 * c1);
  for (let s = 0; s < 4; s++) {
    w2[0 * c1 + s] = w2[3 * c1 + s] = 1;
    w2[1 * c1 + 4 + s] = w2[3 * c1 + 4 + s] = 1;
  }
  w2[2 * c1 + 8] = 1;
  for (let k = 4; k < k2; k++) w2[k * c1 + k + 5] = 1;
  const c1w = net.param('c1.weight', Tensor.float32(w1, [c1, 1, 7, 7]));
  const c1b = net.param('c1.bias', Tensor.float32(b1, [c1]));
  let h = net.op('c1', 'Conv', ['x', c1w, c1b], [attr('kernel_shape', { ints: [7, 7] }), attr('pads', { ints: [3, 3, 3, 3] })]);
  h = net.op('c1', 'Relu', [h]);
  const c2w = net.param('c2.weight', Tensor.float32(w2, [k2, c1, 1, 1]));
  const y = net.op('c2', 'Conv', [h, c2w], [attr('kernel_shape', { ints: [1, 1] })], ['y']);
  return Model.load(encodeModel(net.model({ name: 'wired', doc: 'hand-wired detectors', input: { name: 'x', dtype: 'float32', shape: ['N', 1, 28, 28] }, output: { name: y, shape: ['N', k2, 28, 28] } })));
}

const wired = { model: undefined as Model | undefined, concepts: conceptDataset({ size: 300, seed: 1 }) };
const wiredModelOnce = async () => (wired.model ??= await wiredModel());
after(() => wired.model?.dispose());

test('dissection labels hand-wired units with their planted concepts, above the random-init baseline', async () => {
  const model = await wiredModelOnce();
  const d = await dissect(model, 'c2.conv', wired.concepts, { randomUnits: 16, seed: 1 });
  const show = (u: UnitLabel) => `${u.unit}: ${u.concept} ${u.iou.toFixed(3)} (random-init p95 ${u.randomIoU.toFixed(3)}) top ${u.top.map((t) => `${t.concept} ${t.iou.toFixed(3)}`).join(' | ')}`;
  report(`wired, q = 0.005, ${d.ms.toFixed(0)} ms\n    ${d.units.slice(0, 5).map(show).join('\n    ')}`);
  report(d.checks.map((c) => `${c.name}: ${c.passed} (${c.detail})`).join('\n    '));
  const [h, v, bright, or] = d.units;
  assert.equal(h.label, H_STRIPES);
  assert.equal(v.label, V_STRIPES);
  assert.equal(bright.label, 'colour:bright');
  assert.ok(or.label === H_STRIPES || or.label === V_STRIPES, `the OR unit is labelled ${or.label}`);
  for (const u of [h, v, bright, or]) assert.equal(u.beatsRandom, true, `unit ${u.unit} (${u.label}) ${u.iou} vs random-init ${u.randomIoU}`);
  // The stripe labels are far above what a random filter reaches; brightness is not (random filters with a positive
  // sum are brightness detectors too), but unit 2 reaches ≥ 90% of the largest IoU its mask size allows.
  assert.ok(h.iou > 3 * h.randomIoU && v.iou > 3 * v.randomIoU);
  const c = d.concepts.indexOf('colour:bright');
  const bound = Math.min(bright.pixels, d.conceptPixels[c]) / Math.max(bright.pixels, d.conceptPixels[c]);
  assert.ok(bright.iou >= 0.9 * bound && bright.iou <= bound, `bright IoU ${bright.iou} vs bound ${bound}`);
  assert.equal(d.checks.find((k) => k.name === 'threshold quantile')!.passed, true);
  assert.equal(d.checks.find((k) => k.name === 'labels beating the random baseline')!.passed, true);
});

test('dissect matches a brute-force reference (full sort, unpacked masks) on the wired model', async () => {
  const model = await wiredModelOnce();
  const [n, q, K, P] = [40, 0.01, 16, 784];
  const concepts = conceptDataset({ size: n, seed: 9 });
  // batchSize 7: uneven batches, and the top-value buffer (4⌈q·n·h·w⌉ = 1256 of 31360 values per unit) compacts often.
  const d = await dissect(model, 'c2.conv', concepts, { quantile: q, randomUnits: 0, randomInit: false, batchSize: 7 });
  const { x } = concepts.gather(Array.from({ length: n }, (_, i) => i));
  const a = (await model.run({ x }, { capture: ['c2.conv'] })).captures['c2.conv'].data as Float32Array;
  const C = concepts.conceptNames.length;
  const masks = Array.from({ length: n }, (_, i) => concepts.masks(i).map((m) => unpackMask(m, P)));
  for (const k of [0, 1, 2, 3, 9]) {
    const values = Float32Array.from({ length: n * P }, (_, j) => a[(Math.floor(j / P) * K + k) * P + (j % P)]);
    const T = [...values].sort((u, v) => v - u)[Math.ceil(q * n * P) - 1];
    assert.equal(d.units[k].threshold, T);
    for (let c = 0; c < C; c++) {
      let [inter, unit, concept] = [0, 0, 0];
      for (let j = 0; j < n * P; j++) {
        const [on, lab] = [values[j] > T ? 1 : 0, masks[Math.floor(j / P)][c][j % P]];
        [inter, unit, concept] = [inter + (on & lab), unit + on, concept + lab];
      }
      assert.equal(d.iou[k * C + c], unit + concept - inter > 0 ? inter / (unit + concept - inter) : 0, `unit ${k}, ${concepts.conceptNames[c]}`);
    }
  }
});

test('compositional explanations recover a planted OR (and the contrast it needs)', async () => {
  const model = await wiredModelOnce();
  const e = await explainCompositional(model, 'c2.conv', wired.concepts, { quantile: 0.03, randomUnits: 8, seed: 1, units: [0, 1, 2, 3], maxLength: 3 });
  report(`compositional, q = 0.03, ${e.ms.toFixed(0)} ms\n    ${e.units.map((u) => `${u.unit}: ${u.formula} ${u.iou.toFixed(3)} (single ${u.single.concept} ${u.single.iou.toFixed(3)})`).join('\n    ')}`);
  report(e.checks.map((c) => `${c.name}: ${c.passed} (${c.detail})`).join('\n    '));
  const or = e.units[3];
  // The planted OR; the detectors are linear in contrast, so dim stripes stay under the top quantile: AND NOT dim.
  assert.equal(or.formula, `(${H_STRIPES} OR ${V_STRIPES}) AND NOT colour:dim`);
  assert.ok(or.gain > 0.05, `gain ${or.gain}`);
  assert.equal(e.checks.find((c) => c.name === 'IoU gain over single concepts')!.passed, true);
  assert.equal(e.checks.find((c) => c.name === 'formula IoU vs random directions')!.passed, true);
  // With two concepts at most, the formula is the planted OR itself.
  const two = await explainCompositional(model, 'c2.conv', wired.concepts, { quantile: 0.03, randomUnits: 0, units: [3], maxLength: 2 });
  assert.equal(two.units[0].formula, `${H_STRIPES} OR ${V_STRIPES}`);
  assert.ok(two.units[0].iou > two.units[0].single.iou);
});

test('class and region concepts on an MNIST-trained CNN: labelled units vs random-init and random directions', async () => {
  const train = await loadMnist('train');
  const trainer = await Trainer.create(cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  const fit = await trainer.fit(train.slice(0, 2000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(trainer.exportModel()));
  // Digits as objects: ink (> 0.5) grown by one pixel. c2.relu is 14×14, upsampled ×2, so the top 2% (not 0.5%).
  const concepts = classRegionConcepts((await loadMnist('test')).slice(0, 300), { dilate: 1 });
  const d = await dissect(model, 'c2.relu', concepts, { quantile: 0.02, randomUnits: 32, seed: 1 });
  report(`MNIST cnn (train accuracy ${fit.history.at(-1)!.trainAccuracy.toFixed(3)}), c2.relu, ${d.ms.toFixed(0)} ms:`, d.units.map((u) => `${u.unit}: ${u.concept} ${u.iou.toFixed(3)}${u.beatsRandom ? '*' : ''}`).join(', '));
  report(d.checks.map((c) => `${c.name}: ${c.passed} (${c.detail})`).join('\n    '));
  assert.ok(d.labelledFraction > d.randomInitLabelledFraction, `${d.labelledFraction} vs random-init ${d.randomInitLabelledFraction}`);
  const classUnits = d.units.filter((u) => u.beatsRandom && u.label!.startsWith('class:'));
  assert.ok(classUnits.length >= 3, `${classUnits.length} units carry a class label above the random-init baseline`);
  assert.ok(classUnits.some((u) => u.iou > 2 * u.randomIoU), 'no class unit doubles the random-init IoU');
  await model.dispose();
});

test('the PaddleOCR direction classifier (48×192 RGB): stroke and texture units above random directions', async () => {
  const model = await Model.load(PADDLE_CLS, { inputShapes: { x: [1, 3, 48, 192] } });
  const scenes = conceptDataset({ size: 60, height: 48, width: 192, channels: 3, seed: 1 });
  // PaddleOCR feeds (x − 0.5) / 0.5; the masks stay the scenes'.
  const concepts = withConcepts(mapInputs(scenes, (x) => Tensor.float32(Float32Array.from(x.data, (v) => 2 * v - 1), x.shape)), scenes.conceptNames, (i) => scenes.masks(i));
  const d = await dissect(model, 'relu_3.tmp_0', concepts, { randomUnits: 32, seed: 1 });
  report(`paddle cls relu_3.tmp_0, ${d.ms.toFixed(0)} ms:`, d.units.map((u) => `${u.unit}: ${u.concept} ${u.iou.toFixed(3)}${u.beatsRandom ? '*' : ''}`).join(', '));
  report(d.checks.map((c) => `${c.name}: ${c.passed} (${c.detail})`).join('\n    '));
  // Its weights are Constant nodes: no re-initialisable copy, so the per-unit baseline is the random directions.
  assert.equal(d.randomInit.length, 0);
  const strong = d.units.filter((u) => u.beatsRandom && u.iou > 2 * u.randomIoU).map((u) => `${u.unit}:${u.label}`);
  assert.deepEqual(strong, ['7:texture:checkerboard', '16:stroke:thin', '20:stroke:thin']);
  await model.dispose();
});

test('bad input: unknown site, rank-2 site, mask shape mismatch, bad options', async () => {
  const model = await wiredModelOnce();
  const concepts = conceptDataset({ size: 8, seed: 1 });
  await assert.rejects(dissect(model, 'c2.convv', concepts), /c2\.conv/);
  await assert.rejects(dissect(model, 'c2.conv', concepts, { quantile: 0 }), /quantile must be in \(0, 1\)/);
  await assert.rejects(dissect(model, 'c2.conv', concepts, { batchSize: -1 }), /batchSize/);
  const wrong = conceptDataset({ size: 8, height: 28, width: 32, seed: 1 });
  const mismatched: ConceptDataset = { ...concepts, maskShape: [wrong.maskShape[0], wrong.maskShape[1]] };
  await assert.rejects(dissect(model, 'c2.conv', mismatched), /masks are \[28, 32\] but the images .* are \[28, 28\]/);
  const badBytes = withConcepts(concepts, ['only'], () => [new Uint8Array(5)]);
  await assert.rejects(dissect(model, 'c2.conv', badBytes), /mask 'only' of example 0 has 5 bytes; \[28, 28\] masks take 98/);
  const mnistCnn = await Model.load(encodeModel(cnn({ input: [1, 28, 28], channels: [4], classes: 10, seed: 1 })));
  await assert.rejects(dissect(mnistCnn, 'fc.gemm', concepts), /site 'fc\.gemm' has shape \[.*10\] \(rank 2\); dissection needs a convolutional site/);
  await mnistCnn.dispose();
  const unlabelled = dataset<'float32'>({ name: 'unlabelled', size: 2, inputShape: [1, 4, 4], inputDType: 'float32', gather: (ix) => ({ x: Tensor.zeros('float32', [ix.length, 1, 4, 4]), y: Tensor.int64(Array.from(ix, () => 0)) }) });
  assert.throws(() => classRegionConcepts(unlabelled), /dataset unlabelled has no class labels/);
  assert.throws(() => conceptDataset({ size: 4, channels: 2 as 1 }), /channels must be 1 or 3, got 2/);
  assert.throws(() => concepts.masks(8), /mask index 8 out of range \[0, 8\)/);
  assert.equal(DISSECTION_METHODS['network-dissection'].info.taxonomy.zhang.format, 'hidden semantics');
});
