import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dci, discretize, entropy, lasso, mig, mutualInformation } from '../../../src/methods/representations/disentanglement.js';
import { DICTIONARY_METHODS } from '../../../src/methods/representations/sae.js';
import { factorDataset, FACTOR_LEVELS, renderSprite } from '../../../src/data/datasets/factors.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';

test('mutual information and entropy match a hand computation', () => {
  // Joint counts over 8 samples: (0,0)×3, (0,1)×1, (1,0)×1, (1,1)×3. Marginals uniform.
  const a = [0, 0, 0, 0, 1, 1, 1, 1];
  const b = [0, 0, 0, 1, 0, 1, 1, 1];
  const hand = 2 * (3 / 8) * Math.log((3 / 8) / (1 / 4)) + 2 * (1 / 8) * Math.log((1 / 8) / (1 / 4));
  assert.ok(Math.abs(mutualInformation(a, b) - hand) < 1e-12);
  assert.ok(Math.abs(entropy(a) - Math.log(2)) < 1e-12);
  assert.ok(Math.abs(mutualInformation(a, a) - Math.log(2)) < 1e-12); // I(X; X) = H(X)
  assert.equal(mutualInformation([0, 1, 0, 1], [0, 0, 1, 1]), 0); // independent
  assert.deepEqual(Array.from(discretize([0, 0.24, 0.5, 0.99, 1], 4)), [0, 0, 2, 3, 3]);
  assert.throws(() => mutualInformation([0], [0, 1]), /equal length/);
});

/** n samples of the five dSprites-like factors (independent, uniform levels). */
function factorSamples(n: number, seed: number): Float64Array {
  const rand = mulberry32(seed);
  return Float64Array.from({ length: n * 5 }, (_, i) => Math.floor(rand() * FACTOR_LEVELS[i % 5]));
}

function transform(f: Float64Array, n: number, map: (row: Float64Array) => number[]): { data: Float64Array; rows: number; cols: number } {
  const out: number[] = [];
  for (let r = 0; r < n; r++) out.push(...map(f.subarray(r * 5, r * 5 + 5)));
  return { data: Float64Array.from(out), rows: n, cols: out.length / n };
}

