/**
 * `glassbox rules MODEL --data NAME`: global rules that mimic a classifier (pedagogical extraction, Trepan-style
 * querying), printed one per line with held-out coverage and fidelity, then fidelity against the majority-class
 * baseline and against the same learner without queries, accuracy, and size. Tabular models read raw features
 * (the rules are in the data's units); MNIST models read [N, 1, 28, 28] images, described by patch means.
 */
import { writeFile } from 'node:fs/promises';
import { loadBreastCancer, loadIris, loadMnist, loadWine, Model, type Dataset } from '../index.js';
import { tabularSplit } from './recipes.js';
import { featureSpaceOf } from '../methods/rules/features.js';
import { extractionJson, formatRules } from '../methods/rules/format.js';
import { extractRules } from '../methods/rules/pedagogical.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { toJson } from './format.js';

/** Training part (the network labels it and queries around it) and held-out part (fidelity is measured on it). */
interface RuleData {
  readonly train: Dataset;
  readonly test: Dataset;
}

/** The tabular recipes' own split (80/20, stratified, seed 1), so fidelity is measured on examples the model never saw. */
const tabular = (load: () => Promise<Dataset<'float32'>>) => (): Promise<RuleData> => tabularSplit(load);

const DATASETS: Record<string, (o: { seed: number; limit: number }) => Promise<RuleData>> = {
  iris: tabular(loadIris),
  wine: tabular(loadWine),
  'breast-cancer': tabular(loadBreastCancer),
  mnist: async ({ limit }) => ({ train: (await loadMnist('train')).slice(0, limit), test: (await loadMnist('test')).slice(0, Math.min(limit, 2000)) }),
};

function count(flag: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`bad ${flag} '${text}': expected an integer ≥ ${min}`, 'rules');
  return Number(text);
}

export async function rules(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('rules', argv, {
    data: { type: 'string' },
    kind: { type: 'string' },
    'max-depth': { type: 'string' },
    queries: { type: 'string' },
    'min-samples': { type: 'string' },
    patch: { type: 'string' },
    limit: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'rules needs a MODEL file' : `rules takes one MODEL, got ${positionals.length}`, 'rules');
  const name = values.data;
  if (!name) throw new UsageError(`rules needs --data NAME (one of ${Object.keys(DATASETS).join(', ')})`, 'rules');
  const load = DATASETS[name];
  if (!load) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(DATASETS).join(', ')})`, 'rules');
  const kind = values.kind ?? 'tree';
  if (kind !== 'tree' && kind !== 'rules') throw new UsageError(`bad --kind '${kind}': expected tree or rules`, 'rules');
  const seed = count('--seed', values.seed, 0, 0);
  const maxDepth = count('--max-depth', values['max-depth'], name === 'mnist' ? 6 : 4, 0);
  const minSamples = count('--min-samples', values['min-samples'], 40, 0);
  const patch = count('--patch', values.patch, 4);
  const limit = count('--limit', values.limit, 2000);

  const data = await load({ seed, limit });
  const queries = count('--queries', values.queries, 2 * data.train.size, 0);
  const model = await Model.load(positionals[0]);
  try {
    const result = await extractRules(model, data.train, data.test, {
      kind,
      maxDepth,
      minSamples,
      queries,
      seed,
      features: featureSpaceOf(data.train, patch),
    });
    console.log(
      `${result.method} on ${name}: fitted to the network's labels on ${data.train.size} examples and ${result.queries.total} queries; ` +
        `fidelity and coverage on ${data.test.size} held-out examples`,
    );
    console.log('');
    console.log(formatRules(result));
    if (values.json) {
      await writeFile(values.json, toJson(extractionJson(result)) + '\n');
      console.log(`wrote ${values.json}`);
    }
  } finally {
    await model.dispose();
  }
}
