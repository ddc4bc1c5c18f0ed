import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { maxAbsDiff, seeded, torchFixture } from '../helpers.js';

const rand = seeded(11);
const N = 13;
const x = Tensor.float32(Array.from({ length: N * 784 }, () => rand()), [N, 1, 28, 28]);
const other = Tensor.float32(Array.from({ length: N * 784 }, () => rand()), [N, 1, 28, 28]);
/** Bytes of every CNN site for one row: ~0.2 MB, so this budget allows 3 rows per call. */
const SMALL = 3 * 4 * (784 + 4 * 25088 + 2 * 50176 + 12544 + 12544 + 10) + 1000;

test('a batch over the memory budget is split, and the joined results equal one whole call', async () => {
  const model = await Model.load(torchFixture('cnn').path);
  const whole = await model.run({ x }, { capture: ['relu2.relu'] });
  const seen: number[] = [];
  const split = await model.run({ x }, { capture: ['relu2.relu'], maxBatchBytes: SMALL, onProgress: (done) => seen.push(done) });
  assert.deepEqual(seen, [3, 6, 9, 12, 13]);
  assert.ok(maxAbsDiff(split.outputs.logits, whole.outputs.logits) < 1e-6);
  assert.ok(maxAbsDiff(split.captures['relu2.relu'], whole.captures['relu2.relu']) < 1e-6);
});

test('batch-wide interventions give the same answer split or whole (means over the whole batch, patches row by row)', async () => {
  const model = await Model.load(torchFixture('cnn').path);
  const interventions = [
    { site: 'relu1.relu', kind: 'mean', units: [0, 5, 31] },
    { site: 'c2.conv', kind: 'patch', from: { x: other }, units: [2, 3] },
    { site: 'pool.maxpool', kind: 'mean' },
  ] as const;
  const whole = await model.run({ x }, { interventions, capture: ['pool.maxpool'] });
  const split = await model.run({ x }, { interventions, capture: ['pool.maxpool'], maxBatchBytes: SMALL });
  assert.ok(maxAbsDiff(split.outputs.logits, whole.outputs.logits) < 1e-5);
  // After a mean over the batch every row of the site is the same row.
  const pool = split.captures['pool.maxpool'];
  const row = pool.size / N;
  for (let i = 0; i < row; i++) assert.equal(pool.at(5 * row + i), pool.at(i));
});

test('a long run can be stopped between calls', async () => {
  const model = await Model.load(torchFixture('cnn').path);
  const stop = new AbortController();
  await assert.rejects(
    model.run({ x }, { maxBatchBytes: SMALL, signal: stop.signal, onProgress: (done) => done >= 6 && stop.abort() }),
    (e: Error) => e.name === 'AbortError',
  );
});
