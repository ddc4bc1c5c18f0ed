/**
 * The tabular recipes: their models read raw features and standardise inside the graph, giving exactly the logits
 * of the plain MLP on standardised features; trained by `glassbox train iris-mlp`, the model beats the class prior.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { featureStats, loadIris, standardize } from '../../src/index.js';
import { RECIPES, tabularSplit } from '../../src/cli/recipes.js';
import { mlp, standardized } from '../../src/model/builders/index.js';
import { Model } from '../../src/model/model.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { glassboxWithin } from './spawn.js';

test('standardized(model) on raw features equals the model on standardised features', async () => {
  const { train, test: held } = await tabularSplit(loadIris);
  const plain = mlp({ inputs: 4, hidden: [8], classes: 3, seed: 2 });
  const wrapped = await Model.load(encodeModel(standardized(plain, train)));
  const inner = await Model.load(encodeModel(plain));
  const raw = held.gather(Int32Array.from({ length: held.size }, (_, i) => i)).x;
  const z = standardize(held, featureStats(train)).gather(Int32Array.from({ length: held.size }, (_, i) => i)).x;
  const a = (await wrapped.run({ x: raw })).outputs.logits.data as Float32Array;
  const b = (await inner.run({ x: z })).outputs.logits.data as Float32Array;
  const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  assert.ok(worst < 1e-5, `max |Δ logit| ${worst}`);
  assert.ok(wrapped.sites.some((s) => s.name === 'standardize.div'), 'the standardisation is a site');
  assert.deepEqual([train.size, held.size], [120, 30]);
  assert.equal(RECIPES['iris-mlp'].defaults.lr, 1e-2);
});

test('glassbox train iris-mlp trains a raw-feature model well above the class prior', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-recipe-'));
  try {
    const r = glassboxWithin(60_000)('train', 'iris-mlp', '--out', dir, '--epochs', '30');
    assert.equal(r.code, 0, r.stderr);
    const acc = Number(/test accuracy ([\d.]+)%/.exec(r.stdout)?.[1]);
    assert.ok(acc >= 90, `test accuracy ${acc}%`);
    const model = await Model.load(join(dir, 'iris-mlp.onnx'));
    // A raw setosa flower (sepal 5.1 × 3.5, petal 1.4 × 0.2 cm) is class 0.
    const logits = (await model.run({ x: Tensor.float32([5.1, 3.5, 1.4, 0.2], [1, 4]) })).outputs.logits.data as Float32Array;
    assert.equal(logits.indexOf(Math.max(...logits)), 0);
    await model.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
