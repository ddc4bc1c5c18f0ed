/**
 * One table of checks over every registered attribution method (add a method to the registry and it is tested
 * here): batch invariance (a batch of 8 explains each example as eight batches of 1 do), determinism under a seed,
 * completeness where the method claims it, and no memory growth across 100 calls. On a small CNN, so every method
 * (input, layer, neuron, CAM) applies.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import '../../src/index.js';
import { cnn } from '../../src/model/builders/index.js';
import { Model } from '../../src/model/model.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { sliceRows, Tensor } from '../../src/runtime/tensor.js';
import type { ExplainOptions, MethodEntry } from '../../src/methods/attribution/method.js';
import { ATTRIBUTION_METHODS } from '../../src/methods/registry.js';
import { seeded } from '../helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const METHODS = Object.entries(ATTRIBUTION_METHODS as Record<string, MethodEntry>);
const rand = seeded(42);
const X = Tensor.float32(Array.from({ length: 8 * 36 }, () => rand()), [8, 1, 6, 6]);
const OPTIONS: ExplainOptions = {
  target: 'predicted',
  steps: 8,
  samples: 16,
  seed: 3,
  site: 'c1.relu',
  neuron: 5,
  baseline: Tensor.float32(Array.from({ length: 36 }, (_, i) => 0.1 * (i % 3)), [1, 6, 6]),
};

let model: Model;
const load = async () => (model ??= await Model.load(encodeModel(cnn({ input: [1, 6, 6], channels: [3], hidden: [5], classes: 3, seed: 7 }))));

for (const [name, entry] of METHODS) {
  test(`${name}: batch invariance, determinism${entry.info.complete ? ', completeness' : ''}`, async () => {
    const m = await load();
    const batch = await entry.explain(m, { x: X }, OPTIONS);
    assert.deepEqual(batch.attributions.shape.slice(0, 1), [8]);
    let scale = 0;
    for (const v of batch.attributions.data) scale = Math.max(scale, Math.abs(v));
    assert.ok(scale > 0, 'attributions are not all zero');
    for (let i = 0; i < 8; i++) {
      const one = await entry.explain(m, { x: sliceRows(X, i, i + 1) }, OPTIONS);
      const row = one.attributions.size;
      for (let j = 0; j < row; j++) {
        const d = Math.abs(one.attributions.data[j] - batch.attributions.data[i * row + j]);
        assert.ok(d <= 1e-4 * scale + 1e-7, `example ${i}, value ${j}: alone ${one.attributions.data[j]}, in the batch ${batch.attributions.data[i * row + j]}`);
      }
    }
    const again = await entry.explain(m, { x: X }, OPTIONS);
    assert.deepEqual(again.attributions.data, batch.attributions.data, 'the same call gives the same bits');
    if (entry.info.complete) {
      const checks = batch.checks.filter((c) => /completeness|convergence|conservation|summation/.test(c.name));
      assert.ok(checks.length > 0, 'a method that claims completeness reports it');
      for (const c of checks) assert.ok(c.passed, `${c.name}: ${c.detail}`);
    }
  });
}

test('no method grows memory across 100 calls', async () => {
  const m = await load();
  const x = sliceRows(X, 0, 2);
  for (const [name, entry] of METHODS) {
    // JS heap exactly; buffers outside it (`external`: tensor data) are freed lazily, so they get a looser bound.
    const used = () => {
      gc();
      gc();
      const u = process.memoryUsage();
      return { heap: u.heapUsed, external: u.external };
    };
    for (let i = 0; i < 10; i++) await entry.explain(m, { x }, OPTIONS);
    const before = used();
    for (let i = 0; i < 90; i++) await entry.explain(m, { x }, OPTIONS);
    const after = used();
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
    assert.ok(after.heap - before.heap < 2 ** 20, `${name}: the JS heap grew by ${mib(after.heap - before.heap)} over 90 calls`);
    assert.ok(after.external - before.external < 16 * 2 ** 20, `${name}: buffers grew by ${mib(after.external - before.external)} over 90 calls`);
  }
});
