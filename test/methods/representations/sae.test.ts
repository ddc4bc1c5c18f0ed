import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/index.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Trainer } from '../../../src/model/train/index.js';
import {
  DICTIONARY_METHODS, SparseAutoencoder, evaluateSae, matrixSource, siteRows, rowsToSite, siteSource, splicedLoss, trainSae,
} from '../../../src/methods/representations/sae.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { dataset } from '../../../src/data/datasets/dataset.js';
import { torchFixture } from '../../helpers.js';

/** 64 random unit directions in 32 dims; each row a sum of 3 of them with coefficients in [0.5, 1.5]. */
function plantedDictionary(n: number, seed: number) {
  const [d, m, active] = [32, 64, 3];
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const dirs = Float32Array.from({ length: m * d }, gauss);
  for (let i = 0; i < m; i++) {
    const s = Math.hypot(...dirs.subarray(i * d, (i + 1) * d));
    for (let j = 0; j < d; j++) dirs[i * d + j] /= s;
  }
  const rows = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const picked = new Set<number>();
    while (picked.size < active) picked.add(Math.floor(rand() * m));
    for (const i of picked) {
      const c = 0.5 + rand();
      for (let j = 0; j < d; j++) rows[r * d + j] += c * dirs[i * d + j];
    }
  }
  return { d, m, dirs, rows };
}

/** For each true direction, the best cosine with any learnt decoder direction. */
function recovered(sae: SparseAutoencoder, dirs: Float32Array, m: number, d: number): number[] {
  return Array.from({ length: m }, (_, i) => {
    let best = -1;
    for (let f = 0; f < sae.features; f++) {
      const w = sae.direction(f);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += w[j] * dirs[i * d + j];
      best = Math.max(best, dot);
    }
    return best;
  });
}

const planted = plantedDictionary(8192, 3);

test('a TopK SAE recovers a planted overcomplete dictionary, with exactly k active latents', async () => {
  const { d, m, dirs, rows } = planted;
  const sae = await trainSae(matrixSource(rows, d, { seed: 1 }), { features: 128, sparsity: { kind: 'topk', k: 3 }, steps: 1500, batchSize: 256, lr: 3e-3, seed: 1 });
  const cos = recovered(sae, dirs, m, d);
  const found = cos.filter((c) => c > 0.9).length / m;
  assert.ok(found >= 0.8, `only ${found} of the true directions have a decoder row at cosine > 0.9`);
  const metrics = await evaluateSae(sae, matrixSource(rows.subarray(0, 2048 * d), d));
  assert.ok(metrics.fve > 0.9, `FVE ${metrics.fve}`);
  assert.ok(metrics.l0 <= 3 && metrics.l0 > 2.9, `TopK k=3 gave L0 ${metrics.l0}`);
  assert.ok(sae.checks.every((c) => c.passed !== false), JSON.stringify(sae.checks));
  // Each row has at most k latents on; a batch encoded directly agrees.
  const { latents } = await sae.encode(rows.subarray(0, 64 * d));
  for (let r = 0; r < 64; r++) assert.ok(latents.subarray(r * 128, (r + 1) * 128).filter((v) => v > 0).length <= 3);
});

