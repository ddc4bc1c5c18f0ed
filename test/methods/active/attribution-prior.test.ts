/**
 * Right for the right reasons: the decoy is planted where and as said; the graph term equals λ·Σ mask·(∂Σ log p/∂x)²
 * computed by central finite differences on the host; on decoy MNIST the unregularised twin takes the shortcut and the
 * prior-trained model does not (accuracy on shuffled decoys, decoy mass of its integrated gradients), with the
 * evaluation metrics of src/evaluate/ run on both.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/index.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  ATTRIBUTION_PRIOR_METHODS, attributionPriorRegularizer, decoyLevel, decoyMask, decoyMnist, rightReasonsTerm, type RightReasonsResult,
} from '../../../src/methods/active/attribution-prior.js';
import { rowsDataset } from '../../../src/methods/active/concept-data.js';
import { seeded } from '../../helpers.js';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

test('decoy MNIST: the patch encodes the label, or a seeded random class, and nothing else changes', async () => {
  const base = (await loadMnist('test')).slice(0, 200);
  const label = decoyMnist(base, { decoy: 'label', size: 4 });
  const shuffled = decoyMnist(base, { decoy: 'shuffled', size: 4, seed: 3 });
  const ix = [...Array(200).keys()];
  const [b0, b1, b2, b3] = [base.gather(ix), label.gather(ix), shuffled.gather(ix), decoyMnist(base, { decoy: 'shuffled', size: 4, seed: 3 }).gather(ix.reverse())];
  const m = decoyMask([1, 28, 28], 4).data;
  let agree = 0;
  for (let e = 0; e < 200; e++) {
    const y = Number(b0.y.data[e]);
    for (let i = 0; i < 784; i++) {
      const k = e * 784 + i;
      if (m[i]) assert.equal(b1.x.data[k], Math.fround(decoyLevel(y, 10)), `example ${e}, patch pixel ${i}`);
      else assert.equal(b1.x.data[k], b0.x.data[k]);
      if (!m[i]) assert.equal(b2.x.data[k], b0.x.data[k]);
    }
    assert.equal(b3.x.data[(199 - e) * 784], b2.x.data[e * 784], 'the shuffled decoy depends on the example and seed, not the batch');
    if (b2.x.data[e * 784] === b1.x.data[e * 784]) agree++;
  }
  assert.ok(agree > 5 && agree < 45, `shuffled decoys agree with the label ${agree}/200 times (chance: 20)`);
  assert.equal([...m].filter((v) => v === 1).length, 16);
});

test("the right-reasons term equals λ·mean Σ mask·(∂Σ_k log p_k/∂x)² by central finite differences", async () => {
  const d = 5;
  const model = mlp({ inputs: d, hidden: [6], classes: 3, seed: 2 });
  const mask = Tensor.float32([1, 0, 1, 1, 0], [1, d]);
  const lambda = 0.7;
  const trainer = await Trainer.create(model, { optimizer: { kind: 'sgd', lr: 1e-3 }, terms: [rightReasonsTerm(mask, lambda)] });
  const r = seeded(4);
  const n = 4;
  const x = Float32Array.from({ length: n * d }, () => 2 * r() - 1);
  const data = rowsDataset('rows', x, d, [0, 1, 2, 1], 3);
  const step = await trainer.step(data.gather([0, 1, 2, 3])); // the term is reported at the weights before the update
  const loaded = await Model.load(encodeModel(model));
  const sumLogP = async (v: Float32Array) => {
    const z = (await loaded.run({ x: Tensor.float32(v, [1, d]) })).outputs.logits.data as Float32Array;
    const top = Math.max(...z);
    const lse = top + Math.log(z.reduce((a, b) => a + Math.exp(b - top), 0));
    return z.reduce((a, b) => a + b - lse, 0);
  };
  let want = 0;
  const h = 1e-2;
  for (let e = 0; e < n; e++) {
    for (let i = 0; i < d; i++) {
      if (!mask.data[i]) continue;
      const up = x.slice(e * d, (e + 1) * d);
      const down = up.slice();
      up[i] += h;
      down[i] -= h;
      const g = ((await sumLogP(up)) - (await sumLogP(down))) / (2 * h);
      want += (g * g) / n;
    }
  }
  assert.ok(want > 1e-3, `a non-trivial penalty: ${want}`);
  assert.ok(Math.abs(step.terms.rrr - lambda * want) < 2e-3 * lambda * want + 1e-6, `graph term ${step.terms.rrr} vs finite differences ${lambda * want}`);
  await trainer.dispose();
});

let setup: Promise<RightReasonsResult> | undefined;
const shared = () =>
  (setup ??= (async () => {
    const train = decoyMnist((await loadMnist('train')).slice(0, 3000), { decoy: 'label' });
    const test = decoyMnist((await loadMnist('test')).slice(0, 1000), { decoy: 'shuffled', seed: 1 });
    const model = mlp({ inputs: [1, 28, 28], hidden: [100], classes: 10, seed: 1 });
    return ATTRIBUTION_PRIOR_METHODS['right-for-the-right-reasons'].run(model, { train, test, lambda: 100, epochs: 2, batchSize: 32, seed: 1, optimizer: { kind: 'adam', lr: 3e-3 } });
  })());

test('decoy MNIST: the twin learns the decoy, the model trained with the prior does not', async () => {
  const r = await shared();
  const { regularized: reg, twin } = r.twins;
  assert.ok(r.decoyAccuracy.twin > twin.accuracy + 0.08, `twin: ${pct(r.decoyAccuracy.twin)} with the decoy encoding the label, ${pct(twin.accuracy)} with it shuffled`);
  assert.ok(Math.abs(r.decoyAccuracy.regularized - reg.accuracy) < 0.02, `prior: ${pct(r.decoyAccuracy.regularized)} with the label decoy vs ${pct(reg.accuracy)} shuffled`);
  assert.ok(reg.accuracy > twin.accuracy + 0.08, `decoy-shuffled test accuracy ${pct(reg.accuracy)} with the prior vs ${pct(twin.accuracy)} for the twin`);
  assert.ok(reg.accuracy > 0.8, `the prior-trained model still reads digits: ${pct(reg.accuracy)}`);
  assert.equal(r.checks.find((c) => c.name === 'right for the right reasons')?.passed, true);
});

test('decoy MNIST: attributions of the prior-trained model score better on decoy mass and infidelity', async () => {
  const { scores: s, checks } = await shared();
  assert.ok(s.regularized.decoyMass < 0.02, `prior: ${pct(s.regularized.decoyMass)} of |IG| on the 16 decoy pixels (2% of the image)`);
  assert.ok(s.twin.decoyMass > 0.05, `twin: ${pct(s.twin.decoyMass)} of |IG| on the decoy`);
  assert.ok(s.regularized.infidelity < s.twin.infidelity, `infidelity ${s.regularized.infidelity} with the prior vs ${s.twin.infidelity}`);
  // Deletion favours the twin: its attributions faithfully point at the shortcut it uses, and deleting the decoy
  // (to 0) collapses its score fast. Faithfulness is not rightness; the metric says so.
  assert.ok(s.twin.deletion < s.regularized.deletion, `deletion AUC twin ${s.twin.deletion} vs prior ${s.regularized.deletion}`);
  assert.equal(checks.find((c) => c.name === 'attribution mass on the decoy')?.passed, true);
});

test('attribution prior: bad input gets errors that name it', async () => {
  const model = mlp({ inputs: [1, 28, 28], hidden: [8], classes: 10, seed: 1 });
  const mnist = (await loadMnist('test')).slice(0, 10);
  assert.throws(() => rightReasonsTerm(decoyMask([1, 28, 28]), -1), /lambda must be a non-negative number, got -1/);
  assert.throws(() => rightReasonsTerm(Tensor.float32([NaN, 0], [1, 2]), 1), /mask holds NaN at 0/);
  assert.throws(() => attributionPriorRegularizer(model, Tensor.float32([1, 0], [1, 2]), 1), /the mask is \[1, 2\], the model's input 'x' is \[N, 1, 28, 28\]/);
  assert.throws(() => decoyMnist(mnist, { decoy: 'label', size: 29 }), /size must be an integer in \[1, 28\], got 29/);
  assert.throws(() => decoyMnist(mnist, { decoy: 'random' as never }), /decoy must be 'label', 'shuffled' or 'none'/);
  const bad = await Trainer.create(mlp({ inputs: 3, hidden: [4], classes: 2, seed: 1 }), { optimizer: { kind: 'sgd', lr: 0.1 }, terms: [rightReasonsTerm(Tensor.float32([1, 0], [1, 2]), 1)] });
  await assert.rejects(bad.step({ x: Tensor.float32([0, 0, 0], [1, 3]), y: Tensor.int64([0], [1]) }), /the mask is \[1, 2\], the input 'x' is \[1, 3\]/);
});
