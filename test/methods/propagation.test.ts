/**
 * DeepLIFT (rescale) and LRP as replaced backward rules: closed forms on toys, every LRP rule against an independent
 * plain-JS replica (layer-by-layer relevance on a random bias-free ReLU MLP), conservation and summation-to-delta on
 * PyTorch-exported fixtures, α1β0 non-negativity, and BatchNorm folding on the pretrained PaddleOCR classifier.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { Net } from '../../src/model/builders/net.js';
import { attr, encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { gradient } from '../../src/methods/attribution/gradient.js';
import { deepLift, foldBatchNorm, lrp, propagationMethods, type RuleSpec } from '../../src/methods/attribution/propagation/index.js';
import { PADDLE_CLS, seeded, torchFixture } from '../helpers.js';
import { deepliftToy, lrpToy } from './toys.js';

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
};
const load = (m: ModelProto) => Model.load(encodeModel(m));
const sum = (v: ArrayLike<number>, from = 0, to = v.length) => {
  let s = 0;
  for (let i = from; i < to; i++) s += v[i];
  return s;
};

test('DeepLIFT rescale on 2·ReLU(x1) + 2·ReLU(x2 − 1.5): (2, 1) at (1, 2), (6, 0) at (3, −1), from 0; pairs survive any chunking', async () => {
  const model = await load(deepliftToy());
  const x = Tensor.float32([1, 2, 3, -1], [2, 2]);
  for (const maxBatchBytes of [undefined, 1]) {
    const d = await deepLift(model, { x }, { target: 0, maxBatchBytes });
    // Example 1: ReLU(2 − 1.5) − ReLU(−1.5) = 0.5 over Δx = 2 gives m = 1/4, so 2·(1/4)·2 = 1 (the gradient would say 4).
    close(d.attributions.data, [2, 1, 6, 0], 1e-6, `deeplift (budget ${maxBatchBytes ?? 'default'})`);
    assert.equal(d.checks[0].name, 'summation-to-delta');
    assert.ok(d.checks[0].passed, d.checks[0].detail);
  }
  await model.dispose();
});

test('LRP-ε on Linear(3→3, 2) → ReLU → Linear(3→1, 3) at (1, 2, 3) is (18, 36, 54) and conserves f(x) = 108', async () => {
  const model = await load(lrpToy());
  const r = await lrp(model, { x: Tensor.float32([1, 2, 3], [1, 3]) }, { target: 0, composite: 'epsilon', epsilon: 1e-9 });
  close(r.attributions.data, [18, 36, 54], 1e-4, 'LRP-ε');
  close(r.scores, [108], 1e-4, 'f(x)');
  close(r.checks[0].value as number[], [0], 1e-3, 'conservation');
  await model.dispose();
});

/** A bias-free ReLU MLP 5 → 6 → 4 → 3: layer 0 a Gemm (weight [out, in], transB), layers 1 and 2 MatMuls ([in, out]). */
const SIZES = [5, 6, 4, 3];
function randomMlp(seed: number): { proto: ModelProto; W: number[][][] } {
  const rand = seeded(seed);
  const W = SIZES.slice(1).map((out, l) => Array.from({ length: SIZES[l] }, () => Array.from({ length: out }, () => 2 * rand() - 1)));
  const net = new Net(0);
  const flat = (m: number[][]) => m.flat();
  const t0 = W[0][0].map((_, j) => W[0].map((row) => row[j])); // [out, in]
  let h = net.op('fc0', 'Gemm', ['x', net.param('fc0.weight', Tensor.float32(flat(t0), [6, 5]))], [attr('transB', { int: 1 })]);
  h = net.op('relu0', 'Relu', [h]);
  h = net.op('relu1', 'Relu', [net.op('fc1', 'MatMul', [h, net.param('fc1.weight', Tensor.float32(flat(W[1]), [6, 4]))])]);
  net.op('fc2', 'MatMul', [h, net.param('fc2.weight', Tensor.float32(flat(W[2]), [4, 3]))], [], ['y']);
  const proto = net.model({ name: 'mlp', doc: 'bias-free relu mlp', input: { name: 'x', dtype: 'float32', shape: ['N', 5] }, output: { name: 'y', shape: ['N', 3] } });
  return { proto, W };
}

