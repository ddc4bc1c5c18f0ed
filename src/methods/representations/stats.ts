/**
 * Small host numerics for significance tests: Student's t distribution (CDF through the regularised incomplete beta
 * function, Numerical Recipes §6.4), the two-sample t-test with pooled variance (Student 1908; what TCAV's reference
 * code runs, scipy.stats.ttest_ind) and the Bonferroni correction.
 *
 * @example
 * studentTTwoSided(2.228, 10); // ≈ 0.05, the t-table's critical value
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; about 15 significant digits). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new Error(`logGamma: x must be > 0, got ${x}`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  const z = x - 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of I_x(a, b) (modified Lentz), convergent for x < (a + 1) / (a + b + 2). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b), a, b > 0, x ∈ [0, 1]. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new Error(`incompleteBeta: a and b must be > 0, got ${a}, ${b}`);
  if (!(x >= 0 && x <= 1)) throw new Error(`incompleteBeta: x must be in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

function checkDf(df: number, who: string): void {
  if (!(df > 0) || !Number.isFinite(df)) throw new Error(`${who}: degrees of freedom must be a finite number > 0, got ${df}`);
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  checkDf(df, 'studentTCdf');
  if (Number.isNaN(t)) throw new Error('studentTCdf: t is NaN');
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5); // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

/** P(|T| ≥ |t|): the two-sided p-value of a t statistic. */
export function studentTTwoSided(t: number, df: number): number {
  checkDf(df, 'studentTTwoSided');
  if (Number.isNaN(t)) throw new Error('studentTTwoSided: t is NaN');
  if (!Number.isFinite(t)) return 0;
  return Math.min(1, incompleteBeta(df / (df + t * t), df / 2, 0.5));
}

export interface TTest {
  /** (mean a − mean b) / (s_pooled · √(1/na + 1/nb)). */
  readonly t: number;
  readonly df: number;
  /** Two-sided p-value. */
  readonly p: number;
  readonly meanA: number;
  readonly meanB: number;
}

const mean = (xs: readonly number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;

/** Sample standard deviation (n − 1 in the denominator); 0 for a single value. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, v) => s + (v - m) ** 2, 0) / (xs.length - 1));
}

/**
 * Two-sided two-sample t-test with pooled variance (equal variances assumed), df = na + nb − 2. Two constant samples
 * give t = 0, p = 1 where their means agree and t = ±∞, p = 0 where they differ.
 */
export function tTest(a: readonly number[], b: readonly number[]): TTest {
  if (a.length < 2 || b.length < 2) throw new Error(`tTest: each sample needs at least 2 values, got ${a.length} and ${b.length}`);
  const bad = [...a, ...b].findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`tTest: value ${bad} (${[...a, ...b][bad]}) is not finite`);
  const [ma, mb] = [mean(a), mean(b)];
  const df = a.length + b.length - 2;
  const ss = a.reduce((s, v) => s + (v - ma) ** 2, 0) + b.reduce((s, v) => s + (v - mb) ** 2, 0);
  const se = Math.sqrt((ss / df) * (1 / a.length + 1 / b.length));
  const diff = ma - mb;
  const t = se > 0 ? diff / se : diff === 0 ? 0 : Math.sign(diff) * Infinity;
  return { t, df, p: studentTTwoSided(t, df), meanA: ma, meanB: mb };
}

/** Bonferroni: p · m, capped at 1 (m tests at family-wise level α ⇔ each at α / m). */
export function bonferroni(p: number, tests: number): number {
  if (!Number.isInteger(tests) || tests < 1) throw new Error(`bonferroni: the number of tests must be a positive integer, got ${tests}`);
  if (!(p >= 0 && p <= 1)) throw new Error(`bonferroni: p must be in [0, 1], got ${p}`);
  return Math.min(1, p * tests);
}
