/**
 * Disentanglement metrics of a code against known generative factors.
 *
 * - MIG (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"): each code dimension is discretised into
 *   equal-width bins (20 by default, as disentanglement_lib does); for each factor v_k, the gap between the largest
 *   and second-largest mutual information I(z_j; v_k) over codes, divided by the factor's entropy H(v_k); averaged
 *   over factors. 1 when each factor is captured by exactly one code, 0 when two codes share it equally or none has it.
 * - DCI (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled Representations"):
 *   an importance matrix R[j, k] from predicting each factor from the codes. Here the regressor is a lasso on
 *   standardised codes and factors (coordinate descent; importances |w_jk|), the linear variant several
 *   reimplementations use instead of gradient-boosted trees. D = Σ_j ρ_j (1 − H_K(R[j,:]/Σ_k R[j,k])) with
 *   ρ_j = Σ_k R[j,k] / Σ R; C = mean_k (1 − H_J(R[:,k]/Σ_j R[j,k])); I = mean held-out R² of the lasso fits
 *   (every fifth row held out).
 *
 * @example
 * const { score } = mig({ data: codes, rows: n, cols: 10 }, { data: factors, rows: n, cols: 5 });
 */
import type { Check } from '../attribution/explanation.js';

/** A row-major matrix: codes (float) or factors (integer levels). */
export interface Matrix<T extends ArrayLike<number> = ArrayLike<number>> {
  readonly data: T;
  readonly rows: number;
  readonly cols: number;
}

function checkMatrix(what: string, m: Matrix, rows?: number): void {
  if (!Number.isInteger(m.rows) || !Number.isInteger(m.cols) || m.rows <= 0 || m.cols <= 0 || m.data.length !== m.rows * m.cols) {
    throw new Error(`${what}: expected ${m.rows}×${m.cols} = ${m.rows * m.cols} values, got ${m.data.length}`);
  }
  if (rows !== undefined && m.rows !== rows) throw new Error(`${what}: has ${m.rows} rows, the codes ${rows}`);
  for (let i = 0; i < m.data.length; i++) if (!Number.isFinite(m.data[i])) throw new Error(`${what}: value ${i} (row ${Math.floor(i / m.cols)}) is ${m.data[i]}`);
}

function column(m: Matrix, j: number): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.data[i * m.cols + j];
  return out;
}

/** Labels 0..L−1 of the distinct values of a column, in sorted order. */
function levels(values: ArrayLike<number>): Int32Array {
  const distinct = [...new Set(Array.from(values))].sort((a, b) => a - b);
  const at = new Map(distinct.map((v, i) => [v, i]));
  return Int32Array.from(values, (v) => at.get(v)!);
}

/** Equal-width bins of a continuous column (a constant column is one bin). */
export function discretize(values: ArrayLike<number>, bins: number): Int32Array {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`discretize: bins must be a positive integer, got ${bins}`);
  let [lo, hi] = [Infinity, -Infinity];
  for (let i = 0; i < values.length; i++) [lo, hi] = [Math.min(lo, values[i]), Math.max(hi, values[i])];
  const w = (hi - lo) / bins;
  return Int32Array.from(values, (v) => (w > 0 ? Math.min(bins - 1, Math.floor((v - lo) / w)) : 0));
}

/** Entropy in nats of integer labels (non-negative). */
export function entropy(a: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < a.length; i++) counts.set(a[i], (counts.get(a[i]) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) h -= (c / a.length) * Math.log(c / a.length);
  return h;
}

/** Mutual information in nats of two integer label sequences, from their empirical joint distribution. */
export function mutualInformation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) throw new Error(`mutualInformation: needs two non-empty sequences of equal length, got ${a.length} and ${b.length}`);
  const n = a.length;
  const joint = new Map<string, number>();
  const pa = new Map<number, number>();
  const pb = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const key = `${a[i]},${b[i]}`;
    joint.set(key, (joint.get(key) ?? 0) + 1);
    pa.set(a[i], (pa.get(a[i]) ?? 0) + 1);
    pb.set(b[i], (pb.get(b[i]) ?? 0) + 1);
  }
  let mi = 0;
  for (const [key, c] of joint) {
    const [x, y] = key.split(',').map(Number);
    mi += (c / n) * Math.log((c * n) / (pa.get(x)! * pb.get(y)!));
  }
  return Math.max(0, mi);
}

export interface MigResult {
  readonly score: number;
  /** Normalised gap per factor. */
  readonly perFactor: number[];
  /** I(z_j; v_k) in nats, [codes][factors]. */
  readonly mutualInformation: number[][];
  readonly checks: Check[];
}

/** Mutual information gap of codes [n, J] (J ≥ 2) against factors [n, K]. */
export function mig(codes: Matrix, factors: Matrix, options: { bins?: number } = {}): MigResult {
  checkMatrix('mig codes', codes);
  checkMatrix('mig factors', factors, codes.rows);
  if (codes.cols < 2) throw new Error(`mig: needs at least 2 code dimensions (the gap is between the top two), got ${codes.cols}`);
  const bins = options.bins ?? 20;
  const z = Array.from({ length: codes.cols }, (_, j) => discretize(column(codes, j), bins));
  const v = Array.from({ length: factors.cols }, (_, k) => levels(column(factors, k)));
  const mi = z.map((zj) => v.map((vk) => mutualInformation(zj, vk)));
  const perFactor = v.map((vk, k) => {
    const h = entropy(vk);
    if (h === 0) throw new Error(`mig: factor ${k} is constant (zero entropy)`);
    const sorted = mi.map((row) => row[k]).sort((a, b) => b - a);
    return (sorted[0] - sorted[1]) / h;
  });
  const score = perFactor.reduce((a, b) => a + b, 0) / perFactor.length;
  return {
    score, perFactor, mutualInformation: mi,
    checks: [{ name: 'MIG', value: score, passed: score >= 0 && score <= 1 + 1e-9, detail: `mean normalised gap over ${factors.cols} factors, codes in ${bins} equal-width bins; bounded in [0, 1]` }],
  };
}

