/**
 * `glassbox explain MODEL --input FILE --out DIR`: one attribution method on inputs from files. Writes
 * DIR/attributions.npy, DIR/explanation.json (method, taxonomy, target, scores, checks, settings, timing) and, when
 * the attributed value is an image batch [N, C, H, W] (C 1 or 3) or [N, H, W], DIR/heatmap-<i>.png per example.
 */
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { Model, readNpy, Tensor, writeNpy, writePng } from '../index.js';
import type { Baseline } from '../methods/attribution/baseline.js';
import type { Target } from '../methods/attribution/target.js';
import { attributionMethod } from '../methods/registry.js';
import { heatmapOverlay } from '../report/heatmap.js';
import { parseCommand, splitPair } from './args.js';
import { UsageError } from './errors.js';
import { toJson } from './format.js';
import { readInput } from './inputs.js';

function count(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`bad ${flag} '${text}': expected a positive integer`, 'explain');
  return Number(text);
}

function parseTarget(text: string | undefined): Target {
  if (text === undefined || text === 'predicted') return 'predicted';
  if (/^\d+$/.test(text)) return Number(text);
  if (/^\d+(,\d+)+$/.test(text)) return text.split(',').map(Number);
  throw new UsageError(`bad --target '${text}': expected a class index, one per example (3,1,4), or 'predicted'`, 'explain');
}

async function parseBaseline(text: string | undefined): Promise<Baseline | undefined> {
  if (text === undefined || text === 'zero') return undefined;
  if (text === 'blur') return 'blur';
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return readNpy(text).catch((e: Error) => {
    throw new Error(`--baseline ${text}: ${e.message} (expected zero, blur, a number or a .npy file)`);
  });
}

export async function explain(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('explain', argv, {
    input: { type: 'string', multiple: true },
    method: { type: 'string' },
    target: { type: 'string' },
    steps: { type: 'string' },
    samples: { type: 'string' },
    seed: { type: 'string' },
    baseline: { type: 'string' },
    wrt: { type: 'string' },
    site: { type: 'string' },
    'max-batch-mb': { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'explain needs a MODEL file' : `explain takes one MODEL, got ${positionals.length}`, 'explain');
  if (!values.out) throw new UsageError('explain needs --out DIR', 'explain');
  if (!values.input?.length) throw new UsageError('explain needs --input FILE (or NAME=FILE for a model with several inputs)', 'explain');
  const entry = attributionMethod(values.method ?? 'integrated-gradients');
  const target = parseTarget(values.target);
  const steps = count('--steps', values.steps);
  const samples = count('--samples', values.samples);
  const seedText = values.seed;
  if (seedText !== undefined && !/^\d+$/.test(seedText)) throw new UsageError(`bad --seed '${seedText}': expected a non-negative integer`, 'explain');
  const mb = count('--max-batch-mb', values['max-batch-mb']);

  const model = await Model.load(positionals[0]);
  try {
    const feeds: Record<string, Tensor> = {};
    for (const text of values.input) {
      const [name, file] = text.includes('=') ? splitPair('--input', text, 'NAME=FILE') : [onlyInput(model), text];
      if (feeds[name]) throw new Error(`--input ${name} is given twice`);
      feeds[name] = await readInput(model.inputs, name, file);
    }
    const baseline = await parseBaseline(values.baseline);
    const tty = process.stderr.isTTY;
    const result = await entry.explain(model, feeds, {
      target,
      steps,
      samples,
      seed: seedText === undefined ? undefined : Number(seedText),
      baseline,
      wrt: values.wrt,
      site: values.site,
      maxBatchBytes: mb === undefined ? undefined : mb * 2 ** 20,
      onProgress: tty ? (done, total) => process.stderr.write(`\r${entry.name}: ${done}/${total} rows`) : undefined,
    });
    if (tty) process.stderr.write('\r\x1b[K');

    await mkdir(values.out, { recursive: true });
    const files = ['attributions.npy', 'explanation.json'];
    await writeNpy(join(values.out, 'attributions.npy'), result.attributions);
    const image = imageOf(result.wrt in feeds ? feeds[result.wrt] : undefined, result.attributions);
    if (image) {
      const n = result.attributions.shape[0];
      for (let i = 0; i < n; i++) {
        const file = `heatmap-${i}.png`;
        await writePng(join(values.out, file), heatmapOverlay(image.example(i), image.attribution(i)), { range: [0, 1] });
        files.push(file);
      }
    }
    const record = {
      method: result.method,
      title: entry.info.title,
      reference: entry.info.reference,
      taxonomy: entry.info.taxonomy,
      model: positionals[0],
      wrt: result.wrt,
      output: result.output,
      targets: result.targets ? Array.from(result.targets) : null,
      scores: Array.from(result.scores),
      checks: result.checks,
      params: result.params,
      ms: Math.round(result.ms),
      files,
    };
    await writeFile(join(values.out, 'explanation.json'), toJson(record));
    console.log(`${entry.info.title} (${result.method}) of ${result.output}${result.targets ? `, target ${summary(result.targets)}` : ''}, w.r.t. ${result.wrt}: ${(result.ms / 1000).toFixed(2)} s`);
    for (const c of result.checks) console.log(`  check ${c.name}: ${c.passed === undefined ? 'measured' : c.passed ? 'passed' : 'FAILED'} — ${c.detail}`);
    console.log(`wrote ${files.join(', ')} to ${values.out}`);
  } finally {
    await model.dispose();
  }
}

function onlyInput(model: Model): string {
  if (model.inputs.length !== 1) throw new UsageError(`the model has ${model.inputs.length} inputs (${model.inputs.map((i) => i.name).join(', ')}): give --input NAME=FILE`, 'explain');
  return model.inputs[0].name;
}

function summary(t: Int32Array): string {
  const shown = Array.from(t.slice(0, 16)).join(',');
  return t.length > 16 ? `${shown},… (${t.length} examples)` : shown;
}

/** Per-example image and attribution views when the attributed value is an image batch. */
function imageOf(x: Tensor | undefined, a: Tensor<'float32'>) {
  if (!x || x.dtype !== 'float32' || x.shape.join() !== a.shape.join()) return undefined;
  const image = (a.rank === 4 && (a.shape[1] === 1 || a.shape[1] === 3)) || a.rank === 3;
  if (!image) return undefined;
  const row = a.size / a.shape[0];
  const shape = a.shape.slice(1);
  const view = (t: Tensor, i: number) => new Tensor('float32', (t.data as Float32Array).subarray(i * row, (i + 1) * row), shape);
  return { example: (i: number) => view(x, i), attribution: (i: number) => view(a, i) };
}
