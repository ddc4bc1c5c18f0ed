/**
 * The small linear algebra of the surrogate methods (LIME, KernelSHAP): weighted least squares with an optional ridge
 * penalty and intercept (normal equations, Cholesky), weighted lasso by cyclic coordinate descent (Friedman, Hastie &
 * Tibshirani 2010), and the weighted R² of a fit. Systems are d × d with d the number of features (tens to hundreds).
 *
 * @example
 * // y = 1 + 2·z: rows z = 0, 1, 2 with equal weights
 * const fit = weightedLeastSquares(Float64Array.of(0, 1, 2), Float64Array.of(1, 3, 5), Float64Array.of(1, 1, 1), 1);
 * fit.coef; // [2]; fit.intercept: 1
 */

export interface LinearFit {
  readonly coef: Float64Array;
  readonly intercept: number;
}

export interface FitOptions {
  /** Ridge penalty α·|β|² (or lasso α·|β|₁) on the coefficients, never on the intercept (default 0). */
  readonly alpha?: number;
  /** Fit an intercept (default true). */
  readonly intercept?: boolean;
}

/** Weighted Gram matrix and right side of (X − x̄)ᵀ W (X − x̄) β = (X − x̄)ᵀ W (y − ȳ), centred when `center`. */
function normalEquations(X: ArrayLike<number>, y: ArrayLike<number>, w: ArrayLike<number>, d: number, center: boolean) {
  const rows = y.length;
  let wSum = 0;
  const xMean = new Float64Array(d);
  let yMean = 0;
  if (center) {
    for (let r = 0; r < rows; r++) {
      wSum += w[r];
      yMean += w[r] * y[r];
      for (let j = 0; j < d; j++) xMean[j] += w[r] * X[r * d + j];
    }
    if (wSum > 0) {
      yMean /= wSum;
      for (let j = 0; j < d; j++) xMean[j] /= wSum;
    }
  } else for (let r = 0; r < rows; r++) wSum += w[r];
  const A = new Float64Array(d * d);
  const b = new Float64Array(d);
  const xc = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const wr = w[r];
    if (wr === 0) continue;
    for (let j = 0; j < d; j++) xc[j] = X[r * d + j] - xMean[j];
    const yc = y[r] - yMean;
    for (let j = 0; j < d; j++) {
      const v = wr * xc[j];
      if (v === 0) continue;
      b[j] += v * yc;
      for (let k = j; k < d; k++) A[j * d + k] += v * xc[k];
    }
  }
  for (let j = 0; j < d; j++) for (let k = 0; k < j; k++) A[j * d + k] = A[k * d + j];
  return { A, b, xMean, yMean, wSum };
}

/**
 * Solves A β = b for a symmetric positive semi-definite A by Cholesky. A singular system (a feature that never varies
 * in the samples) gets a growing diagonal jitter, which sends the undetermined coefficients to 0.
 */
export function solveSymmetric(A: Float64Array, b: Float64Array, d: number): Float64Array {
  let scale = 0;
  for (let j = 0; j < d; j++) scale = Math.max(scale, Math.abs(A[j * d + j]));
  if (scale === 0) return new Float64Array(d);
  for (let jitter = 0; ; jitter = jitter === 0 ? 1e-12 * scale : jitter * 100) {
    const L = cholesky(A, d, jitter);
    if (L) {
      const z = new Float64Array(d);
      for (let i = 0; i < d; i++) {
        let s = b[i];
        for (let k = 0; k < i; k++) s -= L[i * d + k] * z[k];
        z[i] = s / L[i * d + i];
      }
      const x = new Float64Array(d);
      for (let i = d - 1; i >= 0; i--) {
        let s = z[i];
        for (let k = i + 1; k < d; k++) s -= L[k * d + i] * x[k];
        x[i] = s / L[i * d + i];
      }
      return x;
    }
    if (jitter > scale) throw new Error(`linear solve: the ${d} × ${d} system is not positive semi-definite`);
  }
}