/** Lasso (½n⁻¹‖y − Xw‖² + α‖w‖₁) by cyclic coordinate descent on standardised columns. */
export function lasso(x: Float64Array[], y: Float64Array, alpha: number, iterations = 200): Float64Array {
  const n = y.length;
  const w = new Float64Array(x.length);
  const r = Float64Array.from(y);
  const norms = x.map((c) => c.reduce((s, v) => s + v * v, 0) / n);
  for (let it = 0; it < iterations; it++) {
    let change = 0;
    for (let j = 0; j < x.length; j++) {
      if (norms[j] === 0) continue;
      const c = x[j];
      let rho = 0;
      for (let i = 0; i < n; i++) rho += c[i] * r[i];
      rho = rho / n + norms[j] * w[j];
      const next = Math.sign(rho) * Math.max(0, Math.abs(rho) - alpha) / norms[j];
      const d = next - w[j];
      if (d !== 0) for (let i = 0; i < n; i++) r[i] -= d * c[i];
      change = Math.max(change, Math.abs(d));
      w[j] = next;
    }
    if (change < 1e-8) break;
  }
  return w;
}

function standardise(v: Float64Array): Float64Array {
  const n = v.length;
  const m = v.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / n);
  return v.map((x) => (sd > 0 ? (x - m) / sd : 0));
}

export interface DciResult {
  readonly disentanglement: number;
  readonly completeness: number;
  readonly informativeness: number;
  /** |lasso weight| of code j for factor k, [codes][factors]. */
  readonly importance: number[][];
  readonly checks: Check[];
}

/** 1 − entropy of a distribution in base `base` (0 for an all-zero row). */
function oneMinusEntropy(p: readonly number[], base: number): number {
  const s = p.reduce((a, b) => a + b, 0);
  if (s === 0 || base < 2) return 0;
  let h = 0;
  for (const v of p) if (v > 0) h -= (v / s) * Math.log(v / s);
  return 1 - h / Math.log(base);
}

/** DCI of codes [n, J] against factors [n, K]; every `testEvery`-th row (default 5th) is held out to test the lasso. */
export function dci(codes: Matrix, factors: Matrix, options: { alpha?: number; testEvery?: number } = {}): DciResult {
  checkMatrix('dci codes', codes);
  checkMatrix('dci factors', factors, codes.rows);
  const alpha = options.alpha ?? 0.02;
  const every = options.testEvery ?? 5;
  if (!(alpha >= 0)) throw new Error(`dci: alpha must be ≥ 0, got ${alpha}`);
  if (!Number.isInteger(every) || every < 2 || codes.rows < 2 * every) throw new Error(`dci: testEvery must be an integer ≥ 2 with at least 2·testEvery rows, got ${every} for ${codes.rows} rows`);
  // Rows reordered: train rows first, then every `every`-th (test), so an ordered dataset (a factor grid) splits evenly.
  const order = [...Array.from({ length: codes.rows }, (_, i) => i).filter((i) => i % every !== every - 1), ...Array.from({ length: codes.rows }, (_, i) => i).filter((i) => i % every === every - 1)];
  const nTrain = codes.rows - Math.floor(codes.rows / every);
  const reorder = (v: Float64Array) => Float64Array.from(order, (i) => v[i]);
  const zs = Array.from({ length: codes.cols }, (_, j) => standardise(reorder(column(codes, j))));
  const importance = zs.map(() => new Array<number>(factors.cols).fill(0));
  const r2: number[] = [];
  for (let k = 0; k < factors.cols; k++) {
    const y = standardise(reorder(column(factors, k)));
    const w = lasso(zs.map((z) => z.subarray(0, nTrain)), y.subarray(0, nTrain), alpha);
    w.forEach((wj, j) => (importance[j][k] = Math.abs(wj)));
    let [sse, sst, m] = [0, 0, 0];
    for (let i = nTrain; i < y.length; i++) m += y[i] / (y.length - nTrain);
    for (let i = nTrain; i < y.length; i++) {
      let pred = 0;
      for (let j = 0; j < zs.length; j++) pred += w[j] * zs[j][i];
      sse += (y[i] - pred) ** 2;
      sst += (y[i] - m) ** 2;
    }
    r2.push(sst > 0 ? Math.max(0, 1 - sse / sst) : 0);
  }
  const total = importance.flat().reduce((a, b) => a + b, 0);
  const disentanglement = total === 0 ? 0 : importance.reduce((s, row) => s + (row.reduce((a, b) => a + b, 0) / total) * oneMinusEntropy(row, factors.cols), 0);
  const completeness = importance[0].map((_, k) => oneMinusEntropy(importance.map((row) => row[k]), codes.cols)).reduce((a, b) => a + b, 0) / factors.cols;
  const informativeness = r2.reduce((a, b) => a + b, 0) / r2.length;
  return {
    disentanglement, completeness, informativeness, importance,
    checks: [
      { name: 'DCI disentanglement', value: disentanglement, passed: disentanglement >= 0 && disentanglement <= 1 + 1e-9, detail: `importance-weighted 1 − H_K of each code's lasso importances (α = ${alpha})` },
      { name: 'DCI completeness', value: completeness, passed: completeness >= 0 && completeness <= 1 + 1e-9, detail: '1 − H_J of each factor\'s importances, mean over factors' },
      { name: 'DCI informativeness', value: informativeness, detail: `mean held-out R² of the lasso fits (${codes.rows - nTrain} test rows)` },
    ],
  };
}
