import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/index.js';
import { parseNpy } from '../../src/data/npy.js';
import { Model } from '../../src/model/model.js';
import { ROOT, TORCH } from '../helpers.js';

interface GradEntry { file: string; kind: string; onnx_name: string; max_abs: number }
interface ModelEntry { input_name: string; input_file: string; seed_file: string; grads: GradEntry[] }
const GRAD = join(TORCH, 'grad');
const manifest = JSON.parse(readFileSync(join(GRAD, 'manifest.json'), 'utf8')) as { models: Record<string, ModelEntry> };
const npy = (path: string) => parseNpy(readFileSync(path));

for (const name of ['mlp', 'cnn', 'resnet18', 'gpt'] as const) {
  test(`${name}: gradients w.r.t. input, weights and activations match PyTorch autograd`, async () => {
    const m = manifest.models[name];
    const model = await Model.load(join(TORCH, `${name}.onnx`));
    const input = npy(join(ROOT, m.input_file));
    const seed = npy(join(GRAD, m.seed_file));
    const entries = m.grads;
    const { grads } = await model.grad({ [m.input_name]: input }, { wrt: entries.map((e) => e.onnx_name), seed });
    for (const e of entries) {
      const ref = npy(join(GRAD, e.file));
      const ours = grads[e.onnx_name];
      assert.deepEqual(ours.shape, ref.shape, e.onnx_name);
      let worst = 0;
      for (let i = 0; i < ref.size; i++) worst = Math.max(worst, Math.abs(ours.at(i) - ref.at(i)));
      // Relative to the gradient's largest entry: float32 accumulation order differs between engines.
      assert.ok(worst <= 1e-4 * e.max_abs + 1e-7, `${name} d/d${e.onnx_name}: max |ours - torch| = ${worst} (max |grad| ${e.max_abs})`);
    }
    await model.dispose();
  });
}
