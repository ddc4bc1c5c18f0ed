/**
 * Feature ablation (leave-one-group-out; the occlusion of Zeiler & Fergus 2014 with arbitrary groups, e.g. the
 * superpixels or patches of masks.ts): each feature group in turn takes the baseline's values, and every value of
 * the group gets f(x) − f(x with its group ablated). All ablated copies of all examples run as a few large batches.
 *
 * @example
 * const mask = patchMask([1, 28, 28], 7);
 * const ab = await featureAblation(model, { x }, { target: 3, featureMask: mask });
 * ab.checks[0]; // additivity: Σ over groups vs f(x) − f(baseline), a measure of interaction
 */
import type { Model } from '../../../model/model.js';
import type { Tensor } from '../../../runtime/tensor.js';
import { Attributor, type AttributionOptions } from '../attributor.js';
import { resolveBaseline, type Baseline } from '../baseline.js';
import type { Attribution } from '../explanation.js';
import { coalitions, describeBaseline, featureGroups, groupTable, result, scoreCoalitions, spread } from './features.js';

export interface FeatureAblationOptions extends AttributionOptions {
  /** Integer group id per value of one example, [1, ...] or [N, ...] (default: masks.ts `defaultWindow` patches). */
  readonly featureMask?: Tensor;
  /** What ablated values become (default 0). */
  readonly baseline?: Baseline;
}

export async function featureAblation(model: Model, inputs: Readonly<Record<string, Tensor>>, options: FeatureAblationOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const a = await Attributor.create(model, inputs, options);
  const groups = featureGroups(options.featureMask, a.rowShape, a.n, 'feature ablation');
  const b = resolveBaseline(options.baseline, a.x, 'feature ablation: baseline').data;
  const width = Math.max(0, ...groups.map((g) => g.count));
  // Per example: one row per ablated group, then one with every group ablated (f(baseline)).
  const first = new Int32Array(a.n + 1);
  for (let i = 0; i < a.n; i++) first[i + 1] = first[i] + groups[i].count + 1;
  const c = coalitions(first[a.n], width);
  for (let i = 0; i < a.n; i++) {
    const G = groups[i].count;
    for (let g = 0; g <= G; g++) {
      const r = first[i] + g;
      c.owner[r] = i;
      if (g < G) {
        c.keep.fill(1, r * width, r * width + G);
        c.keep[r * width + g] = 0;
      }
    }
  }
  const f = await scoreCoalitions(a, b, groups, c);
  const perGroup = groups.map((g, i) => Float64Array.from({ length: g.count }, (_, k) => a.scores0[i] - f[first[i] + k]));
  const gaps = perGroup.map((d, i) => d.reduce((s, v) => s + v, 0) - (a.scores0[i] - f[first[i] + groups[i].count]));
  const additivity = {
    name: 'additivity',
    value: gaps,
    detail: 'Σ over groups of f(x) − f(x ablated) minus (f(x) − f(baseline)) per example: 0 for a model additive in the groups, otherwise a measure of their interaction',
  };
  return result(a, 'feature-ablation', spread(a, groups, perGroup, false), started, [additivity], {
    baseline: describeBaseline(options.baseline),
    features: groups.map((g) => g.count),
  }, { groupAttributions: groupTable(perGroup), baselineScores: groups.map((g, i) => f[first[i] + g.count]) });
}
