/**
 * Explanation by nearest neighbours in a site's space (Zhang et al.'s "examples" format; e.g. Papernot & McDaniel
 * 2018, "Deep k-Nearest Neighbors"): the training examples whose activations at the site lie closest to a query's.
 * The training set is streamed through the model in batches and only the k best per query are kept, so memory is
 * O(queries · (k + site size)) whatever the dataset size.
 *
 * Evidence: how often the neighbours carry the label the model predicts for the query, against the rate random
 * training examples would (the site groups examples by the model's decision if it beats chance).
 *
 * @example
 * const r = await nearestNeighbours(model, 'fc1.relu', train, test.gather([0, 1]).x, { k: 5, metric: 'cosine' });
 * r.neighbours[0]; // [{ index, score }, …] best first
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import type { Model } from '../../model/model.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import type { RankedExample, StageProgress } from './influence.js';

export type Metric = 'cosine' | 'euclidean';

export interface NeighbourOptions {
  readonly k: number;
  /** Cosine similarity (larger is nearer) or Euclidean distance (smaller is nearer); default cosine. */
  readonly metric?: Metric;
  /** Training examples per model run (default 256). */
  readonly batchSize?: number;
  readonly onProgress?: StageProgress;
}

export interface NeighbourResult {
  readonly method: 'nearest-neighbours';
  readonly site: string;
  readonly metric: Metric;
  /** Per query, the k nearest training examples, nearest first; score is the similarity or distance. */
  readonly neighbours: readonly (readonly RankedExample[])[];
  /** The model's predicted class per query (argmax of its first output). */
  readonly predicted: readonly number[];
  readonly checks: Check[];
}

/** The k training examples nearest to each query at `site`, in one streaming pass over `train`. */
export async function nearestNeighbours(model: Model, site: string, train: Dataset, queries: Tensor, options: NeighbourOptions): Promise<NeighbourResult> {
  const { k, metric = 'cosine', batchSize = 256 } = options;
  if (!Number.isInteger(k) || k < 1) throw new Error(`nearest neighbours: k must be a positive integer, got ${k}`);
  if (metric !== 'cosine' && metric !== 'euclidean') throw new Error(`nearest neighbours: unknown metric '${String(metric)}' (known: cosine, euclidean)`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`nearest neighbours: batchSize must be a positive integer, got ${batchSize}`);
  model.site(site); // an unknown site fails here, naming the close ones
  const input = model.inputs[0].name;
  if (queries.rank < 1 || queries.shape[0] < 1) throw new Error(`nearest neighbours: queries must be a batch [Q, ...], got [${queries.shape.join(', ')}]`);
  if (queries.shape.slice(1).join() !== train.inputShape.join()) {
    throw new Error(`nearest neighbours: queries [${queries.shape.join(', ')}] do not match the training examples [N, ${train.inputShape.join(', ')}]`);
  }
  if (queries.dtype === 'float32' && !(queries.data as Float32Array).every(Number.isFinite)) throw new Error('nearest neighbours: queries contain NaN or infinite values');

  const q = await model.run({ [input]: queries }, { capture: [site] });
  const Q = queries.shape[0];
  const qf = rows(q.captures[site], Q);
  const D = qf.length / Q;
  const out = Object.values(q.outputs)[0];
  const C = out.size / Q;
  const predicted = Array.from({ length: Q }, (_, i) => argmax(out.data as ArrayLike<number>, i * C, C));
  const qNorm = Float64Array.from({ length: Q }, (_, i) => normAt(qf, i * D, D));

  const better = metric === 'cosine' ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  const best = Array.from({ length: Q }, () => [] as RankedExample[]);
  const offer = (list: RankedExample[], e: RankedExample) => {
    if (list.length === k && !better(e.score, list[k - 1].score)) return;
    let at = list.length === k ? k - 1 : list.length;
    if (list.length < k) list.push(e);
    while (at > 0 && better(e.score, list[at - 1].score)) list[at] = list[--at];
    list[at] = e;
  };
  let seen = 0;
  for (const b of train.batches(batchSize)) {
    const r = await model.run({ [input]: b.x }, { capture: [site] });
    const B = b.x.shape[0];
    options.onProgress?.({ stage: 'scanning training examples', done: (seen += B), total: train.size });
    const f = rows(r.captures[site], B);
    if (f.length !== B * D) throw new Error(`nearest neighbours: '${site}' has ${f.length / B} values per training example but ${D} per query`);
    for (let j = 0; j < B; j++) {
      const fNorm = normAt(f, j * D, D);
      for (let i = 0; i < Q; i++) {
        let s = 0;
        if (metric === 'cosine') {
          for (let u = 0; u < D; u++) s += qf[i * D + u] * f[j * D + u];
          s /= Math.max(qNorm[i] * fNorm, 1e-30);
        } else {
          for (let u = 0; u < D; u++) s += (qf[i * D + u] - f[j * D + u]) ** 2;
          s = Math.sqrt(s);
        }
        offer(best[i], { index: b.indices[j], score: s });
      }
    }
  }
  return { method: 'nearest-neighbours', site, metric, neighbours: best, predicted, checks: labelCheck(train, best, predicted) };
}

/** Neighbours labelled with the query's predicted class, against the rate for random training examples. */
function labelCheck(train: Dataset, best: readonly (readonly RankedExample[])[], predicted: readonly number[]): Check[] {
  const labels = train.labels;
  if (!labels) return [];
  const freq = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) freq.set(labels[i], (freq.get(labels[i]) ?? 0) + 1);
  let hits = 0;
  let total = 0;
  let chance = 0;
  best.forEach((list, i) => {
    for (const e of list) hits += labels[e.index] === predicted[i] ? 1 : 0;
    total += list.length;
    chance += ((freq.get(predicted[i]) ?? 0) / labels.length) * list.length;
  });
  const agreement = hits / total;
  return [
    {
      name: 'neighbours share the predicted label',
      value: agreement,
      passed: agreement > chance / total,
      detail: `fraction of neighbours labelled with the query's predicted class; random training examples: ${(chance / total).toFixed(3)}`,
    },
  ];
}

/** A captured value [B, ...] as float64 rows. */
function rows(t: Tensor, B: number): Float64Array {
  if (t.shape[0] !== B) throw new Error(`nearest neighbours: the site value [${t.shape.join(', ')}] has no batch axis of ${B}`);
  return Float64Array.from(t.data as ArrayLike<number>, Number);
}

function normAt(v: Float64Array, at: number, d: number): number {
  let s = 0;
  for (let u = 0; u < d; u++) s += v[at + u] ** 2;
  return Math.sqrt(s);
}

function argmax(v: ArrayLike<number>, at: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (v[at + k] > v[at + best]) best = k;
  return best;
}
