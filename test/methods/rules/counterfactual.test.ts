/**
 * Counterfactuals: on a linear model the minimal MAD-weighted L1 change is known in closed form (move the cheapest
 * feature to the boundary; with it frozen or capped, the next cheapest); on MLPs trained on iris and breast cancer the
 * class flips and x' stays closer than the nearest example of the target class; the plausibility terms do what they
 * claim (the autoencoder term lowers the reconstruction error, the prototype term pulls toward the prototype).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { featureStats, split } from '../../../src/data/datasets/split.js';
import { loadBreastCancer, loadIris } from '../../../src/data/datasets/tabular.js';
import { symmetricEigen } from '../../../src/methods/attribution/global/eigen.js';
import { counterfactual, reconstruction } from '../../../src/methods/rules/counterfactual.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { attr, encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { rawFeatureMlp } from '../../helpers.js';

/**
 * The optimum of a linear autoencoder with k units, in closed form: the projection onto the top-k principal
 * components of the standardised data, x → μ + σ ⊙ V Vᵀ ((x − μ)/σ).
 */
async function pcaAutoencoder(train: Dataset<'float32'>, k: number): Promise<Model> {
  const { mean, std } = featureStats(train);
  const f = mean.length;
  const cov = new Float64Array(f * f);
  for (const { x } of train.batches(256)) {
    for (let r = 0; r < x.shape[0]; r++) {
      const z = Array.from({ length: f }, (_, j) => (x.data[r * f + j] - mean[j]) / std[j]);
      for (let a = 0; a < f; a++) for (let b = 0; b < f; b++) cov[a * f + b] += (z[a] * z[b]) / train.size;
    }
  }
  const { vectors } = symmetricEigen(cov, f); // ascending: the top k are the last columns
  const v = Float32Array.from({ length: f * k }, (_, i) => vectors[Math.floor(i / k) * f + (f - 1 - (i % k))]); // [F, k]
  const vt = Float32Array.from({ length: k * f }, (_, i) => v[(i % f) * k + Math.floor(i / f)]); // [k, F]
  const net = new Net(0);
  const c = (t: Tensor) => net.constant('ae', t);
  let h = net.op('ae', 'Mul', [net.op('ae', 'Sub', ['x', c(Tensor.float32(mean, [f]))]), c(Tensor.float32(std.map((s) => 1 / s), [f]))]);
  h = net.op('ae', 'MatMul', [net.op('ae', 'MatMul', [h, c(new Tensor('float32', v, [f, k]))]), c(new Tensor('float32', vt, [k, f]))]);
  net.op('ae', 'Add', [net.op('ae', 'Mul', [h, c(Tensor.float32(std, [f]))]), c(Tensor.float32(mean, [f]))], [], ['recon']);
  return Model.load(encodeModel(net.model({ name: 'pca-ae', doc: 'linear AE (PCA)', input: { name: 'x', dtype: 'float32', shape: ['N', f] }, output: { name: 'recon', shape: ['N', f] } })));
}

