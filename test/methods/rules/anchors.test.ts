/**
 * Anchors: KL bounds against closed forms, the planted rule of a hand-wired network recovered exactly, and anchors of
 * MLPs trained on iris, breast cancer and an MNIST slice that keep their precision on a fresh sample.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32, permutation } from '../../../src/data/datasets/random.js';
import { split } from '../../../src/data/datasets/split.js';
import { loadBreastCancer, loadIris } from '../../../src/data/datasets/tabular.js';
import { mlp } from '../../../src/model/builders/mlp.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { attr, encodeModel, type ModelProto } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { anchors, explorationRate, klBernoulli, klLowerBound, klUpperBound, type AnchorExplanation } from '../../../src/methods/rules/anchors.js';
import { imageSpace, patchSegments, predictClasses, tabularSpace, type PerturbationSpace } from '../../../src/methods/rules/perturb.js';
import { rawFeatureMlp } from '../../helpers.js';

/** Hand-wired: class 1 iff x0 > 0.5 AND x1 > 0.5, by steep sigmoids (x2, x3 are ignored). */
function plantedModel(): ModelProto {
  const net = new Net(0);
  const w1 = net.param('fc1.weight', Tensor.float32([200, 0, 0, 0, 0, 200, 0, 0], [2, 4]));
  const b1 = net.param('fc1.bias', Tensor.float32([-100, -100], [2]));
  const h = net.op('fc1', 'Sigmoid', [net.op('fc1', 'Gemm', ['x', w1, b1], [attr('transB', { int: 1 })])]);
  const w2 = net.param('fc2.weight', Tensor.float32([0, 0, 40, 40], [2, 2]));
  const b2 = net.param('fc2.bias', Tensor.float32([0, -60], [2]));
  net.op('fc2', 'Gemm', [h, w2, b2], [attr('transB', { int: 1 })], ['logits']);
  return net.model({ name: 'planted', doc: 'x0 > .5 and x1 > .5', input: { name: 'x', dtype: 'float32', shape: ['N', 4] }, output: { name: 'logits', shape: ['N', 2] } });
}

/** 400 rows, each column a permutation of the grid (i + 1/2)/400, so every median is exactly 0.5. */
function gridData(): Dataset<'float32'> {
  const n = 400;
  const rows = new Float32Array(n * 4);
  for (let j = 0; j < 4; j++) permutation(n, j + 1).forEach((p, i) => (rows[i * 4 + j] = (p + 0.5) / n));
  return dataset({
    name: 'grid',
    size: n,
    inputShape: [4],
    inputDType: 'float32',
    numClasses: 2,
    featureNames: ['x0', 'x1', 'x2', 'x3'],
    gather: (ix) => ({
      x: new Tensor('float32', Float32Array.from({ length: ix.length * 4 }, (_, k) => rows[ix[Math.floor(k / 4)] * 4 + (k % 4)]), [ix.length, 4]),
      y: Tensor.int64(new Array(ix.length).fill(0)),
    }),
  });
}

/** Precision of the anchor on a fresh sample of its own distribution, with a seed the search never used. */
async function freshPrecision(model: Model, space: PerturbationSpace, a: AnchorExplanation, n: number, seed: number): Promise<number> {
  const idx = a.predicates.map((p) => space.predicates.indexOf(p));
  const labels = await predictClasses(model, space.sample(idx, n, mulberry32(seed)), space.inputShape);
  return labels.filter((c) => c === a.prediction).length / n;
}

const TAU = 0.95;

