/**
 * Unit ablation against a direct computation (the ablated units' weights edited to zero, or their bias set to the
 * dataset mean), and on an MLP trained here on MNIST: ablating a whole layer drops accuracy to chance, and the
 * Neuron Shapley top units hurt more when ablated together than random units of the same number.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { ABLATION_METHODS, ablateUnits } from '../../../src/methods/neurons/ablation.js';
import { neuronShapley } from '../../../src/methods/neurons/shapley.js';
import { cnn, mlp } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel, type ModelProto } from '../../../src/onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../../src/onnx/tensor-proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';

const [IN, HID, OUT, N] = [4, 6, 3, 90];

/** x → fc1 (MatMul + Add) → ReLU → fc2 → logits, with the given weights. */
async function smallMlp(w1: number[], b1: number[], w2: number[], b2: number[]): Promise<Model> {
  const net = new Net(0);
  const h = net.op('fc1', 'Add', [net.op('fc1', 'MatMul', ['x', net.param('fc1.weight', Tensor.float32(w1, [IN, HID]))]), net.param('fc1.bias', Tensor.float32(b1, [HID]))]);
  const r = net.op('fc1', 'Relu', [h]);
  const z = net.op('fc2', 'MatMul', [r, net.param('fc2.weight', Tensor.float32(w2, [HID, OUT]))]);
  net.op('fc2', 'Add', [z, net.param('fc2.bias', Tensor.float32(b2, [OUT]))], [], ['logits']);
  return Model.load(encodeModel(net.model({ name: 'small', doc: 'small', input: { name: 'x', dtype: 'float32', shape: ['N', IN] }, output: { name: 'logits', shape: ['N', OUT] } })));
}

function synthetic(seed: number): Dataset<'float32'> {
  const rand = mulberry32(seed);
  const x = Float32Array.from({ length: IN * N }, () => 2 * rand() - 1);
  const y = Int32Array.from({ length: N }, (_, i) => Math.floor(rand() * OUT) * (i % 3 === 0 ? 1 : 0) + (i % 3 === 0 ? 0 : x[IN * i] > 0 ? 1 : 2));
  return dataset({
    name: 'synthetic', size: N, inputShape: [IN], inputDType: 'float32', numClasses: OUT, labels: y,
    gather: (ix) => ({ x: Tensor.float32(Array.from(ix).flatMap((i) => [...x.subarray(IN * i, IN * i + IN)]), [ix.length, IN]), y: Tensor.int64(Array.from(ix, (i) => y[i])) }),
  });
}

/** Loss, accuracy and per-class accuracy of a plain run, computed here independently of the library. */
async function direct(model: Model, data: Dataset) {
  const b = data.gather(Array.from({ length: data.size }, (_, i) => i));
  const z = (await model.run({ x: b.x })).outputs.logits.data as Float32Array;
  let loss = 0;
  const hit = new Array<number>(OUT).fill(0);
  const count = new Array<number>(OUT).fill(0);
  for (let i = 0; i < data.size; i++) {
    const row = [...z.subarray(OUT * i, OUT * i + OUT)];
    const y = Number(b.y.data[i]);
    loss += Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[y];
    count[y]++;
    if (row.indexOf(Math.max(...row)) === y) hit[y]++;
  }
  return { loss: loss / data.size, accuracy: hit.reduce((a, v) => a + v, 0) / data.size, classAccuracy: hit.map((h, c) => h / count[c]) };
}

