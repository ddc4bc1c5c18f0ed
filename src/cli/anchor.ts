/**
 * `glassbox anchor MODEL --data iris|wine|breast-cancer|mnist --index I [--threshold 0.95] [--seed S] [--json FILE]`:
 * the anchor of one example (Ribeiro et al. 2018), printed as `IF … THEN class` with its precision and coverage.
 * Tabular models read raw (unstandardised) features; D is the whole dataset with quartile-bin predicates. For MNIST
 * the example is test image I and the predicates are 7×7 patches kept (the rest set to 0).
 */
import { writeFile } from 'node:fs/promises';
import { loadBreastCancer, loadIris, loadMnist, loadWine, Model, type Dataset } from '../index.js';
import { anchors, type AnchorExplanation } from '../methods/rules/anchors.js';
import { imageSpace, tabularSpace, type PerturbationSpace } from '../methods/rules/perturb.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { num, toJson } from './format.js';

/** The datasets the local-rule commands explain examples of: tabular ones in raw units, and MNIST test images. */
export const LOCAL_DATA: Record<string, { kind: 'tabular' | 'image'; load: () => Promise<Dataset<'float32'>> }> = {
  iris: { kind: 'tabular', load: loadIris },
  wine: { kind: 'tabular', load: loadWine },
  'breast-cancer': { kind: 'tabular', load: loadBreastCancer },
  mnist: { kind: 'image', load: () => loadMnist('test') },
};

/** The dataset named by --data and the example at --index, checked against the model's input. */
export async function localExample(command: string, values: { data?: string; index?: string }, model: Model) {
  const name = values.data;
  if (!name) throw new UsageError(`${command} needs --data NAME (${Object.keys(LOCAL_DATA).join(', ')})`, command);
  const entry = LOCAL_DATA[name];
  if (!entry) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(LOCAL_DATA).join(', ')})`, command);
  if (values.index === undefined) throw new UsageError(`${command} needs --index I, the example to explain`, command);
  const data = await entry.load();
  if (!/^\d+$/.test(values.index) || Number(values.index) >= data.size) {
    throw new UsageError(`bad --index '${values.index}': expected an integer in 0..${data.size - 1} (${name} has ${data.size} examples)`, command);
  }
  const declared = model.inputs[0]?.shape?.slice(1) ?? [];
  const size = data.inputShape.reduce((a, b) => a * b, 1);
  if (declared.length > 0 && declared.every((d) => typeof d === 'number') && (declared as number[]).reduce((a, b) => a * b, 1) !== size) {
    throw new Error(`${model.source} takes inputs [${declared.join(', ')}] per example; ${name} has [${data.inputShape.join(', ')}]`);
  }
  return { name, kind: entry.kind, data, index: Number(values.index), x: data.get(Number(values.index)).x.data as Float32Array };
}

function seedOf(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text)) throw new UsageError(`bad --seed '${text}': expected a non-negative integer`, 'anchor');
  return Number(text);
}

export async function anchor(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('anchor', argv, {
    data: { type: 'string' },
    index: { type: 'string' },
    threshold: { type: 'string' },
    seed: { type: 'string' },
    patch: { type: 'string' },
    json: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'anchor needs a MODEL file' : `anchor takes one MODEL, got ${positionals.length}`, 'anchor');
  const threshold = values.threshold === undefined ? 0.95 : Number(values.threshold);
  if (!(threshold > 0 && threshold < 1)) throw new UsageError(`bad --threshold '${values.threshold}': expected a number in (0, 1)`, 'anchor');
  const patch = values.patch === undefined ? 7 : Number(values.patch);
  if (!Number.isInteger(patch) || patch < 1) throw new UsageError(`bad --patch '${values.patch}': expected a positive integer`, 'anchor');
  const seed = seedOf(values.seed);

  const model = await Model.load(positionals[0]);
  try {
    const ex = await localExample('anchor', values, model);
    const space: PerturbationSpace = ex.kind === 'tabular' ? tabularSpace(ex.x, ex.data) : imageSpace(ex.x, ex.data.inputShape, { patch });
    const a = await anchors(model, space, { threshold, seed, classNames: ex.data.classNames });
    console.log(report(a, ex.name, ex.index, threshold));
    if (values.json) {
      await writeFile(values.json, toJson({ data: ex.name, index: ex.index, label: ex.data.labels?.[ex.index], ...a }));
      console.log(`wrote ${values.json}`);
    }
  } finally {
    await model.dispose();
  }
}

function report(a: AnchorExplanation, data: string, index: number, threshold: number): string {
  const [lb, ub] = a.precisionBounds;
  return [
    `${data} example ${index}: predicted ${a.className}`,
    a.found ? 'anchor:' : `no anchor reached precision ${threshold} with confidence; the most precise candidate:`,
    `  ${a.rule}`,
    `precision ${num(a.precision, 3)} (bounds ${num(lb, 3)}–${num(ub, 3)}, ${a.precisionSamples} samples), coverage ${num(a.coverage, 3)}`,
    `search: ${a.samples} perturbations in ${a.modelCalls} model calls, ${a.candidates} candidates`,
    'checks:',
    ...a.checks.map((c) => `  ${c.name}: ${checkValue(c.value)}${c.passed === undefined ? '' : c.passed ? ' (passed)' : ' (FAILED)'} — ${c.detail}`),
  ].join('\n');
}

const checkValue = (v: number | readonly number[]): string => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : num(v)) : v.map((x) => num(x)).join(', '));
