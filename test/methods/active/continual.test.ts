/**
 * Continual learning: the batched empirical Fisher against per-example gradients one at a time; SI's path integral
 * and EWC's penalty against closed forms inside real trainer steps; split MNIST (one 10-way head, softmax restricted to
 * the task's classes) with EWC and SI against their fine-tuned twin (trained once, shared), and what their
 * importances say about units: the ablation check and the specialisation index against shuffled importances.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/index.js';
import { cnn, mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer, type HostTerm } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { empiricalFisher, ewcRegularizer, ewcTerm, siTerm, splitTasks, taskFeeds, taskLoss, taskOffset, trainContinual, type ContinualRun, type Task } from '../../../src/methods/active/continual.js';
import { ablateTaskUnits, CONTINUAL_METHODS, continualLearning, unitSpecialisation, type ContinualResult } from '../../../src/methods/active/continual-units.js';
import { rowsDataset } from '../../../src/methods/active/concept-data.js';
import { seeded } from '../../helpers.js';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function rows(n: number, d: number, classes: number, seed: number) {
  const r = seeded(seed);
  const x = Float32Array.from({ length: n * d }, () => 2 * r() - 1);
  return rowsDataset(`random${seed}`, x, d, Array.from({ length: n }, () => Math.floor(r() * classes)), classes);
}

test('the batched empirical Fisher equals the mean of squared per-example log-likelihood gradients', async () => {
  const model = await Model.load(encodeModel(mlp({ inputs: 6, hidden: [5, 4], classes: 4, seed: 3 })));
  const classes = [1, 3];
  const all = rows(40, 6, 4, 2);
  const data = all.subset([...Array(40).keys()].filter((i) => classes.includes(all.labels![i])));
  const fisher = await empiricalFisher(model, data, classes, 7); // batches of 7: the sum runs across batches
  const names = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias'];
  const want = new Map(names.map((n) => [n, new Float64Array(fisher.get(n)!.length)]));
  for (let i = 0; i < data.size; i++) {
    const { x, y } = data.gather([i]);
    const z = (await model.run({ x })).outputs.logits.data as Float32Array;
    const s = Math.exp(z[1]) + Math.exp(z[3]);
    const seed = new Float32Array(4);
    for (const c of classes) seed[c] = (Number(y.data[0]) === c ? 1 : 0) - Math.exp(z[c]) / s;
    const g = await model.grad({ x }, { of: 'logits', seed: Tensor.float32(seed, [1, 4]), wrt: names });
    for (const n of names) (g.grads[n].data as Float32Array).forEach((v, k) => (want.get(n)![k] += (v * v) / data.size));
  }
  for (const n of names) {
    const got = fisher.get(n)!;
    want.get(n)!.forEach((v, k) => assert.ok(Math.abs(got[k] - v) < 1e-6 + 1e-4 * v, `${n}[${k}]: batched ${got[k]} vs per-example ${v}`));
  }
  assert.ok(fisher.get('fc1.weight')!.some((v) => v > 1e-4), 'a non-trivial Fisher');
});

test('SI accumulates −g·Δθ with the task gradient; EWC adds λF(θ − θ*); both inside real trainer steps', async () => {
  const model = mlp({ inputs: 6, hidden: [5], classes: 4, seed: 5 });
  const lr = 0.05;
  const lambda = 3;
  const si = siTerm(lambda, 0.1);
  const seen: { task?: Map<string, Float32Array>; total?: Map<string, Float32Array> } = {};
  const grab = (k: 'task' | 'total'): HostTerm => ({ name: `grab-${k}`, penalty: (_w, g) => ((seen[k] = new Map([...g].map(([n, v]) => [n, v.slice()]))), 0) });
  const trainer = await Trainer.create(model, { optimizer: { kind: 'sgd', lr }, head: 'none', terms: [taskLoss(4)], hostTerms: [grab('task'), si, grab('total')] });
  const params = new Map([...trainer.weights].map(([k, t]) => [k, t.data]));
  const data = rows(32, 6, 4, 9);
  const offset = taskOffset([0, 1, 2, 3], 4);
  const want = new Map([...params].map(([k, v]) => [k, new Float64Array(v.length)]));
  for (let task = 0; task < 2; task++) {
    si.beginTask(params);
    want.forEach((w) => w.fill(0));
    const start = new Map([...params].map(([k, v]) => [k, v.slice()]));
    let penalty = 0;
    for (const b of data.batches(8, { shuffle: true, seed: task })) {
      const r = await trainer.step(b, taskFeeds(b, offset));
      penalty = Math.max(penalty, r.terms.si);
      for (const [n, w] of want) seen.task!.get(n)!.forEach((g, i) => (w[i] += lr * g * seen.total!.get(n)![i])); // −g·Δθ, Δθ = −lr·g_total
    }
    assert.equal(penalty > 0, task === 1, `task ${task}: largest SI penalty ${penalty} (zero before any task is consolidated)`);
    for (const [n, w] of want) si.omega.get(n)!.forEach((v, i) => assert.ok(Math.abs(v - w[i]) < 1e-6 + 1e-3 * Math.abs(w[i]), `task ${task}, ω ${n}[${i}] = ${v}, want ${w[i]}`));
    const imp = await si.endTask(params);
    const n = 'fc1.weight';
    imp.get(n)!.forEach((v, i) => {
      const d = params.get(n)![i] - start.get(n)![i];
      assert.ok(Math.abs(v - Math.max(0, want.get(n)![i]) / (d * d + 0.1)) < 1e-5, `Ω ${n}[${i}]`);
    });
  }
  // EWC: value (λ/2)ΣF(θ − θ*)² and gradient λF(θ − θ*), summed over consolidated tasks.
  const ewc = ewcTerm(2);
  const w = new Map([['w', Float32Array.of(1, 2)]]);
  await ewc.endTask(new Map([['w', Float32Array.of(0, 0)]]), async () => new Map([['w', Float32Array.of(1, 3)]]));
  await ewc.endTask(new Map([['w', Float32Array.of(1, 1)]]), async () => new Map([['w', Float32Array.of(2, 0)]]));
  const g = new Map([['w', Float32Array.of(0, 0)]]);
  const value = ewc.penalty!(w, g);
  assert.ok(Math.abs(value - (1 + 3 * 4 + 0 + 0)) < 1e-6, `EWC penalty ${value}`);
  assert.deepEqual([...g.get('w')!], [2 * 1 * 1 + 0, 2 * 3 * 2 + 0]);
  await trainer.dispose();
});

const model = mlp({ inputs: [1, 28, 28], hidden: [100, 100], classes: 10, seed: 1 });
let setup: Promise<{ tasks: Task[]; base: { tasks: Task[]; batchSize: number; seed: number; fisherExamples: number }; twin: ContinualRun; ewc: ContinualResult; si: ContinualResult }> | undefined;
const shared = () =>
  (setup ??= (async () => {
    const tasks = splitTasks(await loadMnist('train'), await loadMnist('test'), { trainPerTask: 2000, testPerTask: 400 });
    const base = { tasks, batchSize: 32, seed: 1, fisherExamples: 500 };
    const twin = await trainContinual(model, { ...base, method: 'finetune' });
    const ewc = await CONTINUAL_METHODS.ewc.run(model, { ...base, lambda: 1000, twin });
    const si = await CONTINUAL_METHODS['synaptic-intelligence'].run(model, { ...base, lambda: 100, twin });
    return { tasks, base, twin, ewc, si };
  })());

test('split MNIST: EWC and SI forget less than the fine-tuned twin and end with a higher average accuracy', async () => {
  const { twin, ewc, si } = await shared();
  const T = 5;
  for (const r of [twin, ewc.run, si.run]) {
    r.matrix.forEach((row, k) => assert.ok(row[k] > 0.9, `${r.method}: task ${k} learnt to ${pct(row[k])} right after training on it`));
  }
  assert.ok(twin.forgetting > 0.03, `fine-tuning forgets: ${pct(twin.forgetting)}`);
  for (const r of [ewc, si]) {
    const m = r.run;
    assert.ok(m.forgetting < twin.forgetting / 2, `${m.method} forgetting ${pct(m.forgetting)} vs twin ${pct(twin.forgetting)}`);
    assert.ok(m.averageAccuracy > twin.averageAccuracy + 0.02, `${m.method} average ${pct(m.averageAccuracy)} vs twin ${pct(twin.averageAccuracy)}`);
    assert.equal(m.importance.length, T);
    assert.equal(r.checks.find((c) => c.name === 'forgets less than fine-tuning')?.passed, true);
  }
});

test('importances as interpretation: zeroing a task\'s most important units hurts that task most; units are shared, not specialised', async () => {
  const { ewc, si, tasks } = await shared();
  for (const r of [ewc, si]) {
    for (const a of r.ablation) {
      assert.ok(a.selective >= 3, `${r.run.method} ${a.site}: own-task loss rise beats the others' mean for ${a.selective}/5 tasks: ${JSON.stringify(a.lossIncrease.map((row) => row.map((v) => +v.toFixed(3))))}`);
      const own = a.lossIncrease.reduce((s, row, t) => s + row[t], 0) / 5;
      const other = a.lossIncrease.reduce((s, row, t) => s + row.reduce((x, v, u) => x + (u === t ? 0 : v), 0), 0) / 20;
      assert.ok(own > 1.5 * other, `${r.run.method} ${a.site}: mean own-task loss rise ${own.toFixed(3)} vs ${other.toFixed(3)} on other tasks`);
    }
    for (const u of r.units) u.perTask.forEach((row, t) => assert.ok(Math.abs(row.reduce((a, v) => a + v, 0) - 1) < 1e-9, `task ${t} shares sum to 1`));
  }
  // The honest finding: EWC's Fisher importances are correlated across tasks — the same units matter for several — so
  // fewer units are dominated by one task than when each task's importances are shuffled across units.
  for (const u of ewc.units) assert.ok(u.specialisation < u.shuffled, `EWC ${u.site}: ${pct(u.specialisation)} specialised vs ${pct(u.shuffled)} shuffled`);
  // Random units as a baseline: the same number, chosen without importance, hurt less on average.
  const u = ewc.units[0];
  const r = seeded(3);
  const random = { ...u, perTask: u.perTask.map((row) => row.map(() => r())) };
  const rand = await ablateTaskUnits(ewc.run.model, tasks, random, 10);
  const sum = (m: readonly (readonly number[])[]) => m.flat().reduce((a, v) => a + v, 0);
  assert.ok(sum(ewc.ablation[0].lossIncrease) > sum(rand.lossIncrease), `important units ${sum(ewc.ablation[0].lossIncrease).toFixed(3)} vs random ${sum(rand.lossIncrease).toFixed(3)} summed loss rise`);
});

test('ewcRegularizer (for glassbox train): zero at the previous weights, (λ/2)ΣF·δ² away from them', async () => {
  const { twin, tasks } = await shared();
  const { hostTerms } = await ewcRegularizer(twin.proto, tasks[4].train, { lambda: 10, classes: [8, 9], examples: 300 });
  const fisher = await empiricalFisher(twin.model, tasks[4].train.slice(0, 300), [8, 9]);
  const trainer = await Trainer.create(twin.proto, { optimizer: { kind: 'sgd', lr: 1e-3 } });
  const weights = new Map([...trainer.weights].map(([k, t]) => [k, t.data.slice()]));
  const grads = new Map([...weights].map(([k, v]) => [k, new Float32Array(v.length)]));
  assert.equal(hostTerms[0].penalty!(weights, grads), 0);
  const w = weights.get('fc2.weight')!;
  const want = [3, 70, 5000].reduce((s, i) => s + 5 * fisher.get('fc2.weight')![i] * 0.01, 0);
  for (const i of [3, 70, 5000]) w[i] += 0.1;
  const got = hostTerms[0].penalty!(weights, grads);
  assert.ok(Math.abs(got - want) < 1e-6 * (1 + want) && want > 0, `penalty ${got} vs (λ/2)ΣF·δ² = ${want}`);
  assert.ok(Math.abs(grads.get('fc2.weight')![70] - 10 * fisher.get('fc2.weight')![70] * 0.1) < 1e-7, 'gradient λF·δ');
  await trainer.dispose();
});

test('continual learning: bad input gets errors that name it', async () => {
  const { tasks, ewc } = await shared();
  const train = await loadMnist('train');
  assert.throws(() => splitTasks(train, train, { tasks: [[0, 1], [1, 2]] }), /class 1 is in two tasks/);
  assert.throws(() => splitTasks(train, train, { tasks: [[0, 10]] }), /class 10; .* has 10 classes/);
  assert.throws(() => splitTasks(train, train, { tasks: [[3]] }), /at least two/);
  assert.throws(() => ewcTerm(0), /lambda must be a positive number, got 0/);
  assert.throws(() => siTerm(1, NaN), /xi must be a positive number/);
  await assert.rejects(ewcRegularizer(cnn({ input: [1, 28, 28], channels: [4], classes: 10, seed: 1 }), tasks[0].train, { lambda: 1 }), /not a dense Gemm layer/);
  await assert.rejects(ewcRegularizer(model, tasks[0].train, { lambda: 1, classes: [0, 12] }), /class 12 is not one of the model's 10 classes/);
  await assert.rejects(empiricalFisher(ewc.run.model, tasks[0].test, [0, 2]), /label 1, not one of the task's classes 0, 2/);
  await assert.rejects(empiricalFisher(ewc.run.model, tasks[0].test, []), /non-empty list of the model's 10 classes/);
  assert.throws(() => taskFeeds(tasks[1].train.gather([0]), taskOffset([0, 1], 10)), /label [23], outside the task's classes/);
  await assert.rejects(trainContinual(model, { tasks: tasks.slice(0, 1), method: 'finetune', batchSize: 8, seed: 1 }), /at least two tasks/);
  assert.throws(() => unitSpecialisation(ewc.run.model, ewc.run.importance.slice(0, 1)), /at least two tasks/);
  await assert.rejects(ablateTaskUnits(ewc.run.model, tasks, ewc.units[0], 0), /k must be an integer in \[1, 100\], got 0/);
  await assert.rejects(continualLearning(model, { tasks, method: 'ewc', lambda: 1, batchSize: 32, seed: 1, epochs: 0 }), /epochs must be a positive integer/);
});
