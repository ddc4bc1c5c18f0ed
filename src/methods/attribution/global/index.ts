/**
 * Global attribution methods: explanations of a model over a dataset rather than of one example. They do not fit
 * the uniform `MethodEntry` of the local methods (src/methods/attribution/method.ts), whose `explain(model, inputs,
 * options)` returns one `Attribution` with a map per example: aggregation takes a dataset and returns maps per class,
 * SpRAy takes many examples' maps and returns clusters. So they get their own table, `globalMethods`, with the same
 * `info` (title, reference, taxonomy passiveAttribution('global')) and a `run` of each method's own signature.
 *
 * @example
 * const g = await globalMethods.aggregate.run(model, testSet, { method: 'gradient-x-input' });
 * const s = globalMethods.spray.run(attribution.attributions, { size: [14, 14] });
 */
import type { MethodInfo } from '../../taxonomy.js';
import { passiveAttribution } from '../../taxonomy.js';
import { aggregateAttributions } from './aggregate.js';
import { spray } from './spray.js';

export interface GlobalMethodEntry {
  readonly info: MethodInfo;
  readonly run: (...args: never[]) => unknown;
}

const global = passiveAttribution('global');

export const globalMethods = {
  aggregate: {
    info: { title: 'Mean |attribution| over a dataset, overall and per class', reference: 'Lundberg et al. 2020, From local explanations to global understanding with explainable AI for trees', taxonomy: global },
    run: aggregateAttributions,
  },
  spray: {
    info: { title: 'Spectral relevance analysis (SpRAy)', reference: 'Lapuschkin et al. 2019, Unmasking Clever Hans predictors and assessing what machines really learn', taxonomy: global },
    run: spray,
  },
} satisfies Record<string, GlobalMethodEntry>;

export { AttributionAggregate, aggregateAttributions, type AggregateOptions, type GlobalAttribution } from './aggregate.js';
export { spray, downsample, knnAffinity, type SprayOptions, type SprayResult } from './spray.js';
export { symmetricEigen, type Eigen } from './eigen.js';
export { kmeans, type KMeansOptions, type KMeansResult } from './kmeans.js';