type Spec = { rule: string; epsilon?: number; gamma?: number; alpha?: number; beta?: number; low?: number | 'example'; high?: number | 'example' };

/** Plain-JS replica: one layer's relevance R_in from R_out, input a and weights w[i][j], by the rule's closed form. */
function replicaLayer(spec: Spec, a: number[], w: number[][], rOut: number[]): number[] {
  const I = a.length;
  const J = rOut.length;
  const stab = (z: number, e: number) => z + (z < 0 ? -e : e);
  const share = (contrib: (i: number, j: number) => number, e = 1e-9) => {
    const r = new Array<number>(I).fill(0);
    for (let j = 0; j < J; j++) {
      let z = 0;
      for (let i = 0; i < I; i++) z += contrib(i, j);
      for (let i = 0; i < I; i++) r[i] += (contrib(i, j) / stab(z, e)) * rOut[j];
    }
    return r;
  };
  const lo = spec.low === 'example' ? Math.min(...a) : spec.low ?? 0;
  const hi = spec.high === 'example' ? Math.max(...a) : spec.high ?? 0;
  switch (spec.rule) {
    case 'zero': return share((i, j) => a[i] * w[i][j]);
    case 'epsilon': return share((i, j) => a[i] * w[i][j], Math.max(spec.epsilon ?? 1e-6, 1e-9));
    case 'gamma': return share((i, j) => a[i] * (w[i][j] + (spec.gamma ?? 0.25) * Math.max(0, w[i][j])));
    case 'zplus': return share((i, j) => Math.max(0, a[i] * w[i][j]));
    case 'alpha-beta': {
      const pos = share((i, j) => Math.max(0, a[i] * w[i][j]));
      const neg = share((i, j) => Math.min(0, a[i] * w[i][j]));
      return pos.map((p, i) => (spec.alpha ?? 1) * p - (spec.beta ?? 0) * neg[i]);
    }
    case 'zbox': return share((i, j) => a[i] * w[i][j] - lo * Math.max(0, w[i][j]) - hi * Math.min(0, w[i][j]));
    case 'flat': return share(() => 1);
    case 'w-square': return share((i, j) => w[i][j] ** 2);
    default: throw new Error(spec.rule);
  }
}

function replica(W: number[][][], x: number[], target: number, first: Spec, hidden: Spec): number[] {
  const acts = [x];
  for (let l = 0; l < W.length; l++) {
    const a = acts[l];
    const z = W[l][0].map((_, j) => a.reduce((s, ai, i) => s + ai * W[l][i][j], 0));
    acts.push(l < W.length - 1 ? z.map((v) => Math.max(0, v)) : z);
  }
  let r = acts[W.length].map((v, j) => (j === target ? v : 0));
  // Through ReLU relevance passes unchanged (a dead unit holds none), so each layer reads the one above directly.
  for (let l = W.length - 1; l >= 0; l--) r = replicaLayer(l === 0 ? first : hidden, acts[l], W[l], r);
  return r;
}

