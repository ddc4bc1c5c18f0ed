/**
 * Representation-similarity benchmark (Kornblith et al. 2019, linear CKA): (1) linear CKA between two 10,000 × 512
 * float32 activation matrices, (2) the full layer × layer CKA matrix of two MNIST CNNs (builders' cnn: 2 conv layers +
 * fc, random init, seeds 1 and 2) over 2,000 MNIST test images with conv sites flattened — glassbox (products as ONNX
 * graphs in ONNX Runtime) against NumPy and PyTorch (bench/torch_cka.py) on the same data in the same run, 2 threads.
 * Figures are medians over rounds in milliseconds; the scores of the engines are compared at the end. For the matrix,
 * glassbox is timed twice: from the captured activations (what NumPy/PyTorch do) and end to end (capture included),
 * and one more run is profiled step by step (validation, each layer's products, the pairs). glassbox computes each
 * layer's covariance (p ≤ n) or centred Gram matrix (p > n) once and reuses it across pairs; the NumPy/PyTorch
 * baselines cache per layer the same way (Gram matrices and covariance norms).
 *
 *   npm run bench:cka -- [--rounds 5]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { loadMnist, mulberry32 } from '../src/data/datasets/index.js';
import { cnn } from '../src/model/builders/index.js';
import { Model } from '../src/model/model.js';
import { encodeModel } from '../src/onnx/proto.js';
import { Tensor } from '../src/runtime/tensor.js';
import { ckaForm, compare, layerSimilarity, Representation, similarity } from '../src/methods/representations/similarity.js';
import { activations } from '../src/methods/representations/stitching.js';
import { median, PYTHON, requireTorch, ROOT, runBench, writeResults } from './common.js';

const SITES = ['c1.relu', 'c2.relu', 'fc1.relu', 'logits'];
const THREADS = 2;

async function time<T>(f: () => Promise<T>, rounds: number): Promise<{ ms: number; value: T }> {
  let value = await f(); // warm-up (session creation)
  const ts: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    value = await f();
    ts.push(performance.now() - t);
  }
  return { ms: median(ts), value };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
  const rounds = Number(values.rounds);
  const loadStart = loadavg();
  const torch = requireTorch();
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-cka-'));
  try {
    // (1) Two related 10,000 × 512 matrices: Y = X·M + noise.
    const [n, p] = [10_000, 512];
    const rand = mulberry32(1);
    const x = Float32Array.from({ length: n * p }, () => 2 * rand() - 1);
    const y = new Float32Array(n * p);
    for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) y[i * p + j] = 0.7 * x[i * p + ((j * 7) % p)] + (2 * rand() - 1);
    writeFileSync(join(dir, 'x.bin'), x);
    writeFileSync(join(dir, 'y.bin'), y);
    const [X, Y] = [Tensor.float32(x, [n, p]), Tensor.float32(y, [n, p])];
    const pair = await time(() => similarity(X, Y, 'cka', { permutations: 0, form: 'feature', threads: THREADS }), rounds);

    // (2) Two MNIST CNNs, layer × layer.
    const data = (await loadMnist('test')).slice(0, 2000);
    const models = await Promise.all([1, 2].map(async (seed) => Model.load(encodeModel(cnn({ input: [1, 28, 28], channels: [8, 16], hidden: [64], classes: 10, seed })), { threads: THREADS })));
    const opts = { sitesA: SITES, limit: 2000, batchSize: 250, pooling: 'flatten' as const, permutations: 0, threads: THREADS };
    const end = await time(() => layerSimilarity(models[0], models[1], data, opts), rounds);
    const acts = await Promise.all(models.map((m) => activations(m, data, SITES, opts)));
    const layers = { a: [] as [string, number, number][], b: [] as [string, number, number][] };
    acts.forEach((a, k) =>
      SITES.forEach((s, i) => {
        const f = join(dir, `${k}_${i}.bin`);
        writeFileSync(f, a[s].data as Float32Array);
        layers[k === 0 ? 'a' : 'b'].push([f, a[s].shape[0], a[s].shape[1]]);
      }),
    );
    const fromActs = await time(async () => {
      const ra = SITES.map((s) => new Representation(acts[0][s], undefined, s, THREADS));
      const rb = SITES.map((s) => new Representation(acts[1][s], undefined, s, THREADS));
      const m: number[][] = [];
      for (const a of ra) m.push(await Promise.all(rb.map(async (b) => (await compare(a, b, 'cka', { permutations: 0 })).value)));
      return m;
    }, rounds);
    // One run step by step: where the time goes.
    const profile: Record<string, number> = {};
    const lap = async <T>(k: string, f: () => T | Promise<T>): Promise<T> => {
      const t = performance.now();
      const v = await f();
      profile[k] = performance.now() - t;
      return v;
    };
    const reps = await lap('validate (finite check)', () => acts.map((a, k) => SITES.map((s) => new Representation(a[s], undefined, `${k}:${s}`, THREADS))));
    for (const [k, rs] of reps.entries()) for (const r of rs) await lap(`${k === 0 ? 'A' : 'B'} ${r.p} wide: ${ckaForm(r.n, r.p, r.p)} form`, () => r.linear(ckaForm(r.n, r.p, r.p)));
    await lap('16 pairs (Gram matrices of narrow layers paired with wide ones, cross products, inner products)', async () => {
      for (const a of reps[0]) for (const b of reps[1]) await compare(a, b, 'cka', { permutations: 0 });
    });

    const manifest = join(dir, 'manifest.json');
    writeFileSync(manifest, JSON.stringify({ pair: [join(dir, 'x.bin'), join(dir, 'y.bin'), n, p], layers }));
    const env = { ...process.env, OPENBLAS_NUM_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS), MKL_NUM_THREADS: String(THREADS) };
    const r = spawnSync(PYTHON, [join(ROOT, 'bench', 'torch_cka.py'), '--manifest', manifest, '--rounds', String(rounds), '--threads', String(THREADS)], { encoding: 'utf8', maxBuffer: 1 << 24, env });
    if (r.status !== 0) throw new Error(`NumPy/PyTorch baseline failed:\n${r.stderr}`);
    const py = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))));
    const results = {
      torch,
      numpy: py.numpy,
      threads: THREADS,
      rounds,
      loadAverage: { start: loadStart, end: loadavg() },
      pair: { n, p, glassboxMs: pair.ms, numpyMs: py.pair_numpy_ms, torchMs: py.pair_torch_ms, cka: { glassbox: pair.value.value, numpy: py.pair_numpy, torch: py.pair_torch } },
      matrix: {
        sites: SITES,
        widths: SITES.map((s) => acts[0][s].shape[1]),
        n: 2000,
        glassboxFromActivationsMs: fromActs.ms,
        glassboxEndToEndMs: end.ms,
        numpyMs: py.matrix_numpy_ms,
        torchMs: py.matrix_torch_ms,
        maxAbsDiffVsNumpy: maxDiff(fromActs.value, py.matrix_numpy),
        maxAbsDiffVsTorch: maxDiff(fromActs.value, py.matrix_torch),
        profileMs: profile,
        glassbox: fromActs.value,
      },
    };
    console.log(JSON.stringify(results, null, 2));
    writeResults('cka', results);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
