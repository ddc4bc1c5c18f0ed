/**
 * The browser runtime (onnxruntime-web, wasm backend) run in Node: same PyTorch references as the Node runtime, and
 * captures and interventions that agree with onnxruntime-node.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readNpy } from '../../src/data/npy.js';
import { Model, type RunOptions } from '../../src/model/model.js';
import { nodeRuntime } from '../../src/runtime/node.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { webRuntime } from '../../src/runtime/web.js';

// Compiled to build/test/browser/, so the repository root is three levels up.
const TORCH = fileURLToPath(new URL('../../../fixtures/torch/', import.meta.url));

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.at(i) - b.at(i)));
  return m;
}

async function fixture(name: 'cnn' | 'gpt') {
  const [bytes, input, output] = await Promise.all([
    readFile(`${TORCH}${name}.onnx`),
    readNpy(`${TORCH}${name}.input.npy`),
    readNpy(`${TORCH}${name}.output.npy`),
  ]);
  return { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), input, output };
}

for (const name of ['cnn', 'gpt'] as const) {
  test(`onnxruntime-web: ${name} from bytes matches PyTorch within 1e-4`, async () => {
    const fx = await fixture(name);
    const model = await Model.load(fx.bytes, { runtime: webRuntime });
    assert.equal(model.runtime.name, 'onnxruntime-web');
    const { outputs } = await model.run({ [model.inputs[0].name]: fx.input });
    const d = maxAbsDiff(outputs.logits, fx.output);
    assert.ok(d < 1e-4, `max |web - torch| = ${d}`);
    await model.dispose();
  });
}

test('onnxruntime-web: a capture and a channel ablation agree with onnxruntime-node within 1e-5', async () => {
  const fx = await fixture('cnn');
  const [web, native] = await Promise.all([
    Model.load(fx.bytes, { runtime: webRuntime }),
    Model.load(fx.bytes, { runtime: nodeRuntime }),
  ]);
  const options: RunOptions = {
    capture: ['relu1.relu', 'c2.conv'],
    interventions: [{ site: 'c2.conv', kind: 'zero', units: [5] }],
  };
  const [w, n, plain] = await Promise.all([web.run({ x: fx.input }, options), native.run({ x: fx.input }, options), native.run({ x: fx.input })]);
  for (const [what, a, b] of [
    ['relu1.relu', w.captures['relu1.relu'], n.captures['relu1.relu']],
    ['c2.conv', w.captures['c2.conv'], n.captures['c2.conv']],
    ['logits', w.outputs.logits, n.outputs.logits],
  ] as const) {
    const d = maxAbsDiff(a, b);
    assert.ok(d < 1e-5, `${what}: max |web - node| = ${d}`);
  }
  // The ablation did something: channel 5 of c2.conv is zero in the capture, and the logits moved.
  const [rows, channels, h, wd] = w.captures['c2.conv'].shape;
  assert.equal(channels, 64);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < h * wd; i++) assert.equal(w.captures['c2.conv'].at(((r * channels + 5) * h * wd) + i), 0);
  }
  assert.ok(maxAbsDiff(w.outputs.logits, plain.outputs.logits) > 1e-4, 'zeroing a c2 channel left the logits unchanged');
  await Promise.all([web.dispose(), native.dispose()]);
});