test('zero and mean ablation equal the model with the units edited out of its weights', async () => {
  const rand = mulberry32(5);
  const r = (n: number) => Array.from({ length: n }, () => 2 * rand() - 1);
  const [w1, b1, w2, b2] = [r(IN * HID), r(HID), r(HID * OUT).map((v) => 2 * v), r(OUT)];
  const model = await smallMlp(w1, b1, w2, b2);
  const data = synthetic(7);
  const base = await direct(model, data);
  const groups = [[0], [3], [1, 4], [0, 1, 2, 3, 4, 5]];
  // Mean of each hidden unit over the data, for the mean-ablated reference (ReLU(0·x + m) = m since m ≥ 0).
  const hid = (await model.run({ x: data.gather(Array.from({ length: N }, (_, i) => i)).x }, { capture: ['fc1.relu'] })).captures['fc1.relu'].data as Float32Array;
  const mean = Array.from({ length: HID }, (_, u) => hid.filter((_, i) => i % HID === u).reduce((a, v) => a + v, 0) / N);
  for (const replace of ['zero', 'mean'] as const) {
    const res = await ablateUnits(model, data, { site: 'fc1.relu', groups, replace, batchSize: 32, maxRows: 64 });
    assert.ok(res.checks[0].passed && res.checks[0].value === 0, `no-op check: ${res.checks[0].detail}`);
    assert.ok(Math.abs(res.baseline.loss - base.loss) < 1e-9 && res.baseline.accuracy === base.accuracy);
    for (const [i, g] of groups.entries()) {
      const ew1 = w1.map((v, k) => (g.includes(k % HID) ? 0 : v));
      const eb1 = b1.map((v, u) => (g.includes(u) ? (replace === 'mean' ? mean[u] : -1) : v)); // −1: ReLU gives 0
      const ref = await direct(await smallMlp(ew1, eb1, w2, b2), data);
      const e = res.groups[i];
      assert.ok(Math.abs(e.deltaLoss - (ref.loss - base.loss)) < 1e-5, `${replace} ${g}: Δloss ${e.deltaLoss} vs ${ref.loss - base.loss}`);
      assert.ok(Math.abs(e.deltaAccuracy - (ref.accuracy - base.accuracy)) < 1e-12, `${replace} ${g}: Δacc ${e.deltaAccuracy} vs ${ref.accuracy - base.accuracy}`);
      e.deltaClassAccuracy.forEach((d, c) => assert.ok(Math.abs(d - (ref.classAccuracy[c] - base.classAccuracy[c])) < 1e-12, `${replace} ${g} class ${c}`));
    }
    assert.ok(res.groups[2].random && res.groups[2].random.samples === 8, 'groups of 2 get random groups of 2 to compare with');
  }
  // Streaming: the same numbers whatever the batch size and rows per call (up to float summation order).
  const a = await ablateUnits(model, data, { site: 'fc1.relu', batchSize: 7, maxRows: 30 });
  const b = await ablateUnits(model, data, { site: 'fc1.relu', batchSize: 90 });
  a.groups.forEach((g, i) => assert.ok(Math.abs(g.deltaLoss - b.groups[i].deltaLoss) < 1e-9 && g.deltaAccuracy === b.groups[i].deltaAccuracy));
  // One compiled session serves every group and batch: the variant count does not grow with more groups.
  const before = model.compiledVariants;
  await ablateUnits(model, data, { site: 'fc1.relu', groups: [[2], [5], [0, 3]], batchSize: 16 });
  assert.equal(model.compiledVariants, before, 'no recompilation per unit');
});

/** The model with each named initializer passed through `edit`. */
function edited(proto: ModelProto, edits: Record<string, (v: Float32Array) => void>): Uint8Array {
  const initializer = proto.graph!.initializer.map((tp) => {
    const fn = edits[tp.name];
    if (!fn) return tp;
    const t = tensorFromProto(tp);
    const data = (t.data as Float32Array).slice();
    fn(data);
    return tensorToProto(Tensor.float32(data, t.shape), tp.name);
  });
  return encodeModel({ ...proto, graph: { ...proto.graph!, initializer } });
}

test('conv channels: zero ablation equals zeroed filters, mean ablation equals the engine\'s own mean intervention', async () => {
  const proto = cnn({ input: [1, 8, 8], channels: [4], classes: 3, seed: 4 });
  const model = await Model.load(encodeModel(proto));
  const rand = mulberry32(9);
  const xs = Float32Array.from({ length: 40 * 64 }, () => rand());
  const ys = Int32Array.from({ length: 40 }, (_, i) => i % 3);
  const data = dataset({
    name: 'images', size: 40, inputShape: [1, 8, 8], inputDType: 'float32', numClasses: 3, labels: ys,
    gather: (ix) => ({ x: Tensor.float32(Array.from(ix).flatMap((i) => [...xs.subarray(64 * i, 64 * i + 64)]), [ix.length, 1, 8, 8]), y: Tensor.int64(Array.from(ix, (i) => ys[i])) }),
  });
  const all = data.gather(Array.from({ length: 40 }, (_, i) => i));
  const score = async (m: Model, ivs: Parameters<Model['run']>[1] = {}) => {
    const z = (await m.run({ x: all.x }, ivs)).outputs.logits.data as Float32Array;
    let loss = 0;
    for (let i = 0; i < 40; i++) {
      const row = [...z.subarray(3 * i, 3 * i + 3)];
      loss += Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[ys[i]];
    }
    return loss / 40;
  };
  const base = await score(model);
  const groups = [[0], [2], [1, 3]];
  const zero = await ablateUnits(model, data, { site: 'c1.relu', groups, batchSize: 16 });
  const maps = (await model.run({ x: all.x }, { capture: ['c1.relu'] })).captures['c1.relu'].data as Float32Array;
  const mean = Float32Array.from({ length: 4 * 64 }, (_, j) => Array.from({ length: 40 }, (_, i) => maps[i * 256 + j]).reduce((a, v) => a + v, 0) / 40);
  const meanAbl = await ablateUnits(model, data, { site: 'c1.relu', groups, replace: 'mean', batchSize: 16 });
  for (const [i, g] of groups.entries()) {
    const ref = await Model.load(edited(proto, {
      'c1.weight': (w) => g.forEach((c) => w.fill(0, c * 9, c * 9 + 9)),
      'c1.bias': (b) => g.forEach((c) => (b[c] = -1)),
    }));
    const dz = (await score(ref)) - base;
    assert.ok(Math.abs(zero.groups[i].deltaLoss - dz) < 1e-5, `zero ${g}: ${zero.groups[i].deltaLoss} vs ${dz}`);
    const dm = (await score(model, { interventions: [{ site: 'c1.relu', kind: 'mean', value: Tensor.float32(mean, [1, 4, 8, 8]), units: g }] })) - base;
    assert.ok(Math.abs(meanAbl.groups[i].deltaLoss - dm) < 1e-5, `mean ${g}: ${meanAbl.groups[i].deltaLoss} vs ${dm}`);
    assert.ok(Math.abs(dz) > 1e-4 && Math.abs(dz - dm) > 1e-5, `the two ablations differ here (${dz}, ${dm}), so the test can tell them apart`);
  }
  assert.equal(zero.checks[0].value, 0, 'no-op check on a conv site');
});

