import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Graph } from '../src/onnx/graph.js';
import { addOutputs } from '../src/onnx/rewrite.js';
import { SessionCache } from '../src/runtime/cache.js';
import { nodeRuntime } from '../src/runtime/node.js';
import { bitMismatches, torchFixture } from './helpers.js';

test('the session cache compiles each variant once and never releases a session under a running call', async () => {
  const fx = torchFixture('mlp');
  const g = Graph.decode(readFileSync(fx.path));
  const cache = new SessionCache(nodeRuntime, {}, 2);
  const sites = ['/fc1/Gemm_output_0', '/relu1/Relu_output_0', '/fc2/Gemm_output_0', '/relu2/Relu_output_0'];
  const variant = (v: string) => cache.get(v, () => addOutputs(g, [v]).encode());
  const ref = await (await variant('logits')).run({ x: fx.input });
  // Eight concurrent runs over five variants in a cache of two: evictions happen while runs are in flight.
  const results = await Promise.all([...sites, 'logits', ...sites.slice(0, 3)].map(async (v) => (await variant(v)).run({ x: fx.input })));
  for (const r of results) assert.equal(bitMismatches(r.logits, ref.logits), 0);
  assert.equal(cache.size, 2);
  const before = cache.compiled;
  await variant(sites[2]);
  assert.equal(cache.compiled, before, 'a recent variant is still cached');
  await cache.clear();
  assert.equal(cache.size, 0);
});
