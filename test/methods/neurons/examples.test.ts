/**
 * Dataset examples against a brute-force reference written here: every activation of a few hundred real MNIST
 * images captured with model.run, each unit's spatial max/min and its first position found by indexOf, all examples
 * sorted (value, then index), and histogram bins counted edge by edge.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/index.js';
import { Model } from '../../../src/model/model.js';
import { EXAMPLE_METHODS, ExampleScan, scanExamples, type ScanOptions } from '../../../src/methods/neurons/examples.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { PADDLE_CLS, seeded, torchFixture } from '../../helpers.js';

interface Ref {
  top: { index: number; value: number; position: number }[];
  bottom: { index: number; value: number; position: number }[];
  counts: number[];
  mean: number;
}

/** The reference per unit: unit axis 1 (rank 2, ≥ 4) or last (rank 3), positions the other non-batch axes. */
function bruteForce(t: Tensor, indices: readonly number[], k: number, edges: readonly number[]): Ref[] {
  const d = t.data as Float32Array;
  const [n] = t.shape;
  const rank3 = t.rank === 3;
  const units = rank3 ? t.shape[2] : t.shape[1];
  const positions = rank3 ? t.shape[1] : t.shape.slice(2).reduce((a, b) => a * b, 1);
  const z = (v: number) => (v === 0 ? 0 : v);
  return Array.from({ length: units }, (_, u) => {
    const rows = Array.from({ length: n }, (_, r) => {
      const vals: number[] = [];
      for (let p = 0; p < positions; p++) vals.push(z(d[rank3 ? (r * positions + p) * units + u : (r * units + u) * positions + p]));
      const max = Math.max(...vals);
      const min = Math.min(...vals);
      return { index: indices[r], max, argmax: vals.indexOf(max), min, argmin: vals.indexOf(min) };
    });
    const byIndex = (a: { index: number }, b: { index: number }) => a.index - b.index;
    const top = [...rows].sort((a, b) => b.max - a.max || byIndex(a, b)).slice(0, k).map((r) => ({ index: r.index, value: r.max, position: r.argmax }));
    const bottom = [...rows].sort((a, b) => a.min - b.min || byIndex(a, b)).slice(0, k).map((r) => ({ index: r.index, value: r.min, position: r.argmin }));
    const counts = new Array<number>(edges.length + 1).fill(0);
    for (const r of rows) counts[edges.filter((e) => e <= r.max).length]++;
    return { top, bottom, counts, mean: rows.reduce((s, r) => s + r.max, 0) / n };
  });
}

/** Runs the brute force on a dataset and asserts the scan agrees unit by unit. */
async function assertMatchesBruteForce(model: Model, data: Dataset, scan: ExampleScan, sites: readonly string[]): Promise<void> {
  const indices = Array.from({ length: data.size }, (_, i) => i);
  const { captures } = await model.run({ [model.inputs[0].name]: data.gather(indices).x }, { capture: [...sites] });
  for (const site of sites) {
    const edges = scan.histogram(site, 0).edges;
    const ref = bruteForce(captures[site], indices, scan.k, edges);
    const layout = scan.tally(site).layout;
    assert.equal(layout.units, ref.length, `${site}: units`);
    ref.forEach((r, u) => {
      const strip = (es: readonly { index: number; value: number; position: number }[]) => es.map(({ index, value, position }) => ({ index, value, position }));
      assert.deepEqual(strip(scan.top(site, u)), r.top, `${site} unit ${u}: top-k`);
      assert.deepEqual(strip(scan.bottom(site, u)), r.bottom, `${site} unit ${u}: bottom-k`);
      assert.deepEqual(scan.histogram(site, u).counts, r.counts, `${site} unit ${u}: histogram`);
      const { mean } = scan.stats(site, u);
      assert.ok(Math.abs(mean - r.mean) <= 1e-9 * Math.max(1, Math.abs(r.mean)), `${site} unit ${u}: mean ${mean} vs ${r.mean}`);
      for (const e of scan.top(site, u)) {
        const flat = e.coords.reduce((f, c, i) => f * layout.positionShape[i] + c, 0);
        assert.equal(flat, e.position, `${site} unit ${u}: coordinates ${e.coords} are position ${e.position}`);
      }
    });
  }
}

/**
 * The exact state of a scan: top-k, bottom-k, histograms, coverage. Left out: the checks (a merge of parts has no
 * model to re-run) and the float64 running sums behind mean and std, which merge up to rounding only (sums are not
 * associative); `assertSumsClose` compares those.
 */
const state = (s: ExampleScan) => {
  const { checks: _checks, sites, ...rest } = s.toJSON();
  return { ...rest, sites: sites.map(({ sum: _sum, sumSq: _sumSq, ...site }) => site) };
};

