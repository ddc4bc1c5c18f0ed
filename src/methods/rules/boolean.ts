/**
 * Boolean ground truth for rule extraction: datasets that are the full truth table of a known formula, thresholding
 * of real features into booleans, and rules as data — literals, M-of-N clauses, conjunctions and DNFs — with their
 * evaluation, expansion and an equivalence check by truth table.
 *
 * A rule is a conjunction of clauses `M of {l1, l2, …}` (at least M of the literals hold); a plain conjunction of
 * literals is the special case of clauses with one literal and M = 1 (KT, Fu 1994), a single clause with several
 * literals is Towell & Shavlik's M-of-N (1993). A unit's rules are a disjunction of such conjunctions.
 *
 * @example
 * const ds = booleanDataset(([a, b, c, d]) => (a && b) || (c && !d), ['a', 'b', 'c', 'd', 'e', 'f']); // 64 rows
 */
import { dataset, type Dataset } from '../../data/datasets/dataset.js';
import { Tensor } from '../../runtime/tensor.js';

/** A boolean function of n variables, given as the bits of one assignment. */
export type Formula = (x: readonly boolean[]) => boolean;

/** Variable `v` is true (`on`) or false. */
export interface Literal {
  readonly v: number;
  readonly on: boolean;
}

/** At least `m` of the literals hold. */
export interface Clause {
  readonly m: number;
  readonly literals: readonly Literal[];
}

/** A conjunction of clauses; the empty conjunction is true. */
export type Rule = readonly Clause[];

/** A conjunction of literals as bit masks over the variables: `pos` must be on, `neg` off. */
export interface Term {
  readonly pos: bigint;
  readonly neg: bigint;
}

/** The largest truth table glassbox enumerates (2^20 rows). */
export const MAX_TRUTH_TABLE_BITS = 20;

/** Row r of the truth table of n variables: variable i is bit i of r. Rows × n, 0/1, float32. */
export function truthTable(n: number): Float32Array {
  if (!Number.isInteger(n) || n < 1 || n > MAX_TRUTH_TABLE_BITS) {
    throw new Error(`truthTable: n must be an integer in [1, ${MAX_TRUTH_TABLE_BITS}], got ${n}`);
  }
  const rows = 2 ** n;
  const x = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) x[r * n + i] = (r >> i) & 1;
  return x;
}

/** The full truth table of `formula` over variables named `names`, as a 2-class dataset (label 1 where it holds). */
export function booleanDataset(formula: Formula, names: readonly string[], name = 'boolean'): Dataset<'float32'> {
  const n = names.length;
  const x = truthTable(n);
  const rows = 2 ** n;
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) labels[r] = formula(bitsOf(x, r, n)) ? 1 : 0;
  return rowsDataset(x, labels, { name, featureNames: names, classNames: ['false', 'true'] });
}

/** A float32 [rows, n] dataset over given rows and labels (shared storage, gathered per batch). */
export function rowsDataset(
  x: Float32Array,
  labels: Int32Array,
  meta: { name: string; featureNames: readonly string[]; classNames: readonly string[] },
): Dataset<'float32'> {
  const n = meta.featureNames.length;
  if (x.length !== labels.length * n) throw new Error(`${meta.name}: ${x.length} values for ${labels.length} rows of ${n} features`);
  return dataset({
    name: meta.name,
    size: labels.length,
    inputShape: [n],
    inputDType: 'float32',
    numClasses: meta.classNames.length,
    classNames: meta.classNames,
    featureNames: meta.featureNames,
    labels,
    gather: (ix) => {
      const out = new Float32Array(ix.length * n);
      ix.forEach((r, k) => out.set(x.subarray(r * n, (r + 1) * n), k * n));
      return { x: new Tensor('float32', out, [ix.length, n]), y: Tensor.int64(Array.from(ix, (r) => labels[r]), [ix.length]) };
    },
  });
}

/** Row r of a rows × n 0/1 matrix as booleans. */
export function bitsOf(x: ArrayLike<number>, r: number, n: number): boolean[] {
  return Array.from({ length: n }, (_, i) => x[r * n + i] > 0.5);
}

/** Row r as a bit mask (bit i set when variable i is on). */
export function maskOf(x: ArrayLike<number>, r: number, n: number): bigint {
  let m = 0n;
  for (let i = 0; i < n; i++) if (x[r * n + i] > 0.5) m |= 1n << BigInt(i);
  return m;
}

