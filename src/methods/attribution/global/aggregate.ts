/**
 * Global attribution by aggregation: the mean |attribution| of every input feature over a dataset, overall and per
 * class — the simplest global explanation built from local ones (the "global importance as mean absolute
 * attribution" of Lundberg et al. 2020, "From local explanations to global understanding with explainable AI for
 * trees", applied to any registered method). Computed streaming: one batch of attributions at a time into float64
 * running sums, so memory is (classes + 1) × features however large the dataset.
 *
 * @example
 * const g = await aggregateAttributions(model, (await loadMnist('test')).slice(0, 1000), { method: 'gradient-x-input' });
 * g.overall;  // [1, 28, 28]: mean |attribution| per pixel
 * g.perClass; // [10, 1, 28, 28], g.counts[c] examples each
 */
import type { Dataset } from '../../../data/datasets/dataset.js';
import type { Model } from '../../../model/model.js';
import { Tensor } from '../../../runtime/tensor.js';
import { attributionMethod, type AttributionMethodName } from '../../registry.js';
import type { ExplainOptions, MethodEntry } from '../method.js';

export interface GlobalAttribution {
  /** Mean (|)attribution(|) per feature over all examples, [...rowShape]. */
  readonly overall: Tensor<'float32'>;
  /** The same per explained class, [classes, ...rowShape]; a class without examples has a zero row. */
  readonly perClass: Tensor<'float32'>;
  /** Examples per class. */
  readonly counts: Int32Array;
  readonly examples: number;
}

/** Running sums of attribution maps, overall and per class, fed one batch at a time. */
export class AttributionAggregate {
  private readonly sum: Float64Array;
  private readonly byClass = new Map<number, { sum: Float64Array; count: number }>();
  private n = 0;
  readonly rowSize: number;

  constructor(
    readonly rowShape: readonly number[],
    /** Classes at least (more are added as they are seen). */
    readonly classes = 0,
    /** Aggregate |attributions| (default true). */
    readonly abs = true,
  ) {
    this.rowSize = rowShape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(this.rowSize) || this.rowSize < 1) throw new Error(`aggregate: bad map shape [${rowShape.join(', ')}]`);
    this.sum = new Float64Array(this.rowSize);
  }

  /** Adds a batch [B, ...rowShape] whose examples explain these classes. */
  add(attributions: Tensor<'float32'>, classes: ArrayLike<number>): void {
    const b = attributions.shape[0];
    if (attributions.shape.slice(1).join() !== this.rowShape.join()) {
      throw new Error(`aggregate: a batch of maps [${attributions.shape.join(', ')}] does not match maps of shape [${this.rowShape.join(', ')}]`);
    }
    if (classes.length !== b) throw new Error(`aggregate: ${classes.length} classes for a batch of ${b} maps`);
    const R = this.rowSize;
    for (let i = 0; i < b; i++) {
      const c = classes[i];
      if (!Number.isInteger(c) || c < 0) throw new Error(`aggregate: class ${c} of example ${i} is not a non-negative integer`);
      let slot = this.byClass.get(c);
      if (!slot) this.byClass.set(c, (slot = { sum: new Float64Array(R), count: 0 }));
      slot.count++;
      for (let j = 0; j < R; j++) {
        const v = attributions.data[i * R + j];
        const a = this.abs ? Math.abs(v) : v;
        this.sum[j] += a;
        slot.sum[j] += a;
      }
    }
    this.n += b;
  }

  get result(): GlobalAttribution {
    const R = this.rowSize;
    const C = Math.max(this.classes, ...[...this.byClass.keys()].map((c) => c + 1));
    const overall = Float32Array.from(this.sum, (s) => (this.n ? s / this.n : 0));
    const perClass = new Float32Array(C * R);
    const counts = new Int32Array(C);
    for (const [c, slot] of this.byClass) {
      counts[c] = slot.count;
      for (let j = 0; j < R; j++) perClass[c * R + j] = slot.sum[j] / slot.count;
    }
    return { overall: new Tensor('float32', overall, this.rowShape), perClass: new Tensor('float32', perClass, [C, ...this.rowShape]), counts, examples: this.n };
  }
}

export interface AggregateOptions extends ExplainOptions {
  /** The local method, by registry name or as an entry. */
  readonly method: AttributionMethodName | MethodEntry;
  /** Examples per attribution call (default 64). */
  readonly batchSize?: number;
  /** Aggregate |attributions| (default true). */
  readonly abs?: boolean;
  /** Explain each example's label (default) or the model's prediction; the class it is counted under. */
  readonly explain?: 'label' | 'predicted';
}

/** Mean |attribution| of a registry method over a dataset, overall and per class, one batch at a time. */
export async function aggregateAttributions(model: Model, data: Dataset<'float32'>, options: AggregateOptions): Promise<GlobalAttribution & { readonly method: string }> {
  const { method, batchSize = 64, abs = true, explain = 'label', onProgress, ...rest } = options;
  const entry = typeof method === 'string' ? attributionMethod(method) : method;
  if (explain !== 'label' && explain !== 'predicted') throw new Error(`aggregate: explain must be 'label' or 'predicted', got '${explain as string}'`);
  if (explain === 'label' && data.targetShape.length !== 0) throw new Error(`aggregate: dataset ${data.name} has no class label per example; use explain: 'predicted'`);
  if (data.size === 0) throw new Error(`aggregate: dataset ${data.name} is empty`);
  if (model.inputs.length !== 1) throw new Error(`aggregate: the dataset feeds one input, the model reads ${model.inputs.map((i) => i.name).join(', ')}`);
  const input = model.inputs[0].name;
  const agg = new AttributionAggregate(data.inputShape, data.numClasses ?? 0, abs);
  let done = 0;
  for (const { x, y } of data.batches(batchSize)) {
    options.signal?.throwIfAborted();
    const target = explain === 'label' ? Array.from(y.data as BigInt64Array, Number) : 'predicted';
    const a = await entry.explain(model, { [input]: x }, { ...rest, target });
    agg.add(a.attributions, a.targets ?? Array.from(y.data as BigInt64Array, Number));
    done += x.shape[0];
    onProgress?.(done, data.size);
  }
  return { method: typeof method === 'string' ? method : entry.info.title, ...agg.result };
}
