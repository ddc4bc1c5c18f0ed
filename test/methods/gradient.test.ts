/** Gradient attribution methods against closed forms on toy models. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { gradient, gradientXInput, integratedGradients, saliency } from '../../src/methods/attribution/gradient.js';
import { QUADRATURES } from '../../src/methods/attribution/quadrature.js';
import { igToy } from './toys.js';

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
