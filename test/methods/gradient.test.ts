/** Gradient attribution methods against closed forms on toy models. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { sliceRows, Tensor } from '../../src/runtime/tensor.js';
import { expectedGradients, gradient, gradientShap, gradientXInput, integratedGradients, saliency } from '../../src/methods/attribution/gradient.js';
import { smooth } from '../../src/methods/attribution/smooth.js';
import { QUADRATURES } from '../../src/methods/attribution/quadrature.js';
import { igToy, linearToy, squareToy } from './toys.js';

const close = (actual: ArrayLike<number>, expected: number[], tol: number, what: string) => {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
};

test('integrated gradients of ReLU(ReLU(x1) − 1 − ReLU(x2)) at (3, 1) from 0 is (1.5, −0.5) for every quadrature', async () => {
  const model = await Model.load(encodeModel(igToy()));
  const x = Tensor.float32([3, 1], [1, 2]);
  for (const method of QUADRATURES) {
    const ig = await integratedGradients(model, { x }, { target: 0, steps: 1000, method });
    // The integrand is piecewise constant with kinks at α = 1/3 and 1/2: Riemann and trapezoid rules converge as 1/steps.
    close(ig.attributions.data, [1.5, -0.5], method === 'gauss-legendre' ? 5e-3 : 4e-3, method);
    const check = ig.checks[0];
    assert.equal(check.name, 'convergence delta');
    assert.ok(check.passed, check.detail);
    close(ig.scores, [1], 1e-6, 'f(x)');
  }
  await model.dispose();
});

test('gradient, saliency and gradient × input on the toy: closed form', async () => {
  const model = await Model.load(encodeModel(igToy()));
  const x = Tensor.float32([3, 1, -2, 0.5, 4, 2], [3, 2]);
  // f = ReLU(ReLU(x1) − 1 − ReLU(x2)): active at (3, 1) and (4, 2); dead at (−2, 0.5).
  const g = await gradient(model, { x }, { target: 0 });
  close(g.attributions.data, [1, -1, 0, 0, 1, -1], 0, 'gradient');
  const s = await saliency(model, { x }, { target: 0 });
  close(s.attributions.data, [1, 1, 0, 0, 1, 1], 0, 'saliency');
  const gi = await gradientXInput(model, { x }, { target: 0 });
  close(gi.attributions.data, [3, -1, -0, 0, 4, -2], 0, 'gradient × input');
  await model.dispose();
});

test('SmoothGrad, SmoothGrad² and VarGrad of f = Σ x² match their expectations 2x, 4x² + 4σ², 4σ²', async () => {
  const model = await Model.load(encodeModel(squareToy(3)));
  const x = Tensor.float32([1, -2, 0.5], [1, 3]);
  const samples = 4000;
  const noise = 0.1;
  const sigma = noise * (1 - -2); // σ = noise level × the example's range
  const tol = (v: number) => 6 * v / Math.sqrt(samples); // six standard errors
  const sg = await smooth(gradient, { samples, noise, seed: 1 })(model, { x }, { target: 0 });
  close(sg.attributions.data, [2, -4, 1], tol(2 * sigma), 'SmoothGrad');
  const sq = await smooth(gradient, { samples, noise, seed: 1, kind: 'squared' })(model, { x }, { target: 0 });
  close(sq.attributions.data, [1, -2, 0.5].map((v) => 4 * v * v + 4 * sigma * sigma), tol(8 * sigma * 2.5), 'SmoothGrad²');
  const vg = await smooth(gradient, { samples, noise, seed: 1, kind: 'var' })(model, { x }, { target: 0 });
  close(vg.attributions.data, [4 * sigma * sigma, 4 * sigma * sigma, 4 * sigma * sigma], tol(4 * sigma * sigma * 1.5), 'VarGrad');
  assert.equal(sg.method, 'smoothgrad(gradient)');
  await model.dispose();
});

test('expected gradients and GradientSHAP: exact (x − b) ⊙ w on a linear model, complete in expectation on Σ x²', async () => {
  const lin = await Model.load(encodeModel(linearToy([2, -1, 3])));
  const x = Tensor.float32([1, 2, 3, -1, 0, 4], [2, 3]);
  const b = Tensor.float32([0.5, 0.5, -1], [1, 3]);
  const expected = [(1 - 0.5) * 2, (2 - 0.5) * -1, (3 + 1) * 3, (-1 - 0.5) * 2, (0 - 0.5) * -1, (4 + 1) * 3];
  const eg = await expectedGradients(lin, { x }, { baselines: b, samples: 20, target: 0, seed: 3 });
  close(eg.attributions.data, expected, 1e-5, 'expected gradients');
  const shap = await gradientShap(lin, { x }, { baselines: b, samples: 20, target: 0, seed: 3 });
  close(shap.attributions.data, expected, 1e-5, 'GradientSHAP (noise does not move a constant gradient)');
  await lin.dispose();
  // f = Σ x²: each attribution is (x − b)·2(b + ᾱ(x − b)) → x² − b² as the mean α → ½.
  const sqm = await Model.load(encodeModel(squareToy(3)));
  const r = await expectedGradients(sqm, { x: sliceRows(x, 0, 1) }, { baselines: b, samples: 4000, target: 0, seed: 5 });
  close(r.attributions.data, [1 - 0.25, 4 - 0.25, 9 - 1], 0.25, 'x² − b² in expectation');
  await sqm.dispose();
});
