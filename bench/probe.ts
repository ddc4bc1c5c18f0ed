/**
 * Probe training benchmark (Räuker et al. V, probing): a softmax probe trained on 10,000 × 512 features (10 classes,
 * a planted linear rule plus noise, seeded), fixed epochs of minibatch Adam (batch 256, lr 1e-2), standardisation
 * included — glassbox's host solver (linear-models.ts fitSoftmax), the same probe as an ONNX graph trained by the
 * project's Trainer (mlp with no hidden layer, 2 threads), and PyTorch (bench/torch_probe.py, nn.Linear + Adam,
 * 2 threads) on the same data. Rounds alternate the engines; figures are medians over rounds, in training examples
 * (rows × epochs) per second, with each engine's final training accuracy.
 *
 *   npm run bench:probe -- [--rounds 3] [--epochs 5] [--rows 10000] [--dim 512]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { dataset } from '../src/data/datasets/dataset.js';
import { mulberry32 } from '../src/data/datasets/random.js';
import { accuracy, fitSoftmax } from '../src/methods/representations/linear-models.js';
import { mlp } from '../src/model/builders/index.js';
import { Trainer } from '../src/model/train/index.js';
import { Tensor } from '../src/runtime/tensor.js';
import { median, PYTHON, requireTorch, ROOT, runBench, writeResults } from './common.js';

const CLASSES = 10;
const BATCH = 256;
const LR = 1e-2;

/** Gaussian features; class = argmax of a random linear map plus noise. */
function plantedData(rows: number, dim: number): { x: Float32Array; y: Int32Array } {
  const r = mulberry32(7);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const x = Float32Array.from({ length: rows * dim }, normal);
  const w = Float64Array.from({ length: dim * CLASSES }, normal);
  const y = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    let bestScore = -Infinity;
    for (let c = 0; c < CLASSES; c++) {
      let s = 3 * normal();
      for (let j = 0; j < dim; j++) s += x[i * dim + j] * w[j * CLASSES + c];
      if (s > bestScore) [best, bestScore] = [c, s];
    }
    y[i] = best;
  }
  return { x, y };
}

/** The probe as an ONNX graph trained by Trainer; standardisation on the host, as fitSoftmax does. */
async function trainerProbe(x: Float32Array, y: Int32Array, rows: number, dim: number, epochs: number): Promise<{ seconds: number; accuracy: number }> {
  const t0 = performance.now();
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let i = 0; i < rows; i++) for (let j = 0; j < dim; j++) mean[j] += x[i * dim + j] / rows;
  for (let i = 0; i < rows; i++) for (let j = 0; j < dim; j++) sq[j] += (x[i * dim + j] - mean[j]) ** 2 / rows;
  const xs = new Float32Array(rows * dim);
  for (let j = 0; j < dim; j++) sq[j] = 1 / Math.max(1e-6, Math.sqrt(sq[j]));
  for (let i = 0; i < rows; i++) for (let j = 0; j < dim; j++) xs[i * dim + j] = (x[i * dim + j] - mean[j]) * sq[j];
  const ds = dataset({
    name: 'features', size: rows, inputShape: [dim], inputDType: 'float32', labels: y, numClasses: CLASSES,
    gather: (ix) => {
      const out = new Float32Array(ix.length * dim);
      ix.forEach((row, i) => out.set(xs.subarray(row * dim, row * dim + dim), i * dim));
      return { x: Tensor.float32(out, [ix.length, dim]), y: new Tensor('int64', BigInt64Array.from(ix, (i) => BigInt(y[i])), [ix.length]) };
    },
  });
  const t = await Trainer.create(mlp({ inputs: [dim], hidden: [], classes: CLASSES, seed: 1 }), { optimizer: { kind: 'adam', lr: LR }, session: { threads: 2 } });
  try {
    await t.fit(ds, { epochs, batchSize: BATCH, seed: 1 });
    const seconds = (performance.now() - t0) / 1000; // the evaluation below is not timed, as for the other engines
    return { seconds, accuracy: (await t.evaluate(ds, { batchSize: 2048 })).accuracy };
  } finally {
    await t.dispose();
  }
}

interface TorchRound { seconds: number; trainAccuracy: number }

function torchRounds(dir: string, rows: number, dim: number, epochs: number, rounds: number): TorchRound[] {
  const args = [join(ROOT, 'bench', 'torch_probe.py'), '--features', join(dir, 'x.f32'), '--labels', join(dir, 'y.i32'), '--rows', String(rows), '--dim', String(dim),
    '--classes', String(CLASSES), '--epochs', String(epochs), '--batch', String(BATCH), '--lr', String(LR), '--rounds', String(rounds), '--threads', '2'];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON} ${args.join(' ')}):\n${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as TorchRound);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, epochs: { type: 'string', default: '5' }, rows: { type: 'string', default: '10000' }, dim: { type: 'string', default: '512' } } });
  const [rounds, epochs, rows, dim] = [values.rounds, values.epochs, values.rows, values.dim].map(Number);
  const torch = requireTorch();
  const { x, y } = plantedData(rows, dim);
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-bench-probe-'));
  const per = { host: [] as number[], trainer: [] as number[], pytorch: [] as number[] };
  const acc = { host: NaN, trainer: NaN, pytorch: NaN };
  try {
    writeFileSync(join(dir, 'x.f32'), new Uint8Array(x.buffer));
    writeFileSync(join(dir, 'y.i32'), new Uint8Array(y.buffer));
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`bench: probe round ${r + 1}/${rounds}\r`);
      const t0 = performance.now();
      const m = await fitSoftmax(x, y, { rows, features: dim, classes: CLASSES }, { epochs, lr: LR, l2: 0, batchSize: BATCH, seed: r, engine: 'host' });
      per.host.push((performance.now() - t0) / 1000);
      acc.host = accuracy(m.predict(x, rows), y);
      const tp = await trainerProbe(x, y, rows, dim, epochs);
      per.trainer.push(tp.seconds);
      acc.trainer = tp.accuracy;
      const tr = torchRounds(dir, rows, dim, epochs, 1)[0];
      per.pytorch.push(tr.seconds);
      acc.pytorch = tr.trainAccuracy;
    }
    process.stderr.write('\n');
    const eps = (s: number[]) => (rows * epochs) / median(s);
    const examplesPerSecond = { glassboxHost: eps(per.host), glassboxTrainer: eps(per.trainer), pytorch: eps(per.pytorch) };
    console.log(JSON.stringify(examplesPerSecond), `host/pytorch ${(examplesPerSecond.glassboxHost / examplesPerSecond.pytorch).toFixed(2)}`, `trainer/pytorch ${(examplesPerSecond.glassboxTrainer / examplesPerSecond.pytorch).toFixed(2)}`, JSON.stringify(acc));
    writeResults('probe', { torch, rounds, threads: 2, rows, dim, classes: CLASSES, epochs, batch: BATCH, lr: LR, examplesPerSecond, trainAccuracy: acc, secondsPerRound: per });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