/** One cut of a real feature: the boolean `feature > threshold`. */
export interface Cut {
  readonly feature: number;
  readonly threshold: number;
  readonly name: string;
}

/**
 * Cuts at quantiles of each feature of `ds` (use the training part), e.g. [0.5] for medians or [0.25, 0.5, 0.75] for
 * a thermometer code; repeated thresholds of a feature are kept once.
 */
export function quantileCuts(ds: Dataset<'float32'>, quantiles: readonly number[], features?: readonly number[]): Cut[] {
  const f = ds.inputShape.reduce((a, b) => a * b, 1);
  if (ds.inputShape.length !== 1) throw new Error(`quantileCuts: ${ds.name} has inputs of shape [${ds.inputShape.join(', ')}]; tabular [F] needed`);
  if (quantiles.length === 0 || quantiles.some((q) => !(q > 0 && q < 1))) throw new Error(`quantileCuts: quantiles must lie in (0, 1), got [${quantiles.join(', ')}]`);
  const chosen = features ?? Array.from({ length: f }, (_, i) => i);
  for (const j of chosen) if (!Number.isInteger(j) || j < 0 || j >= f) throw new Error(`quantileCuts: feature ${j} out of range [0, ${f})`);
  const columns = chosen.map(() => new Float64Array(ds.size));
  let row = 0;
  for (const b of ds.batches(1024)) {
    for (let r = 0; r < b.indices.length; r++, row++) chosen.forEach((j, k) => (columns[k][row] = b.x.data[r * f + j]));
  }
  const cuts: Cut[] = [];
  chosen.forEach((j, k) => {
    const sorted = columns[k].sort();
    const seen = new Set<number>();
    for (const q of quantiles) {
      const t = sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
      if (seen.has(t)) continue;
      seen.add(t);
      cuts.push({ feature: j, threshold: t, name: `${ds.featureNames?.[j] ?? `x${j}`} > ${+t.toFixed(4)}` });
    }
  });
  return cuts;
}

/** The dataset with each example replaced by its 0/1 values of the cuts (features named by the cuts). */
export function binarize(ds: Dataset<'float32'>, cuts: readonly Cut[]): Dataset<'float32'> {
  if (cuts.length === 0) throw new Error(`binarize: no cuts for ${ds.name}`);
  const f = ds.inputShape.reduce((a, b) => a * b, 1);
  for (const c of cuts) if (c.feature < 0 || c.feature >= f) throw new Error(`binarize: cut '${c.name}' reads feature ${c.feature} of ${f}`);
  const x = new Float32Array(ds.size * cuts.length);
  const labels = new Int32Array(ds.size);
  let row = 0;
  for (const b of ds.batches(1024)) {
    for (let r = 0; r < b.indices.length; r++, row++) {
      cuts.forEach((c, k) => (x[row * cuts.length + k] = b.x.data[r * f + c.feature] > c.threshold ? 1 : 0));
      labels[row] = Number(b.y.data[r]);
    }
  }
  const classNames = ds.classNames ?? Array.from({ length: ds.numClasses ?? 2 }, (_, c) => `class ${c}`);
  return rowsDataset(x, labels, { name: `${ds.name}[binarized]`, featureNames: cuts.map((c) => c.name), classNames });
}

/** Whether a rule holds on the assignment `on` (bit mask). */
export function ruleHolds(rule: Rule, on: bigint): boolean {
  for (const c of rule) {
    let k = 0;
    for (const l of c.literals) if ((((on >> BigInt(l.v)) & 1n) === 1n) === l.on) k++;
    if (k < c.m) return false;
  }
  return true;
}

/** Whether any of the rules holds. */
export const anyRuleHolds = (rules: readonly Rule[], on: bigint): boolean => rules.some((r) => ruleHolds(r, on));

export const termHolds = (t: Term, on: bigint): boolean => (t.pos & ~on) === 0n && (t.neg & on) === 0n;

export const dnfHolds = (dnf: readonly Term[], on: bigint): boolean => dnf.some((t) => termHolds(t, on));

/** The true DNF (one empty term) and the false one (no terms). */
export const TRUE: readonly Term[] = [{ pos: 0n, neg: 0n }];
export const FALSE: readonly Term[] = [];

/** Too many terms: the DNF of a composition would exceed the cap. */
export class DnfTooLarge extends Error {}

