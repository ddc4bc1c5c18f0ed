import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { symmetricEigen } from '../../../src/methods/attribution/global/eigen.js';
import { kmeans } from '../../../src/methods/attribution/global/kmeans.js';
import { correlationAffinity, partitionActivations, partitionWeights, PARTITION_METHODS } from '../../../src/methods/subnetworks/partition.js';
import { adjacency, ncut, spectralPartition, unitGraph } from '../../../src/methods/subnetworks/unit-graph.js';
import { tridiagonalEigen } from '../../../src/methods/subnetworks/spectral.js';
import { mlp } from '../../../src/model/builders/mlp.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { attr, encodeModel } from '../../../src/onnx/proto.js';
import { tensorFromProto } from '../../../src/onnx/tensor-proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { seeded, torchFixture } from '../../helpers.js';

const cluster = (points: Float64Array, n: number, d: number, k: number) => kmeans(points, n, d, k, { seed: 0 }).assignments;

/** Two disconnected sub-networks side by side: widths per block, each weight non-zero inside its block, 0 across. */
const BLOCK = { in: 4, h1: 6, h2: 5, out: 2 };

function blockWeights(rand: () => number, rows: number, cols: number, rowsPer: number, colsPer: number): Float32Array {
  const w = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (Math.floor(r / rowsPer) === Math.floor(c / colsPer)) w[r * cols + c] = (rand() < 0.5 ? -1 : 1) * (0.3 + 0.7 * rand());
    }
  }
  return w;
}

/**
 * x [N, 8] → fc1 (Gemm, W [out, in], transB = 1) → relu → fc2 (MatMul, W [in, out]) + bias → relu → fc3 (Gemm,
 * W [in, out], transB = 0): the three layouts of a dense layer, all block-diagonal with two blocks.
 */
function twoBlockModel(seed: number) {
  const rand = seeded(seed);
  const net = new Net(seed);
  const b = BLOCK;
  const w1 = blockWeights(rand, 2 * b.h1, 2 * b.in, b.h1, b.in); // [out, in]
  const w2t = blockWeights(rand, 2 * b.h2, 2 * b.h1, b.h2, b.h1); // [out, in], stored transposed below
  const w3t = blockWeights(rand, 2 * b.out, 2 * b.h2, b.out, b.h2);
  const transpose = (w: Float32Array, rows: number, cols: number) => Float32Array.from({ length: rows * cols }, (_, i) => w[(i % rows) * cols + Math.floor(i / rows)]);
  const bias = (n: number) => Tensor.float32(new Float32Array(n).fill(0.1), [n]);
  let h = net.op('fc1', 'Gemm', ['x', net.param('fc1.weight', Tensor.float32(w1, [2 * b.h1, 2 * b.in])), net.param('fc1.bias', bias(2 * b.h1))], [attr('transB', { int: 1 })]);
  h = net.op('relu1', 'Relu', [h]);
  h = net.op('fc2', 'MatMul', [h, net.param('fc2.weight', Tensor.float32(transpose(w2t, 2 * b.h2, 2 * b.h1), [2 * b.h1, 2 * b.h2]))]);
  h = net.op('fc2', 'Add', [h, net.param('fc2.bias', bias(2 * b.h2))]);
  h = net.op('relu2', 'Relu', [h]);
  net.op('fc3', 'Gemm', [h, net.param('fc3.weight', Tensor.float32(transpose(w3t, 2 * b.out, 2 * b.h2), [2 * b.h2, 2 * b.out])), net.param('fc3.bias', bias(2 * b.out))], [], ['logits']);
  const proto = net.model({ name: 'two-blocks', doc: 'block-diagonal MLP', input: { name: 'x', dtype: 'float32', shape: ['N', 2 * b.in] }, output: { name: 'logits', shape: ['N', 2 * b.out] } });
  return { proto, w1, w2t, w3t };
}

/** Block of each unit (0 or 1) in layer order: inputs (optional), fc1, fc2, fc3. */
function blockOf(inputs: boolean): number[] {
  const b = BLOCK;
  const sizes = inputs ? [b.in, b.h1, b.h2, b.out] : [b.h1, b.h2, b.out];
  return sizes.flatMap((s) => [...Array<number>(s).fill(0), ...Array<number>(s).fill(1)]);
}

/** The partition equals the blocks up to the names of the clusters. */
function assertSeparates(assignments: ArrayLike<number>, blocks: number[], what: string): void {
  const first = assignments[0];
  for (let i = 0; i < blocks.length; i++) assert.equal(assignments[i] === first, blocks[i] === 0, `${what}: unit ${i} (block ${blocks[i]}) is in cluster ${assignments[i]}`);
}

