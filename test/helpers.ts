/** Paths and small numeric helpers shared by the tests (compiled to build/test/, so the repo root is three levels up). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledModels } from '../src/data/bundled.js';
import { parseNpy } from '../src/data/npy.js';
import type { Tensor } from '../src/runtime/tensor.js';
import type { Dataset } from '../src/data/datasets/dataset.js';
import { mlp, standardized } from '../src/model/builders/index.js';
import { Net } from '../src/model/builders/net.js';
import { Trainer } from '../src/model/train/index.js';
import type { ModelProto } from '../src/onnx/proto.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TORCH = join(ROOT, 'fixtures', 'torch');

export function torchFixture(name: 'mlp' | 'cnn' | 'resnet18' | 'gpt'): { path: string; input: Tensor; output: Tensor } {
  return {
    path: join(TORCH, `${name}.onnx`),
    input: parseNpy(readFileSync(join(TORCH, `${name}.input.npy`))),
    output: parseNpy(readFileSync(join(TORCH, `${name}.output.npy`))),
  };
}

export const PADDLE_CLS = bundledModels.paddleCls;
export const PADDLE_REC = bundledModels.paddleRec;

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.size !== b.size) throw new Error(`sizes differ: ${a} vs ${b}`);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.at(i) - b.at(i)));
  return m;
}

/** Number of elements whose bits differ (NaN equal to NaN). */
export function bitMismatches(a: Tensor, b: Tensor): number {
  if (a.size !== b.size || a.dtype !== b.dtype) return Math.max(a.size, b.size);
  let n = 0;
  for (let i = 0; i < a.size; i++) {
    const x = a.data[i];
    const y = b.data[i];
    if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) n++;
  }
  return n;
}

/** The project's seeded stream (mulberry32), so tests need no fixtures for random inputs. */
export { mulberry32 as seeded } from '../src/data/datasets/random.js';

/**
 * An MLP (features → hidden → classes, ReLU) that reads raw tabular features and standardises them inside its graph
 * (as the tabular recipes do), trained with Adam on `train`: the exported model.
 */
export async function rawFeatureMlp(
  train: Dataset<'float32'>,
  o: { readonly epochs: number; readonly hidden?: number; readonly lr?: number; readonly batchSize?: number; readonly seed?: number },
): Promise<ModelProto> {
  const { hidden = 16, lr = 0.01, batchSize = 16, seed = 1 } = o;
  const model = standardized(mlp({ inputs: train.inputShape[0], hidden: [hidden], classes: train.numClasses!, seed }), train);
  const trainer = await Trainer.create(model, { optimizer: { kind: 'adam', lr } });
  await trainer.fit(train, { epochs: o.epochs, batchSize, seed: 1 });
  const out = trainer.exportModel();
  await trainer.dispose();
  return out;
}

/** A sigmoid MLP (Linear → Sigmoid → … → Linear logits), as the rule-extraction papers (KT, M-of-N) train them. */
export function sigmoidMlp(inputs: number, hidden: readonly number[], classes: number, seed: number): ModelProto {
  const net = new Net(seed);
  let h = 'x';
  let w = inputs;
  hidden.forEach((k, i) => {
    h = net.op(`fc${i + 1}`, 'Sigmoid', [net.linear(`fc${i + 1}`, h, w, k)]);
    w = k;
  });
  net.linear(`fc${hidden.length + 1}`, h, w, classes, 'logits');
  return net.model({ name: 'sigmoid-mlp', doc: 'sigmoid mlp', input: { name: 'x', dtype: 'float32', shape: ['N', inputs] }, output: { name: 'logits', shape: ['N', classes] } });
}

/** The result's check of this name (a test failure if there is none). */
export function findCheck<C extends { readonly name: string }>(r: { readonly checks: readonly C[] }, name: string): C {
  const c = r.checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check '${name}' among ${r.checks.map((x) => x.name).join(', ')}`);
  return c;
}

/** What a command run in this process prints with console.log. */
export async function printed(run: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await run();
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}
