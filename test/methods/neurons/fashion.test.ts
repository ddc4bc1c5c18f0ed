/**
 * The neuron methods on a Fashion-MNIST CNN trained here: its units' top examples concentrate on few classes (less
 * class entropy than random example sets), dissection with the dataset's own class concepts labels units with an IoU
 * above the same architecture re-initialised, and the units Shapley ranks highest hurt the loss most when ablated.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { classRegionConcepts } from '../../../src/data/datasets/concepts.js';
import type { Dataset } from '../../../src/data/datasets/dataset.js';
import { loadFashionMnist } from '../../../src/data/datasets/images.js';
import { ablateUnits } from '../../../src/methods/neurons/ablation.js';
import { dissect } from '../../../src/methods/neurons/dissection.js';
import { polysemanticUnits } from '../../../src/methods/neurons/hazards.js';
import { neuronShapley } from '../../../src/methods/neurons/shapley.js';
import { cnn } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';

let model: Model;
let test1: Dataset<'float32'>;

before(async () => {
  const [train, test] = await Promise.all([loadFashionMnist('train'), loadFashionMnist('test')]);
  const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [8, 16], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 4000), { epochs: 2, batchSize: 64, seed: 1 });
  model = await Model.load(encodeModel(t.exportModel()));
  test1 = test.slice(0, 600);
});

test('Fashion-MNIST CNN: top examples are class-selective, and dissection labels units with classes above a re-initialised twin', async () => {
  const poly = await polysemanticUnits(model, test1, { site: 'c2.relu', k: 20 });
  const entropy = poly.units.reduce((s, u) => s + u.entropy, 0) / poly.units.length;
  assert.ok(entropy < poly.baseline.entropy - 0.1, `units' top-example class entropy ${entropy} vs random sets ${poly.baseline.entropy}`);

  const d = await dissect(model, 'c2.relu', classRegionConcepts(test1.slice(0, 300), { dilate: 1 }), { quantile: 0.02, seed: 1 });
  assert.ok(d.units.some((u) => u.label?.startsWith('class:') && u.beatsRandom), 'no unit labelled with a class above the baseline');
});

test('Fashion-MNIST CNN: the top Shapley units hurt the loss more than random units when ablated together', async () => {
  const s = await neuronShapley(model, test1.slice(0, 300), { site: 'c2.relu', metric: 'loss', permutations: 16, seed: 1 });
  const top = [...s.units].sort((a, b) => b.value - a.value).slice(0, 4).map((u) => u.unit);
  const held = test1.slice(200, 600);
  const r = await ablateUnits(model, held, { site: 'c2.relu', groups: [top], randomGroups: 16, seed: 2 });
  const g = r.groups[0];
  assert.ok(g.random !== undefined);
  assert.ok(g.deltaLoss > 1.5 * g.random.deltaLoss, `top Shapley units Δloss ${g.deltaLoss} vs random ${g.random.deltaLoss}`);
});
