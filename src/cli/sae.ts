/**
 * `glassbox sae train MODEL --site S --data NAME --features N (--topk K | --l1 X) --out DIR`: trains a sparse
 * autoencoder on the site's activations over the training split and writes DIR/<site>.sae.onnx and
 * DIR/<site>.sae.json (reconstruction, FVE, L0, dead features, the model's loss with the reconstruction spliced in).
 * `glassbox sae inspect MODEL SAE.onnx --site S --data NAME --out DIR`: one HTML page with a card per feature (its
 * top test-set examples as an image grid), DIR/<site>.sae.html, the grids under DIR/<site>.sae/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist, loadMnist, Model, type Dataset } from '../index.js';
import { factorDataset } from '../data/datasets/factors.js';
import { evaluateSae, siteSource, splicedLoss, SparseAutoencoder, trainSae, type Sparsity } from '../methods/representations/sae.js';
import { imageGrid } from '../report/grid.js';
import { formatNumber, htmlCard, htmlPage, htmlTable } from '../report/html.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { statusLine } from './status.js';
import { toJson } from './format.js';

const DATASETS: Record<string, (split: 'train' | 'test') => Promise<Dataset>> = {
  mnist: (split) => loadMnist(split),
  'fashion-mnist': (split) => loadFashionMnist(split),
  // The full factor grid, shuffled into a fixed train/test split by index parity.
  factors: async (split) => {
    const ds = factorDataset();
    return ds.subset(Int32Array.from({ length: ds.size / 2 }, (_, i) => 2 * i + (split === 'train' ? 0 : 1)), `factors ${split}`);
  },
};

const OPTIONS = {
  site: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  features: { type: 'string' },
  topk: { type: 'string' },
  l1: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  spatial: { type: 'string' },
  limit: { type: 'string' },
  seed: { type: 'string' },
  k: { type: 'string' },
} as const;

function integer(flag: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`bad ${flag} '${text}': expected an integer ≥ ${min}`, 'sae');
  return Number(text);
}

function number(flag: string, text: string, positive: boolean): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < 0 || (positive && v === 0)) throw new UsageError(`bad ${flag} '${text}': expected a ${positive ? 'positive' : 'non-negative'} number`, 'sae');
  return v;
}

function fileName(site: string): string {
  return site.replace(/[^A-Za-z0-9._-]/g, '_');
}

export async function sae(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'train') return saeTrain(rest);
  if (sub === 'inspect') return saeInspect(rest);
  throw new UsageError(sub === undefined ? 'sae needs a subcommand: train or inspect' : `unknown sae subcommand '${sub}' (known: train, inspect)`, 'sae');
}

async function common(values: { site?: string; data?: string; out?: string; spatial?: string }) {
  if (!values.out) throw new UsageError('sae needs --out DIR', 'sae');
  if (!values.site) throw new UsageError('sae needs --site SITE (glassbox inspect MODEL lists the sites)', 'sae');
  const name = values.data ?? 'mnist';
  const load = DATASETS[name];
  if (!load) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(DATASETS).join(', ')})`, 'sae');
  const spatial = values.spatial ?? 'positions';
  if (spatial !== 'positions' && spatial !== 'mean') throw new UsageError(`bad --spatial '${spatial}': expected positions or mean`, 'sae');
  return { site: values.site, out: values.out, load, spatial: spatial as 'positions' | 'mean', dataName: name };
}

async function saeTrain(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('sae', argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'sae train needs a MODEL file' : `sae train takes one MODEL, got ${positionals.length}`, 'sae');
  const { site, out, load, spatial, dataName } = await common(values);
  if (!values.features) throw new UsageError('sae train needs --features N (the dictionary size)', 'sae');
  const features = integer('--features', values.features, 0);
  if ((values.topk === undefined) === (values.l1 === undefined)) throw new UsageError('sae train needs exactly one of --topk K or --l1 X', 'sae');
  const sparsity: Sparsity = values.topk !== undefined ? { kind: 'topk', k: integer('--topk', values.topk, 0) } : { kind: 'relu', l1: number('--l1', values.l1!, false) };
  if (sparsity.kind === 'topk' && sparsity.k > features) throw new UsageError(`bad --topk ${sparsity.k}: more than the ${features} features`, 'sae');
  const steps = integer('--steps', values.steps, 2000);
  const batchSize = integer('--batch', values.batch, 256);
  const lr = values.lr === undefined ? 1e-3 : number('--lr', values.lr, true);
  const limit = integer('--limit', values.limit, 10000);
  const seed = integer('--seed', values.seed, 0, 0);

  const model = await Model.load(positionals[0]);
  try {
    model.site(site); // an unknown site fails here, naming the close ones
    const train = (await load('train')).slice(0, limit);
    const test = (await load('test')).slice(0, Math.max(1, Math.floor(limit / 5)));
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    const status = statusLine(`sae ${site}:`);
    let result: SparseAutoencoder;
    try {
      result = await trainSae(siteSource(model, train, site, { spatial, shuffle: true, seed }), {
        features, sparsity, steps, batchSize, lr, seed, signal: ac.signal,
        onProgress: (p) => status.update(`step ${p.step}/${p.steps} loss ${p.loss.toPrecision(4)} (${Math.round(p.samplesPerSecond)} rows/s)`),
      });
    } finally {
      process.off('SIGINT', stop);
      status.clear();
    }
    const metrics = await evaluateSae(result, siteSource(model, test, site, { spatial }));
    const spliced = await splicedLoss(model, test, site, result, { spatial });
    await mkdir(out, { recursive: true });
    const base = join(out, `${fileName(site)}.sae`);
    await result.save(`${base}.onnx`);
    const { frequency, ...summary } = metrics;
    await writeFile(`${base}.json`, toJson({
      model: positionals[0], site, data: dataName, spatial, features, sparsity, steps: result.training?.steps, stopped: result.training?.stopped,
      batchSize, lr, seed, rowsPerSecond: result.training?.samplesPerSecond, finalLoss: result.training?.loss.at(-1),
      test: { ...summary, frequency: Array.from(frequency) }, spliced, checks: [...result.checks, ...metrics.checks, ...spliced.checks],
    }));
    console.log(`${site}: ${features} features, FVE ${formatNumber(metrics.fve)}, L0 ${formatNumber(metrics.l0)}, ${metrics.dead.length} dead, loss recovered ${formatNumber(spliced.recovered)}; wrote ${base}.onnx and ${base}.json`);
  } finally {
    await model.dispose();
  }
}

async function saeInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('sae', argv, OPTIONS);
  if (positionals.length !== 2) throw new UsageError('sae inspect needs MODEL and SAE.onnx', 'sae');
  const { site, out, load, spatial } = await common(values);
  const shown = integer('--features', values.features, 32);
  const k = integer('--k', values.k, 9);
  const limit = integer('--limit', values.limit, 2000);
  const model = await Model.load(positionals[0]);
  const dict = await SparseAutoencoder.load(positionals[1]);
  try {
    model.site(site);
    const data = (await load('test')).slice(0, limit);
    const metrics = await evaluateSae(dict, siteSource(model, data, site, { spatial }), { top: k });
    const order = [...metrics.frequency.keys()].filter((f) => metrics.frequency[f] > 0).sort((a, b) => metrics.frequency[b] - metrics.frequency[a]).slice(0, shown);
    const file = `${fileName(site)}.sae`;
    await mkdir(join(out, file), { recursive: true });
    const images = data.inputShape.length === 3 && (data.inputShape[0] === 1 || data.inputShape[0] === 3);
    const cards: string[] = [];
    for (const f of order) {
      const top = metrics.top![f];
      if (images) await writeFile(join(out, file, `feature-${f}.png`), imageGrid(data.gather(top.examples).x, { columns: Math.min(top.examples.length, 9), scale: 2 }));
      cards.push(htmlCard({
        title: `feature ${f}`,
        lines: [
          `active on ${formatNumber(100 * metrics.frequency[f])}% of rows; top activation ${formatNumber(top.values[0])}`,
          `top examples: ${top.examples.map((e, i) => `${e} (label ${data.labels?.[e] ?? '?'}, ${formatNumber(top.values[i])})`).join(', ')}`,
        ],
        images: images ? [{ src: `${file}/feature-${f}.png`, caption: `top ${top.examples.length} examples` }] : [],
      }));
    }
    const table = htmlTable(['check', 'value', 'passed', 'detail'], metrics.checks.map((c) => [c.name, formatNumber(c.value as number), c.passed === undefined ? '—' : c.passed ? 'yes' : 'no', c.detail]));
    const intro = `${dict.features} features (${dict.sparsity.kind === 'topk' ? `TopK k = ${dict.sparsity.k}` : `ReLU, L1 ${dict.sparsity.l1}`}) on ${site}, over ${data.size} examples of ${data.name}. ` +
      `FVE ${formatNumber(metrics.fve)}, L0 ${formatNumber(metrics.l0)}, ${metrics.dead.length} dead. Showing the ${order.length} most frequent features.`;
    const path = join(out, `${file}.html`);
    await writeFile(path, htmlPage(`glassbox sae: ${site}`, intro, `<h2>Checks</h2>${table}<h2>Features</h2><div class="cards">${cards.join('\n')}</div>`));
    await writeFile(join(out, `${file}.top.json`), toJson({ site, features: order.map((f) => ({ ...metrics.top![f], frequency: metrics.frequency[f] })) }));
    console.log(`${site}: ${order.length} features shown (${metrics.dead.length} dead of ${dict.features}); wrote ${path}`);
  } finally {
    await dict.dispose();
    await model.dispose();
  }
}
