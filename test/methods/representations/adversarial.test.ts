/**
 * Adversaries as a tool: FGSM against its closed form on softmax regression; PGD, feature-level adversaries and the
 * units an attack exploits on a small CNN trained here on MNIST (channels [8, 16], 2 epochs on 3000 images).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { ADVERSARY_METHODS, fgsm, pgd } from '../../../src/methods/representations/adversarial.js';
import { attackUnits, featureAdversary } from '../../../src/methods/representations/feature-adversary.js';
import { cnn, mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { tensorFromProto } from '../../../src/onnx/tensor-proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';

const passed = (checks: readonly { name: string; passed?: boolean; detail: string }[], name: string) => {
  const c = checks.find((k) => k.name === name);
  assert.ok(c, `no check '${name}'`);
  assert.equal(c.passed, true, `${name}: ${c.detail}`);
};

let model: Model;
let x: Tensor<'float32'>;

before(async () => {
  const [train, testSet] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [8, 16], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 3000), { epochs: 2, batchSize: 64, seed: 1 });
  model = await Model.load(encodeModel(t.exportModel()));
  x = testSet.slice(0, 200).gather(Int32Array.from({ length: 200 }, (_, i) => i)).x;
});

test('fgsm: softmax regression matches the closed form x ± ε·sign(Wᵀ(softmax − onehot))', async () => {
  const [d, c, n, eps] = [6, 3, 8, 0.05];
  const proto = mlp({ inputs: d, hidden: [], classes: c, seed: 3 });
  const inits = (proto.graph?.initializer ?? []).map(tensorFromProto);
  const W = inits.find((t) => t.shape.join() === `${c},${d}`)!.data as Float32Array; // [out, in]
  const b = inits.find((t) => t.shape.join() === `${c}`)!.data as Float32Array;
  const lin = await Model.load(encodeModel(proto));
  const rand = mulberry32(5);
  const xs = Float32Array.from({ length: n * d }, () => 0.2 + 0.6 * rand());
  const labels = Array.from({ length: n }, (_, i) => i % c);
  const closed = (i: number, cls: number, sign: number) => {
    const z = Array.from({ length: c }, (_, k) => b[k] + Array.from({ length: d }, (_, j) => W[k * d + j] * xs[i * d + j]).reduce((a, v) => a + v, 0));
    const zmax = Math.max(...z);
    const e = z.map((v) => Math.exp(v - zmax));
    const p = e.map((v) => v / e.reduce((a, w) => a + w, 0));
    return Array.from({ length: d }, (_, j) => {
      const g = Array.from({ length: c }, (_, k) => W[k * d + j] * (p[k] - (k === cls ? 1 : 0))).reduce((a, v) => a + v, 0);
      return Math.fround(xs[i * d + j] + sign * eps * Math.sign(g));
    });
  };
  const xt = Tensor.float32(xs, [n, d]);
  const un = await fgsm(lin, xt, { eps, labels });
  const tg = await fgsm(lin, xt, { eps, target: 2 });
  // Equal up to one float32 ulp: the attack steps back to the float inside the ε-ball where x + ε rounds outside it.
  const near = (got: Float32Array, want: number[], what: string) =>
    want.forEach((w, j) => assert.ok(Math.abs(got[j] - w) <= 1.2e-7, `${what}[${j}]: ${got[j]} vs closed form ${w}`));
  for (let i = 0; i < n; i++) {
    near(un.adversarial.data.subarray(i * d, (i + 1) * d), closed(i, labels[i], 1), `untargeted row ${i}`);
    near(tg.adversarial.data.subarray(i * d, (i + 1) * d), closed(i, 2, -1), `targeted row ${i}`);
  }
  passed(un.checks, 'within-eps');
  assert.ok(un.norms.every((v) => Math.abs(v - eps) < 1e-6), `every L∞ norm is ε: ${Array.from(un.norms)}`);
});

test('pgd: every perturbation within ε, success grows with ε, random noise of the same norm is far weaker', async () => {
  const rates: number[] = [];
  for (const eps of [0.02, 0.05, 0.1, 0.2]) {
    const r = await pgd(model, x, { eps, alpha: eps / 4, steps: 10, norm: 'linf', randomStart: false, seed: 1 });
    passed(r.checks, 'within-eps');
    assert.ok(r.norms.every((v) => v <= eps * (1 + 1e-6)));
    assert.ok(r.adversarial.data.every((v) => v >= 0 && v <= 1), 'inputs stay in [0, 1]');
    if (eps >= 0.1) passed(r.checks, 'beats-random-noise');
    rates.push(r.successRate);
  }
  for (let k = 1; k < rates.length; k++) assert.ok(rates[k] >= rates[k - 1], `success is not monotone in ε: ${rates}`);
  assert.ok(rates[0] < 0.5 && rates[3] > 0.9, `success rates ${rates}`);

  const l2 = await pgd(model, x, { eps: 2, alpha: 0.5, steps: 10, norm: 'l2', randomStart: true, seed: 2 });
  passed(l2.checks, 'within-eps');
  passed(l2.checks, 'beats-random-noise');
  const targeted = await pgd(model, x, { eps: 0.2, alpha: 0.05, steps: 10, norm: 'linf', target: 3, seed: 1 });
  assert.ok(targeted.targeted && targeted.successRate > 0.5, `targeted success ${targeted.successRate}`);
  assert.ok(targeted.success.every((s, i) => s === (targeted.predictions[i] === 3)));
});

test('feature adversary: flips classes at c1.maxpool with a smaller norm than random directions need', async () => {
  const xs = Tensor.float32(x.data.slice(0, 50 * 784), [50, 1, 28, 28]);
  const f = await featureAdversary(model, xs, 'c1.maxpool', { steps: 40, seed: 1 });
  assert.ok(f.flipRate > 0.9, `flip rate ${f.flipRate}`);
  passed(f.checks, 'intervention-agrees');
  passed(f.checks, 'beats-random-directions');
  assert.ok(f.randomNormRatio >= 2, `random directions need only ${f.randomNormRatio}× the norm`);
  assert.ok(Math.abs(f.unitShare.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  // Restricted to units 0..2: the delta is zero elsewhere, and the flips still happen with a budget.
  const r = await featureAdversary(model, xs, 'c1.maxpool', { steps: 60, units: [0, 1, 2], seed: 1 });
  assert.ok(r.topUnits.slice(0, 3).every((u) => u <= 2) && r.unitShare.slice(3).every((v) => v === 0), `shares ${Array.from(r.unitShare)}`);
  assert.ok(r.flipRate > 0.5, `restricted flip rate ${r.flipRate}`);
  const budget = await featureAdversary(model, xs, 'c1.maxpool', { steps: 40, budget: 1e-3 });
  assert.ok(budget.norms.every((v) => v <= 1e-3 * (1 + 1e-5)) && budget.flipRate < 0.1, `a tiny budget flips ${budget.flipRate}`);
});

test('attack units: restoring the top exploited units of c2.relu undoes the attack more than random units', async () => {
  const adv = await pgd(model, x, { eps: 0.1, alpha: 0.025, steps: 10, norm: 'linf', seed: 1 });
  const u = await attackUnits(model, x, adv.adversarial, 'c2.relu', { m: 3, draws: 20, seed: 1 });
  passed(u.checks, 'top-units-restore');
  assert.ok(u.restoredTop >= u.restoredRandom + 0.1, `top ${u.restoredTop} vs random ${u.restoredRandom}`);
  assert.equal(u.examples.length, adv.predictions.filter((p, i) => p !== adv.cleanPredictions[i]).length);
  const z = await attackUnits(model, x, adv.adversarial, 'c2.relu', { m: 3, mode: 'zero', seed: 1 });
  assert.ok(z.restoredTop >= z.restoredRandom, `zeroing: top ${z.restoredTop} vs random ${z.restoredRandom}`);
});

test('registry and bad input', async () => {
  assert.deepEqual(Object.keys(ADVERSARY_METHODS), ['fgsm', 'pgd', 'feature-adversary', 'attack-units']);
  assert.equal(ADVERSARY_METHODS['attack-units'].info.taxonomy.zhang.scope, 'semi-local');
  const few = Tensor.float32(x.data.slice(0, 2 * 784), [2, 1, 28, 28]);
  await assert.rejects(fgsm(model, few, { eps: -0.1 }), /eps must be a finite number ≥ 0, got -0.1/);
  await assert.rejects(pgd(model, few, { eps: NaN, alpha: 0.1, steps: 3 }), /eps must be a finite number/);
  await assert.rejects(pgd(model, few, { eps: 0.1, alpha: 0.1, steps: 0 }), /steps must be an integer ≥ 1/);
  const nan = Tensor.float32(few.data.map((v, i) => (i === 5 ? NaN : v)), few.shape);
  await assert.rejects(fgsm(model, nan, { eps: 0.1 }), /x holds NaN at flat index 5/);
  const outside = Tensor.float32(few.data.map((v) => v * 255), few.shape);
  await assert.rejects(fgsm(model, outside, { eps: 0.1 }), /outside the valid range \[0, 1\]/);
  await assert.rejects(fgsm(model, Tensor.float32(few.data.slice(0, 784)), { eps: 0.1 }), /x must be \[N, \.\.\.\] with N ≥ 1 examples, got \[784\]/);
  await assert.rejects(fgsm(model, few, { eps: 0.1, norm: 'l2' }), /FGSM is an L∞ attack/);
  await assert.rejects(fgsm(model, few, { eps: 0.1, target: 10 }), /target\[0\] = 10 is not a class/);
  await assert.rejects(featureAdversary(model, few, 'c2.rleu'), /c2\.relu/);
  await assert.rejects(featureAdversary(model, few, 'c1.maxpool', { units: [99] }), /unit 99 is out of range/);
  await assert.rejects(attackUnits(model, few, few, 'c2.relu'), /change no prediction/);
});
