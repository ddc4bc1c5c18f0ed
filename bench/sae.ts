/**
 * Sparse autoencoder training throughput (issue: representations): 512-d activations → 2048 latents, batch 256,
 * ReLU + L1 and TopK (k = 32), glassbox's trainSae (forward, loss and backward in one ONNX Runtime session per step,
 * Adam and the decoder renormalisation on the host) against the same SAE and loop in PyTorch (bench/torch_sae.py),
 * 2 threads each. The activations are synthetic (each row a sum of 8 of 4096 random unit directions, positive
 * coefficients), generated alike on both sides. Each run times `steps` steps after `warmup` untimed ones (glassbox's
 * graph building and session creation are in the warm-up); rounds alternate the engines; figures are medians.
 *
 *   npm run bench:sae -- [--rounds 3] [--steps 20]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { mulberry32 } from '../src/data/datasets/random.js';
import { matrixSource, trainSae, type Sparsity } from '../src/methods/representations/sae.js';
import { median, PYTHON, requireTorch, ROOT, runBench, writeResults } from './common.js';

const [D, F, BATCH, ROWS, WARMUP] = [512, 2048, 256, 8192, 5];
const KINDS: Record<string, Sparsity> = { relu: { kind: 'relu', l1: 0.01 }, topk: { kind: 'topk', k: 32 } };

function activations(seed: number): Float32Array {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const dirs = Float32Array.from({ length: 4096 * D }, gauss);
  for (let i = 0; i < 4096; i++) {
    const s = Math.hypot(...dirs.subarray(i * D, (i + 1) * D));
    for (let j = 0; j < D; j++) dirs[i * D + j] /= s;
  }
  const rows = new Float32Array(ROWS * D);
  for (let r = 0; r < ROWS; r++) {
    for (let a = 0; a < 8; a++) {
      const i = Math.floor(rand() * 4096);
      const c = 0.5 + rand();
      for (let j = 0; j < D; j++) rows[r * D + j] += c * dirs[i * D + j];
    }
  }
  return rows;
}

/** Seconds of `steps` steps after the warm-up ones, from the progress callback's clock. */
async function glassboxRun(rows: Float32Array, sparsity: Sparsity, steps: number, seed: number) {
  let t0 = 0;
  let t1 = 0;
  const sae = await trainSae(matrixSource(rows, D, { seed }), {
    features: F, sparsity, steps: WARMUP + steps, batchSize: BATCH, lr: 1e-3, seed, session: { threads: 2 },
    onProgress: (p) => {
      if (p.step === WARMUP) t0 = performance.now();
      if (p.step === WARMUP + steps) t1 = performance.now();
    },
  });
  await sae.dispose();
  const seconds = (t1 - t0) / 1000;
  return { seconds, rowsPerSecond: (steps * BATCH) / seconds, finalLoss: sae.training!.loss.at(-1)! };
}

function torchRun(kind: string, steps: number, seed: number) {
  const s = KINDS[kind];
  const args = [join(ROOT, 'bench', 'torch_sae.py'), '--d', String(D), '--f', String(F), '--batch', String(BATCH), '--steps', String(steps), '--warmup', String(WARMUP),
    '--kind', kind, ...(s.kind === 'relu' ? ['--l1', String(s.l1)] : ['--k', String(s.k)]), '--threads', '2', '--seed', String(seed)];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON} ${args.join(' ')}):\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; rows_per_second: number; final_loss: number };
  return { seconds: out.seconds, rowsPerSecond: out.rows_per_second, finalLoss: out.final_loss };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, steps: { type: 'string', default: '20' } } });
  const rounds = Number(values.rounds);
  const steps = Number(values.steps);
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`--steps must be a positive integer, got ${values.steps}`);
  const torch = requireTorch();
  const rows = activations(1);
  const results: Record<string, { glassbox: ReturnType<typeof torchRun>[]; pytorch: ReturnType<typeof torchRun>[] }> = {};
  for (const kind of Object.keys(KINDS)) {
    results[kind] = { glassbox: [], pytorch: [] };
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`bench: ${kind} round ${r + 1}/${rounds}\r`);
      results[kind].glassbox.push(await glassboxRun(rows, KINDS[kind], steps, r + 1));
      results[kind].pytorch.push(torchRun(kind, steps, r + 1));
    }
  }
  process.stderr.write('\n');
  console.log(`SAE training, ${D}-d activations → ${F} latents, batch ${BATCH}, Adam lr 1e-3, ${steps} timed steps, 2 threads, median of ${rounds} rounds`);
  console.log('sparsity   engine      rows/s    step ms');
  const medians: Record<string, Record<string, { rowsPerSecond: number; stepMs: number }>> = {};
  for (const [kind, r] of Object.entries(results)) {
    medians[kind] = {};
    for (const engine of ['glassbox', 'pytorch'] as const) {
      const rps = median(r[engine].map((x) => x.rowsPerSecond));
      medians[kind][engine] = { rowsPerSecond: rps, stepMs: (1000 * BATCH) / rps };
      console.log(`${kind.padEnd(10)} ${engine.padEnd(9)} ${rps.toFixed(0).padStart(9)} ${((1000 * BATCH) / rps).toFixed(1).padStart(10)}`);
    }
    console.log(`${kind}: glassbox / pytorch throughput ${(medians[kind].glassbox.rowsPerSecond / medians[kind].pytorch.rowsPerSecond).toFixed(2)}x`);
  }
  writeResults('sae', { torch, rounds, steps, warmup: WARMUP, d: D, features: F, batch: BATCH, sparsity: KINDS, median: medians, rounds_detail: results });
}

runBench(main);