function assertSumsClose(a: ExampleScan, b: ExampleScan): void {
  a.tallies.forEach((t, s) => {
    for (const key of ['sum', 'sumSq'] as const) {
      t[key].forEach((v, u) => assert.ok(Math.abs(v - b.tallies[s][key][u]) <= 1e-12 * Math.max(1, Math.abs(v)), `${t.layout.name} unit ${u} ${key}`));
    }
  });
}

let cnn: Model;
let mnist: Dataset;
const SITES = ['c2.conv', 'relu1.relu', 'relu2.relu', 'fc.gemm'];
const OPTS: ScanOptions = { sites: SITES, k: 5, batchSize: 64, session: { threads: 2 } };
let full: ExampleScan;

before(async () => {
  cnn = await Model.load(torchFixture('cnn').path, { threads: 2 });
  mnist = (await loadMnist('test')).slice(0, 300);
  full = await scanExamples(cnn, mnist, OPTS);
});

test('CNN on 300 MNIST images: top-k, bottom-k, peaks and histograms equal the brute-force reference', async () => {
  await assertMatchesBruteForce(cnn, mnist, full, SITES);
  assert.equal(full.seen, 300);
  assert.ok(full.complete);
  // The default edges are the signed log₂ scale: ±2^(j/4), j = −40…40, and 0.
  const pos = Array.from({ length: 81 }, (_, j) => 2 ** (-10 + j / 4));
  assert.deepEqual(full.histogram('relu1.relu', 0).edges, [...pos.map((e) => -e).reverse(), 0, ...pos]);
  for (const c of full.checks) assert.ok(c.passed !== false, `${c.name}: ${c.detail}`);
  const reproduced = full.checks.find((c) => c.name === 'reproduced')!;
  assert.equal(reproduced.value, 0, 're-running top-1/bottom-1 examples gives bit-identical activations');
  // ReLU sites: a unit's bottom value is its spatial min, never negative; c2.conv has negative minima.
  assert.ok(full.bottom('relu2.relu', 7).every((e) => e.value >= 0));
  assert.ok(full.bottom('c2.conv', 7)[0].value < 0);
  // The same reductions done in JS over captured sites give the same scan.
  assert.deepEqual(state(await scanExamples(cnn, mnist, { ...OPTS, reduce: 'capture' })), state(full));
  assert.equal(EXAMPLE_METHODS['dataset-examples'].info.taxonomy.zhang.scope, 'global');
  assert.equal(EXAMPLE_METHODS['dataset-examples'].info.taxonomy.rauker?.section, 'III: dataset examples');
});

test('user histogram edges count exactly, with underflow and overflow bins', async () => {
  const scan = await scanExamples(cnn, mnist.slice(0, 100), { sites: ['c2.conv'], k: 3, histogram: { min: -0.1, max: 0.3, bins: 8 }, verifyUnits: 0 });
  await assertMatchesBruteForce(cnn, mnist.slice(0, 100), scan, ['c2.conv']);
  const h = scan.histogram('c2.conv', 0);
  assert.equal(h.edges.length, 9);
  assert.equal(h.counts.reduce((a, b) => a + b, 0), 100);
});

test('merging scans of two halves equals the scan of the whole, exactly', async () => {
  const a = await scanExamples(cnn, mnist, { ...OPTS, range: [0, 170] });
  const b = await scanExamples(cnn, mnist, { ...OPTS, range: [170, 300] });
  assert.deepEqual(state(ExampleScan.merge(a, b)), state(full));
  assert.deepEqual(state(b.merge(a)), state(full));
  assertSumsClose(ExampleScan.merge(a, b), full);
  // A slice scanned on its own with an offset gives the same global indices as the range.
  const sliced = await scanExamples(cnn, mnist.slice(170, 300), { ...OPTS, offset: 170 });
  assert.deepEqual(state(sliced), state(b));
  assert.throws(() => a.merge(a), /overlap on dataset indices \[0, 170\)/);
  const otherK = await scanExamples(cnn, mnist, { ...OPTS, k: 2, range: [170, 200], verifyUnits: 0 });
  assert.throws(() => a.merge(otherK), /different k/);
});

test('toJSON / fromJSON round-trips exactly', () => {
  const text = JSON.stringify(full);
  const back = ExampleScan.fromJSON(text);
  assert.equal(JSON.stringify(back), text);
  assert.deepEqual(back.top('relu2.relu', 12), full.top('relu2.relu', 12));
  assert.deepEqual(back.checks, full.checks);
  assert.throws(() => ExampleScan.fromJSON('{"format":"other"}'), /not a glassbox example scan/);
});

