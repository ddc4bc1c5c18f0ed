/**
 * Eigen-decomposition of a small real symmetric matrix by the cyclic Jacobi method (Jacobi 1846; Golub & Van Loan,
 * "Matrix Computations", §8.5): plane rotations that each zero one off-diagonal pair, swept over all pairs until the
 * off-diagonal mass vanishes. O(n³) per sweep and usually under ten sweeps: meant for the few hundred points that
 * spectral clustering of attribution maps handles, and accurate to rounding, including repeated eigenvalues.
 *
 * @example
 * const { values, vectors } = symmetricEigen(Float64Array.of(2, 1, 1, 2), 2); // values [1, 3]; vectors column-wise
 */

export interface Eigen {
  /** Ascending. */
  readonly values: Float64Array;
  /** n × n, row-major; column j is the unit eigenvector of values[j]. */
  readonly vectors: Float64Array;
  readonly sweeps: number;
}

export function symmetricEigen(matrix: ArrayLike<number>, n: number, options: { maxSweeps?: number } = {}): Eigen {
  if (!Number.isInteger(n) || n < 1 || matrix.length !== n * n) throw new Error(`symmetricEigen: expected an n × n matrix with n = ${n}, got ${matrix.length} values`);
  const a = Float64Array.from(matrix);
  let scale = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (!Number.isFinite(a[i * n + j])) throw new Error(`symmetricEigen: entry (${i}, ${j}) is ${a[i * n + j]}`);
      if (Math.abs(a[i * n + j] - a[j * n + i]) > 1e-9 * (Math.abs(a[i * n + j]) + Math.abs(a[j * n + i]) + 1e-300)) {
        throw new Error(`symmetricEigen: the matrix is not symmetric at (${i}, ${j}): ${a[i * n + j]} vs ${a[j * n + i]}`);
      }
      scale += a[i * n + j] ** 2;
    }
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const maxSweeps = options.maxSweeps ?? 100;
  const tiny = 1e-30 * scale;
  let sweeps = 0;
  for (; sweeps < maxSweeps; sweeps++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off <= tiny) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        // Rotation J (c, s at (p, q)) with (JᵀAJ)_pq = 0: tan φ = t, the smaller root of t² + 2θt − 1 = 0.
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        a[p * n + q] = 0;
        a[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  if (sweeps === maxSweeps) throw new Error(`symmetricEigen: no convergence after ${maxSweeps} sweeps`);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[i * n + i] - a[j * n + j]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors, sweeps };
}
