/** Guided backprop, DeconvNet, Grad-CAM, layer and neuron attribution against hand-computed values and the PyTorch CNN. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Net } from '../../src/model/builders/net.js';
import { Model } from '../../src/model/model.js';
import { attr, encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { deconvNet, guidedBackprop } from '../../src/methods/attribution/backprop.js';
import { defaultCamSite, gradCam, guidedGradCam } from '../../src/methods/attribution/cam.js';
import { gradient } from '../../src/methods/attribution/gradient.js';
import { hiddenAttributionMethods } from '../../src/methods/attribution/hidden-index.js';
import { layerActivationXGradient, layerConductance, layerIntegratedGradients } from '../../src/methods/attribution/layer.js';
import { neuronConductance, neuronGradient, neuronIntegratedGradients } from '../../src/methods/attribution/neuron.js';
import { torchFixture } from '../helpers.js';
import { igToy } from './toys.js';

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
};
const t = (values: number[], shape: number[]) => Tensor.float32(values, shape);
const load = (m: ModelProto) => Model.load(encodeModel(m));
const finish = (net: Net, input: (string | number)[], name: string, output: (string | number)[] = ['N', 1]) =>
  net.model({ name, doc: name, input: { name: 'x', dtype: 'float32', shape: input }, output: { name: 'y', shape: output } });

/** y = ReLU(v · ReLU(W x) + 3), z = W x = (x1 − x2, 2x1 + x2, −x1 + x2), v = (1, −1, 2). */
function reluMlp(): ModelProto {
  const net = new Net(0);
  const z = net.op('fc1', 'MatMul', ['x', net.param('fc1.weight', t([1, 2, -1, -1, 1, 1], [2, 3]))]);
  const h = net.op('h', 'Relu', [z]);
  const s = net.op('fc2', 'MatMul', [h, net.param('fc2.weight', t([1, -1, 2], [3, 1]))]);
  net.op('out', 'Relu', [net.op('bias', 'Add', [s, net.constant('bias', t([3], []))])], [], ['y']);
  return finish(net, ['N', 2], 'relu-mlp');
}

/** A [N, 2, 2, 2] = (S, −S) with S the 2×2 block sums of x [N, 1, 4, 4]; y = Σ U ⊙ A, U = ((1, 3, 0, 0), (2, 0, 0, 0)). */
function camToy(): ModelProto {
  const net = new Net(0);
  const w = net.param('conv.weight', t([1, 1, 1, 1, -1, -1, -1, -1], [2, 1, 2, 2]));
  const a = net.op('conv', 'Conv', ['x', w], [attr('kernel_shape', { ints: [2, 2] }), attr('strides', { ints: [2, 2] })]);
  const f = net.op('flatten', 'Flatten', [a], [attr('axis', { int: 1 })]);
  net.op('head', 'MatMul', [f, net.param('head.weight', t([1, 3, 0, 0, 2, 0, 0, 0], [8, 1]))], [], ['y']);
  return finish(net, ['N', 1, 4, 4], 'cam-toy');
}

/** h = ReLU(x W + c), W columns (1, −2, 0.5) and (2, 1, −1), c = (0.5, −1); y = h0 − h1. */
function linearRelu(): ModelProto {
  const net = new Net(0);
  const z = net.op('fc', 'Add', [net.op('fc', 'MatMul', ['x', net.param('fc.weight', t([1, 2, -2, 1, 0.5, -1], [3, 2]))]), net.param('fc.bias', t([0.5, -1], [2]))]);
  const h = net.op('h', 'Relu', [z]);
  net.op('out', 'MatMul', [h, net.param('out.weight', t([1, -1], [2, 1]))], [], ['y']);
  return finish(net, ['N', 3], 'linear-relu');
}

