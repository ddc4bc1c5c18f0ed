/**
 * Training benchmark (issue: autodiff and training): one epoch of MNIST (60000 images, batch 64, Adam lr 0.003) on
 * glassbox's mnist-cnn model, glassbox's trainer (forward, loss and backward in one ONNX Runtime session per step,
 * Adam on the host) against the same model and loop in PyTorch (bench/torch_train.py), 2 threads each. Rounds
 * alternate the two; the figures are medians over rounds of the epoch's training time (evaluation not included),
 * with each engine's test accuracy after the epoch to show both learnt alike.
 *
 *   npm run bench:train -- [--rounds 3]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import type { Dataset } from '../src/data/datasets/dataset.js';
import { loadMnist } from '../src/data/datasets/images.js';
import { writeNpy } from '../src/data/npy.js';
import { cnn } from '../src/model/builders/index.js';
import { Trainer } from '../src/model/train/index.js';
import { Tensor } from '../src/runtime/tensor.js';
import { median, PYTHON, requireTorch, ROOT, runBench, writeResults } from './common.js';

const BATCH = 64;
const LR = 3e-3;

/** Writes a split as uint8 images [N, 28, 28] and int64 labels [N], the form torch_train.py reads. */
async function exportSplit(ds: Dataset, dir: string, split: string): Promise<void> {
  const { x, y } = ds.gather(Int32Array.from({ length: ds.size }, (_, i) => i));
  const pixels = Uint8Array.from(x.data as Float32Array, (v) => Math.round(v * 255));
  await writeNpy(join(dir, `${split}_x.npy`), new Tensor('uint8', pixels, [ds.size, 28, 28]));
  await writeNpy(join(dir, `${split}_y.npy`), y);
}

async function glassboxEpoch(train: Dataset, test: Dataset, seed: number) {
  const trainer = await Trainer.create(cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed }), {
    optimizer: { kind: 'adam', lr: LR },
    session: { threads: 2 },
  });
  try {
    const { history } = await trainer.fit(train, { epochs: 1, batchSize: BATCH, seed, test });
    const r = history[0];
    return { seconds: r.seconds, trainLoss: r.trainLoss, trainAccuracy: r.trainAccuracy, testAccuracy: r.test!.accuracy };
  } finally {
    await trainer.dispose();
  }
}

function torchEpoch(dir: string, seed: number) {
  const args = [join(ROOT, 'bench', 'torch_train.py'), dir, '--batch', String(BATCH), '--lr', String(LR), '--threads', '2', '--seed', String(seed)];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON} ${args.join(' ')}):\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; train_loss: number; train_accuracy: number; test_accuracy: number };
  return { seconds: out.seconds, trainLoss: out.train_loss, trainAccuracy: out.train_accuracy, testAccuracy: out.test_accuracy };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Number(values.rounds);
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
  const torch = requireTorch();
  const [train, test] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-bench-train-'));
  try {
    await Promise.all([exportSplit(train, dir, 'train'), exportSplit(test, dir, 'test')]);
    const per = { glassbox: [] as ReturnType<typeof torchEpoch>[], torch: [] as ReturnType<typeof torchEpoch>[] };
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`bench: round ${r + 1}/${rounds}\r`);
      per.glassbox.push(await glassboxEpoch(train, test, r + 1));
      per.torch.push(torchEpoch(dir, r + 1));
    }
    process.stderr.write('\n');
    const m = (xs: ReturnType<typeof torchEpoch>[]) => ({
      seconds: median(xs.map((x) => x.seconds)),
      testAccuracy: median(xs.map((x) => x.testAccuracy)),
      trainLoss: median(xs.map((x) => x.trainLoss)),
    });
    const g = m(per.glassbox);
    const t = m(per.torch);
    console.log(`one MNIST epoch (60000 images, batch ${BATCH}, Adam lr ${LR}), mnist-cnn, 2 threads, median of ${rounds} rounds`);
    console.log('engine     epoch s   images/s   train loss   test acc');
    for (const [name, v] of [['glassbox', g], ['pytorch', t]] as const) {
      console.log(`${name.padEnd(9)} ${v.seconds.toFixed(1).padStart(8)} ${Math.round(60000 / v.seconds).toString().padStart(10)} ${v.trainLoss.toFixed(4).padStart(12)} ${(100 * v.testAccuracy).toFixed(2).padStart(9)}%`);
    }
    console.log(`pytorch / glassbox epoch time: ${(t.seconds / g.seconds).toFixed(2)}x`);
    writeResults('train', { torch, rounds, batch: BATCH, lr: LR, median: { glassbox: g, pytorch: t }, torchOverGlassbox: t.seconds / g.seconds, rounds_detail: per });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
