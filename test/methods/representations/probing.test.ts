/**
 * Probing (Hewitt & Liang 2019; Belinkov 2022): closed forms on synthetic features (a known linear rule, known ridge
 * weights), digit identity and a stroke feature across the layers of an MNIST CNN trained here, and coarse POS tags
 * in the residual stream of a small GPT trained here on the Brown corpus.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { fitRidge, fitSoftmax, accuracy } from '../../../src/methods/representations/linear-models.js';
import { probe, probeLayers, PROBING_METHODS } from '../../../src/methods/representations/probing.js';
import { brownWords } from '../../../src/data/datasets/brown-words.js';
import { baseTag } from '../../../src/data/datasets/brown.js';
import { cnn, gpt, mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { seeded } from '../../helpers.js';

/** n standard-normal points of dimension d (Box–Muller, seeded). */
function gaussian(n: number, d: number, seed: number): Float32Array {
  const r = seeded(seed);
  return Float32Array.from({ length: n * d }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

/** Features as a dataset with per-example labels. */
function featureData(x: Float32Array, d: number, labels: ArrayLike<number>): Dataset<'float32'> {
  const n = x.length / d;
  return dataset({
    name: 'synthetic', size: n, inputShape: [d], inputDType: 'float32', labels: Int32Array.from(labels), numClasses: 4,
    gather: (ix) => ({
      x: Tensor.float32(Float32Array.from({ length: ix.length * d }, (_, k) => x[ix[Math.floor(k / d)] * d + (k % d)]), [ix.length, d]),
      y: new Tensor('int64', BigInt64Array.from(ix, (i) => BigInt(labels[i])), [ix.length]),
    }),
  });
}

test('softmax probe on features whose class is a known linear rule: ~100% held out, control task near chance', async () => {
  const [n, d, k] = [2000, 16, 4];
  const x = gaussian(n, d, 1);
  const w = gaussian(d * k, 1, 2); // the rule: class = argmax_c x·w[:, c]
  const labels = Int32Array.from({ length: n }, (_, i) => {
    let best = 0;
    const s = (c: number) => x.subarray(i * d, i * d + d).reduce((a, v, j) => a + v * w[j * k + c], 0);
    for (let c = 1; c < k; c++) if (s(c) > s(best)) best = c;
    return best;
  });
  const model = await Model.load(encodeModel(mlp({ inputs: [d], hidden: [8], classes: k, seed: 1 })));
  const r = await probe(model, featureData(x, d, labels), { site: 'x', kind: 'softmax', epochs: 60, lr: 0.05, l2: 0, seed: 3 });
  assert.ok(r.test >= 0.97, `held-out accuracy ${r.test}`);
  assert.ok(r.control!.test < 0.4, `control accuracy ${r.control!.test} (chance Σp² ≈ 0.25)`);
  assert.ok(r.selectivity! > 0.55, `selectivity ${r.selectivity}`);
  assert.equal(r.checks.find((c) => c.name === 'selectivity')?.passed, true);
  assert.equal(r.checks.find((c) => c.name === 'held-out vs majority')?.passed, true);
  // Re-initialising the network leaves its input alone: the same features, the same seeded probe, the same score.
  assert.equal(r.randomNetwork!.test, r.test);
  assert.equal(r.checks.find((c) => c.name === 'beats random network')?.passed, false);
  assert.deepEqual([r.rows.train + r.rows.test, r.rows.test], [n, 500]);
  assert.equal(PROBING_METHODS.probe.run, probe);
  assert.deepEqual(PROBING_METHODS['probe-layers'].info.taxonomy, { zhang: { engagement: 'passive', format: 'hidden semantics', scope: 'global' }, rauker: { part: 'representations', when: 'post hoc', section: 'V: probing' } });
  await model.dispose();
});

test('ridge recovers known weights (primal) and interpolates when features outnumber rows (dual)', async () => {
  const [n, d] = [400, 6];
  const x = gaussian(n, d, 4);
  const w = [0.5, -2, 3, 0, 1.25, -0.75];
  const y = Float64Array.from({ length: n }, (_, i) => 0.7 + w.reduce((a, wj, j) => a + wj * x[i * d + j], 0));
  const m = fitRidge(x, y, { rows: n, features: d, classes: 1 }, { l2: 1e-6 });
  for (let j = 0; j < d; j++) assert.ok(Math.abs(m.weights![j] - w[j]) < 1e-5, `weight ${j}: ${m.weights![j]} vs ${w[j]}`);
  assert.ok(Math.abs(m.bias![0] - 0.7) < 1e-5, `bias ${m.bias![0]}`);
  // Heavier ridge shrinks: ‖w‖ falls.
  const shrunk = fitRidge(x, y, { rows: n, features: d, classes: 1 }, { l2: 400 });
  const norm = (v: ArrayLike<number>) => Math.hypot(...Array.from(v));
  assert.ok(norm(shrunk.weights!) < 0.7 * norm(w), `‖w‖ ${norm(shrunk.weights!)} vs ${norm(w)}`);

  // d > n: the dual solution with tiny λ fits the training targets exactly.
  const [n2, d2] = [30, 80];
  const x2 = gaussian(n2, d2, 5);
  const y2 = Float64Array.from({ length: n2 }, (_, i) => Math.sin(i));
  const dual = fitRidge(x2, y2, { rows: n2, features: d2, classes: 1 }, { l2: 1e-8 });
  const fit2 = dual.scores(x2, n2);
  for (let i = 0; i < n2; i++) assert.ok(Math.abs(fit2[i] - y2[i]) < 1e-4, `row ${i}: ${fit2[i]} vs ${y2[i]}`);
  assert.throws(() => fitRidge(x2, y2, { rows: n2, features: d2, classes: 1 }, { l2: 0 }), /more features \(80\) than rows \(30\) needs l2 > 0/);

  // Softmax on separable data and the bad-input errors of the solvers.
  const lab = Int32Array.from({ length: n }, (_, i) => (x[i * d] > 0 ? 1 : 0));
  for (const engine of ['onnx', 'host'] as const) {
    const s = await fitSoftmax(x, lab, { rows: n, features: d, classes: 2 }, { epochs: 40, lr: 0.05, l2: 0, engine });
    assert.ok(accuracy(s.predict(x, n), lab) >= 0.99, engine);
    // The rule is x₀ > 0: the weight on x₀ dominates the others.
    const w = s.weights!;
    const margin = (j: number) => w[j * 2 + 1] - w[j * 2];
    for (let j = 1; j < d; j++) assert.ok(Math.abs(margin(0)) > 5 * Math.abs(margin(j)), `${engine}: feature ${j}`);
  }
  await assert.rejects(fitSoftmax(x, lab, { rows: n, features: d, classes: 1 }), /label 1 of row \d+ is not a class in \[0, 1\)/);
  const bad = x.slice();
  bad[7] = NaN;
  await assert.rejects(fitSoftmax(bad, lab, { rows: n, features: d, classes: 2 }), /feature 1 of row 1 is NaN/);
  await assert.rejects(fitSoftmax(x, lab, { rows: n, features: d, classes: 2 }, { epochs: 0 }), /epochs must be a positive integer, got 0/);
});

/** A CNN (conv 8, conv 16) trained for one epoch on 4,000 MNIST training images. */
async function mnistCnn(): Promise<Model> {
  const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [8, 16], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit((await loadMnist('train')).slice(0, 4000), { epochs: 1, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  return model;
}

test('digit identity across the layers of an MNIST CNN trained here; a stroke feature by ridge', async () => {
  const model = await mnistCnn();
  const data = (await loadMnist('test')).slice(0, 1200);
  const sweep = await probeLayers(model, data, { sites: ['c1.relu', 'c2.relu', 'flatten.flatten'], epochs: 20, seed: 1 });
  const [c1, c2, flat] = sweep.sites;
  // Accuracy rises with depth: 8 channel means, 16 channel means, the whole 784-value code before the classifier.
  assert.ok(c1.test < c2.test && c2.test < flat.test, `held-out accuracy by depth: ${sweep.sites.map((r) => `${r.site} ${r.test}`).join(', ')}`);
  assert.ok(flat.test >= 0.8, `last layer ${flat.test}`);
  assert.ok(flat.selectivity! > 0.3, `last layer selectivity ${flat.selectivity} (control ${flat.control?.test})`);
  assert.equal(sweep.best, 'flatten.flatten');
  for (const r of sweep.sites) {
    assert.equal(r.checks.find((c) => c.name === 'held-out vs majority')?.passed, true, `${r.site} vs majority ${r.majority}`);
    assert.equal(r.checks.find((c) => c.name === 'selectivity')?.passed, true, `${r.site}: selectivity ${r.selectivity} (control ${r.control?.test})`);
    // The random-network baseline is measured and reported beside it (a briefly trained small CNN need not beat it:
    // random conv features are known to be linearly useful on MNIST).
    assert.ok(r.randomNetwork!.test > r.majority, `${r.site}: random network ${r.randomNetwork!.test}`);
    assert.equal(r.checks.find((c) => c.name === 'beats random network')?.value, r.test - r.randomNetwork!.test);
  }

  // Stroke feature: mean ink in the top half of the image, a continuous target for ridge (R² held out).
  const ink = new Float64Array(data.size);
  for (const b of data.batches(600)) {
    const px = b.x.data as Float32Array;
    b.indices.forEach((ix, i) => (ink[ix] = px.subarray(i * 784, i * 784 + 14 * 28).reduce((a, v) => a + v, 0) / (14 * 28)));
  }
  const stroke = await probe(model, data, { site: 'c1.relu', kind: 'ridge', target: 'continuous', labels: ink, seed: 1 });
  assert.equal(stroke.metric, 'r2');
  assert.ok(stroke.test > 0.8, `stroke R² ${stroke.test}`);
  assert.ok(Math.abs(stroke.majority) < 0.05, `R² of the training mean ${stroke.majority}`);
  assert.ok(stroke.selectivity! > 0.5, `stroke selectivity ${stroke.selectivity}`);
  await assert.rejects(probe(model, data, { site: 'c1.rleu' }), /c1\.relu/);
  await assert.rejects(probe(model, data, { site: 'c1.relu', kind: 'softmax', target: 'continuous', labels: ink }), /continuous target needs kind 'ridge'/);
  await assert.rejects(probe(model, data, { site: 'c1.relu', split: 1.5 }), /split \(held-out fraction\) must be in \(0, 1\), got 1.5/);
  await assert.rejects(probe(model, data, { site: 'c1.relu', labels: [1, 2, 3] }), /probe: 3 labels for 1200 examples/);
  await assert.rejects(probe(model, data, { site: 'c1.relu', labels: (i) => (i === 5 ? 0.5 : 1) }), /label 0.5 of row 5 \(example 5\) is not a class index/);
  await model.dispose();
});

/** Brown tags → coarse classes (Francis & Kučera's tag list): 0 noun, 1 verb, 2 adjective, 3 adverb, 4 determiner, 5 preposition, 6 pronoun, 7 conjunction, 8 punctuation, 9 other. */
function coarsePos(tag: string): number {
  const t = baseTag(tag).split(/[+*]/)[0];
  if (/^(NN|NP|NR)/.test(t)) return 0;
  if (/^(VB|BE|HV|DO|MD)/.test(t)) return 1;
  if (/^(JJ|OD|CD)/.test(t)) return 2;
  if (/^(RB|QL|WRB|RP)/.test(t)) return 3;
  if (/^(AT|DT|AB|AP|WDT|PP\$)/.test(t)) return 4;
  if (/^(IN|TO)$/.test(t)) return 5;
  if (/^(PP|WP|EX)/.test(t)) return 6;
  if (/^(CC|CS)$/.test(t)) return 7;
  if (/^[.,:;()'"`-]/.test(t)) return 8;
  return 9;
}

test('coarse POS in the residual stream of a small GPT trained here on the Brown corpus', async () => {
  const brown = await brownWords({ vocabSize: 2000, context: 16 });
  const t = await Trainer.create(gpt({ vocab: 2000, context: 16, dModel: 32, heads: 2, layers: 1, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(brown.train.slice(0, 8000), { epochs: 1, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  const data = brown.test.slice(0, 200);
  const tags = brown.testCorpus.tagIds;
  const pos = (i: number, j: number) => coarsePos(brown.testCorpus.tagSet[tags[brown.test.windowStart(i) + j]]);
  const sweep = await probeLayers(model, data, { sites: ['add', 'blocks.0.add', 'blocks.0.add_1'], labels: pos, epochs: 20, seed: 1 });
  for (const r of sweep.sites) {
    assert.equal(r.rows.train + r.rows.test, data.size * 16, 'every token is a row');
    assert.ok(r.test > r.majority + 0.2, `${r.site}: POS accuracy ${r.test} vs majority ${r.majority}`);
  }
  // Selective at some layer (Hewitt & Liang's control: a random fixed class per word type), and the trained network's
  // last residual stream holds more POS than the re-initialised one's.
  assert.equal(sweep.checks.find((c) => c.name === 'selective somewhere')?.passed, true, JSON.stringify(sweep.sites.map((r) => [r.site, r.test, r.control])));
  const last = sweep.sites[2];
  assert.equal(last.checks.find((c) => c.name === 'beats random network')?.passed, true, `${last.test} vs random ${last.randomNetwork?.test}`);
  assert.ok(last.control!.types > 300, `word types in the control task: ${last.control!.types}`);
  await model.dispose();
});
