/**
 * Concept labels for concept bottleneck models (Koh et al. 2020): a `ConceptTable` of per-example 0/1 concepts aligned
 * with a training set, read from the file `glassbox train --concepts FILE` takes, and a dSprites-like dataset whose
 * task is a known function of its concepts.
 *
 * The FILE format (one of two, chosen by the extension):
 * - `.json`: `{ "concepts": ["shape:square", …], "labels": [[1, 0, …], …] }` — one row per training example, in
 *   dataset order, each with one 0/1 (or true/false) entry per concept.
 * - `.csv`: a header line of concept names, then one line of comma-separated 0/1 values per training example.
 *   Blank lines and lines starting with `#` are skipped.
 * Row i is the concepts of training example i (the dataset's index, as `Batch.indices` gives it).
 *
 * @example
 * const table = parseConceptTable(await readFile('concepts.csv', 'utf8'), 'concepts.csv');
 * const { train, table: t } = factorConcepts({ size: 3000, seed: 1, task: 'complete' });
 */
import { dataset, type Dataset } from '../../data/datasets/dataset.js';
import { factorDataset } from '../../data/datasets/factors.js';
import { Tensor } from '../../runtime/tensor.js';

/** Per-example 0/1 concept labels: `values[i·k + j]` is concept j of example i. */
export interface ConceptTable {
  readonly names: readonly string[];
  readonly size: number;
  readonly values: Uint8Array;
}

/** Checks a table (names unique and non-empty, values 0/1, size·k entries); returns it. */
export function conceptTable(names: readonly string[], values: ArrayLike<number>): ConceptTable {
  const k = names.length;
  if (k === 0) throw new Error('concept table: no concepts');
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`concept table: concept '${dup}' is named twice`);
  if (names.some((n) => n.trim() === '')) throw new Error('concept table: a concept has an empty name');
  if (values.length % k !== 0) throw new Error(`concept table: ${values.length} values are not a whole number of rows of ${k} concepts`);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== 0 && v !== 1) throw new Error(`concept table: row ${Math.floor(i / k)}, concept '${names[i % k]}' is ${v}; concept labels must be 0 or 1`);
    out[i] = v;
  }
  return { names: Object.freeze([...names]), size: values.length / k, values: out };
}

/** Parses the JSON or CSV concept file (by `file`'s extension; see the module doc for both formats). */
export function parseConceptTable(text: string, file: string): ConceptTable {
  if (/\.json$/i.test(file)) return parseJson(text, file);
  if (/\.csv$/i.test(file)) return parseCsv(text, file);
  throw new Error(`concept table ${file}: unknown format; use a .json file ({ "concepts": [...], "labels": [[0, 1, ...], ...] }) or a .csv file (a header of concept names, then one 0/1 row per example)`);
}

function parseJson(text: string, file: string): ConceptTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`concept table ${file}: not valid JSON (${(e as Error).message})`);
  }
  const { concepts, labels } = (doc ?? {}) as { concepts?: unknown; labels?: unknown };
  if (!Array.isArray(concepts) || !concepts.every((c) => typeof c === 'string')) throw new Error(`concept table ${file}: "concepts" must be an array of names`);
  if (!Array.isArray(labels)) throw new Error(`concept table ${file}: "labels" must be an array of rows`);
  const values: number[] = [];
  labels.forEach((row: unknown, i) => {
    if (!Array.isArray(row) || row.length !== concepts.length) throw new Error(`concept table ${file}: row ${i} must be an array of ${concepts.length} values (one per concept)`);
    for (const v of row as unknown[]) values.push(v === true ? 1 : v === false ? 0 : typeof v === 'number' ? v : NaN);
  });
  return conceptTable(concepts as string[], values);
}

function parseCsv(text: string, file: string): ConceptTable {
  const lines = text.split(/\r?\n/).map((l, i) => ({ l: l.trim(), n: i + 1 })).filter(({ l }) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new Error(`concept table ${file}: empty; the first line must name the concepts`);
  const names = lines[0].l.split(',').map((s) => s.trim());
  const values: number[] = [];
  for (const { l, n } of lines.slice(1)) {
    const cells = l.split(',');
    if (cells.length !== names.length) throw new Error(`concept table ${file}: line ${n} has ${cells.length} values for ${names.length} concepts`);
    for (const c of cells) {
      const t = c.trim();
      if (t !== '0' && t !== '1') throw new Error(`concept table ${file}: line ${n} has '${t}'; concept labels must be 0 or 1`);
      values.push(Number(t));
    }
  }
  return conceptTable(names, values);
}

/** The concepts of these examples as float32 [B, k] (the bottleneck's `concepts` feed). */
export function conceptRows(table: ConceptTable, indices: ArrayLike<number>): Tensor<'float32'> {
  const k = table.names.length;
  const out = new Float32Array(indices.length * k);
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b];
    if (!Number.isInteger(i) || i < 0 || i >= table.size) throw new Error(`concept table: example ${i} is out of range [0, ${table.size}); the table must have one row per training example`);
    for (let j = 0; j < k; j++) out[b * k + j] = table.values[i * k + j];
  }
  return Tensor.float32(out, [indices.length, k]);
}

