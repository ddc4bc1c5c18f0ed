/**
 * Li et al.'s prototype network on an MNIST slice (one training shared by the file): accuracy against its twin, the
 * decoded prototypes near real training images (R1 at work), the logits as W·(−distances) recomputed here, the
 * projection exact to the bit, the PNG of decoded prototypes and nearest images, and errors that name the problem.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { decodePng } from '../../../src/data/png.js';
import { Trainer } from '../../../src/model/train/index.js';
import { prototypeAutoencoderPng } from '../../../src/methods/active/prototype-report.js';
import { LI, loadModel, median, prototypeAutoencoder, prototypeAutoencoderTerms, trainPrototypeAutoencoder, weightOf, type PrototypeAutoencoderResult } from '../../../src/methods/active/prototypes.js';
import type { Dataset } from '../../../src/data/datasets/dataset.js';

let train: Dataset<'float32'>;
let test_: Dataset<'float32'>;
let r: PrototypeAutoencoderResult;
const check = (name: string) => {
  const c = r.checks.find((k) => k.name === name);
  assert.ok(c, `no check '${name}' in ${r.checks.map((k) => k.name).join(', ')}`);
  return c;
};

before(async () => {
  train = (await loadMnist('train')).slice(0, 2000);
  test_ = (await loadMnist('test')).slice(0, 500);
  r = await trainPrototypeAutoencoder(train, test_, { prototypes: 15, epochs: 2, seed: 1 });
});

test('accuracy stays within 6 points of the unregularised twin (measured: 78.8% vs 82.4%)', () => {
  assert.ok(r.accuracy.model > 0.7, `prototype network accuracy ${r.accuracy.model}`);
  assert.ok(r.accuracy.twin > 0.7, `twin accuracy ${r.accuracy.twin}`);
  assert.ok(r.accuracy.model >= r.accuracy.twin - 0.06, `prototype network ${r.accuracy.model} vs twin ${r.accuracy.twin}`);
  assert.equal(check('accuracy vs twin').value, r.accuracy.model - r.accuracy.twin);
  // the loss terms were optimised: the reconstruction error falls from the first epoch to the second
  const [e1, e2] = r.history;
  assert.ok(e2.terms!.reconstruction < e1.terms!.reconstruction, `reconstruction ${e1.terms!.reconstruction} → ${e2.terms!.reconstruction}`);
});

test('every decoded prototype is closer to a training image than random training images are to each other', async () => {
  const c = check('decoded prototypes near training images');
  assert.equal(c.passed, true, c.detail);
  const ratios = c.value as number[];
  assert.equal(ratios.length, 15);
  assert.ok(Math.max(...ratios) < 0.8, `worst ratio ${Math.max(...ratios)}`);
  // recompute one nearest distance by brute force over the whole slice
  const j = 3;
  const per = 28 * 28;
  const p = r.decoded.data.subarray(j * per, (j + 1) * per);
  let best = Infinity;
  for (const b of train.batches(500)) {
    const x = b.x.data;
    for (let i = 0; i < b.indices.length; i++) {
      let s = 0;
      for (let k = 0; k < per; k++) s += (p[k] - x[i * per + k]) ** 2;
      best = Math.min(best, Math.sqrt(s));
    }
  }
  assert.ok(Math.abs(best - r.nearestImage[j].distance) < 1e-4, `${best} vs ${r.nearestImage[j].distance}`);
  assert.ok(r.medianPairDistance > 5 && r.medianPairDistance < 15, `median pair distance ${r.medianPairDistance}`);
  // a stricter control: most decoded prototypes are nearer a training image than the (blurry) mean image is (measured 0.8)
  assert.ok((check('decoded prototypes nearer than the mean image').value as number) >= 0.5);
});

test('R1 did its work: the prototypes lie nearer the encoded data than without R1 (same data, seed, epochs)', async () => {
  const without = await trainPrototypeAutoencoder(train, test_, { prototypes: 15, epochs: 2, seed: 1, r1: 0, project: false });
  const a = median(r.nearestEncoding.map((n) => n.distance));
  const b = median(without.nearestEncoding.map((n) => n.distance));
  assert.ok(a < b, `median distance from a prototype to its nearest encoding: ${a} with R1, ${b} without (measured 0.69 vs 0.83)`);
});

test('logits equal W·(−‖f(x) − p_j‖²), recomputed from the captured encodings', async () => {
  const c = check('logits = W·(−distances)');
  assert.equal(c.passed, true, c.detail);
  assert.ok((c.value as number) < 1e-4, `max error ${c.value}`);
  // independently: the distances the graph computes are the squared distances to the prototypes
  const model = await loadModel(r.model);
  const x = test_.gather([0, 1, 2, 3]).x;
  const out = await model.run({ x }, { capture: [LI.latent, LI.distances] });
  const z = out.captures[LI.latent].data as Float32Array;
  const dist = out.captures[LI.distances].data as Float32Array;
  const P = r.prototypes.data;
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 15; j++) {
      let s = 0;
      for (let k = 0; k < 16; k++) s += (z[i * 16 + k] - P[j * 16 + k]) ** 2;
      assert.ok(Math.abs(s - dist[i * 15 + j]) < 1e-5, `d[${i},${j}] ${dist[i * 15 + j]} vs ${s}`);
    }
  }
});

test('projection makes every prototype the exact encoding of a training image', async () => {
  const c = check('projected prototypes are encodings');
  assert.equal(c.passed, true, c.detail);
  assert.equal(c.value, 0);
  const P = weightOf(r.projected!, LI.prototypes);
  const sources = r.nearestEncoding.map((n) => n.index);
  const z = (await (await loadModel(r.projected!)).run({ x: train.gather(sources).x }, { capture: [LI.latent] })).captures[LI.latent].data;
  assert.deepEqual(Array.from(P.data), Array.from(z as Float32Array));
  // the learnt prototypes were near, not at, those encodings; the accuracy after projection is measured
  const moved = r.nearestEncoding.map((n) => n.distance); // latent space [0, 1]^16: at most 4 apart
  assert.ok(moved.every((d) => d > 0) && median(moved) < 1, moved.map((d) => d.toFixed(3)).join(' '));
  assert.ok(r.accuracy.projected! > r.accuracy.model - 0.1, `projected ${r.accuracy.projected} vs ${r.accuracy.model}`);
});

test('the PNG holds the decoded prototypes above their nearest training images', () => {
  const png = decodePng(prototypeAutoencoderPng(r, train, 2), { channels: 1 }); // [1, 1, H, W]
  const [, , H, W] = png.shape;
  // grid: 15 columns, 2 rows of 56×56 (scale 2) with 2-pixel padding
  assert.equal(W, 15 * (56 + 2) + 2);
  assert.equal(H, 2 * (56 + 2) + 2);
  for (const [y, x] of [[10, 14], [20, 20]]) {
    const decoded = r.decoded.data[y * 28 + x]; // prototype 0, row 0
    assert.ok(Math.abs(png.data[(2 + 2 * y) * W + 2 + 2 * x] - decoded) <= 1 / 255 + 1e-6);
    const near = train.get(r.nearestImage[0].index).x.data[y * 28 + x]; // its nearest image, row 1
    assert.ok(Math.abs(png.data[(2 + 58 + 2 * y) * W + 2 + 2 * x] - near) <= 1 / 255 + 1e-6);
  }
});

test('bad settings get errors that name them', async () => {
  assert.throws(() => prototypeAutoencoder({ input: [1, 28, 28], classes: 10, prototypes: 0, seed: 1 }), /prototypes must be a positive integer, got 0/);
  assert.throws(() => prototypeAutoencoder({ input: [4], classes: 3, prototypes: 5, latent: 2.5, seed: 1 }), /latent must be a positive integer/);
  assert.throws(() => prototypeAutoencoderTerms({ r1: -1 }), /weight 'r1' must be ≥ 0/);
  assert.throws(() => prototypeAutoencoderTerms({ reconstruction: NaN }), /weight 'reconstruction'/);
  // the terms read sites the model has: a plain MLP has no prototype distances
  const { mlp } = await import('../../../src/model/builders/mlp.js');
  const t = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [8], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 1e-3 }, terms: prototypeAutoencoderTerms() });
  await assert.rejects(t.step(train.gather([0, 1])), /recon/);
});
