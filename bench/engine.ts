/**
 * Engine benchmark (issue: the engine): glassbox's plain run against a PyTorch forward of the same weights on the
 * same machine, and the cost of capturing sites (against PyTorch keeping every module's output through hooks). PyTorch runs in Debian's python3-torch (bench/torch_forward.py
 * rebuilds the exact exported weights from their seed). Rounds alternate glassbox and PyTorch so both see the same
 * machine state, and glassbox's variants take turns run by run; every figure is a median over rounds of per-round
 * medians.
 *
 *   npm run bench -- [--rounds 5] [--runs 20] [--only cnn,gpt]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { Model } from '../src/model/model.js';
import type { OptimizationLevel } from '../src/runtime/runtime.js';
import { inputFor, median, requireTorch, ROOT, timeInterleaved, torchMedian, runBench, writeResults, type Case } from './common.js';

interface EngineCase extends Case { oneSite: string }
const CASES: EngineCase[] = [
  { model: 'cnn', batch: 64, oneSite: 'relu1.relu' },
  { model: 'gpt', batch: 8, seq: 32, oneSite: 'blocks.1.attn.softmax' },
  { model: 'mlp', batch: 64, oneSite: 'relu1.relu' },
  { model: 'resnet18', batch: 8, oneSite: 'layer3.0.relu.relu' },
];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, runs: { type: 'string', default: '20' }, only: { type: 'string' } } });
  const rounds = Number(values.rounds);
  const runs = Number(values.runs);
  const only = values.only?.split(',');
  const torch = requireTorch();
  const results = [];
  for (const c of CASES.filter((x) => !only || only.includes(x.model))) {
    const path = join(ROOT, 'fixtures', 'torch', `${c.model}.onnx`);
    const models = new Map<OptimizationLevel, Model>();
    for (const level of ['disabled', 'all'] as const) models.set(level, await Model.load(path, { optimization: level, threads: 2 }));
    const exact = models.get('disabled')!;
    const feeds = inputFor(c);
    const allSites = exact.sites.map((s) => s.name);
    const per: Record<string, number[]> = { exact: [], fast: [], torch: [], torchHooks: [], captureOne: [], captureAll: [] };
    for (let r = 0; r < rounds; r++) {
      const t = await timeInterleaved(
        {
          exact: () => exact.run(feeds),
          fast: () => models.get('all')!.run(feeds),
          captureOne: () => exact.run(feeds, { capture: [c.oneSite] }),
          captureAll: () => exact.run(feeds, { capture: allSites }),
        },
        runs,
        3,
      );
      for (const k of Object.keys(t)) per[k].push(t[k]);
      per.torch.push(torchMedian(c, runs));
      per.torchHooks.push(torchMedian(c, runs, ['--hooks']));
      process.stderr.write(`bench: ${c.model} round ${r + 1}/${rounds}\r`);
    }
    const m = Object.fromEntries(Object.entries(per).map(([k, v]) => [k, median(v)]));
    const row = {
      model: c.model,
      batch: c.batch,
      seq: c.seq,
      sites: allSites.length,
      ms: m,
      torchOverExact: m.torch / m.exact,
      torchOverFast: m.torch / m.fast,
      captureOneOverPlain: m.captureOne / m.exact,
      captureAllOverPlain: m.captureAll / m.exact,
      torchHooksOverCaptureAll: m.torchHooks / m.captureAll,
      rounds: per,
    };
    results.push(row);
    for (const model of models.values()) await model.dispose();
  }
  process.stderr.write('\n');
  const fmt = (x: number) => x.toFixed(2);
  console.log('plain forward (glassbox exact = default, no fusions; all = ONNX Runtime fusions) vs PyTorch; capture cost vs a plain run');
  console.log('model     batch  glassbox exact  glassbox all  pytorch   torch/exact  torch/all  capture 1 site  capture all sites  torch hooks/capture all');
  for (const r of results) {
    const b = r.seq ? `${r.batch}x${r.seq}` : String(r.batch);
    console.log(
      `${r.model.padEnd(9)} ${b.padEnd(6)} ${fmt(r.ms.exact).padStart(10)} ms ${fmt(r.ms.fast).padStart(9)} ms ${fmt(r.ms.torch).padStart(7)} ms ` +
        `${fmt(r.torchOverExact).padStart(9)}x ${fmt(r.torchOverFast).padStart(9)}x ${fmt(r.captureOneOverPlain).padStart(12)}x ${fmt(r.captureAllOverPlain).padStart(10)}x (${r.sites})  ${fmt(r.torchHooksOverCaptureAll).padStart(8)}x`,
    );
  }
  writeResults('engine', { torch, rounds, runs, results });
}

runBench(main);
