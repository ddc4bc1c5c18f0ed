/**
 * Attribution benchmark (issue: attribution): glassbox's methods against the same computations written directly in
 * PyTorch (bench/torch_attribution.py), 2 threads each, on the PyTorch-exported CNN (batch 64, w.r.t. the input) and
 * transformer (batch 8 × 32 tokens, w.r.t. the token embeddings): saliency, integrated gradients (50 Gauss–Legendre
 * steps: 3,200 forward + backward rows on the CNN), occlusion (4×4 windows at stride 4) and Grad-CAM (at relu2).
 * PyTorch chunks integrated gradients and occlusion at its fastest of a few sizes. Rounds alternate the engines;
 * figures are medians over rounds.
 *
 *   npm run bench:attribution -- [--rounds 5] [--runs 5]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import type { ExplainOptions } from '../src/methods/attribution/method.js';
import { attributionMethod } from '../src/methods/registry.js';
import { Model } from '../src/model/model.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { inputFor, median, PYTHON, requireTorch, ROOT, runBench, writeResults } from './common.js';

interface Case {
  readonly model: 'cnn' | 'gpt';
  readonly batch: number;
  readonly seq?: number;
  /** glassbox registry name, and the torch script's name for it. */
  readonly method: string;
  readonly torch: 'saliency' | 'ig' | 'occlusion' | 'gradcam';
  readonly options: ExplainOptions;
}

const CASES: Case[] = [
  { model: 'cnn', batch: 64, method: 'saliency', torch: 'saliency', options: {} },
  { model: 'cnn', batch: 64, method: 'integrated-gradients', torch: 'ig', options: { steps: 50 } },
  { model: 'cnn', batch: 64, method: 'occlusion', torch: 'occlusion', options: { window: [1, 4, 4], stride: [1, 4, 4], baseline: 0 } },
  { model: 'cnn', batch: 64, method: 'grad-cam', torch: 'gradcam', options: { site: 'relu2.relu' } },
  { model: 'gpt', batch: 8, seq: 32, method: 'saliency', torch: 'saliency', options: { wrt: 'tok_emb.gather' } },
  { model: 'gpt', batch: 8, seq: 32, method: 'integrated-gradients', torch: 'ig', options: { wrt: 'tok_emb.gather', steps: 50 } },
];

function torchMs(c: Case, runs: number): number {
  const args = [join(ROOT, 'bench', 'torch_attribution.py'), c.model, c.torch, '--batch', String(c.batch), '--runs', String(runs), '--threads', '2'];
  if (c.seq) args.push('--seq', String(c.seq));
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON} ${args.join(' ')}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).median_ms;
}

async function glassboxMs(model: Model, feeds: Record<string, Tensor>, c: Case, runs: number): Promise<number> {
  const entry = attributionMethod(c.method);
  await entry.explain(model, feeds, c.options); // warm-up: compiles and caches the sessions
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await entry.explain(model, feeds, c.options);
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, runs: { type: 'string', default: '5' } } });
  const rounds = Number(values.rounds);
  const runs = Number(values.runs);
  const torch = requireTorch();
  const results = [];
  for (const c of CASES) {
    const model = await Model.load(join(ROOT, 'fixtures', 'torch', `${c.model}.onnx`), { threads: 2 });
    const feeds = inputFor(c);
    const per = { glassbox: [] as number[], pytorch: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`bench: ${c.model} ${c.method} round ${r + 1}/${rounds}\r`);
      per.glassbox.push(await glassboxMs(model, feeds, c, runs));
      per.pytorch.push(torchMs(c, runs));
    }
    const g = median(per.glassbox);
    const t = median(per.pytorch);
    results.push({ model: c.model, batch: c.batch, seq: c.seq, method: c.method, ms: { glassbox: g, pytorch: t }, torchOverGlassbox: t / g, rounds: per });
    await model.dispose();
  }
  process.stderr.write('\n');
  console.log('attribution methods, glassbox vs the same computation in PyTorch (2 threads each), medians');
  console.log('model  batch   method                 glassbox      pytorch   pytorch/glassbox');
  for (const r of results) {
    const b = r.seq ? `${r.batch}x${r.seq}` : String(r.batch);
    console.log(`${r.model.padEnd(6)} ${b.padEnd(7)} ${r.method.padEnd(22)} ${r.ms.glassbox.toFixed(1).padStart(8)} ms ${r.ms.pytorch.toFixed(1).padStart(9)} ms ${r.torchOverGlassbox.toFixed(2).padStart(10)}x`);
  }
  writeResults('attribution', { torch, rounds, runs, results });
}

runBench(main);