test('a ReLU + L1 SAE recovers the planted dictionary and is reproducible from its seed', async () => {
  const { d, m, dirs, rows } = planted;
  const options = { features: 128, sparsity: { kind: 'relu', l1: 0.2 } as const, steps: 1500, batchSize: 256, lr: 3e-3, seed: 2 };
  const sae = await trainSae(matrixSource(rows, d, { seed: 2 }), options);
  const cos = recovered(sae, dirs, m, d);
  const found = cos.filter((c) => c > 0.9).length / m;
  assert.ok(found >= 0.8, `only ${found} of the true directions have a decoder row at cosine > 0.9`);
  const metrics = await evaluateSae(sae, matrixSource(rows.subarray(0, 2048 * d), d), { top: 3 });
  assert.ok(metrics.fve > 0.85, `FVE ${metrics.fve}`);
  assert.ok(metrics.l0 > 3 && metrics.l0 < 15, `L0 ${metrics.l0} (3 true directions per row; ReLU + L1 keeps some small extra latents on)`);
  // Top examples: sorted, and their values are the latents of those rows.
  const t = metrics.top!.find((x) => x.examples.length === 3)!;
  assert.ok(t.values[0] >= t.values[1] && t.values[1] >= t.values[2]);
  const { latents } = await sae.encode(rows.subarray(t.examples[0] * d, (t.examples[0] + 1) * d));
  assert.ok(Math.abs(latents[t.feature] - t.values[0]) < 1e-5);
  // Same seed, same weights; and save/load round-trips through ONNX.
  const again = await trainSae(matrixSource(rows, d, { seed: 2 }), { ...options, steps: 20 });
  const again2 = await trainSae(matrixSource(rows, d, { seed: 2 }), { ...options, steps: 20 });
  assert.deepEqual(again.weights.W_dec.data, again2.weights.W_dec.data);
  const dir = await mkdtemp(join(tmpdir(), 'sae-'));
  try {
    await sae.save(join(dir, 'sae.onnx'));
    const loaded = await SparseAutoencoder.load(join(dir, 'sae.onnx'));
    assert.deepEqual(loaded.sparsity, sae.sparsity);
    const a = await sae.encode(rows.subarray(0, 8 * d));
    const b = await loaded.encode(rows.subarray(0, 8 * d));
    assert.deepEqual(a.latents, b.latents);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('bad input is named: k out of range, wrong width, NaN rows, stopping', async () => {
  const { d, rows } = planted;
  await assert.rejects(trainSae(matrixSource(rows, d), { features: 8, sparsity: { kind: 'topk', k: 0 }, steps: 1, seed: 1 }), /k must be an integer in 1\.\.8/);
  await assert.rejects(trainSae(matrixSource(rows, d), { features: 8, sparsity: { kind: 'relu', l1: Number.NaN }, steps: 1, seed: 1 }), /l1 must be/);
  assert.throws(() => matrixSource(rows.subarray(0, 33), d), /not rows of dim 32/);
  const bad = Float32Array.from(rows.subarray(0, 256 * d));
  bad[5] = Number.NaN;
  await assert.rejects(trainSae(matrixSource(bad, d), { features: 8, sparsity: { kind: 'topk', k: 2 }, steps: 1, seed: 1 }), /row 0 of step 0 holds NaN/);
  const ac = new AbortController();
  const sae = await trainSae(matrixSource(rows, d), { features: 8, sparsity: { kind: 'topk', k: 2 }, steps: 100, seed: 1, signal: ac.signal, onProgress: (p) => p.step === 5 && ac.abort() });
  assert.equal(sae.training?.steps, 5);
  assert.equal(sae.training?.stopped, true);
  // A source smaller than one batch is cycled to fill it.
  const tiny = await trainSae(matrixSource(rows.subarray(0, 100 * d), d), { features: 8, sparsity: { kind: 'topk', k: 2 }, steps: 2, batchSize: 256, seed: 1 });
  assert.equal(tiny.training?.steps, 2);
  const other = await trainSae(matrixSource(rows, d), { features: 8, sparsity: { kind: 'topk', k: 2 }, steps: 1, seed: 1 });
  await assert.rejects(evaluateSae(other, matrixSource(new Float32Array(16), 16)), /rows of 16, the autoencoder reads 32/);
  assert.equal(DICTIONARY_METHODS['sparse-autoencoder'].info.taxonomy.zhang.format, 'hidden semantics');
});

test('siteSource streams token sites (a row per token) and conv sites (per position or spatial mean)', async () => {
  const fx = torchFixture('gpt');
  const gpt = await Model.load(fx.path);
  const [B, T] = fx.input.shape;
  const tokens = fx.input.data as BigInt64Array;
  const ds = dataset({
    name: 'tokens', size: B, inputShape: [T], inputDType: 'int64',
    gather: (ix) => ({ x: Tensor.int64(Array.from(ix).flatMap((i) => Array.from(tokens.subarray(i * T, (i + 1) * T))), [ix.length, T]), y: Tensor.int64(Array.from(ix, () => 0), [ix.length]) }),
  });
  const site = 'blocks.0.ln2.layernormalization';
  const chunks = [];
  for await (const c of siteSource(gpt, ds, site, { batchSize: B }).chunks(0)) chunks.push(c);
  const direct = (await gpt.run({ tokens: fx.input }, { capture: [site] })).captures[site];
  assert.equal(chunks.length, 1);
  assert.deepEqual(chunks[0].rows, direct.data);
  assert.deepEqual(Array.from(chunks[0].examples), Array.from({ length: B * T }, (_, r) => Math.floor(r / T)));
  await gpt.dispose();

  const cnn = await Model.load(torchFixture('cnn').path);
  const images = (await loadMnist('test')).slice(0, 3);
  const pos = [];
  for await (const c of siteSource(cnn, images, 'relu1.relu', { batchSize: 2 }).chunks(0)) pos.push(c);
  assert.equal(pos.reduce((n, c) => n + c.rows.length, 0), 3 * 28 * 28 * 32);
  assert.equal(pos[1].examples[0], 2);
  const act = (await cnn.run({ x: images.gather([2]).x }, { capture: ['relu1.relu'] })).captures['relu1.relu'];
  const at = 5 * 28 + 7; // position (5, 7) of example 2
  for (let c = 0; c < 32; c++) assert.equal(pos[1].rows[at * 32 + c], (act.data as Float32Array)[c * 784 + at]);
  const means = [];
  for await (const c of siteSource(cnn, images, 'relu1.relu', { spatial: 'mean' }).chunks(0)) means.push(c);
  assert.equal(means[0].rows.length, 3 * 32);
  assert.throws(() => siteSource(cnn, images, 'relu1.rleu'), /relu1\.relu/);
  await cnn.dispose();
});

test('conv rows: positions and spatial means round-trip to the site layout', () => {
  const t = Tensor.float32(Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i), [2, 3, 2, 2]);
  const pos = siteRows(t, 'positions');
  assert.equal(pos.per, 4);
  assert.deepEqual(Array.from(pos.rows.subarray(0, 6)), [0, 4, 8, 1, 5, 9]); // example 0, position (0,0) then (0,1)
  assert.deepEqual(rowsToSite(pos.rows, t, 'positions').data, t.data);
  const mean = siteRows(t, 'mean');
  assert.deepEqual(Array.from(mean.rows.subarray(0, 3)), [1.5, 5.5, 9.5]);
  assert.deepEqual(rowsToSite(mean.rows, t, 'mean').data, t.data); // mean replaced by itself: unchanged
});

test('an SAE spliced into a trained MNIST MLP recovers most of the loss that zero-ablation loses', async () => {
  const train = (await loadMnist('train')).slice(0, 6000);
  const test = (await loadMnist('test')).slice(0, 1000);
  const trainer = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [64], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 2e-3 } });
  await trainer.fit(train, { epochs: 2, batchSize: 64, seed: 1 });
  const model = await Model.load(encodeModel(trainer.exportModel()));
  const site = model.sites.find((s) => s.op === 'Relu')!.name;
  const sae = await trainSae(siteSource(model, train, site, { shuffle: true, seed: 1, batchSize: 256 }), {
    features: 256, sparsity: { kind: 'topk', k: 16 }, steps: 600, batchSize: 256, lr: 2e-3, seed: 1,
  });
  const m = await evaluateSae(sae, siteSource(model, test, site));
  assert.ok(m.fve > 0.8, `FVE ${m.fve}`);
  const r = await splicedLoss(model, test, site, sae);
  assert.ok(r.clean < r.zeroAblated, `clean ${r.clean} zero ${r.zeroAblated}`);
  assert.ok(r.recovered > 0.9, `recovered ${r.recovered} (clean ${r.clean}, spliced ${r.spliced}, zero ${r.zeroAblated})`);
  assert.ok(r.checks[0].passed);
  await assert.rejects(splicedLoss(model, test, 'nope', sae), /nope/);
});