/**
 * Rules as a DNF: each `M of N` clause expands into its C(N, M) conjunctions, clauses of a rule multiply out.
 * Contradictory terms are dropped and subsumed ones absorbed.
 */
export function rulesToDnf(rules: readonly Rule[], maxTerms = 1000): Term[] {
  const out: Term[] = [];
  for (const rule of rules) {
    let terms: readonly Term[] = TRUE;
    for (const c of rule) terms = andDnf(terms, clauseTerms(c, maxTerms), maxTerms);
    out.push(...terms);
    if (out.length > maxTerms) throw new DnfTooLarge(`more than ${maxTerms} terms`);
  }
  return absorb(out);
}

function clauseTerms(c: Clause, maxTerms: number): Term[] {
  const out: Term[] = [];
  const pick = (start: number, left: number, t: Term): void => {
    if (out.length > maxTerms) throw new DnfTooLarge(`an M-of-N clause expands to more than ${maxTerms} terms`);
    if (left === 0) return void out.push(t);
    for (let i = start; i <= c.literals.length - left; i++) pick(i + 1, left - 1, withLiteral(t, c.literals[i]));
  };
  pick(0, Math.max(0, c.m), { pos: 0n, neg: 0n });
  return out.filter((t) => (t.pos & t.neg) === 0n);
}

const withLiteral = (t: Term, l: Literal): Term => (l.on ? { pos: t.pos | (1n << BigInt(l.v)), neg: t.neg } : { pos: t.pos, neg: t.neg | (1n << BigInt(l.v)) });

/** The conjunction of two DNFs, multiplied out, without contradictions or subsumed terms. */
export function andDnf(a: readonly Term[], b: readonly Term[], maxTerms = 1000): Term[] {
  if (a.length * b.length > maxTerms * 10) throw new DnfTooLarge(`a product of ${a.length} × ${b.length} terms`);
  const out: Term[] = [];
  for (const s of a) {
    for (const t of b) {
      const p = { pos: s.pos | t.pos, neg: s.neg | t.neg };
      if ((p.pos & p.neg) === 0n) out.push(p);
    }
  }
  const res = absorb(out);
  if (res.length > maxTerms) throw new DnfTooLarge(`more than ${maxTerms} terms`);
  return res;
}

/** Drops duplicate terms and terms implied by a shorter one (absorption: a ∨ a∧b = a). */
export function absorb(terms: readonly Term[]): Term[] {
  const size = (t: Term) => popcount(t.pos) + popcount(t.neg);
  const sorted = [...terms].sort((x, y) => size(x) - size(y));
  const kept: Term[] = [];
  for (const t of sorted) {
    if (!kept.some((k) => (k.pos & ~t.pos) === 0n && (k.neg & ~t.neg) === 0n)) kept.push(t);
  }
  return kept;
}

/**
 * A shorter equivalent DNF: all prime implicants by iterated consensus (Blake 1937; x∧A ∨ ¬x∧B implies A∧B), then
 * primes implied by the others dropped, longest first. Returns the absorbed input unchanged where the prime set
 * would exceed `maxTerms` or a redundancy test would enumerate more than 2^16 assignments.
 */
export function simplifyDnf(terms: readonly Term[], maxTerms = 500): Term[] {
  const input = absorb(terms);
  let cur = input;
  for (let changed = true; changed; ) {
    changed = false;
    const next = [...cur];
    for (let i = 0; i < cur.length; i++) {
      for (let j = i + 1; j < cur.length; j++) {
        const a = cur[i];
        const b = cur[j];
        const clash = (a.pos & b.neg) | (a.neg & b.pos);
        if (clash === 0n || (clash & (clash - 1n)) !== 0n) continue; // exactly one opposed variable
        const c = { pos: (a.pos | b.pos) & ~clash, neg: (a.neg | b.neg) & ~clash };
        if (next.some((k) => (k.pos & ~c.pos) === 0n && (k.neg & ~c.neg) === 0n)) continue;
        next.push(c);
        changed = true;
      }
    }
    cur = absorb(next);
    if (cur.length > maxTerms) return input;
  }
  const used = cur.reduce((m, t) => m | t.pos | t.neg, 0n);
  const kept = [...cur].sort((x, y) => popcount(y.pos) + popcount(y.neg) - popcount(x.pos) - popcount(x.neg));
  for (let i = 0; i < kept.length; ) {
    const t = kept[i];
    const free: bigint[] = [];
    for (let v = 0n, m = used & ~(t.pos | t.neg); m > 0n; v++, m >>= 1n) if (m & 1n) free.push(1n << v);
    if (free.length > 16) return input;
    const others = kept.filter((_, k) => k !== i);
    let implied = others.length > 0;
    for (let r = 0; implied && r < 2 ** free.length; r++) {
      let on = t.pos;
      free.forEach((bit, k) => {
        if ((r >> k) & 1) on |= bit;
      });
      implied = dnfHolds(others, on);
    }
    if (implied) kept.splice(i, 1);
    else i++;
  }
  return kept;
}