/** Three features on very different scales, 201 rows. */
function scaledData(): Dataset<'float32'> {
  const n = 201;
  const r = mulberry32(5);
  const rows = Float32Array.from({ length: n * 3 }, (_, i) => [10 * r(), r(), 100 * (r() + r() - 1)][i % 3]);
  return dataset({
    name: 'scaled',
    size: n,
    inputShape: [3],
    inputDType: 'float32',
    numClasses: 2,
    gather: (ix) => ({ x: new Tensor('float32', Float32Array.from({ length: ix.length * 3 }, (_, k) => rows[ix[Math.floor(k / 3)] * 3 + (k % 3)]), [ix.length, 3]), y: Tensor.int64(new Array(ix.length).fill(0)) }),
  });
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

test('on a linear model the counterfactual is the closed-form minimal MAD-weighted L1 change', async () => {
  const w = [0.5, 3, 0.02];
  const b = -4;
  const net = new Net(0);
  const weight = net.param('fc.weight', Tensor.float32([0, 0, 0, ...w], [2, 3]));
  const bias = net.param('fc.bias', Tensor.float32([0, b], [2]));
  net.op('fc', 'Gemm', ['x', weight, bias], [attr('transB', { int: 1 })], ['logits']);
  const model = await Model.load(encodeModel(net.model({ name: 'linear', doc: '', input: { name: 'x', dtype: 'float32', shape: ['N', 3] }, output: { name: 'logits', shape: ['N', 2] } })));
  const data = scaledData();
  const all = data.gather(Array.from({ length: data.size }, (_, i) => i)).x.data;
  const mad = [0, 1, 2].map((j) => {
    const col = Array.from({ length: data.size }, (_, r) => all[r * 3 + j]);
    const m = median(col);
    return median(col.map((v) => Math.abs(v - m)));
  });
  const x = Float32Array.of(2, 0.3, -10);
  const m0 = w.reduce((s, wj, j) => s + wj * x[j], b); // logit margin of class 1 over class 0, negative
  const kappa = 0.1;
  const need = kappa - m0;
  const cost = w.map((wj, j) => Math.abs(wj) * mad[j]); // margin gained per MAD unit moved
  const order = [0, 1, 2].sort((p, q) => cost[q] - cost[p]);

  const cf = await counterfactual(model, x, { data, target: 1, margin: kappa });
  cf.mad.forEach((v, j) => assert.ok(Math.abs(v - mad[j]) <= 1e-6 * mad[j], `MAD ${j}: ${v} vs ${mad[j]}`));
  const closed = need / cost[order[0]];
  assert.ok(Math.abs(cf.distance - closed) <= 0.01 * closed, `distance ${cf.distance} vs closed form ${closed}`);
  assert.deepEqual(cf.changes.map((c) => c.feature), [order[0]]);
  assert.ok(cf.found && cf.prediction.class === 1 && cf.checks[0].passed);

  // The cheapest feature frozen: the next cheapest moves instead.
  const frozen = await counterfactual(model, x, { data, target: 1, margin: kappa, immutable: [order[0]] });
  const closed2 = need / cost[order[1]];
  assert.ok(Math.abs(frozen.distance - closed2) <= 0.01 * closed2, `frozen: ${frozen.distance} vs ${closed2}`);
  assert.deepEqual(frozen.changes.map((c) => c.feature), [order[1]]);

  // The cheapest feature capped halfway: it goes to its bound, the next cheapest makes up the rest.
  const j = order[0];
  const half = (0.5 * need) / w[j];
  const ranges = [0, 1, 2].map((i) => (i === j ? ([Math.min(x[j], x[j] + half), Math.max(x[j], x[j] + half)] as const) : null));
  const capped = await counterfactual(model, x, { data, target: 1, margin: kappa, ranges });
  const moved = Math.fround(x[j] + half) - x[j];
  const closed3 = Math.abs(moved) / mad[j] + (need - w[j] * moved) / cost[order[1]];
  assert.ok(Math.abs(capped.distance - closed3) <= 0.01 * closed3, `capped: ${capped.distance} vs ${closed3}`);
  assert.deepEqual(capped.changes.map((c) => c.feature).sort(), [order[0], order[1]].sort());

  await assert.rejects(counterfactual(model, x, { data, target: 0 }), /already predicted as class 0/);
  await assert.rejects(counterfactual(model, x, { data, target: 7 }), /target must be a class in 0..1, got 7/);
  await assert.rejects(counterfactual(model, Float32Array.of(1, NaN, 0), { data }), /x\[1\] is NaN/);
  await assert.rejects(counterfactual(model, Float32Array.of(1, 2), { data }), /x has 2 values, scaled has 3/);
  await assert.rejects(counterfactual(model, x, { data, steps: 0 }), /steps must be a positive integer/);
  await model.dispose();
});

let irisData: { train: Dataset<'float32'>; test: Dataset<'float32'>; model: Model; ae: Model };
let cancerData: { train: Dataset<'float32'>; test: Dataset<'float32'>; model: Model };
before(async () => {
  const [train, held] = split(await loadIris(), [0.8, 0.2], { seed: 1, stratify: true });
  irisData = { train, test: held, model: await Model.load(encodeModel(await rawFeatureMlp(train, { epochs: 60 }))), ae: await pcaAutoencoder(train, 2) };
  const [bcTrain, bcTest] = split(await loadBreastCancer(), [0.8, 0.2], { seed: 1, stratify: true });
  cancerData = { train: bcTrain, test: bcTest, model: await Model.load(encodeModel(await rawFeatureMlp(bcTrain, { epochs: 20 }))) };
});

for (const which of ['iris', 'breast cancer'] as const) {
  test(`counterfactuals of an MLP trained on ${which} flip the class and stay closer than the nearest target example`, async () => {
    const { train, test: held, model } = which === 'iris' ? irisData : cancerData;
    const classes = train.numClasses!;
    for (let i = 0; i < 3; i++) {
      const x = held.get(i).x.data;
      const original = (await model.run({ x: new Tensor('float32', x, [1, x.length]) })).outputs.logits.data as Float32Array;
      const c0 = original.indexOf(Math.max(...original));
      const target = (c0 + 1) % classes;
      const cf = await counterfactual(model, x, { data: train, target, ranges: 'data' });
      const flip = cf.checks.find((c) => c.name === 'class flips on a re-run')!;
      const closer = cf.checks.find((c) => c.name === 'closer than the nearest example of the target class')!;
      assert.ok(cf.found && flip.passed && cf.prediction.class === target, `${which} #${i}: ${JSON.stringify(flip)}`);
      assert.ok(closer.passed, `${which} #${i}: ${closer.detail}`);
      // Independent re-run of the reported x'.
      const z = (await model.run({ x: new Tensor('float32', cf.counterfactual, [1, x.length]) })).outputs.logits.data as Float32Array;
      assert.equal(z.indexOf(Math.max(...z)), target);
      assert.ok(cf.changes.length >= 1 && cf.changes.every((c) => c.from === x[c.feature] && c.to === cf.counterfactual[c.feature]));
      // Raw units, kept inside the data's range ('data' ranges).
      const cols = train.gather(Array.from({ length: train.size }, (_, r) => r)).x.data;
      for (const c of cf.changes) {
        const col = Array.from({ length: train.size }, (_, r) => cols[r * x.length + c.feature]);
        assert.ok(c.to >= Math.min(...col) && c.to <= Math.max(...col), `${c.name}: ${c.to} outside the data's range`);
      }
    }
  });
}

test('the reconstruction term has the gradient of its value (finite differences)', async () => {
  const { ae, train } = irisData;
  const mad = Float64Array.of(0.7, 0.3, 1.2, 0.6);
  const x = Float32Array.of(5.8, 2.9, 4.4, 1.6, 6.4, 3.1, 5.5, 2.1);
  const { error, grad } = await reconstruction(ae, x, 2, train.inputShape, mad, 2);
  for (let i = 0; i < x.length; i++) {
    const h = 1e-2;
    const up = Float32Array.from(x);
    const down = Float32Array.from(x);
    up[i] += h;
    down[i] -= h;
    const row = Math.floor(i / 4);
    const fd = ((await reconstruction(ae, up, 2, train.inputShape, mad, 0)).error[row] - (await reconstruction(ae, down, 2, train.inputShape, mad, 0)).error[row]) / (up[i] - down[i]);
    assert.ok(Math.abs(grad[i] - fd) <= 1e-3 + 1e-2 * Math.abs(fd), `d/dx${i}: ${grad[i]} vs ${fd}`);
  }
  assert.ok(error[0] > 0 && error[1] > 0);
});

test('the autoencoder and prototype terms make the counterfactual more plausible', async () => {
  const { train, test: held, model, ae } = irisData;
  const x = held.get(12).x.data; // a versicolor
  const plain = await counterfactual(model, x, { data: train, target: 2, autoencoder: { model: ae, weight: 0 } });
  const guided = await counterfactual(model, x, { data: train, target: 2, autoencoder: { model: ae, weight: 1 } });
  const aeCheck = (r: typeof plain) => r.checks.find((c) => c.name === 'plausibility: autoencoder reconstruction error')!;
  assert.ok(guided.checks[0].passed, 'the guided counterfactual still flips');
  assert.ok((aeCheck(guided).value as number) < (aeCheck(plain).value as number), `AE error ${aeCheck(guided).value} vs ${aeCheck(plain).value}`);
  assert.ok(aeCheck(guided).passed, aeCheck(guided).detail);

  const closer = plain.checks.find((c) => c.name === 'closer than the nearest example of the target class')!;
  const row = Number(/data row (\d+)/.exec(closer.detail)![1]);
  const p = train.get(row).x.data;
  const toProto = (r: typeof plain) => r.counterfactual.reduce((s, v, j) => s + ((v - p[j]) / r.mad[j]) ** 2, 0);
  const pulled = await counterfactual(model, x, { data: train, target: 2, prototype: 0.5 });
  assert.ok(pulled.checks[0].passed, 'the prototype-guided counterfactual still flips');
  assert.ok(toProto(pulled) < toProto(plain), `to the prototype: ${toProto(pulled)} vs ${toProto(plain)}`);
});