test('bad input: unknown site, unit out of range, empty group, NaN, bad options', async () => {
  const model = await smallMlp(new Array(IN * HID).fill(0.1), new Array(HID).fill(0), new Array(HID * OUT).fill(0.1), new Array(OUT).fill(0));
  const data = synthetic(1);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.rel' }), /unknown site 'fc1.rel'; nearest: fc1.relu/);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', groups: [[6]] }), /group 0 has unit 6, out of range; 'fc1.relu' has 6 units/);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', groups: [[1], []] }), /group 1 is empty/);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', groups: [[NaN]] }), /group 0 has unit NaN, out of range/);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', groups: [[1, 1]] }), /group 0 lists unit 1 twice/);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', batchSize: 0 }), /batchSize must be a positive integer, got 0/);
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', replace: 'noise' as 'zero' }), /replace must be 'zero', 'mean' or 'resample'/);
  const nan = dataset({ ...data, name: 'nan', gather: (ix) => ({ x: Tensor.float32(new Array(IN * ix.length).fill(NaN), [ix.length, IN]), y: data.gather(ix).y }) });
  await assert.rejects(ablateUnits(model, nan, { site: 'fc1.relu' }), /input 'x' holds NaN/);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(ablateUnits(model, data, { site: 'fc1.relu', signal: ac.signal }), /abort/i);
});

test('MNIST MLP: whole-layer ablation falls to chance; Shapley top units hurt more than random ones', async () => {
  const [train, testSet] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const t = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [24], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 2000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  const held = testSet.slice(0, 600);
  const all = Array.from({ length: 24 }, (_, u) => u);
  const seen: number[] = [];
  const whole = await ablateUnits(model, held, { site: 'fc1.relu', groups: [all], randomGroups: 0, onProgress: (d) => seen.push(d) });
  assert.ok(whole.baseline.accuracy > 0.8, `trained accuracy ${whole.baseline.accuracy}`);
  assert.ok(whole.groups[0].metrics.accuracy < 0.2, `all units zeroed: accuracy ${whole.groups[0].metrics.accuracy}`);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  for (const replace of ['mean', 'resample'] as const) {
    const r = await ablateUnits(model, held, { site: 'fc1.relu', groups: [all], replace, randomGroups: 0, seed: 2 });
    assert.ok(r.groups[0].metrics.accuracy < 0.25, `all units ${replace}-ablated: accuracy ${r.groups[0].metrics.accuracy}`);
  }

  const t0 = Date.now();
  const s = await neuronShapley(model, testSet.slice(1000, 1256), { site: 'fc1.relu', metric: 'accuracy', permutations: 12, tolerance: 0.01, seed: 1 });
  const ms = Date.now() - t0;
  assert.ok(s.checks[0].passed, `efficiency: ${s.checks[0].detail}`);
  console.log(`neuron Shapley, 24 units × 12 permutations on 256 images: ${ms} ms, ${s.evaluations} coalitions; ${s.checks[1].detail}`);
  const top = s.ranking.slice(0, 4);
  const cmp = await ablateUnits(model, held, { site: 'fc1.relu', groups: [top], randomGroups: 20, seed: 3 });
  const g = cmp.groups[0];
  console.log(`top-4 Shapley units ${top}: Δacc ${g.deltaAccuracy.toFixed(3)} vs random 4 units ${g.random!.deltaAccuracy.toFixed(3)}`);
  assert.ok(g.deltaAccuracy < g.random!.deltaAccuracy, `top units Δacc ${g.deltaAccuracy} vs random ${g.random!.deltaAccuracy}`);
  assert.equal(typeof ABLATION_METHODS['neuron-shapley'].run, 'function');
  assert.equal(ABLATION_METHODS['neuron-shapley'].info.stochastic, true);
});