test('KL confidence bounds match their closed forms', () => {
  for (const level of [0.01, 0.3, 2, 7.5]) {
    // kl(1, q) = −log q and kl(0, q) = −log(1 − q): the bounds solve these exactly.
    assert.ok(Math.abs(klLowerBound(1, level) - Math.exp(-level)) < 1e-12, `lower(1, ${level})`);
    assert.ok(Math.abs(klUpperBound(0, level) - (1 - Math.exp(-level))) < 1e-12, `upper(0, ${level})`);
    assert.equal(klUpperBound(1, level), 1);
    assert.equal(klLowerBound(0, level), 0);
    for (const p of [0.1, 0.5, 0.93]) {
      const lo = klLowerBound(p, level);
      const hi = klUpperBound(p, level);
      // Interior bounds sit exactly on the level set, or at the edge of [0, 1] when the level is never reached.
      if (lo > 1e-9) assert.ok(Math.abs(klBernoulli(p, lo) - level) < 1e-9, `kl(${p}, lower) = ${klBernoulli(p, lo)}`);
      if (hi < 1 - 1e-9) assert.ok(Math.abs(klBernoulli(p, hi) - level) < 1e-9, `kl(${p}, upper) = ${klBernoulli(p, hi)}`);
      assert.ok(lo < p && p < hi);
    }
  }
  // kl(1/2, q) at q = 1/4: ½ log 2 + ½ log(2/3).
  assert.ok(Math.abs(klBernoulli(0.5, 0.25) - (0.5 * Math.log(2) + 0.5 * Math.log(2 / 3))) < 1e-15);
  const v = Math.log((405.5 * 10 * 3 ** 1.1) / 0.05);
  assert.equal(explorationRate(10, 3, 0.05), v + Math.log(v));
});

test('the planted rule of a hand-wired network is the anchor, exactly', async () => {
  const model = await Model.load(encodeModel(plantedModel()));
  const data = gridData();
  const positive = tabularSpace([0.6, 0.7, 0.3, 0.2], data);
  const a = await anchors(model, positive, { seed: 1, classNames: ['no', 'yes'] });
  assert.equal(a.prediction, 1);
  assert.equal(a.rule, 'IF x0 > 0.5 AND x1 > 0.5 THEN yes');
  assert.ok(a.found && a.precision >= TAU && a.precisionBounds[0] > TAU, `precision ${a.precision} [${a.precisionBounds}]`);
  assert.ok(Math.abs(a.coverage - 0.25) < 0.02, `coverage ${a.coverage}`);
  assert.ok(a.checks.every((c) => c.passed !== false), JSON.stringify(a.checks));
  const { x } = data.gather(Array.from({ length: data.size }, (_, i) => i));
  const both = Array.from({ length: data.size }, (_, i) => x.data[i * 4] > 0.5 && x.data[i * 4 + 1] > 0.5).filter(Boolean).length;
  assert.equal(a.checks.find((c) => c.name === 'coverage on the data')!.value, both / data.size);

  // Class 0 with x0 in (0.25, 0.5]: one predicate settles it.
  const negative = tabularSpace([0.4, 0.9, 0.3, 0.2], data);
  const b = await anchors(model, negative, { seed: 2 });
  assert.equal(b.rule, 'IF x0 <= 0.5 THEN 0');
  assert.ok(b.precision === 1 && Math.abs(b.coverage - 0.5) < 0.02, `${b.precision} ${b.coverage}`);
  assert.ok(b.samples > 0 && b.modelCalls > 0 && b.samples / b.modelCalls >= 100, 'model queries are batched');
  // Stochastic but seeded: the same seed gives the same search.
  const again = await anchors(model, positive, { seed: 1, classNames: ['no', 'yes'] });
  assert.deepEqual([again.rule, again.samples, again.precision, again.coverage], [a.rule, a.samples, a.precision, a.coverage]);
  await model.dispose();
});

test('anchors reject bad settings with a clear message', async () => {
  const model = await Model.load(encodeModel(plantedModel()));
  const space = tabularSpace([0.6, 0.7, 0.3, 0.2], gridData());
  await assert.rejects(anchors(model, space, { threshold: 1.5 }), /threshold must lie in \(0, 1\), got 1.5/);
  await assert.rejects(anchors(model, space, { beam: 0 }), /beam must be a positive integer/);
  assert.throws(() => tabularSpace([0.6, 0.7], gridData()), /the instance has 2 features, grid has 4/);
  assert.throws(() => tabularSpace([0.6, NaN, 0, 0], gridData()), /feature 1 of the instance is NaN/);
  assert.throws(() => space.sample([99], 1, mulberry32(0)), /predicate 99 does not exist/);
  assert.throws(() => imageSpace(new Float32Array(10), [1, 28, 28]), /has 10 values/);
  await model.dispose();
});