/** A random rotation of R^5 (Gram–Schmidt of a Gaussian matrix). */
function rotation(seed: number): number[][] {
  const rand = mulberry32(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const q: number[][] = [];
  for (let i = 0; i < 5; i++) {
    const v = Array.from({ length: 5 }, g);
    for (const u of q) {
      const dot = u.reduce((s, x, k) => s + x * v[k], 0);
      for (let k = 0; k < 5; k++) v[k] -= dot * u[k];
    }
    const s = Math.hypot(...v);
    q.push(v.map((x) => x / s));
  }
  return q;
}

test('MIG and DCI: identity code ≈ 1, a rotation of it lower, noise ≈ 0', () => {
  const n = 4000;
  const f = factorSamples(n, 1);
  const factors = { data: f, rows: n, cols: 5 };
  // Each factor standardised, so the rotation mixes them on equal terms.
  const z = (row: Float64Array) => Array.from(row, (v, k) => (v - (FACTOR_LEVELS[k] - 1) / 2) / FACTOR_LEVELS[k]);
  const identity = transform(f, n, (row) => z(row));
  const q = rotation(7);
  const rotated = transform(f, n, (row) => q.map((qi) => qi.reduce((s, x, k) => s + x * z(row)[k], 0)));
  const rand = mulberry32(9);
  const noise = transform(f, n, () => Array.from({ length: 5 }, () => rand()));

  const mi = mig(identity, factors);
  assert.ok(mi.score > 0.99, `MIG of the identity code ${mi.score}`);
  const mr = mig(rotated, factors);
  const mn = mig(noise, factors);
  assert.ok(mr.score < 0.5 * mi.score, `MIG of a rotation ${mr.score}`);
  assert.ok(mn.score < 0.02, `MIG of noise ${mn.score}`);

  const di = dci(identity, factors);
  assert.ok(di.disentanglement > 0.95 && di.completeness > 0.95 && di.informativeness > 0.99, JSON.stringify([di.disentanglement, di.completeness, di.informativeness]));
  const dr = dci(rotated, factors);
  assert.ok(dr.disentanglement < 0.6 && dr.completeness < 0.6, `rotation D ${dr.disentanglement} C ${dr.completeness}`);
  assert.ok(dr.informativeness > 0.99, `a rotation keeps all information: I ${dr.informativeness}`);
  const dn = dci(noise, factors);
  assert.ok(dn.informativeness < 0.02, `noise I ${dn.informativeness}`);
  for (const r of [mi, mr, mn, di, dr, dn]) assert.ok(r.checks.every((c) => c.passed !== false));
  assert.equal(DICTIONARY_METHODS.mig.run, mig);
});

test('lasso matches the closed form on orthogonal columns (soft thresholding)', () => {
  // Columns ±1 orthogonal with mean 0: w_j = S(x_jᵀy/n, α).
  const x = [Float64Array.of(1, -1, 1, -1), Float64Array.of(1, 1, -1, -1)];
  const y = Float64Array.of(3, 1, 1, -1); // x0ᵀy/4 = 1, x1ᵀy/4 = 1
  const w = lasso(x, y, 0.25);
  assert.ok(Math.abs(w[0] - 0.75) < 1e-9 && Math.abs(w[1] - 0.75) < 1e-9, `${w[0]} ${w[1]}`);
});

test('bad inputs are named', () => {
  const f = { data: [0, 1, 0, 1], rows: 4, cols: 1 };
  assert.throws(() => mig({ data: [1, 2, 3, 4], rows: 4, cols: 1 }, f), /at least 2 code dimensions/);
  assert.throws(() => mig({ data: [1, 2, Number.NaN, 4, 5, 6, 7, 8], rows: 4, cols: 2 }, f), /value 2 \(row 1\) is NaN/);
  assert.throws(() => dci({ data: [1, 2, 3], rows: 3, cols: 1 }, f), /has 4 rows, the codes 3/);
  assert.throws(() => dci({ data: [1, 2, 3, 4], rows: 4, cols: 1 }, f), /at least 2·testEvery rows/);
  assert.throws(() => mig({ data: [1, 2, 3, 4, 5, 6, 7, 8], rows: 4, cols: 2 }, { data: [1, 1, 1, 1], rows: 4, cols: 1 }), /factor 0 is constant/);
});

test('MIG of hand-made image codes (ink centroid, ink area) on the factor dataset singles out x and y', () => {
  const ds = factorDataset();
  const n = ds.size;
  const px = ds.gather(Int32Array.from({ length: n }, (_, i) => i)).x.data as Float32Array;
  const codes = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) {
    let [a, sx, sy] = [0, 0, 0];
    for (let p = 0; p < 784; p++) [a, sx, sy] = [a + px[i * 784 + p], sx + px[i * 784 + p] * (p % 28), sy + px[i * 784 + p] * Math.floor(p / 28)];
    codes.set([sx / a, sy / a, a], i * 3);
  }
  const factors = { data: ds.factorMatrix(), rows: n, cols: 5 };
  const m = mig({ data: codes, rows: n, cols: 3 }, factors);
  const [, scale, orientation, x, y] = m.perFactor;
  assert.ok(x > 0.9 && y > 0.9, `x ${x} y ${y}: the centroid codes position`);
  assert.ok(scale > 0.3, `scale ${scale}: ink area grows with it`);
  assert.ok(orientation < 0.05, `orientation ${orientation}: no code sees it`);
  const d = dci({ data: codes, rows: n, cols: 3 }, factors);
  // Measured D 0.83, C 0.76: each code serves mostly one factor (area is shared by scale and shape).
  assert.ok(d.disentanglement > 0.7 && d.completeness > 0.6, `D ${d.disentanglement} C ${d.completeness}`);
});

test('the factor dataset enumerates the grid and renders each factor visibly', () => {
  const ds = factorDataset();
  assert.equal(ds.size, 3 * 4 * 6 * 8 * 8);
  assert.deepEqual(Array.from(ds.factors(1)), [0, 0, 0, 0, 1]);
  assert.equal(ds.labels![ds.size - 1], 2);
  const img = (f: number[]) => {
    const o = new Float32Array(28 * 28);
    renderSprite(f, o);
    return o;
  };
  const area = (o: Float32Array) => o.reduce((a, b) => a + b, 0);
  const cx = (o: Float32Array) => o.reduce((s, v, p) => s + v * (p % 28), 0) / area(o);
  const cy = (o: Float32Array) => o.reduce((s, v, p) => s + v * Math.floor(p / 28), 0) / area(o);
  assert.ok(area(img([0, 3, 0, 4, 4])) > area(img([0, 0, 0, 4, 4])) * 2, 'scale grows the sprite');
  assert.ok(cx(img([1, 2, 0, 7, 3])) - cx(img([1, 2, 0, 0, 3])) > 10, 'x moves it right');
  assert.ok(cy(img([2, 2, 0, 3, 7])) - cy(img([2, 2, 0, 3, 0])) > 10, 'y moves it down');
  assert.notDeepEqual(img([1, 3, 0, 4, 4]), img([1, 3, 2, 4, 4]), 'orientation turns the ellipse');
  const b = ds.gather([0, 100]);
  assert.deepEqual(b.x.shape, [2, 1, 28, 28]);
  assert.deepEqual(b.x.data.subarray(0, 784), img(Array.from(ds.factors(0))));
  const drawn = factorDataset({ size: 50, seed: 3 });
  assert.deepEqual(drawn.factors(7), factorDataset({ size: 50, seed: 3 }).factors(7));
  assert.throws(() => factorDataset({ size: 5 }), /needs a seed/);
});
