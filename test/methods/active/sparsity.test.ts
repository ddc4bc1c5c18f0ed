/**
 * Sparsity regularisers against closed forms and against their unregularised twin on breast cancer (one twin shared
 * by the three methods): L1's proximal step is the soft-threshold and leaves exact zeros; group lasso's shrinks whole
 * groups and kills whole units; L0's expected-L0 graph term equals Σ sigmoid(log α − β log(−γ/ζ)), which is the
 * Monte Carlo rate of non-zero hard-concrete gates, and the gated graph computes the host's gate.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { split } from '../../../src/data/datasets/split.js';
import { loadBreastCancer } from '../../../src/data/datasets/tabular.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../../src/onnx/tensor-proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  deterministicGates, expectedL0, gateNames, groupLassoRegularizer, hardConcreteGate, l0Regularizer, l1Regularizer, SPARSITY_METHODS, sparsityOf,
  sparsityRegularizer, trainSparse, unitIndices, weightLayers, type SparsityResult,
} from '../../../src/methods/active/sparsity.js';
import { trainRun, type TrainedRun } from '../../../src/methods/active/twin.js';
import { seeded } from '../../helpers.js';

const model = mlp({ inputs: 30, hidden: [32, 32], classes: 2, seed: 1 });
let setup: Promise<{ base: Parameters<typeof trainSparse>[2]; twin: TrainedRun }> | undefined;
const shared = () =>
  (setup ??= (async () => {
    const [train, test] = split(await loadBreastCancer(), [0.7, 0.3], { seed: 1, stratify: true, standardize: true });
    const base = { train, test, epochs: 20, batchSize: 16, seed: 1, optimizer: { kind: 'adam', lr: 1e-2 } as const, strength: 1, sparsities: [0, 0.5, 0.7, 0.8, 0.9, 0.95] };
    return { base, twin: await trainRun(model, null, base) };
  })());
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const summary = (r: SparsityResult) =>
  `acc ${pct(r.regularized.accuracy)} vs twin ${pct(r.twin.accuracy)}; zeros ${pct(r.sparsity.zeroFraction)} vs ${pct(r.twinSparsity.zeroFraction)}; dead ${r.sparsity.deadUnits}/${r.sparsity.hiddenUnits} vs ${r.twinSparsity.deadUnits}; pruning ${r.pruning.regularized} vs ${r.pruning.twin}`;

test('proximal steps: L1 is the soft-threshold, group lasso shrinks each unit group by 1 − t/‖w_g‖ or zeroes it', () => {
  const small = mlp({ inputs: 3, hidden: [2], classes: 2, seed: 4 });
  const w1 = Float32Array.of(0.5, -0.02, 0.03, -0.4, 0.01, 0.2); // fc1.weight [2, 3]: unit 0 = row 0
  const fresh = () => new Map([['fc1.weight', w1.slice()], ['fc1.bias', Float32Array.of(0.01, -0.3)], ['fc2.weight', Float32Array.of(0.04, -0.05, 0.6, 0.001)], ['fc2.bias', Float32Array.of(0, 0)]]);
  const lr = 0.1;
  const lambda = 0.3; // threshold 0.03
  const l1 = l1Regularizer(small, { strength: lambda }).hostTerms![0];
  const ws = fresh();
  assert.ok(Math.abs(l1.penalty!(ws, new Map()) - lambda * (1.16 + 0.691)) < 1e-6);
  l1.afterStep!(ws, new Map(), lr);
  const want = [0.47, 0, 0, -0.37, 0, 0.17];
  ws.get('fc1.weight')!.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `fc1.weight[${i}] = ${v}, soft-threshold gives ${want[i]}`));
  assert.deepEqual([...ws.get('fc1.bias')!], [...Float32Array.of(0.01, -0.3)], 'L1 leaves biases alone');
  assert.equal(ws.get('fc1.weight')!.filter((v) => v === 0).length, 3, 'exact zeros');

  const gl = groupLassoRegularizer(small, { strength: 2 }).hostTerms![0]; // t = 0.2
  const gw = fresh();
  gw.get('fc1.weight')!.set([0.1, -0.05, 0.03, -0.4, 0.1, 0.2]);
  const n0 = Math.hypot(0.1, -0.05, 0.03, 0.01); // below t: the unit dies with its bias
  const n1 = Math.hypot(-0.4, 0.1, 0.2, -0.3);
  gl.afterStep!(gw, new Map(), lr);
  assert.ok(n0 < 0.2 && n1 > 0.2);
  assert.deepEqual([...gw.get('fc1.weight')!.slice(0, 3), gw.get('fc1.bias')![0]], [0, 0, 0, 0]);
  const scale = 1 - 0.2 / n1;
  [-0.4, 0.1, 0.2].forEach((v, i) => assert.ok(Math.abs(gw.get('fc1.weight')![3 + i] - v * scale) < 1e-6));
  assert.ok(Math.abs(gw.get('fc1.bias')![1] + 0.3 * scale) < 1e-6);
  assert.deepEqual([...gw.get('fc2.weight')!], [...Float32Array.of(0.04, -0.05, 0.6, 0.001)], 'the output layer (classes) is not grouped');
  assert.deepEqual([...unitIndices([2, 3], 0, 1)], [3, 4, 5]);
  assert.deepEqual([...unitIndices([3, 2], 1, 1)], [1, 3, 5]);
});

test('L1 training: exact zeros far above the twin, accuracy within 3 points, more prunable', async (t) => {
  const { base, twin } = await shared();
  const r = await trainSparse(model, 'l1', { ...base, strength: 0.1, twin });
  t.diagnostic(summary(r));
  assert.ok(r.sparsity.zeroFraction >= 0.5 && r.twinSparsity.zeroFraction < 0.01, summary(r));
  assert.ok(r.twin.accuracy - r.regularized.accuracy <= 0.03, summary(r));
  assert.ok(r.pruning.regularized > r.pruning.twin, summary(r));
  assert.ok(r.checks.find((c) => c.name === 'sparsity gain')!.passed);
  // The exported model holds the zeros the counts claim.
  const w = tensorFromProto(r.regularized.proto.graph!.initializer.find((t) => t.name === 'fc1.weight')!).data as Float32Array;
  assert.equal(w.filter((v) => v === 0).length / w.length, r.sparsity.perLayer[0].zeroFraction);
});

test('group lasso training zeroes whole hidden units: every zero weight of a hidden layer lies in a dead unit', async (t) => {
  const { base, twin } = await shared();
  const r = await trainSparse(model, 'group-lasso', { ...base, strength: 0.5, twin });
  t.diagnostic(summary(r));
  assert.ok(r.sparsity.deadUnits >= 10 && r.twinSparsity.deadUnits === 0, summary(r));
  assert.ok(r.twin.accuracy - r.regularized.accuracy <= 0.03, summary(r));
  for (const l of weightLayers(r.regularized.proto).filter((x) => !x.last)) {
    const w = tensorFromProto(r.regularized.proto.graph!.initializer.find((t) => t.name === l.weight)!).data as Float32Array;
    for (let u = 0; u < l.units; u++) {
      const zeros = [...unitIndices(l.shape, l.unitAxis, u)].filter((i) => w[i] === 0).length;
      assert.ok(zeros === 0 || zeros === l.shape[1 - l.unitAxis], `${l.weight} unit ${u}: ${zeros} zeros of ${l.shape[1 - l.unitAxis]} (group lasso zeroes all or none)`);
    }
  }
  assert.ok(r.pruning.regularized >= r.pruning.twin, summary(r));
});

test('L0 gates: the graph term is the closed form, which is the Monte Carlo rate of open gates; the graph gate is the host gate', async () => {
  const small = mlp({ inputs: 3, hidden: [4], classes: 2, seed: 2 });
  const reg = l0Regularizer(small, { strength: 1, seed: 3 });
  const names = gateNames('fc1.weight');
  const logAlpha = Float32Array.of(-3, -0.5, 0.7, 2.5);
  const gated = reg.model!;
  const at = gated.graph!.initializer.findIndex((t) => t.name === names.logAlpha);
  gated.graph!.initializer[at] = tensorToProto(Tensor.float32(logAlpha, [4]), names.logAlpha);
  // E‖z‖₀ closed form, checked by sampling the hard-concrete distribution.
  const rand = seeded(9);
  const draws = 40000;
  let open = 0;
  for (let s = 0; s < draws; s++) for (const a of logAlpha) if (hardConcreteGate(a, rand()) > 0) open++;
  const closed = expectedL0(logAlpha);
  assert.ok(Math.abs(open / draws - closed) < 0.03, `Monte Carlo ${open / draws} vs closed form ${closed}`);
  // The trainer's graph term at these log α.
  const trainer = await Trainer.create(gated, { optimizer: { kind: 'sgd', lr: 1e-9 }, terms: reg.terms, hostTerms: reg.hostTerms });
  const x = Tensor.float32([0.3, -1, 2, 1, 0.5, -0.2], [2, 3]);
  const before = trainer.weights.get(names.logAlpha)!.data.slice();
  const step = await trainer.step({ x, y: Tensor.int64([0, 1], [2]) });
  assert.ok(Math.abs(step.terms.l0 - expectedL0(before)) < 1e-5, `graph term ${step.terms.l0} vs ${expectedL0(before)}`);
  assert.ok(Math.abs(expectedL0(before) - closed) < 1e-4);
  await trainer.dispose();
  // The gated forward pass: logits = W2·(relu(W1x + b1) ⊙ z) + b2 with z = hardConcreteGate(log α, u).
  const init = (n: string) => tensorFromProto(gated.graph!.initializer.find((t) => t.name === n)!).data as Float32Array;
  const [w1, b1, w2, b2, u] = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', names.noise].map(init);
  const m = await Model.load(encodeModel(gated));
  const logits = (await m.run({ x })).outputs.logits.data as Float32Array;
  for (let r = 0; r < 2; r++) {
    const h = [0, 1, 2, 3].map((j) => Math.max(0, b1[j] + [0, 1, 2].reduce((a, i) => a + w1[j * 3 + i] * x.data[r * 3 + i], 0)) * hardConcreteGate(logAlpha[j], u[j]));
    for (let c = 0; c < 2; c++) {
      const want = b2[c] + h.reduce((a, v, j) => a + w2[c * 4 + j] * v, 0);
      assert.ok(Math.abs(logits[r * 2 + c] - want) < 1e-5, `logit [${r}, ${c}] ${logits[r * 2 + c]} vs host ${want}`);
    }
  }
  // Test-time gates: 0 below sigmoid(log α) = γ/(γ − ζ), 1 above (1 − γ)/(ζ − γ).
  assert.deepEqual([...deterministicGates([-3, 3, 0])].map((v) => +v.toFixed(6)), [0, 1, 0.5]);
});

test('L0 training prunes hidden units through their deterministic gates, within 3 points of the twin', async (t) => {
  const { base, twin } = await shared();
  const r = await trainSparse(model, 'l0', { ...base, strength: 0.02, twin });
  t.diagnostic(summary(r));
  assert.ok(r.sparsity.deadUnits >= 10 && r.twinSparsity.deadUnits === 0, summary(r));
  assert.ok(r.twin.accuracy - r.regularized.accuracy <= 0.03, summary(r));
  assert.ok(r.pruning.regularized >= r.pruning.twin, summary(r));
  const inits = r.regularized.proto.graph!.initializer.map((t) => t.name);
  assert.ok(inits.includes(gateNames('fc1.weight').logAlpha) && !inits.some((n) => n.endsWith('.l0.noise')), 'the inference model has gates and no noise');
  // Deterministic: two runs agree.
  const x = r.regularized.model;
  const b = base.test.gather([0, 1, 2]).x;
  assert.deepEqual([...(await x.run({ x: b })).outputs.logits.data], [...(await x.run({ x: b })).outputs.logits.data]);
});

test('sparsity: bad options are named', () => {
  assert.throws(() => l1Regularizer(model, { strength: 0 }), /strength must be a positive number, got 0/);
  assert.throws(() => l1Regularizer(model, { strength: 1, weights: ['fc9.weight'] }), /no weight 'fc9.weight'/);
  assert.throws(() => sparsityRegularizer(model, 'l2' as never, { strength: 1 }), /unknown method 'l2'/);
  assert.throws(() => groupLassoRegularizer(mlp({ inputs: 3, hidden: [], classes: 2, seed: 1 }), { strength: 1 }), /no hidden layer/);
  assert.throws(() => l0Regularizer(model, { strength: 1, droprateInit: 1 }), /droprateInit must be in \(0, 1\)/);
  assert.equal(sparsityOf(model).zeroWeights, 0);
  assert.deepEqual(Object.keys(SPARSITY_METHODS), ['l1', 'group-lasso', 'l0']);
  assert.equal(SPARSITY_METHODS.l0.info.taxonomy.zhang.engagement, 'active');
});
