/**
 * `glassbox counterfactual MODEL --data iris|wine|breast-cancer --index I [--target CLASS] [--immutable F,…]
 * [--json FILE]`: the smallest change of one example (MAD-weighted L1, Wachter et al. 2017) that the model gives
 * another class, kept inside the data's feature ranges; prints each changed feature (from → to, raw units) and the
 * new prediction with its checks.
 */
import { writeFile } from 'node:fs/promises';
import { Model } from '../index.js';
import { counterfactual as findCounterfactual, type CounterfactualExplanation } from '../methods/rules/counterfactual.js';
import { fmt } from '../methods/rules/perturb.js';
import { localExample } from './anchor.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { num, toJson } from './format.js';

/** A class by name or index. */
function classOf(text: string, names: readonly string[]): number {
  if (/^\d+$/.test(text) && Number(text) < names.length) return Number(text);
  const k = names.indexOf(text);
  if (k < 0) throw new UsageError(`bad --target '${text}': expected a class index 0..${names.length - 1} or a name (${names.join(', ')})`, 'counterfactual');
  return k;
}

export async function counterfactual(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('counterfactual', argv, {
    data: { type: 'string' },
    index: { type: 'string' },
    target: { type: 'string' },
    immutable: { type: 'string' },
    json: { type: 'string' },
  });
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'counterfactual needs a MODEL file' : `counterfactual takes one MODEL, got ${positionals.length}`, 'counterfactual');
  }
  if (values.data === 'mnist') throw new UsageError('counterfactual explains tabular examples: --data iris, wine or breast-cancer', 'counterfactual');
  const model = await Model.load(positionals[0]);
  try {
    const ex = await localExample('counterfactual', values, model);
    const names = ex.data.featureNames ?? [];
    const classes = ex.data.classNames ?? Array.from({ length: ex.data.numClasses ?? 0 }, (_, i) => String(i));
    const target = values.target === undefined ? undefined : classOf(values.target, classes);
    const immutable = (values.immutable?.split(',') ?? []).map((f) => {
      const j = /^\d+$/.test(f) ? Number(f) : names.indexOf(f);
      if (j < 0 || j >= names.length) throw new UsageError(`bad --immutable '${f}': expected a feature index or name (${names.join(', ')})`, 'counterfactual');
      return j;
    });
    const cf = await findCounterfactual(model, ex.x, { data: ex.data, target, immutable, ranges: 'data' });
    console.log(report(cf, ex.name, ex.index));
    if (values.json) {
      await writeFile(values.json, toJson({ data: ex.name, index: ex.index, label: ex.data.labels?.[ex.index], ...cf, x: [...cf.x], counterfactual: [...cf.counterfactual], mad: [...cf.mad] }));
      console.log(`wrote ${values.json}`);
    }
  } finally {
    await model.dispose();
  }
}

function report(cf: CounterfactualExplanation, data: string, index: number): string {
  const width = Math.max(0, ...cf.changes.map((c) => c.name.length));
  return [
    `${data} example ${index}: predicted ${cf.original.name} (p = ${num(cf.original.probability, 3)})`,
    cf.found ? `counterfactual (distance ${num(cf.distance)}, MAD-weighted L1):` : 'no counterfactual found; the closest attempt:',
    ...cf.changes.map((c) => `  ${c.name.padEnd(width)}  ${fmt(c.from)} → ${fmt(c.to)}`),
    `new prediction: ${cf.prediction.name} (p = ${num(cf.prediction.probability, 3)})`,
    'checks:',
    ...cf.checks.map((c) => `  ${c.name}: ${checkValue(c.value)}${c.passed === undefined ? '' : c.passed ? ' (passed)' : ' (FAILED)'} — ${c.detail}`),
  ].join('\n');
}

const checkValue = (v: number | readonly number[]): string => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : num(v)) : v.map((x) => num(x)).join(', '));