test('abort mid-scan keeps a consistent partial result, and resume completes it', async () => {
  const controller = new AbortController();
  const seen: number[] = [];
  const partial = await scanExamples(cnn, mnist, {
    ...OPTS,
    signal: controller.signal,
    onProgress: ({ done, total }) => {
      seen.push(done);
      assert.equal(total, 300);
      if (done >= 128) controller.abort();
    },
  });
  assert.deepEqual(seen, [64, 128]);
  assert.equal(partial.seen, 128);
  assert.equal(partial.complete, false);
  assert.equal(partial.checks.find((c) => c.name === 'coverage')!.passed, false);
  assert.deepEqual(state(partial).sites, state(await scanExamples(cnn, mnist, { ...OPTS, range: [0, 128] })).sites);
  const resumed = await scanExamples(cnn, mnist, { ...OPTS, resume: ExampleScan.fromJSON(JSON.stringify(partial)) });
  assert.deepEqual(state(resumed), state(full));
  assertSumsClose(resumed, full);
  assert.ok(resumed.checks.find((c) => c.name === 'reproduced')!.passed);
  assert.deepEqual(state(await scanExamples(cnn, mnist, { ...OPTS, resume: full })), state(full), 'resuming a complete scan adds nothing');
});

test('bad input fails early, naming the culprit', async () => {
  const small = mnist.slice(0, 10);
  await assert.rejects(scanExamples(cnn, small, { sites: ['relu9'] }), /unknown site 'relu9'.*relu1\.relu/);
  await assert.rejects(scanExamples(cnn, small, { sites: ['relu1.relu'], k: 0 }), /k must be a positive integer, got 0/);
  await assert.rejects(scanExamples(cnn, small, { sites: ['relu1.relu'], range: [5, 20] }), /range \[5, 20\) is not within/);
  await assert.rejects(scanExamples(cnn, small, { sites: ['relu1.relu'], histogram: { edges: [1, 0] } }), /edges must increase strictly/);
  const poisoned = dataset({
    ...small,
    gather: (ix) => {
      const { x, y } = small.gather(ix);
      const d = Float32Array.from(x.data as Float32Array);
      ix.forEach((i, b) => i === 7 && (d[b * 784 + 100] = NaN));
      return { x: new Tensor('float32', d, x.shape), y };
    },
  });
  await assert.rejects(scanExamples(cnn, poisoned, { sites: ['relu1.relu'], batchSize: 4 }), /example 7 of .* holds NaN/);
});

test('PaddleOCR classifier, MNIST digits placed on a 48×192 strip: conv channels against the brute force', async () => {
  const model = await Model.load(PADDLE_CLS, { inputShapes: { x: [2, 3, 48, 192] } });
  const digits = (await loadMnist('test')).slice(300, 348);
  // Each digit upscaled ×1.5 (nearest) to 42×42 at a horizontal offset that varies by example, on a white strip,
  // normalised as PaddleOCR does ((v − 0.5) / 0.5), the same in all three channels.
  const strips = dataset({
    name: 'mnist-strips',
    size: digits.size,
    inputShape: [3, 48, 192],
    inputDType: 'float32',
    gather: (ix) => {
      const src = digits.gather(ix).x.data as Float32Array;
      const out = new Float32Array(ix.length * 3 * 48 * 192).fill(1);
      ix.forEach((i, b) => {
        const left = (i * 37) % 150;
        for (let c = 0; c < 3; c++) {
          for (let h = 0; h < 42; h++) {
            for (let w = 0; w < 42; w++) out[((b * 3 + c) * 48 + h + 3) * 192 + left + w] = 1 - 2 * src[b * 784 + Math.floor(h / 1.5) * 28 + Math.floor(w / 1.5)];
          }
        }
      });
      return { x: new Tensor('float32', out, [ix.length, 3, 48, 192]), y: Tensor.int64(Array.from(ix, () => 0)) };
    },
  });
  const sites = ['conv2d_53.tmp_0', 'relu_3.tmp_0'];
  const scan = await scanExamples(model, strips, { sites, k: 4, batchSize: 16 });
  await assertMatchesBruteForce(model, strips, scan, sites);
  assert.deepEqual(scan.tally('conv2d_53.tmp_0').layout.positionShape, [24, 96]);
  assert.ok(scan.checks.every((c) => c.passed !== false), JSON.stringify(scan.checks));
});

test('transformer features [N, T, D]: the max over tokens and the token of the peak', async () => {
  const model = await Model.load(torchFixture('gpt').path, { threads: 2 });
  const rand = seeded(11);
  const tokens = Array.from({ length: 40 * 16 }, () => Math.floor(rand() * 96));
  const windows = dataset({
    name: 'random-tokens',
    size: 40,
    inputShape: [16],
    inputDType: 'int64',
    gather: (ix) => ({ x: Tensor.int64(Array.from(ix).flatMap((i) => tokens.slice(i * 16, i * 16 + 16)), [ix.length, 16]), y: Tensor.int64(Array.from(ix, () => 0)) }),
  });
  const sites = ['blocks.0.mlp.act.mul_1'];
  const scan = await scanExamples(model, windows, { sites, k: 3, batchSize: 12 });
  await assertMatchesBruteForce(model, windows, scan, sites);
  assert.deepEqual(scan.tally(sites[0]).layout.positionShape, [16]);
  assert.equal(scan.tally(sites[0]).layout.units, 256);
  assert.ok(scan.checks.every((c) => c.passed !== false), JSON.stringify(scan.checks));
});