test('every LRP rule matches a plain-JS layer-by-layer replica on a random bias-free ReLU MLP (signed inputs)', async () => {
  const { proto, W } = randomMlp(7);
  const model = await load(proto);
  const rand = seeded(11);
  const N = 3;
  const xs = Array.from({ length: N * 5 }, () => 2 * rand() - 1);
  const x = Tensor.float32(xs, [N, 5]);
  const cases: [Spec, Spec][] = [
    [{ rule: 'zero' }, { rule: 'zero' }],
    [{ rule: 'epsilon', epsilon: 0.1 }, { rule: 'epsilon', epsilon: 0.1 }],
    [{ rule: 'gamma', gamma: 0.25 }, { rule: 'gamma', gamma: 0.5 }],
    [{ rule: 'alpha-beta', alpha: 2, beta: 1 }, { rule: 'alpha-beta', alpha: 2, beta: 1 }],
    [{ rule: 'zplus' }, { rule: 'alpha-beta', alpha: 1, beta: 0 }],
    [{ rule: 'zbox', low: -1, high: 1 }, { rule: 'epsilon', epsilon: 0.01 }],
    [{ rule: 'zbox', low: 'example', high: 'example' }, { rule: 'zplus' }],
    [{ rule: 'flat' }, { rule: 'gamma', gamma: 0.25 }],
    [{ rule: 'w-square' }, { rule: 'zero' }],
  ];
  for (const [first, hidden] of cases) {
    const r = await lrp(model, { x }, { rules: { Gemm: first as RuleSpec, MatMul: hidden as RuleSpec } });
    for (let n = 0; n < N; n++) {
      const want = replica(W, xs.slice(n * 5, n * 5 + 5), r.targets![n], first, hidden);
      const scale = Math.max(1e-3, ...want.map(Math.abs));
      close(r.attributions.data.slice(n * 5, n * 5 + 5), want, 2e-4 * scale, `${first.rule} / ${hidden.rule}, example ${n}`);
    }
  }
  await model.dispose();
});

test('LRP-0 and LRP-ε (small ε) conserve relevance on bias-free ReLU nets: Σ R = f(x); ε > 0 absorbs some', async () => {
  const { proto } = randomMlp(3);
  const model = await load(proto);
  const rand = seeded(5);
  const x = Tensor.float32(Array.from({ length: 4 * 5 }, () => 2 * rand() - 1), [4, 5]);
  for (const composite of ['zero', 'epsilon'] as const) {
    const r = await lrp(model, { x }, { composite, epsilon: 1e-7 });
    for (let n = 0; n < 4; n++) assert.ok(Math.abs(sum(r.attributions.data, n * 5, n * 5 + 5) - r.scores[n]) <= 1e-4 * Math.max(1, Math.abs(r.scores[n])), `${composite} example ${n}`);
  }
  const big = await lrp(model, { x }, { composite: 'epsilon', epsilon: 1 });
  const lost = Array.from({ length: 4 }, (_, n) => Math.abs(sum(big.attributions.data, n * 5, n * 5 + 5)) - Math.abs(big.scores[n]));
  assert.ok(lost.every((d) => d < 0), `ε = 1 should absorb relevance: ${lost}`);
  await model.dispose();
});

test('DeepLIFT sums to f(x) − f(ref) on the PyTorch MLP (Gemm + ReLU with biases), from zero and from another example', async () => {
  const fx = torchFixture('mlp');
  const model = await Model.load(fx.path);
  const x = fx.input as Tensor<'float32'>;
  const zero = await deepLift(model, { x });
  assert.ok(zero.checks[0].passed, zero.checks[0].detail);
  // A tensor reference (example 0 for every example): its own row gets zero attributions.
  const ref = new Tensor('float32', x.data.slice(0, 784), [1, 784]);
  const d = await deepLift(model, { x }, { baseline: ref, target: 3 });
  assert.ok(d.checks[0].passed, d.checks[0].detail);
  close(d.attributions.data.slice(0, 784), new Array(784).fill(0), 0, 'example 0 against itself');
  const deltas = d.checks[0].value as number[];
  assert.ok(deltas.every((v) => Math.abs(v) < 1e-3), `deltas ${deltas}`);
  // Rescale is not the gradient: DeepLIFT differs from gradient × (x − ref), which does not sum to delta here.
  const g = await gradient(model, { x }, { target: 3 });
  const gx = Array.from(g.attributions.data, (v, i) => v * (x.data[i] - ref.data[i % 784]));
  const gap = Math.max(...Array.from(d.attributions.data, (v, i) => Math.abs(v - gx[i])));
  assert.ok(gap > 1e-3, `DeepLIFT equals gradient × Δx (gap ${gap})`);
  await model.dispose();
});

