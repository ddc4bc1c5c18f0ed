/**
 * Points and weights on [0, 1] for the path integral of integrated gradients (Sundararajan et al. 2017): Riemann
 * sums (left, right, middle), the trapezoid rule, and Gauss–Legendre (exact for polynomials of degree 2n − 1).
 */
export type Quadrature = 'riemann-left' | 'riemann-right' | 'riemann-middle' | 'riemann-trapezoid' | 'gauss-legendre';

export const QUADRATURES: readonly Quadrature[] = ['riemann-left', 'riemann-right', 'riemann-middle', 'riemann-trapezoid', 'gauss-legendre'];

export function quadrature(kind: Quadrature, n: number): { alphas: Float64Array; weights: Float64Array } {
  if (!Number.isInteger(n) || n < 1) throw new Error(`integrated gradients: steps must be a positive integer, got ${n}`);
  const alphas = new Float64Array(n);
  const weights = new Float64Array(n).fill(1 / n);
  switch (kind) {
    case 'riemann-left':
      for (let k = 0; k < n; k++) alphas[k] = k / n;
      break;
    case 'riemann-right':
      for (let k = 0; k < n; k++) alphas[k] = (k + 1) / n;
      break;
    case 'riemann-middle':
      for (let k = 0; k < n; k++) alphas[k] = (k + 0.5) / n;
      break;
    case 'riemann-trapezoid':
      if (n < 2) throw new Error('integrated gradients: the trapezoid rule needs at least 2 steps');
      for (let k = 0; k < n; k++) {
        alphas[k] = k / (n - 1);
        weights[k] = (k === 0 || k === n - 1 ? 0.5 : 1) / (n - 1);
      }
      break;
    case 'gauss-legendre':
      gaussLegendre(n, alphas, weights);
      break;
    default:
      throw new Error(`integrated gradients: unknown method '${String(kind)}' (known: ${QUADRATURES.join(', ')})`);
  }
  return { alphas, weights };
}

/** Roots of the Legendre polynomial P_n by Newton's method, mapped from [−1, 1] to [0, 1]. */
function gaussLegendre(n: number, alphas: Float64Array, weights: Float64Array): void {
  for (let i = 0; i < n; i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    let dp = 1;
    for (let it = 0; it < 100; it++) {
      let p0 = 1;
      let p1 = x;
      for (let k = 2; k <= n; k++) [p0, p1] = [p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k];
      if (n === 1) p0 = 1;
      dp = (n * (x * p1 - p0)) / (x * x - 1);
      const dx = p1 / dp;
      x -= dx;
      if (Math.abs(dx) < 1e-15) break;
    }
    alphas[n - 1 - i] = (x + 1) / 2;
    weights[n - 1 - i] = 1 / ((1 - x * x) * dp * dp);
  }
}