test('guided backprop and DeconvNet on a ReLU MLP: hand-computed, and unlike the gradient', async () => {
  const model = await load(reluMlp());
  // (1, 2): z = (−1, 4, 1); (2, −1): z = (3, 3, −3); (4, 0): z = (4, 8, −4) and the output ReLU is off (pre-activation −1).
  const x = t([1, 2, 2, -1, 4, 0], [3, 2]);
  const g = await gradient(model, { x }, { target: 0 });
  close(g.attributions.data, [-4, 1, -1, -2, 0, 0], 1e-6, 'gradient');
  const gb = await guidedBackprop(model, { x }, { target: 0 });
  close(gb.attributions.data, [-2, 2, 1, -1, 0, 0], 1e-6, 'guided backprop');
  const dn = await deconvNet(model, { x }, { target: 0 });
  // DeconvNet ignores the forward pass: the same (−1, 1) everywhere, even where the output ReLU is off.
  close(dn.attributions.data, [-1, 1, -1, 1, -1, 1], 1e-6, 'deconvnet');
  assert.equal(gb.method, 'guided-backprop');
  assert.equal(dn.checks[0].value, 2, 'two Relu nodes use the rule');
  close(gb.scores, [1, 3, 0], 1e-6, 'scores');
  // Through the registry, at a site: above h.relu only the output ReLU remains, so the guided gradient is v where it is on.
  const atSite = await hiddenAttributionMethods['guided-backprop'].explain(model, { x }, { target: 0, wrt: 'h.relu' });
  close(atSite.attributions.data, [1, -1, 2, 1, -1, 2, 0, 0, 0], 1e-6, 'guided backprop at h.relu');
  await model.dispose();
});

test('Grad-CAM on a conv toy: α = spatial mean of the gradient, ReLU, half-pixel bilinear upsampling', async () => {
  const model = await load(camToy());
  assert.equal(defaultCamSite(model), 'conv.conv');
  // Block sums S = [[4, −2], [1, 0]].
  const x = t([1, 1, -1, 0, 1, 1, 0, -1, 1, 0, 2, -2, 0, 0, 0, 0], [1, 1, 4, 4]);
  const cam = await gradCam(model, { x }, { target: 0 });
  close((cam.extra!.weights as Tensor<'float32'>).data, [1, 0.5], 1e-6, 'α');
  close((cam.extra!.cam as Tensor<'float32'>).data, [2, 0, 0.5, 0], 1e-6, 'cam = ReLU(0.5 S)');
  const up = [2, 1.5, 0.5, 0, 1.625, 1.21875, 0.40625, 0, 0.875, 0.65625, 0.21875, 0, 0.5, 0.375, 0.125, 0];
  close(cam.attributions.data, up, 1e-6, 'upsampled');
  assert.deepEqual(cam.attributions.shape, [1, 1, 4, 4]);
  assert.equal(cam.params.site, 'conv.conv');
  // No ReLU in the model: guided backprop is the gradient, (−1, 3, 0, 0) per 2×2 block.
  const ggc = await guidedGradCam(model, { x }, { target: 0 });
  const grad = [-1, -1, 3, 3, -1, -1, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0];
  close(ggc.attributions.data, up.map((v, i) => v * grad[i]), 1e-6, 'guided Grad-CAM');
  assert.equal(ggc.checks.find((c) => c.name === 'relu nodes')?.value, 0);
  await assert.rejects(gradCam(model, { x }, { target: 0, site: 'flatten.flatten' }), /'flatten\.flatten' is \[1, 8\], not a feature map.*conv\.conv/);
  await model.dispose();
});

test('layer conductance, layer IG and layer activation × gradient on ReLU(ReLU(x1) − 1 − ReLU(x2))', async () => {
  const model = await load(igToy());
  const x = t([3, 1, 5, 1], [2, 2]);
  // From 0: h = α x, kinks at α = 1/2 and 1/4 (grid points of 20 intervals): cond = (1.5, −0.5) and (3.75, −0.75).
  const lc = await layerConductance(model, { x }, { target: 0, site: 'r.relu', steps: 20 });
  close(lc.attributions.data, [1.5, -0.5, 3.75, -0.75], 1e-5, 'conductance');
  assert.equal(lc.checks[0].name, 'completeness');
  assert.ok(lc.checks[0].passed, lc.checks[0].detail);
  close(lc.checks[0].value as number[], [0, 0], 1e-5, 'Σ − (f(x) − f(b))');
  // From b = (−1, 0): h1 = ReLU(4α − 1) is not linear in α; the output turns on at α = 2/3 → (4/3, −1/3).
  const b = t([-1, 0], [2]);
  const lcb = await layerConductance(model, { x: t([3, 1], [1, 2]) }, { target: 0, site: 'r.relu', steps: 12, baseline: b });
  close(lcb.attributions.data, [4 / 3, -1 / 3], 1e-5, 'conductance from (−1, 0)');
  // Layer IG walks straight from h(b) = (0, 0) to h(x) = (3, 1) instead: (1.5, −0.5).
  const lig = await layerIntegratedGradients(model, { x: t([3, 1], [1, 2]) }, { target: 0, site: 'r.relu', steps: 20, method: 'riemann-middle', baseline: b });
  close(lig.attributions.data, [1.5, -0.5], 1e-5, 'layer IG');
  assert.ok(lig.checks[0].passed, lig.checks[0].detail);
  assert.equal(lig.method, 'layer-integrated-gradients');
  assert.equal(lig.taxonomy.rauker?.section, 'III-E');
  const lag = await layerActivationXGradient(model, { x }, { target: 0, site: 'r.relu' });
  close(lag.attributions.data, [3, -1, 5, -1], 1e-6, 'h ⊙ ∂f/∂h');
  await assert.rejects(layerConductance(model, { x }, { target: 0 }), /name a hidden site with \{ site \}/);
  await model.dispose();
});