test('DeepLIFT sums to delta on the PyTorch CNN through Conv, ReLU and MaxPool (each window\'s Δy sent to a winner)', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const x = fx.input as Tensor<'float32'>;
  const d = await deepLift(model, { x }, { tolerance: 1e-4 });
  assert.ok(d.checks[0].passed, d.checks[0].detail);
  // From a non-zero reference (a shifted copy), where the winners under x and under the reference differ.
  const ref = new Tensor('float32', x.data.map((v, i) => v * 0.5 + 0.1 * Math.sin(i)), x.shape);
  const r = await deepLift(model, { x }, { baseline: ref, target: 1, tolerance: 1e-4 });
  assert.ok(r.checks[0].passed, r.checks[0].detail);
  // Attributed to a site (the model is cut there): the doubled batch runs through the cut model the same way.
  const site = await deepLift(model, { x }, { wrt: '/relu1/Relu_output_0', tolerance: 1e-4 });
  assert.ok(site.checks[0].passed, site.checks[0].detail);
  assert.deepEqual(site.attributions.shape.slice(0, 2), [4, model.site('/relu1/Relu_output_0').shape![1]]);
  await model.dispose();
});

test('DeepLIFT rescale through Sigmoid and Tanh sums to delta exactly, with a non-zero reference', async () => {
  const net = new Net(2);
  const h = net.op('s', 'Sigmoid', [net.linear('fc0', 'x', 4, 5)]);
  const t = net.op('t', 'Tanh', [net.linear('fc1', h, 5, 3)]);
  net.linear('fc2', t, 3, 2, 'y');
  const model = await load(net.model({ name: 'sig-tanh', doc: '', input: { name: 'x', dtype: 'float32', shape: ['N', 4] }, output: { name: 'y', shape: ['N', 2] } }));
  const rand = seeded(9);
  const x = Tensor.float32(Array.from({ length: 12 }, () => 4 * rand() - 2), [3, 4]);
  const d = await deepLift(model, { x }, { baseline: 0.5, target: 1, tolerance: 1e-4 });
  assert.ok(d.checks[0].passed, d.checks[0].detail);
  await model.dispose();
});

test('LRP-α1β0 relevance is non-negative on the PyTorch CNN (biases, MaxPool) for positive target scores', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const r = await lrp(model, { x: fx.input }, { composite: 'alpha-beta' });
  assert.ok(Array.from(r.scores).every((s) => s > 0), `predicted logits ${r.scores}`);
  const min = Math.min(...r.attributions.data);
  assert.ok(min >= -1e-6, `min relevance ${min}`);
  assert.ok(Math.max(...r.attributions.data) > 0);
  // α2β1 lets negative relevance through.
  const ab = await lrp(model, { x: fx.input }, { rules: { Conv: { rule: 'alpha-beta', alpha: 2, beta: 1 }, Gemm: { rule: 'alpha-beta', alpha: 2, beta: 1 } } });
  assert.ok(Math.min(...ab.attributions.data) < 0);
  await model.dispose();
});

test('BatchNorm folds into the preceding Conv: PaddleOCR classifier (opset 9, weights in Constant nodes) unchanged within 1e-5', async () => {
  const model = await Model.load(PADDLE_CLS);
  const { graph, count } = foldBatchNorm(model.graph);
  assert.equal(count, 35);
  assert.equal(graph.opHistogram().get('BatchNormalization'), undefined);
  const folded = await Model.load(graph.encode());
  const rand = seeded(1);
  const x = Tensor.float32(Array.from({ length: 2 * 3 * 48 * 192 }, () => 2 * rand() - 1), [2, 3, 48, 192]);
  const site = 'hardswish_17.tmp_0'; // the last feature map, after every folded layer
  const [a, b] = await Promise.all([model.run({ x }, { capture: [site, 'p2o.Add.87'] }), folded.run({ x }, { capture: [site, 'p2o.Add.87'] })]);
  const out = model.outputs[0].name;
  close(b.outputs[out].data as Float32Array, a.outputs[out].data as Float32Array, 1e-5, 'softmax');
  close(b.captures['p2o.Add.87'].data as Float32Array, a.captures['p2o.Add.87'].data as Float32Array, 1e-5, 'logits');
  const feats = a.captures[site].data as Float32Array;
  const scale = Math.max(1, ...Array.from(feats, Math.abs));
  close(b.captures[site].data as Float32Array, feats, 1e-5 * scale, 'features');
  await Promise.all([model.dispose(), folded.dispose()]);
});