test('n-cut of a hand-made graph and the spectral partition that finds it', () => {
  // 0 —3— 1 —1— 2 —2— 3: cutting the middle edge gives cut 1 on each side, vol{0,1} = 3 + 4 = 7, vol{2,3} = 3 + 2 = 5.
  const a = new Float64Array(16);
  const edge = (i: number, j: number, w: number) => ((a[i * 4 + j] = w), (a[j * 4 + i] = w));
  edge(0, 1, 3);
  edge(1, 2, 1);
  edge(2, 3, 2);
  assert.ok(Math.abs(ncut(a, 4, [0, 0, 1, 1], 2) - (1 / 7 + 1 / 5)) < 1e-15);
  // {0}, {1, 2, 3}: cut 3; vol{0} = 3, vol{1,2,3} = 4 + 3 + 2 = 9.
  assert.ok(Math.abs(ncut(a, 4, [0, 1, 1, 1], 2) - (3 / 3 + 3 / 9)) < 1e-15);
  const p = spectralPartition(a, 4, 2, cluster);
  assert.deepEqual([p.assignments[0] === p.assignments[1], p.assignments[2] === p.assignments[3], p.assignments[1] === p.assignments[2]], [true, true, false]);
  assert.ok(Math.abs(p.ncut - 12 / 35) < 1e-12);
});

test('normalised Laplacian of two cliques: eigenvalues 0, 0, then m/(m − 1), and the null space their indicators', () => {
  const sizes = [3, 4];
  const n = 7;
  const block = (i: number) => (i < 3 ? 0 : 1);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j && block(i) === block(j)) a[i * n + j] = 1;
  const deg = Array.from({ length: n }, (_, i) => sizes[block(i)] - 1);
  const lap = Float64Array.from(a, (v, idx) => (Math.floor(idx / n) === idx % n ? 1 : 0) - v / Math.sqrt(deg[Math.floor(idx / n)] * deg[idx % n]));
  const { values, vectors } = tridiagonalEigen(lap, n);
  const expected = [0, 0, 4 / 3, 4 / 3, 4 / 3, 3 / 2, 3 / 2];
  values.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12, `λ${i} = ${v}, expected ${expected[i]}`));
  // Each null vector lies in span{D^{1/2} 1_A, D^{1/2} 1_B}: constant on each clique (all degrees equal within one).
  for (const j of [0, 1]) {
    for (let i = 1; i < n; i++) if (block(i) === block(i - 1)) assert.ok(Math.abs(vectors[i * n + j] - vectors[(i - 1) * n + j]) < 1e-12, `vector ${j} not constant on a clique`);
  }
  const p = spectralPartition(a, n, 2, cluster);
  assertSeparates(p.assignments, Array.from({ length: n }, (_, i) => block(i)), 'two cliques');
  assert.equal(p.ncut, 0);
});

test('tridiagonal eigen-solver agrees with the Jacobi reference on a random symmetric matrix', () => {
  const n = 30;
  const r = seeded(7);
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = r() - 0.5;
  const fast = tridiagonalEigen(m, n);
  const ref = symmetricEigen(m, n);
  for (let j = 0; j < n; j++) {
    assert.ok(Math.abs(fast.values[j] - ref.values[j]) < 1e-12);
    let res = 0;
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let k = 0; k < n; k++) av += m[i * n + k] * fast.vectors[k * n + j];
      res = Math.max(res, Math.abs(av - fast.values[j] * fast.vectors[i * n + j]));
    }
    assert.ok(res < 1e-12, `residual ${res} of pair ${j}`);
  }
});