test('neuron gradient, IG and conductance: weight rows where active, completeness, shares of IG', async () => {
  const model = await load(linearRelu());
  // (1, 0, 2): z = (2.5, −1); (0, 1, −1): z = (−2, 1).
  const x = t([1, 0, 2, 0, 1, -1], [2, 3]);
  const g0 = await neuronGradient(model, { x }, { site: 'h.relu', neuron: 0 });
  close(g0.attributions.data, [1, -2, 0.5, 0, 0, 0], 1e-6, 'unit 0');
  const g1 = await neuronGradient(model, { x }, { site: 'h.relu', neuron: [1] });
  close(g1.attributions.data, [0, 0, 0, 2, 1, -1], 1e-6, 'unit 1');
  close(g1.scores, [0, 1], 1e-6, 'h_1(x)');
  // IG of h_1 from 0 for (0, 1, −1): z1 = 2α − 1, on for α > 1/2 → x ⊙ W[:, 1] / 2.
  const ig = await neuronIntegratedGradients(model, { x }, { site: 'h.relu', neuron: 1, steps: 20, method: 'riemann-middle' });
  close(ig.attributions.data, [0, 0, 0, 0, 0.5, 0.5], 1e-6, 'neuron IG');
  const igDefault = await neuronIntegratedGradients(model, { x }, { site: 'h.relu', neuron: 1 });
  assert.ok(igDefault.checks[0].passed, igDefault.checks[0].detail);
  close(igDefault.checks[0].value as number[], [0, 0], 0.02, 'Σ − (h_1(x) − h_1(0))');
  await assert.rejects(neuronGradient(model, { x }, { site: 'h.relu', neuron: 2 }), /flat index 2 is outside \[0, 2\)/);
  await assert.rejects(neuronGradient(model, { x }, { site: 'h.relu', neuron: [0, 1] }), /2 indices \[0, 1\] for 1 axes/);
  await model.dispose();

  const toy = await load(igToy());
  const xs = t([3, 1, 5, 1], [2, 2]);
  const opts = { target: 0, site: 'r.relu', steps: 20, method: 'riemann-middle' } as const;
  const n0 = await neuronConductance(toy, { x: xs }, { ...opts, neuron: 0 });
  const n1 = await neuronConductance(toy, { x: xs }, { ...opts, neuron: 1 });
  close(n0.attributions.data, [1.5, 0, 3.75, 0], 1e-5, 'through unit 0');
  close(n1.attributions.data, [0, -0.5, 0, -0.75], 1e-5, 'through unit 1');
  close(n0.checks[0].value as number[], [1.5, 3.75], 1e-5, 'conductance of unit 0');
  await toy.dispose();
});

/** α_k, ReLU(Σ α_k A^k) per example from captured A [N, K, h, w] and G = ∂y/∂A, computed here independently. */
function referenceCam(A: Tensor, G: Tensor): Float64Array {
  const [N, K, h, w] = A.shape;
  const cam = new Float64Array(N * h * w);
  const [a, g] = [A.data as Float32Array, G.data as Float32Array];
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < K; k++) {
      let alpha = 0;
      for (let p = 0; p < h * w; p++) alpha += g[(i * K + k) * h * w + p];
      alpha /= h * w;
      for (let p = 0; p < h * w; p++) cam[i * h * w + p] += alpha * a[(i * K + k) * h * w + p];
    }
  }
  return cam.map((v) => Math.max(0, v));
}

