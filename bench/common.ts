/** Shared pieces of the benchmarks: fixture inputs, interleaved timing, and the PyTorch baseline in a subprocess. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../src/runtime/tensor.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PYTHON = '/usr/bin/python3';

export interface Case { model: 'mlp' | 'cnn' | 'resnet18' | 'gpt'; batch: number; seq?: number }

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export function inputFor(c: Case): Record<string, Tensor> {
  if (c.model === 'gpt') return { tokens: Tensor.int64(Array.from({ length: c.batch * c.seq! }, (_, i) => (i * 31) % 96), [c.batch, c.seq!]) };
  const shape = { mlp: [784], cnn: [1, 28, 28], resnet18: [3, 224, 224] }[c.model];
  const n = c.batch * shape.reduce((a, b) => a * b, 1);
  return { x: Tensor.float32(Array.from({ length: n }, (_, i) => Math.sin(i * 0.731)), [c.batch, ...shape]) };
}

/** Medians of each function's run time, the functions taking turns run by run so drift hits them alike. */
export async function timeInterleaved(fns: Record<string, () => Promise<unknown>>, runs: number, warmup: number): Promise<Record<string, number>> {
  const ts: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (let i = 0; i < warmup + runs; i++) {
    for (const [k, f] of Object.entries(fns)) {
      const t0 = performance.now();
      await f();
      if (i >= warmup) ts[k].push(performance.now() - t0);
    }
  }
  return Object.fromEntries(Object.entries(ts).map(([k, v]) => [k, median(v)]));
}

/** Median ms of bench/torch_forward.py for the case, with extra flags (--hooks, --backward). */
export function torchMedian(c: Case, runs: number, flags: readonly string[] = []): number {
  const args = [join(ROOT, 'bench', 'torch_forward.py'), c.model, String(c.batch), '--runs', String(runs), '--warmup', '5', '--threads', '2', ...flags];
  if (c.seq) args.push('--seq', String(c.seq));
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON} ${args.join(' ')}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).median_ms;
}

/** The installed torch version, or exits with the setup hint. */
export function requireTorch(): string {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    console.error('bench: PyTorch is not installed for /usr/bin/python3; run `bash scripts/setup.sh --bench` (installs Debian python3-torch)');
    process.exit(1);
  }
  return probe.stdout.trim();
}

/** Writes bench/results/NAME.json and says where. */
export function writeResults(name: string, payload: object): void {
  const out = join(ROOT, 'bench', 'results', `${name}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), ...payload }, null, 2));
  console.log(`written: ${out}`);
}

/** Runs a benchmark's main, turning any failure into one line and exit code 1. */
export function runBench(main: () => Promise<void>): void {
  main().catch((e: Error) => {
    console.error(`bench: ${e.message}`);
    process.exit(1);
  });
}