function popcount(x: bigint): number {
  let n = 0;
  for (; x > 0n; x &= x - 1n) n++;
  return n;
}

/** `a AND NOT d` from a term, variables named by `names` (`TRUE` for the empty term). */
export function formatTerm(t: Term, names: readonly string[]): string {
  const parts: string[] = [];
  names.forEach((name, i) => {
    const bit = 1n << BigInt(i);
    if (t.pos & bit) parts.push(name);
    if (t.neg & bit) parts.push(`NOT ${name}`);
  });
  return parts.length === 0 ? 'TRUE' : parts.join(' AND ');
}

/** `2 of {a, b, c} AND NOT d` from a rule. */
export function formatRule(rule: Rule, names: readonly string[]): string {
  if (rule.length === 0) return 'TRUE';
  const lit = (l: Literal) => (l.on ? names[l.v] : `NOT ${names[l.v]}`);
  return rule
    .map((c) => (c.m === c.literals.length ? c.literals.map(lit).join(' AND ') : `${c.m} of {${c.literals.map(lit).join(', ')}}`))
    .join(' AND ');
}

/** Where two boolean functions of n variables differ, over the whole truth table. */
export function equivalence(f: (on: bigint) => boolean, g: (on: bigint) => boolean, n: number): { equivalent: boolean; mismatches: number; counterexample?: bigint } {
  if (!Number.isInteger(n) || n < 1 || n > MAX_TRUTH_TABLE_BITS) throw new Error(`equivalence: n must be in [1, ${MAX_TRUTH_TABLE_BITS}], got ${n}`);
  let mismatches = 0;
  let counterexample: bigint | undefined;
  for (let r = 0; r < 2 ** n; r++) {
    const on = BigInt(r);
    if (f(on) !== g(on)) {
      mismatches++;
      counterexample ??= on;
    }
  }
  return { equivalent: mismatches === 0, mismatches, ...(counterexample === undefined ? {} : { counterexample }) };
}

/** A formula over booleans as a function of a bit mask. */
export const onMask = (formula: Formula, n: number) => (on: bigint): boolean =>
  formula(Array.from({ length: n }, (_, i) => ((on >> BigInt(i)) & 1n) === 1n));

/**
 * The function as one M-of-N clause over literals of the variables it depends on, read from its truth table, or
 * null where it is none: it must be monotone in each relevant variable and depend only on how many literals hold.
 */
export function asMofN(f: (on: bigint) => boolean, n: number): Clause | null {
  const rows = 2 ** n;
  if (n > MAX_TRUTH_TABLE_BITS) throw new Error(`asMofN: ${n} variables exceed ${MAX_TRUTH_TABLE_BITS}`);
  const table = Array.from({ length: rows }, (_, r) => f(BigInt(r)));
  const literals: Literal[] = [];
  for (let i = 0; i < n; i++) {
    let up = false;
    let down = false;
    for (let r = 0; r < rows; r++) {
      if ((r >> i) & 1) continue;
      const lo = table[r];
      const hi = table[r | (1 << i)];
      if (!lo && hi) up = true;
      if (lo && !hi) down = true;
    }
    if (up && down) return null;
    if (up || down) literals.push({ v: i, on: up });
  }
  let m: number | undefined;
  for (let r = 0; r < rows; r++) {
    const k = literals.filter((l) => (((r >> l.v) & 1) === 1) === l.on).length;
    if (table[r] && (m === undefined || k < m)) m = k;
  }
  if (m === undefined) return null; // never true
  for (let r = 0; r < rows; r++) {
    const k = literals.filter((l) => (((r >> l.v) & 1) === 1) === l.on).length;
    if (table[r] !== k >= m) return null;
  }
  return { m, literals };
}