function cholesky(A: Float64Array, d: number, jitter: number): Float64Array | undefined {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * d + j] + (i === j ? jitter : 0);
      for (let k = 0; k < j; k++) s -= L[i * d + k] * L[j * d + k];
      if (i === j) {
        if (!(s > 1e-13 * Math.max(1, Math.abs(A[i * d + i])))) return undefined;
        L[i * d + i] = Math.sqrt(s);
      } else L[i * d + j] = s / L[j * d + j];
    }
  }
  return L;
}

/** argmin Σ w (y − c − Xβ)² + α|β|² over rows of X (row-major, rows × d). */
export function weightedLeastSquares(X: ArrayLike<number>, y: ArrayLike<number>, w: ArrayLike<number>, d: number, options: FitOptions = {}): LinearFit {
  const alpha = options.alpha ?? 0;
  const center = options.intercept ?? true;
  const { A, b, xMean, yMean } = normalEquations(X, y, w, d, center);
  for (let j = 0; j < d; j++) A[j * d + j] += alpha;
  const coef = solveSymmetric(A, b, d);
  let intercept = 0;
  if (center) {
    intercept = yMean;
    for (let j = 0; j < d; j++) intercept -= xMean[j] * coef[j];
  }
  return { coef, intercept };
}

/**
 * argmin (1 / 2Σw) Σ w (y − c − Xβ)² + α|β|₁ (scikit-learn's scaling of the lasso), by cyclic coordinate descent on
 * the weighted Gram matrix until no coefficient moves by more than 1e-9 of the largest.
 */
export function weightedLasso(X: ArrayLike<number>, y: ArrayLike<number>, w: ArrayLike<number>, d: number, options: FitOptions = {}): LinearFit {
  const alpha = options.alpha ?? 0;
  const center = options.intercept ?? true;
  const { A, b, xMean, yMean, wSum } = normalEquations(X, y, w, d, center);
  const n = wSum > 0 ? wSum : 1;
  const coef = new Float64Array(d);
  for (let sweep = 0; sweep < 10_000; sweep++) {
    let moved = 0;
    let largest = 0;
    for (let j = 0; j < d; j++) {
      const ajj = A[j * d + j] / n;
      if (ajj <= 0) continue;
      let rho = b[j] / n;
      for (let k = 0; k < d; k++) if (k !== j) rho -= (A[j * d + k] / n) * coef[k];
      const next = Math.sign(rho) * Math.max(0, Math.abs(rho) - alpha) / ajj;
      moved = Math.max(moved, Math.abs(next - coef[j]));
      coef[j] = next;
      largest = Math.max(largest, Math.abs(next));
    }
    if (moved <= 1e-9 * Math.max(largest, 1e-12)) break;
  }
  let intercept = 0;
  if (center) {
    intercept = yMean;
    for (let j = 0; j < d; j++) intercept -= xMean[j] * coef[j];
  }
  return { coef, intercept };
}

/** 1 − Σ w (y − ŷ)² / Σ w (y − ȳ_w)²: the weighted R² of a fit on its samples (1 where y does not vary and ŷ = y). */
export function weightedR2(X: ArrayLike<number>, y: ArrayLike<number>, w: ArrayLike<number>, d: number, fit: LinearFit): number {
  let wSum = 0;
  let yMean = 0;
  for (let r = 0; r < y.length; r++) {
    wSum += w[r];
    yMean += w[r] * y[r];
  }
  yMean /= wSum || 1;
  let res = 0;
  let tot = 0;
  for (let r = 0; r < y.length; r++) {
    let pred = fit.intercept;
    for (let j = 0; j < d; j++) pred += X[r * d + j] * fit.coef[j];
    res += w[r] * (y[r] - pred) ** 2;
    tot += w[r] * (y[r] - yMean) ** 2;
  }
  if (tot === 0) return res === 0 ? 1 : 0;
  return 1 - res / tot;
}
