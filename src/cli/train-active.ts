/**
 * The training-time options of `glassbox train` (issue: rules and active interpretability): `--regularize METHOD`,
 * `--prototypes N`, `--concepts FILE` and `--adversarial EPS` turn a recipe's model into the regularised run the
 * method describes — loss terms, host terms, a batch transform, or a new architecture — and name its output file.
 */
import { readFile } from 'node:fs/promises';
import type { Dataset } from '../data/datasets/dataset.js';
import { adversarialTraining } from '../methods/active/adversarial-training.js';
import { conceptBottleneckRegularizer } from '../methods/active/bottleneck.js';
import { parseConceptTable } from '../methods/active/concept-data.js';
import { interpretableFiltersRegularizer, siteSize } from '../methods/active/filters.js';
import { modularityRegularizer } from '../methods/active/modularity.js';
import { prototypeRegularizer, type PrototypeTraining } from '../methods/active/protopnet.js';
import { sparsityRegularizer } from '../methods/active/sparsity.js';
import { treeRegularizer } from '../methods/active/tree-regularization.js';
import type { Regularizer } from '../methods/active/twin.js';
import type { ModelProto } from '../onnx/proto.js';
import { UsageError } from './errors.js';

/** What the user asked for; a checkpoint keeps it, and `--resume` rebuilds the same regulariser from it. */
export interface ActiveSettings {
  readonly regularize?: string;
  readonly strength?: number;
  readonly site?: string;
  readonly modules?: number;
  readonly prototypes?: number;
  readonly concepts?: string;
  readonly adversarial?: number;
}

export const REGULARIZERS = ['l1', 'group-lasso', 'l0', 'modularity', 'tree', 'filters'] as const;

/** Strengths tuned with Adam at lr 1e-2 (the proximal ones shrink by lr·λ per step). */
const DEFAULT_STRENGTH: Record<(typeof REGULARIZERS)[number], number> = { l1: 0.1, 'group-lasso': 0.5, l0: 0.02, modularity: 0.1, tree: 0.1, filters: 0.1 };

/** The settings from the command line, checked; undefined when no training-time option was given. */
export function activeSettings(values: Record<string, string | boolean | string[] | undefined>): ActiveSettings | undefined {
  const text = (k: string) => values[k] as string | undefined;
  const number = (flag: string, min: number, integer = false) => {
    const t = text(flag);
    if (t === undefined) return undefined;
    const v = Number(t);
    if (!Number.isFinite(v) || v <= min || (integer && !Number.isInteger(v))) throw new UsageError(`bad --${flag} '${t}': expected a${integer ? 'n integer' : ' number'} > ${min}`, 'train');
    return v;
  };
  const s: ActiveSettings = {
    regularize: text('regularize'),
    strength: number('strength', 0),
    site: text('site'),
    modules: number('modules', 1, true),
    prototypes: number('prototypes', 0, true),
    concepts: text('concepts'),
    adversarial: number('adversarial', 0),
  };
  if (s.regularize !== undefined && !(REGULARIZERS as readonly string[]).includes(s.regularize)) {
    throw new UsageError(`unknown --regularize '${s.regularize}' (known: ${REGULARIZERS.join(', ')})`, 'train');
  }
  const chosen = [s.regularize, s.prototypes, s.concepts, s.adversarial].filter((v) => v !== undefined).length;
  if (chosen > 1) throw new UsageError('give one of --regularize, --prototypes, --concepts and --adversarial', 'train');
  if (chosen === 0) {
    if (s.strength !== undefined || s.site !== undefined || s.modules !== undefined) throw new UsageError('--strength, --site and --modules go with --regularize', 'train');
    return undefined;
  }
  if (s.regularize === 'filters' && !s.site) throw new UsageError('--regularize filters needs --site SITE (a conv layer: glassbox inspect MODEL lists the sites)', 'train');
  if (s.modules !== undefined && s.regularize !== 'modularity') throw new UsageError('--modules goes with --regularize modularity', 'train');
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as ActiveSettings;
}

/** The output files' suffix: `mnist-cnn-l1.onnx`, `iris-mlp-proto10.onnx`. */
export function activeSuffix(s: ActiveSettings): string {
  if (s.regularize) return `-${s.regularize}`;
  if (s.prototypes) return `-proto${s.prototypes}`;
  if (s.concepts) return '-cbm';
  return `-adv${s.adversarial}`;
}

/** The regulariser for a recipe's model and training data, with a line that says what it does. */
export async function activeRegularizer(s: ActiveSettings, model: ModelProto, train: Dataset, seed: number): Promise<{ reg: Regularizer | PrototypeTraining; about: string }> {
  if (s.regularize) {
    const method = s.regularize as (typeof REGULARIZERS)[number];
    const strength = s.strength ?? DEFAULT_STRENGTH[method];
    const about = `${method} regularisation, strength ${strength}`;
    switch (method) {
      case 'l1':
      case 'group-lasso':
      case 'l0':
        return { reg: sparsityRegularizer(model, method, { strength, seed }), about };
      case 'modularity':
        return { reg: modularityRegularizer(model, { strength, k: s.modules ?? 2 }), about: `${about}, ${s.modules ?? 2} modules` };
      case 'tree':
        return { reg: treeRegularizer(model, { strength, data: train, seed }), about: `${about} (Wu et al. 2018: a surrogate of the average decision path length)` };
      case 'filters': {
        const size = await siteSize(model, s.site!, train.inputShape);
        return { reg: interpretableFiltersRegularizer(model, { site: s.site!, size, weight: strength, tau: 0.5 }), about: `${about} on ${s.site} (one filter, one part)` };
      }
    }
  }
  if (s.concepts) {
    const table = parseConceptTable(await readFile(s.concepts, 'utf8'), s.concepts);
    if (table.size !== train.size) throw new Error(`${s.concepts}: ${table.size} rows of concept labels, but the training set has ${train.size} examples (one row per example, in order)`);
    return { reg: conceptBottleneckRegularizer(model, table, { seed }), about: `joint concept bottleneck over ${table.names.length} concepts (${table.names.join(', ')})` };
  }
  if (s.prototypes) {
    const reg = prototypeRegularizer(model, train, { prototypes: s.prototypes, seed });
    const about = reg.kind === 'protopnet'
      ? `ProtoPNet (Chen et al. 2019), ${s.prototypes} prototype parts per class, pushed onto training patches after fitting`
      : `prototype autoencoder (Li et al. 2018), ${s.prototypes * train.numClasses!} prototypes`;
    return { reg, about };
  }
  // Images live in [0, 1]; tabular features in their own units, unbounded.
  const range = train.inputShape.length === 3 ? ([0, 1] as const) : null;
  return { reg: adversarialTraining(s.adversarial!, { seed, range }), about: `PGD adversarial training (Madry et al. 2018), L∞ ε = ${s.adversarial}, 7 steps` };
}