test('two disconnected sub-networks: the weight partition finds them exactly, n-cut 0, clusterable; activations too', async () => {
  const { proto, w1, w2t } = twoBlockModel(3);
  const model = await Model.load(encodeModel(proto));
  // Edge strengths are |W| as [out, in] whatever the layout (Gemm transB = 1, MatMul [in, out], Gemm [in, out]).
  const g = unitGraph(model.graph, { inputs: true });
  assert.deepEqual(g.layers.map((l) => l.units), [8, 12, 10, 4]);
  assert.deepEqual(Array.from(g.edges[0].weights), Array.from(w1, Math.abs));
  assert.deepEqual(Array.from(g.edges[1].weights), Array.from(w2t, Math.abs));
  for (const inputs of [true, false]) {
    const p = partitionWeights(model, { k: 2, inputs, shuffles: 20, seed: 1 });
    assertSeparates(p.assignments, blockOf(inputs), `weights (inputs ${inputs})`);
    assert.deepEqual(p.sizes, inputs ? [17, 17] : [13, 13]);
    assert.ok(p.ncut < 1e-12, `n-cut ${p.ncut}`);
    assert.ok(Math.abs(p.eigenvalues[1]) < 1e-12 && p.eigenvalues[2] > 0.05, `eigenvalues ${p.eigenvalues}`);
    assert.ok(Math.min(...p.baseline.ncuts) > 0.05, 'every shuffle connects the blocks');
    assert.equal(p.baseline.percentile, 0);
    assert.equal(p.checks[0].name, 'clusterable');
    assert.equal(p.checks[0].passed, true, p.checks[0].detail);
    assert.ok(p.baseline.z < -3, `z ${p.baseline.z}`);
  }
  const r = seeded(11);
  const x = Tensor.float32(Array.from({ length: 400 * 8 }, () => 2 * r() - 1), [400, 8]);
  const a = await partitionActivations(model, x, { k: 2, shuffles: 20, seed: 1, batchSize: 150 });
  assertSeparates(a.assignments, blockOf(false), 'activations');
  assert.equal(a.checks[0].passed, true, a.checks[0].detail);
  assert.equal(a.params.examples, 400);
});

test('two disconnected conv sub-networks: channels (kernel-slice L1) and the flattened dense layer split exactly', async () => {
  // x [N, 2, 6, 6] → c1 (4 ← 2) → relu → c2 (4 ← 4) → relu → maxpool 2 → flatten [N, 36] → fc (4 ← 36, transB);
  // channels 0–1 (and input channel 0, outputs 0–1) form one block, channels 2–3 (input channel 1, outputs 2–3) the other.
  const rand = seeded(9);
  const net = new Net(9);
  const nz = () => (rand() < 0.5 ? -1 : 1) * (0.3 + 0.7 * rand());
  const kernel = (out: number, inp: number, perIn: number) =>
    Tensor.float32(Array.from({ length: out * inp * 9 }, (_, i) => (Math.floor(Math.floor(i / 9) / inp / 2) === Math.floor((Math.floor(i / 9) % inp) / perIn) ? nz() : 0)), [out, inp, 3, 3]);
  const conv = [attr('kernel_shape', { ints: [3, 3] }), attr('pads', { ints: [1, 1, 1, 1] })];
  let h = net.op('c1', 'Conv', ['x', net.param('c1.weight', kernel(4, 2, 1))], conv);
  h = net.op('relu1', 'Relu', [h]);
  h = net.op('c2', 'Conv', [h, net.param('c2.weight', kernel(4, 4, 2))], conv);
  h = net.op('relu2', 'Relu', [h]);
  h = net.op('pool', 'MaxPool', [h], [attr('kernel_shape', { ints: [2, 2] }), attr('strides', { ints: [2, 2] })]);
  h = net.op('flatten', 'Flatten', [h], [attr('axis', { int: 1 })]);
  const fc = Float32Array.from({ length: 4 * 36 }, (_, i) => (Math.floor(i / 36 / 2) === Math.floor((i % 36) / 18) ? nz() : 0));
  net.op('fc', 'Gemm', [h, net.param('fc.weight', Tensor.float32(fc, [4, 36]))], [attr('transB', { int: 1 })], ['logits']);
  const model = await Model.load(encodeModel(net.model({ name: 'conv-blocks', doc: '', input: { name: 'x', dtype: 'float32', shape: ['N', 2, 6, 6] }, output: { name: 'logits', shape: ['N', 4] } })));
  const g = unitGraph(model.graph);
  assert.deepEqual(g.layers.map((l) => l.units), [2, 4, 4, 4]);
  assert.ok(Math.abs(g.edges[2].weights[1 * 4 + 1] - fc.subarray(36 + 9, 36 + 18).reduce((a, v) => a + Math.abs(v), 0)) < 1e-5);
  const blocks = [0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1];
  const p = partitionWeights(model, { k: 2, shuffles: 20, seed: 0 });
  assertSeparates(p.assignments, blocks, 'conv weights');
  assert.ok(p.ncut < 1e-12 && p.checks[0].passed === true, p.checks[0].detail);
  const r = seeded(2);
  const x = Tensor.float32(Array.from({ length: 300 * 72 }, () => 2 * r() - 1), [300, 2, 6, 6]);
  const a = await partitionActivations(model, x, { k: 2, shuffles: 20, seed: 0 });
  assert.deepEqual(a.layers.map((l) => l.units), [4, 4, 4]);
  assertSeparates(a.assignments, blocks.slice(2), 'conv activations');
  assert.equal(a.checks[0].passed, true, a.checks[0].detail);
});

