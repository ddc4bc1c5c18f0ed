/**
 * Gradient attribution methods against the same computation in PyTorch autograd (scripts/attribution_fixtures.py,
 * float64 references) on the PyTorch-exported CNN (w.r.t. its input) and transformer (w.r.t. its token embeddings).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Model, readNpy, type Tensor } from '../../src/index.js';
import { integratedGradients } from '../../src/methods/attribution/gradient.js';
import { attributionMethod } from '../../src/methods/registry.js';
import { torchFixture, TORCH } from '../helpers.js';

const DIR = join(TORCH, 'attribution');
const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as { ig_steps: number; models: Record<'cnn' | 'gpt', { wrt: string; targets: number[] }> };

/** max |a − b| relative to max |b|. */
function relErr(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.size; i++) {
    num = Math.max(num, Math.abs(a.at(i) - b.at(i)));
    den = Math.max(den, Math.abs(b.at(i)));
  }
  return num / den;
}

for (const name of ['cnn', 'gpt'] as const) {
  test(`${name}: gradient, gradient × input and integrated gradients match PyTorch autograd`, async () => {
    const { path, input } = torchFixture(name);
    const model = await Model.load(path);
    const { wrt, targets } = manifest.models[name];
    const inputs = { [model.inputs[0].name]: input };
    try {
      for (const [method, file] of [['gradient', 'gradient'], ['gradient-x-input', 'gradient_x_input']] as const) {
        const r = await attributionMethod(method).explain(model, inputs, { wrt, target: 'predicted' });
        assert.deepEqual(Array.from(r.targets!), targets, 'the predicted classes agree');
        const err = relErr(r.attributions, await readNpy(join(DIR, `${name}.${file}.npy`)));
        assert.ok(err < 1e-4, `${method}: relative error ${err}`);
      }
      const ig = await integratedGradients(model, inputs, { wrt, target: targets, steps: manifest.ig_steps, method: 'riemann-trapezoid' });
      const err = relErr(ig.attributions, await readNpy(join(DIR, `${name}.ig.npy`)));
      assert.ok(err < 1e-4, `integrated gradients: relative error ${err}`);
    } finally {
      await model.dispose();
    }
  });
}

test('cnn: guided backprop, DeconvNet and Grad-CAM (before upsampling) match PyTorch', async () => {
  const { path, input } = torchFixture('cnn');
  const model = await Model.load(path);
  try {
    for (const [method, file] of [['guided-backprop', 'guided_backprop'], ['deconvnet', 'deconvnet']] as const) {
      const r = await attributionMethod(method).explain(model, { x: input }, { target: 'predicted' });
      const err = relErr(r.attributions, await readNpy(join(DIR, `cnn.${file}.npy`)));
      assert.ok(err < 1e-4, `${method}: relative error ${err}`);
    }
    const cam = await attributionMethod('grad-cam').explain(model, { x: input }, { site: 'relu2.relu' });
    const ref = await readNpy(join(DIR, 'cnn.gradcam.npy'));
    const err = relErr((cam.extra!.cam as Tensor).reshape(ref.shape), ref);
    assert.ok(err < 1e-4, `grad-cam: relative error ${err}`);
  } finally {
    await model.dispose();
  }
});

test('cnn: layer conductance and neuron gradient (Räuker III-E) match PyTorch', async () => {
  const { path, input } = torchFixture('cnn');
  const model = await Model.load(path);
  const { conductance, neuron } = (manifest.models.cnn as unknown as { conductance: { site: string; steps: number }; neuron: { site: string; index: number } });
  try {
    const c = await attributionMethod('layer-conductance').explain(model, { x: input }, { site: conductance.site, steps: conductance.steps, target: 'predicted' });
    const errC = relErr(c.attributions, await readNpy(join(DIR, 'cnn.layer_conductance.npy')));
    assert.ok(errC < 1e-4, `layer conductance: relative error ${errC}`);
    const g = await attributionMethod('neuron-gradient').explain(model, { x: input }, { site: neuron.site, neuron: neuron.index });
    const errG = relErr(g.attributions, await readNpy(join(DIR, 'cnn.neuron_gradient.npy')));
    assert.ok(errG < 1e-4, `neuron gradient: relative error ${errG}`);
  } finally {
    await model.dispose();
  }
});