test('Grad-CAM on the PyTorch CNN matches captured activations and gradients', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const x = new Tensor('float32', (fx.input.data as Float32Array).slice(0, 2 * 784), [2, 1, 28, 28]);
  assert.equal(defaultCamSite(model), 'pool.maxpool');
  for (const site of ['c2.conv', 'pool.maxpool']) {
    const cam = await gradCam(model, { x }, { site });
    const classes = cam.targets!;
    const seed = Tensor.zeros('float32', [2, 10]);
    for (let i = 0; i < 2; i++) seed.data[i * 10 + classes[i]] = 1;
    const A = (await model.run({ x }, { capture: [site] })).captures[site];
    const G = (await model.grad({ x }, { of: 'logits', wrt: [site], seed })).grads[site];
    const ref = referenceCam(A, G);
    const scale = Math.max(...ref);
    assert.ok(scale > 0, `${site}: the reference map is not all zero`);
    close((cam.extra!.cam as Tensor<'float32'>).data, ref, 1e-4 * scale, `${site} cam`);
    // Upsampled to 28 × 28: PyTorch's bilinear, align_corners = False, written out per output pixel.
    const [h, w] = A.shape.slice(2);
    const up = new Float64Array(2 * 784);
    const src = (d: number, n: number) => Math.max(0, ((d + 0.5) * n) / 28 - 0.5);
    for (let i = 0; i < 2; i++) {
      for (let r = 0; r < 28; r++) {
        for (let c = 0; c < 28; c++) {
          const [sy, sx] = [src(r, h), src(c, w)];
          const [y0, x0] = [Math.floor(sy), Math.floor(sx)];
          const [y1, x1] = [Math.min(h - 1, y0 + 1), Math.min(w - 1, x0 + 1)];
          const at = (yy: number, xx: number) => ref[i * h * w + yy * w + xx];
          const [fy, fx2] = [sy - y0, sx - x0];
          up[i * 784 + r * 28 + c] = (1 - fy) * ((1 - fx2) * at(y0, x0) + fx2 * at(y0, x1)) + fy * ((1 - fx2) * at(y1, x0) + fx2 * at(y1, x1));
        }
      }
    }
    close(cam.attributions.data, up, 1e-4 * scale, `${site} upsampled`);
  }
  await model.dispose();
});

test('layer and neuron conductance on the PyTorch CNN: completeness per example, and one unit two ways', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const x = new Tensor('float32', (fx.input.data as Float32Array).slice(0, 2 * 784), [2, 1, 28, 28]);
  const lc = await layerConductance(model, { x }, { site: 'relu1.relu', steps: 16 });
  assert.deepEqual(lc.attributions.shape, [2, 32, 28, 28]);
  assert.ok(lc.checks[0].passed, lc.checks[0].detail);
  for (const d of lc.checks[0].value as number[]) assert.ok(Math.abs(d) < 0.01, `Σ cond − (f(x) − f(0)) = ${d}`);
  // Above pool.maxpool the network is linear, so a unit's conductance there is w_u (h_u(x) − h_u(0)); neuron
  // conductance reaches the same number through ∂h_u/∂x by quadrature.
  const pool = await layerConductance(model, { x }, { site: 'pool.maxpool', steps: 4 });
  const row = pool.attributions.size / 2;
  let u = 0;
  for (let j = 0; j < row; j++) if (Math.abs(pool.attributions.data[j]) > Math.abs(pool.attributions.data[u])) u = j;
  const nc = await neuronConductance(model, { x }, { site: 'pool.maxpool', neuron: u, steps: 32, target: Array.from(pool.targets!) });
  const through = nc.checks[0].value as number[];
  for (let i = 0; i < 2; i++) {
    const want = pool.attributions.data[i * row + u];
    assert.ok(Math.abs(through[i] - want) <= 0.02 * Math.abs(pool.attributions.data[u]) + 1e-6, `example ${i}: Σ_i neuron conductance ${through[i]} vs layer conductance ${want}`);
  }
  assert.ok(Math.abs(through[0]) > 0, 'the unit carries some of the score');
  await model.dispose();
});