test('a fully connected MLP with i.i.d. weights is not clusterable (the check fails when it should)', async () => {
  // PyTorch-style init, every weight U(−1/√fan_in, 1/√fan_in): the network is exchangeable with its shuffles.
  const model = await Model.load(encodeModel(mlp({ inputs: 16, hidden: [24, 16], classes: 8, seed: 5 })));
  for (const k of [2, 4]) {
    const p = partitionWeights(model, { k, inputs: true, shuffles: 20, seed: 0 });
    assert.equal(p.checks[0].passed, false, p.checks[0].detail);
    assert.ok(p.baseline.p > 0.2 && Math.abs(p.baseline.z) < 2, p.checks[0].detail);
  }
});

test('PyTorch-exported fixtures: Gemm transB and conv channels read right; initial weights are not clusterable', async () => {
  const m = await Model.load(torchFixture('mlp').path);
  const p = partitionWeights(m, { k: 4, inputs: false, shuffles: 20, seed: 0 });
  assert.deepEqual(p.layers.map((l) => l.units), [128, 64, 10]);
  assert.deepEqual(partitionWeights(m, { k: 4, shuffles: 1 }).layers.map((l) => [l.op, l.units]), [['Input', 784], ['Gemm', 128], ['Gemm', 64], ['Gemm', 10]]);
  // The fixtures are PyTorch-initialised (scripts/export_fixtures.py), not trained: i.i.d. weights.
  assert.equal(p.checks[0].passed, false, p.checks[0].detail);
  const c = await Model.load(torchFixture('cnn').path);
  const g = unitGraph(c.graph, { inputs: false });
  assert.deepEqual(g.layers.map((l) => [l.op, l.units]), [['Conv', 32], ['Conv', 64], ['Gemm', 10]]);
  // c2: edge (o, i) = Σ |W[o, i, :, :]|; fc after flatten of [64, 14, 14]: edge (o, c) = Σ |W[o, 196c … 196c + 195]|.
  const c2 = tensorFromProto(c.graph.initializers.get('c2.weight')!).data as Float32Array;
  const fc = tensorFromProto(c.graph.initializers.get('fc.weight')!).data as Float32Array;
  const sumAbs = (d: Float32Array, from: number, len: number) => d.subarray(from, from + len).reduce((s, v) => s + Math.abs(v), 0);
  assert.ok(Math.abs(g.edges[0].weights[5 * 32 + 7] - sumAbs(c2, (5 * 32 + 7) * 9, 9)) < 1e-6);
  assert.ok(Math.abs(g.edges[1].weights[3 * 64 + 40] - sumAbs(fc, 3 * 12544 + 40 * 196, 196)) < 1e-5);
  const fro = unitGraph(c.graph, { norm: 'fro', inputs: false });
  const sq = c2.subarray((5 * 32 + 7) * 9, (5 * 32 + 8) * 9).reduce((s, v) => s + v * v, 0);
  assert.ok(Math.abs(fro.edges[0].weights[5 * 32 + 7] - Math.sqrt(sq)) < 1e-6);
  const pc = partitionWeights(c, { k: 4, shuffles: 20, seed: 0 });
  assert.equal(pc.layers[0].units, 1);
  assert.equal(pc.checks[0].passed, false, pc.checks[0].detail);
});

