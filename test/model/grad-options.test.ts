/**
 * model.grad's in-graph predicted-class seed and its captures: the same bits as a forward run that finds the class,
 * then a gradient run with that one-hot seed; captured sites as model.run captures them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, Tensor } from '../../src/index.js';
import { bitMismatches, torchFixture } from '../helpers.js';

/** One-hot of the first argmax over the last axis, at the last position of [N, T, C]. */
function predictedSeed(out: Tensor): Tensor {
  const C = out.shape[out.rank - 1];
  const n = out.shape[0];
  const row = out.size / n;
  const seed = Tensor.zeros('float32', out.shape);
  const d = out.data as Float32Array;
  for (let i = 0; i < n; i++) {
    const at = i * row + row - C;
    let best = 0;
    for (let c = 1; c < C; c++) if (d[at + c] > d[at + best]) best = c;
    seed.data[at + best] = 1;
  }
  return seed;
}

for (const [name, site] of [['cnn', 'relu1.relu'], ['gpt', 'tok_emb.gather']] as const) {
  test(`${name}: grad with seed 'predicted' equals the two-run computation; captures equal run's`, async () => {
    const { path, input } = torchFixture(name);
    const model = await Model.load(path);
    try {
      const feeds = { [model.inputs[0].name]: input };
      const plain = await model.run(feeds, { capture: [site] });
      const logits = plain.outputs[model.outputs[0].name];
      const twoRuns = await model.grad(feeds, { wrt: [site], seed: predictedSeed(logits) });
      const oneRun = await model.grad(feeds, { wrt: [site], seed: 'predicted', capture: [site] });
      assert.equal(bitMismatches(oneRun.grads[site], twoRuns.grads[site]), 0);
      assert.equal(bitMismatches(oneRun.captures[site], plain.captures[site]), 0);
      assert.equal(bitMismatches(oneRun.outputs[model.outputs[0].name], logits), 0);
      // Batched to one row per call: the in-graph seed is per row.
      const small = await model.grad(feeds, { wrt: [site], seed: 'predicted', maxBatchBytes: 1 });
      assert.equal(bitMismatches(small.grads[site], twoRuns.grads[site]), 0);
    } finally {
      await model.dispose();
    }
  });
}

test("a predicted-class seed needs a class axis", async () => {
  const { path, input } = torchFixture('cnn');
  const model = await Model.load(path);
  try {
    await assert.rejects(model.grad({ x: input }, { of: 'fc.gemm', wrt: ['x'], seed: 'predicted' }).then(() => model.grad({ x: input }, { of: 'relu1.relu', wrt: ['x'], seed: 'predicted' })), /predicted-class seed needs '\/relu1\/Relu_output_0' to be \[N, C\] or \[N, T, C\], it has rank 4/);
  } finally {
    await model.dispose();
  }
});
