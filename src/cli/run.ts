/** `glassbox run MODEL`: one run with inputs from files, sites captured and ablated, everything written as .npy. */
import { Model, type Intervention, type Tensor } from '../index.js';
import { parseCommand, parseUnits, splitPair } from './args.js';
import { UsageError } from './errors.js';
import { shapeText, table } from './format.js';
import { readInput } from './inputs.js';
import { OutputDir, type Written } from './outputs.js';

const MAX_ROWS_SHOWN = 16;

/** The argmax of each row of a float [N, K] tensor (K ≥ 2), the usual reading of a classifier's output. */
export function rowArgmax(t: Tensor): number[] | undefined {
  if (t.rank !== 2 || t.shape[1] < 2 || (t.dtype !== 'float32' && t.dtype !== 'float64')) return undefined;
  const [n, k] = t.shape;
  const d = t.data as Float32Array;
  const out: number[] = [];
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (d[r * k + j] > d[r * k + best]) best = j;
    out.push(best);
  }
  return out;
}

function argmaxText(t: Tensor): string {
  const a = rowArgmax(t);
  if (!a) return '';
  const shown = a.slice(0, MAX_ROWS_SHOWN).join(' ');
  return `argmax per row: ${shown}${a.length > MAX_ROWS_SHOWN ? ` … (${a.length} rows)` : ''}`;
}

export async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('run', argv, {
    input: { type: 'string', multiple: true },
    capture: { type: 'string', multiple: true },
    ablate: { type: 'string', multiple: true },
    'ablate-unit': { type: 'string', multiple: true },
    out: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'run needs a MODEL file' : `run takes one MODEL, got ${positionals.length}`, 'run');
  if (!values.out) throw new UsageError('run needs --out DIR', 'run');
  if (!values.input?.length) throw new UsageError('run needs at least one --input NAME=FILE', 'run');
  // Check the syntax of every value before loading anything.
  const inputPairs = values.input.map((t) => splitPair('--input', t, 'NAME=FILE, e.g. x=digits.npy'));
  const interventions: Intervention[] = [
    ...(values.ablate ?? []).map((site): Intervention => ({ site, kind: 'zero' })),
    ...(values['ablate-unit'] ?? []).map((t): Intervention => {
      const [site, units] = splitPair('--ablate-unit', t, 'SITE=UNITS, e.g. relu1=3,7', 'last');
      return { site, kind: 'zero', units: parseUnits('--ablate-unit', site, units) };
    }),
  ];

  const model = await Model.load(positionals[0], { probe: false });
  try {
    const feeds: Record<string, Tensor> = {};
    for (const [name, file] of inputPairs) {
      if (feeds[name]) throw new Error(`--input ${name} is given twice`);
      feeds[name] = await readInput(model.inputs, name, file);
    }
    const captures = [...new Set(values.capture ?? [])];
    const sites = captures.map((c) => model.site(c));
    const { outputs, captures: captured } = await model.run(feeds, { capture: captures, interventions });

    const dir = new OutputDir(values.out);
    for (const o of model.outputs) dir.add('output', o.name, outputs[o.name]);
    captures.forEach((c, i) => dir.add('site', sites[i].name, captured[c], sites[i].value));
    const written = await dir.write();
    printSummary(values.out, written, outputs, interventions);
  } finally {
    await model.dispose();
  }
}

function printSummary(dir: string, written: readonly Written[], outputs: Record<string, Tensor>, ivs: readonly Intervention[]): void {
  if (ivs.length > 0) {
    const what = ivs.map((iv) => (iv.kind === 'zero' && iv.units ? `${iv.site} units ${iv.units.join(',')}` : iv.site));
    console.log(`ablated (zeroed): ${what.join('; ')}`);
  }
  console.log(`wrote ${written.length} ${written.length === 1 ? 'array' : 'arrays'} and index.json to ${dir}`);
  console.log(table(written.map((w) => [
    w.file,
    w.kind,
    w.dtype,
    shapeText(w.shape),
    w.kind === 'output' ? argmaxText(outputs[w.name]) : '',
  ])));
}