test('an MNIST-trained MLP cuts better than its shuffles and than its initialisation; reproducible; activations clusterable', async () => {
  const [train, testSet] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const proto = mlp({ inputs: [1, 28, 28], hidden: [64, 32], classes: 10, seed: 1 });
  const init = partitionWeights(await Model.load(encodeModel(proto)), { k: 4, shuffles: 20, seed: 3 });
  const t = await Trainer.create(proto, { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 2000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  const a = partitionWeights(model, { k: 4, shuffles: 20, seed: 3 });
  console.log(`MNIST MLP 784-64-32-10 at init: ${init.checks[0].detail}`);
  console.log(`MNIST MLP 784-64-32-10 after 2 epochs on 2000: ${a.checks[0].detail}`);
  // Measured: init z = 0.46 (p = 0.76); trained z = −1.82 (p = 0.095). Filan et al. find trained MLPs more clusterable
  // than their shuffles (and than at initialisation); this short training moves the network that way, not yet to p < 0.05.
  assert.equal(init.checks[0].passed, false, init.checks[0].detail);
  assert.ok(a.baseline.z < init.baseline.z && a.ncut < a.baseline.mean, a.checks[0].detail);
  // The same seed gives the same partition and the same shuffles (shuffle i depends on seed and i only).
  const b = partitionWeights(model, { k: 4, shuffles: 3, seed: 3 });
  assert.deepEqual(Array.from(b.assignments), Array.from(a.assignments));
  assert.deepEqual(b.baseline.ncuts, a.baseline.ncuts.slice(0, 3));
  const hidden = (seed: number) => partitionWeights(model, { k: 4, inputs: false, shuffles: 3, seed }).baseline.ncuts;
  assert.deepEqual(hidden(3), hidden(3));
  assert.notDeepEqual(hidden(4), hidden(3));
  const act = await partitionActivations(model, testSet, { k: 4, examples: 500, shuffles: 20, seed: 0 });
  console.log(`MNIST MLP activations: ${act.checks[0].detail}`);
  assert.equal(act.checks[0].passed, true, act.checks[0].detail);
});

test('correlation affinity: |r| against a closed form, constant units unconnected', () => {
  // Columns: u, 2u + 1 (r = 1), −u (r = −1 → 1), a constant (no edges).
  const u = [1, 2, 4, 7];
  const x = u.flatMap((v) => [v, 2 * v + 1, -v, 5]);
  const a = correlationAffinity(x, 4, 4);
  assert.ok(Math.abs(a[0 * 4 + 1] - 1) < 1e-12 && Math.abs(a[0 * 4 + 2] - 1) < 1e-12);
  assert.deepEqual([a[3], a[7], a[11], a[0]], [0, 0, 0, 0]);
});

test('bad input: k out of range, unsupported nodes and branches named', async () => {
  const model = await Model.load(encodeModel(twoBlockModel(3).proto));
  assert.throws(() => partitionWeights(model, { k: 1 }), /k must be an integer ≥ 2, got 1/);
  assert.throws(() => partitionWeights(model, { k: 35 }), /k = 35 exceeds the 34 units/);
  assert.throws(() => partitionWeights(model, { k: 27, inputs: false }), /k = 27 exceeds the 26 units/);
  assert.throws(() => partitionWeights(model, { k: 2.5 }), /k must be an integer/);
  assert.throws(() => partitionWeights(model, { shuffles: 0 }), /shuffles must be a positive integer/);
  await assert.rejects(partitionActivations(model, Tensor.float32([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8], [2, 8])), /at least 3 examples/);
  const net = new Net(1);
  let h = net.linear('fc1', 'x', 4, 6);
  h = net.op('norm', 'Softmax', [h], [attr('axis', { int: 1 })]);
  net.linear('fc2', h, 6, 3, 'y');
  const soft = await Model.load(encodeModel(net.model({ name: 'soft', doc: '', input: { name: 'x', dtype: 'float32', shape: ['N', 4] }, output: { name: 'y', shape: ['N', 3] } })));
  assert.throws(() => partitionWeights(soft, { k: 2 }), /'\/norm\/Softmax' \(Softmax\) mixes the units before the weight node '\/fc2\/Gemm'/);
  const net2 = new Net(1);
  const h2 = net2.linear('fc1', 'x', 4, 6);
  net2.op('act', 'LpNormalization', [h2], [attr('axis', { int: 1 })], ['y']);
  const lp = await Model.load(encodeModel(net2.model({ name: 'lp', doc: '', input: { name: 'x', dtype: 'float32', shape: ['N', 4] }, output: { name: 'y', shape: ['N', 6] } })));
  assert.throws(() => partitionWeights(lp, { k: 2 }), /node '\/act\/LpNormalization' \(LpNormalization\) is unsupported/);
  const resnet = await Model.load(torchFixture('resnet18').path, { probe: false });
  assert.throws(() => unitGraph(resnet.graph), /branches into '\/layer1\/layer1.0\/conv1\/Conv' \(Conv\) and '\/layer1\/layer1.0\/Add' \(Add\)/);
  const nan = new Float64Array([0, NaN, NaN, 0]);
  assert.throws(() => spectralPartition(nan, 2, 2, cluster), /affinity \(0, 1\) is NaN/);
  assert.equal(PARTITION_METHODS['spectral-partition-weights'].info.taxonomy.rauker?.section, 'IV: modular partitioning');
  assert.ok(adjacency(unitGraph(model.graph)).every((v) => v >= 0));
});