/** A dataset of feature rows [n, d] with labels (leakage probes, the independent model's concept → task head). */
export function rowsDataset(name: string, x: Float32Array, d: number, y: ArrayLike<number>, classes: number): Dataset<'float32'> {
  if (x.length !== y.length * d) throw new Error(`rowsDataset ${name}: ${x.length} values for ${y.length} rows of ${d}`);
  const labels = Int32Array.from(y);
  return dataset<'float32'>({
    name,
    size: labels.length,
    inputShape: [d],
    inputDType: 'float32',
    numClasses: classes,
    labels,
    gather(ix) {
      const out = new Float32Array(ix.length * d);
      ix.forEach((i, b) => out.set(x.subarray(i * d, (i + 1) * d), b * d));
      return { x: Tensor.float32(out, [ix.length, d]), y: Tensor.int64(Array.from(ix, (i) => labels[i]), [ix.length]) };
    },
  });
}

/** Concepts of a dSprites-like sprite from its factor levels (shape, scale, orientation, x, y). */
const FACTOR_CONCEPTS: readonly (readonly [string, (f: Int32Array) => boolean])[] = [
  ['scale:large', (f) => f[1] >= 2],
  ['x:right', (f) => f[3] >= 4],
  ['y:bottom', (f) => f[4] >= 4],
];

export interface FactorConcepts {
  /** Images [1, 28, 28] with y = 2·[scale:large] + [x:right] (four classes). */
  readonly data: Dataset<'float32'>;
  /** The concepts of every example; 'incomplete' leaves out x:right, which the task needs. */
  readonly table: ConceptTable;
}

/**
 * dSprites-like sprites (src/data/datasets/factors.ts) with binary concepts from their factors (large: scale level ≥ 2;
 * right: x level ≥ 4; bottom: y level ≥ 4) and a task that is a known function of them: y = 2·[large] + [right]
 * (bottom is a concept the task ignores). With task 'complete' the table holds the three concepts, so
 * true concepts determine y; with 'incomplete' it leaves out x:right, so true concepts give at most 50% accuracy and a
 * bottleneck that does better must carry position through its concept probabilities (leakage).
 */
export function factorConcepts(options: { size: number; seed: number; task: 'complete' | 'incomplete' }): FactorConcepts {
  const { size, seed, task } = options;
  if (task !== 'complete' && task !== 'incomplete') throw new Error(`factorConcepts: task must be 'complete' or 'incomplete', got '${String(task)}'`);
  const sprites = factorDataset({ size, seed });
  const kept = FACTOR_CONCEPTS.filter(([n]) => task === 'complete' || n !== 'x:right');
  const values = new Uint8Array(size * kept.length);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const f = sprites.factors(i);
    kept.forEach(([, has], j) => (values[i * kept.length + j] = has(f) ? 1 : 0));
    labels[i] = 2 * (f[1] >= 2 ? 1 : 0) + (f[3] >= 4 ? 1 : 0);
  }
  const data = dataset<'float32'>({
    name: `factor-concepts (${size}, seed ${seed}, ${task})`,
    size,
    inputShape: sprites.inputShape,
    inputDType: 'float32',
    numClasses: 4,
    classNames: ['small-left', 'small-right', 'large-left', 'large-right'],
    labels,
    gather(ix) {
      return { x: sprites.gather(ix).x, y: Tensor.int64(Array.from(ix, (i) => labels[i]), [ix.length]) };
    },
  });
  return { data, table: conceptTable(kept.map(([n]) => n), values) };
}

/** The rows of a table at these positions, as a table (aligned with `Dataset.subset` / `slice`). */
export function subsetTable(table: ConceptTable, indices: ArrayLike<number>): ConceptTable {
  return conceptTable(table.names, conceptRows(table, indices).data);
}
