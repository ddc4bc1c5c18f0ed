/**
 * `glassbox tcav MODEL --site SITE --concept SPEC... --target CLASS --out DIR`: TCAV scores of concepts for one class
 * (Kim et al. 2018), each against N random counter-sets with its t-test and Bonferroni over the concepts. A concept is
 * a .npy file of example images or a named concept of the procedural concept dataset (`concepts:stripes-horizontal`).
 * Writes DIR/tcav.json (scores, p-values, checks) and prints one line per concept.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist, loadMnist, Model, readNpy, type Dataset } from '../index.js';
import { conceptDataset, maskCount } from '../data/datasets/concepts.js';
import { permutation } from '../data/datasets/random.js';
import { Tensor } from '../runtime/tensor.js';
import { conceptAttribution, type Examples, type TcavScore } from '../methods/representations/tcav.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { toJson } from './format.js';

export const TCAV_USAGE = `glassbox tcav MODEL --site SITE --concept SPEC [--concept SPEC...] --target CLASS --out DIR
    [--data mnist|fashion-mnist] [--random N] [--examples N] [--inputs N] [--score log-probability|logit] [--seed S]

  TCAV (Kim et al. 2018): for each concept, CAVs against N random sets of data images (default 10), the fraction of
  target-class test images whose directional derivative is positive, a two-sided t-test against random-vs-random
  CAVs, and Bonferroni over the concepts. SPEC: a .npy file of example images [N, C, H, W], or concepts:NAME, a
  concept of the procedural concept dataset (28x28 grey), e.g. concepts:stripes-horizontal, concepts:shape:disc.
  --examples: images per concept and random set (default 50); --inputs: target-class images (default 100).
  Writes DIR/tcav.json.`;

const DATA: Record<string, () => Promise<Dataset<'float32'>>> = {
  mnist: () => loadMnist('test'),
  'fashion-mnist': () => loadFashionMnist('test'),
};

function positive(flag: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`bad ${flag} '${text}': expected an integer ≥ ${min}`, 'tcav');
  return Number(text);
}

/** Examples of a named scene concept: the first `n` scenes where the concept covers at least 20 pixels. */
function sceneConcept(name: string, n: number): Examples {
  const scenes = conceptDataset({ size: 20000, height: 28, width: 28, channels: 1, seed: 1 });
  const matches = scenes.conceptNames.filter((c) => c === name || c.split(':')[1] === name);
  if (matches.length !== 1) {
    throw new UsageError(`unknown concept 'concepts:${name}' (known: ${scenes.conceptNames.map((c) => c.split(':')[1]).join(', ')})`, 'tcav');
  }
  const k = scenes.conceptNames.indexOf(matches[0]);
  const picked: number[] = [];
  for (let i = 0; i < scenes.size && picked.length < n; i++) if (maskCount(scenes.masks(i)[k]) >= 20) picked.push(i);
  if (picked.length < 2) throw new Error(`concept '${name}': only ${picked.length} example scenes`);
  return scenes.subset(picked, `concepts:${name}`);
}

async function loadConcept(spec: string, n: number): Promise<Examples> {
  if (spec.startsWith('concepts:')) return sceneConcept(spec.slice('concepts:'.length), n);
  if (!spec.endsWith('.npy')) throw new UsageError(`bad --concept '${spec}': expected a .npy file of images or concepts:NAME`, 'tcav');
  const t = await readNpy(spec);
  if (t.dtype !== 'float32') throw new Error(`${spec}: concept images must be float32, got ${t.dtype}`);
  return t as Tensor<'float32'>;
}

export async function tcav(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('tcav', argv, {
    site: { type: 'string' },
    concept: { type: 'string', multiple: true },
    target: { type: 'string' },
    data: { type: 'string' },
    random: { type: 'string' },
    examples: { type: 'string' },
    inputs: { type: 'string' },
    score: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'tcav needs a MODEL file' : `tcav takes one MODEL, got ${positionals.length}`, 'tcav');
  if (!values.site) throw new UsageError('tcav needs --site SITE (glassbox inspect MODEL lists the sites)', 'tcav');
  if (!values.concept?.length) throw new UsageError('tcav needs --concept SPEC (a .npy file or concepts:NAME)', 'tcav');
  if (values.target === undefined) throw new UsageError('tcav needs --target CLASS', 'tcav');
  if (!values.out) throw new UsageError('tcav needs --out DIR', 'tcav');
  const target = positive('--target', values.target, 0, 0);
  const randomSets = positive('--random', values.random, 10, 2);
  const examples = positive('--examples', values.examples, 50, 2);
  const inputCount = positive('--inputs', values.inputs, 100);
  const seed = positive('--seed', values.seed, 0, 0);
  const score = (values.score ?? 'log-probability') as TcavScore;
  if (score !== 'logit' && score !== 'log-probability') throw new UsageError(`bad --score '${values.score}': expected log-probability or logit`, 'tcav');
  const dataName = values.data ?? 'mnist';
  if (!DATA[dataName]) throw new UsageError(`unknown --data '${dataName}' (known: ${Object.keys(DATA).join(', ')})`, 'tcav');

  const model = await Model.load(positionals[0]);
  try {
    model.site(values.site); // an unknown site fails here, naming the close ones
    const concepts: Record<string, Examples> = {};
    for (const spec of values.concept) concepts[spec] = await loadConcept(spec, examples);
    const data = await DATA[dataName]();
    // Inputs: target-class images from the first half of the split; random sets: disjoint draws from the second half.
    const half = Math.floor(data.size / 2);
    const labels = data.labels!;
    const inputIx: number[] = [];
    for (let i = 0; i < half && inputIx.length < inputCount; i++) if (labels[i] === target) inputIx.push(i);
    if (inputIx.length === 0) throw new Error(`--target ${target}: no ${dataName} test image has that class`);
    const order = permutation(data.size - half, seed);
    if (randomSets * examples > order.length) throw new Error(`--random ${randomSets} × --examples ${examples} exceeds the ${order.length} images to draw from`);
    const randoms = Array.from({ length: randomSets }, (_, r) => data.subset(Array.from(order.subarray(r * examples, (r + 1) * examples), (i) => half + i), `random-${r}`));
    const result = await conceptAttribution(model, { site: values.site, concepts, randoms, target, inputs: data.subset(inputIx), seed, score });
    await mkdir(values.out, { recursive: true });
    const path = join(values.out, 'tcav.json');
    await writeFile(path, toJson({
      model: positionals[0],
      site: values.site,
      target,
      data: dataName,
      score,
      randomSets,
      examples,
      inputs: inputIx.length,
      concepts: result.rows.map((r) => ({
        concept: r.concept, mean: r.mean, std: r.std, magnitude: r.magnitude, randomMean: r.randomMean, randomStd: r.randomStd,
        t: r.t, df: r.df, p: r.p, pCorrected: r.pCorrected, significant: r.significant,
        scores: r.scores, randomScores: r.randomScores, magnitudes: r.magnitudes, cavAccuracies: r.cavAccuracies, checks: r.checks,
      })),
      checks: result.checks,
      ms: result.ms,
    }));
    for (const r of result.rows) {
      console.log(`${r.concept}: TCAV ${r.mean.toFixed(3)} ± ${r.std.toFixed(3)} (random ${r.randomMean.toFixed(3)}), p ${r.p.toPrecision(3)}, corrected ${r.pCorrected.toPrecision(3)}${r.significant ? ' significant' : ''}`);
    }
    console.log(`wrote ${path}`);
  } finally {
    await model.dispose();
  }
}