let iris: { model: Model; test: Dataset<'float32'>; train: Dataset<'float32'> };
let cancer: { model: Model; test: Dataset<'float32'>; train: Dataset<'float32'> };
before(async () => {
  const [irisTrain, irisTest] = split(await loadIris(), [0.8, 0.2], { seed: 1, stratify: true });
  iris = { model: await Model.load(encodeModel(await rawFeatureMlp(irisTrain, { epochs: 60 }))), train: irisTrain, test: irisTest };
  const [bcTrain, bcTest] = split(await loadBreastCancer(), [0.8, 0.2], { seed: 1, stratify: true });
  cancer = { model: await Model.load(encodeModel(await rawFeatureMlp(bcTrain, { epochs: 20 }))), train: bcTrain, test: bcTest };
});

for (const which of ['iris', 'breast cancer'] as const) {
  test(`anchors of an MLP trained on ${which} keep precision ≥ τ on a fresh sample`, async () => {
    const { model, train, test: held } = which === 'iris' ? iris : cancer;
    // The first test rows: where an anchor exists (lower bound above τ), it must hold up on new samples.
    let found = 0;
    const tried = which === 'iris' ? 6 : 3;
    for (let i = 0; i < tried; i++) {
      const x = held.get(i).x.data;
      const space = tabularSpace(x, train);
      // A beam of 2 on breast cancer's 60 predicates keeps the test short.
      const a = await anchors(model, space, { seed: 3, classNames: train.classNames, beam: which === 'iris' ? 4 : 2 });
      if (!a.found) {
        assert.ok(a.precisionBounds[0] <= TAU && a.checks[0].passed === false, `${which} #${i}: not found yet its bound is ${a.precisionBounds[0]}`);
        continue;
      }
      found++;
      assert.ok(a.precisionBounds[0] > TAU, `${which} #${i}: lower bound ${a.precisionBounds[0]}`);
      const fresh = await freshPrecision(model, space, a, 2000, 100 + i);
      assert.ok(fresh >= TAU, `${which} #${i}: ${a.rule} has precision ${fresh} on a fresh sample`);
      const check = a.checks.find((c) => c.name === 'precision on a fresh sample')!;
      assert.ok(check.passed && (check.value as number) >= TAU, JSON.stringify(check));
      // Coverage is the share of D satisfying the anchor: for tabular D, the training rows that do, up to sampling.
      const dataCoverage = a.checks.find((c) => c.name === 'coverage on the data')!.value as number;
      assert.ok(Math.abs(a.coverage - dataCoverage) < 0.03, `coverage ${a.coverage} vs data ${dataCoverage}`);
      assert.match(a.rule, new RegExp(`^IF .+ THEN ${train.classNames![a.prediction]}$`));
    }
    assert.ok(found >= tried / 2, `${which}: anchors found for ${found} of ${tried} test rows`);
  });
}

test('an anchor of patches on an MNIST MLP keeps its precision on a fresh sample', async () => {
  const mnist = await loadMnist('train');
  const trainer = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 2e-3 } });
  await trainer.fit(mnist.slice(0, 3000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(trainer.exportModel()));
  const test0 = (await loadMnist('test')).get(0); // a 7
  const space = imageSpace(test0.x.data, [1, 28, 28], { patch: 7 });
  assert.equal(space.predicates.length, 16);
  assert.deepEqual([...patchSegments(28, 28, 7).subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 1]);
  const a = await anchors(model, space, { seed: 1 });
  assert.ok(a.found, `no anchor: ${a.rule} ${a.precision}`);
  assert.ok(a.predicates.length >= 1 && a.predicates.length < 16, a.rule);
  const fresh = await freshPrecision(model, space, a, 2000, 7);
  assert.ok(fresh >= TAU, `${a.rule}: fresh precision ${fresh}`);
  // D keeps each patch with probability ½, so an anchor of k patches covers about 2^-k of it.
  assert.ok(Math.abs(a.coverage - 0.5 ** a.predicates.length) < 0.02, `coverage ${a.coverage} for ${a.predicates.length} patches`);
  await model.dispose();
});