test('LRP names what it cannot do: an op with no rule, an input rule on a hidden layer, an unknown layer or composite', async () => {
  const model = await Model.load(PADDLE_CLS);
  const x = Tensor.float32(new Float32Array(3 * 48 * 192).fill(0.1), [1, 3, 48, 192]);
  await assert.rejects(lrp(model, { x }), /LRP: no rule for .*Clip.*first: Clip 'p2o\.Clip\.0'/);
  await model.dispose();
  const { proto } = randomMlp(1);
  const mlp = await load(proto);
  const y = Tensor.float32([1, 2, 3, 4, 5], [1, 5]);
  await assert.rejects(lrp(mlp, { x: y }, { rules: { MatMul: 'flat' } }), /input-layer rule, but MatMul '\/fc1\/MatMul' is not fed/);
  await assert.rejects(lrp(mlp, { x: y }, { rules: { '/fc9/MatMul': 'zero' } }), /unknown LRP layer .*'\/fc9\/MatMul'.*nearest/);
  await assert.rejects(lrp(mlp, { x: y }, { composite: 'epsilon-minus' as never }), /unknown LRP composite 'epsilon-minus'/);
  await assert.rejects(lrp(mlp, { x: y }, { rules: { Gemm: { rule: 'alpha-beta', alpha: 2, beta: 0 } } }), /α − β = 1/);
  await assert.rejects(lrp(mlp, { x: y }, { wrt: '/fc0/Gemm_output_0' }), /'\/fc0\/Gemm_output_0' reaches Relu '\/relu0\/Relu' before any linear layer/);
  await mlp.dispose();
});

test('every propagation registry entry runs on the PyTorch MLP: right shape, finite, and deeplift claims completeness', async () => {
  const fx = torchFixture('mlp');
  const model = await Model.load(fx.path);
  for (const [name, entry] of Object.entries(propagationMethods)) {
    const r = await entry.explain(model, { x: fx.input }, { target: 2 });
    assert.deepEqual(r.attributions.shape, [4, 784], name);
    assert.ok(Array.from(r.attributions.data).every(Number.isFinite), name);
    assert.ok(Array.from(r.attributions.data).some((v) => v !== 0), name);
    assert.equal(r.taxonomy.zhang.scope, 'local');
    if ((entry.info as { complete?: boolean }).complete) assert.ok(r.checks[0].passed, `${name}: ${r.checks[0].detail}`);
  }
  await model.dispose();
});

test('LRP ε-plus on the PyTorch CNN (zᴮ on the input Conv, z⁺ on the next, ε on the Gemm) is finite and batch-invariant', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const x = fx.input as Tensor<'float32'>;
  const all = await lrp(model, { x }, { composite: 'epsilon-plus', target: 4 });
  assert.deepEqual(all.params.rules, { '/c1/Conv': '{"rule":"zbox"}', '/c2/Conv': 'zplus', '/fc/Gemm': '{"rule":"epsilon"}' });
  assert.ok(Array.from(all.attributions.data).every(Number.isFinite));
  const one = await lrp(model, { x: new Tensor('float32', x.data.slice(784, 1568), [1, 1, 28, 28]) }, { composite: 'epsilon-plus', target: 4 });
  close(one.attributions.data, all.attributions.data.slice(784, 1568), 1e-5 * Math.max(1, ...Array.from(one.attributions.data, Math.abs)), 'example 1 alone');
  await model.dispose();
});
