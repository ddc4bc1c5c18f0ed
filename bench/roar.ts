/**
 * ROAR on MNIST (Hooker et al. 2019): for saliency, gradient × input and integrated gradients against a random
 * ranking, remove 10/30/50/70/90% of each image's pixels (the top-ranked ones, replaced by the training mean),
 * retrain the mnist-cnn model from the same initial weights, and report test accuracy. An experiment rather than a
 * timing: it writes bench/results/roar.json. About 10 minutes on 2 cores with the defaults.
 *
 *   npm run bench:roar -- [--train 10000] [--test 2000] [--epochs 2]
 */
import { parseArgs } from 'node:util';
import '../src/index.js';
import { loadMnist } from '../src/data/datasets/images.js';
import { roar } from '../src/evaluate/sanity/roar.js';
import { cnn } from '../src/model/builders/index.js';
import { runBench, writeResults } from './common.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { train: { type: 'string', default: '10000' }, test: { type: 'string', default: '2000' }, epochs: { type: 'string', default: '2' } } });
  const [train, test] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const started = performance.now();
  const r = await roar({
    architecture: cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed: 1 }),
    train,
    test,
    rankings: { saliency: 'saliency', 'gradient-x-input': 'gradient-x-input', 'integrated-gradients': 'integrated-gradients' },
    explain: { steps: 16 },
    trainSize: Number(values.train),
    testSize: Number(values.test),
    epochs: Number(values.epochs),
    batchSize: 64,
    onProgress: (p) => process.stderr.write(`roar: ${p.stage} ${p.ranking ?? ''} ${p.fraction ?? ''} (${p.done}/${p.total})\x1b[K\r`),
  });
  process.stderr.write('\n');
  console.log(`ROAR on MNIST (${values.train} training / ${values.test} test images, ${values.epochs} epochs per retraining, mnist-cnn): test accuracy`);
  console.log(`unmodified: ${(100 * r.baseAccuracy).toFixed(2)}%`);
  console.log(`ranking                 ${r.fractions.map((f) => `${Math.round(100 * f)}%`.padStart(7)).join('')}`);
  for (const [name, acc] of Object.entries(r.accuracy)) console.log(`${name.padEnd(22)} ${acc.map((a) => `${(100 * a).toFixed(1)}`.padStart(7)).join('')}`);
  for (const c of r.checks) console.log(`check ${c.name}: ${c.passed ? 'passed' : 'failed'} — ${c.detail}`);
  writeResults('roar', { seconds: (performance.now() - started) / 1000, ...r });
}

runBench(main);
