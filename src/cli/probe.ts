/**
 * `glassbox probe MODEL --data mnist|fashion-mnist --site SITE [--site ...] [--target class|stroke] --out DIR`:
 * probes each site for the class (softmax, or --kind) or for a stroke feature (mean ink in the top half of the image,
 * a continuous target for ridge), with the control task, selectivity and the random-network baseline
 * (src/methods/representations/probing.ts). Prints one line per site and writes DIR/probe.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist, loadMnist, Model, type Dataset } from '../index.js';
import { probeLayers, type ProbeKind, type ProbeResult } from '../methods/representations/probing.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { statusLine } from './status.js';
import { toJson } from './format.js';

const DATASETS: Record<string, () => Promise<Dataset<'float32'>>> = {
  mnist: () => loadMnist('test'),
  'fashion-mnist': () => loadFashionMnist('test'),
};

export const PROBE_USAGE = `glassbox probe MODEL --data mnist|fashion-mnist --site SITE [--site SITE ...] --out DIR
  [--target class|stroke] [--kind softmax|ridge|mlp] [--limit N] [--epochs N] [--split F] [--pool mean|flatten] [--seed N]
  Probes each site for the class (or, with --target stroke, the mean ink of the image's top half, by ridge), with
  the control task (Hewitt & Liang 2019), selectivity and the re-initialised-network baseline; writes DIR/probe.json.`;

function positiveInt(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`bad ${flag} '${text}': expected a positive integer`, 'probe');
  return Number(text);
}

/** Mean ink (pixel value) in the top half of each image [N, C, H, W]: the stroke target. */
export async function topHalfInk(data: Dataset<'float32'>): Promise<Float64Array> {
  const out = new Float64Array(data.size);
  const [c, h, w] = data.inputShape;
  if (h === undefined || w === undefined) throw new Error(`probe: --target stroke needs images [C, H, W], ${data.name} has [${data.inputShape}]`);
  const half = Math.floor(h / 2);
  for (const b of data.batches(512)) {
    const px = b.x.data as Float32Array;
    b.indices.forEach((ix, i) => {
      let s = 0;
      for (let ch = 0; ch < c; ch++) for (let y = 0; y < half; y++) for (let x = 0; x < w; x++) s += px[((i * c + ch) * h + y) * w + x];
      out[ix] = s / (c * half * w);
    });
  }
  return out;
}

export async function probe(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('probe', argv, {
    data: { type: 'string' },
    site: { type: 'string', multiple: true },
    target: { type: 'string' },
    kind: { type: 'string' },
    out: { type: 'string' },
    limit: { type: 'string' },
    epochs: { type: 'string' },
    split: { type: 'string' },
    pool: { type: 'string' },
    seed: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'probe needs a MODEL file' : `probe takes one MODEL, got ${positionals.length}`, 'probe');
  if (!values.out) throw new UsageError('probe needs --out DIR', 'probe');
  if (!values.site?.length) throw new UsageError('probe needs --site SITE (glassbox inspect MODEL lists the sites)', 'probe');
  const name = values.data ?? 'mnist';
  const load = DATASETS[name];
  if (!load) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(DATASETS).join(', ')})`, 'probe');
  const target = values.target ?? 'class';
  if (target !== 'class' && target !== 'stroke') throw new UsageError(`unknown --target '${target}' (known: class, stroke)`, 'probe');
  const kind = (values.kind ?? (target === 'stroke' ? 'ridge' : 'softmax')) as ProbeKind;
  if (!['softmax', 'ridge', 'mlp'].includes(kind)) throw new UsageError(`unknown --kind '${kind}' (known: softmax, ridge, mlp)`, 'probe');
  if (target === 'stroke' && kind !== 'ridge') throw new UsageError(`--target stroke is continuous and needs --kind ridge, not ${kind}`, 'probe');
  const pool = values.pool ?? 'mean';
  if (pool !== 'mean' && pool !== 'flatten') throw new UsageError(`unknown --pool '${pool}' (known: mean, flatten)`, 'probe');
  const split = values.split === undefined ? 0.25 : Number(values.split);
  if (!(split > 0 && split < 1)) throw new UsageError(`bad --split '${values.split}': expected a fraction in (0, 1)`, 'probe');
  const limit = positiveInt('--limit', values.limit, 2000);
  const epochs = positiveInt('--epochs', values.epochs, 20);
  const seed = values.seed === undefined ? 0 : positiveInt('--seed', values.seed, 0);

  const model = await Model.load(positionals[0]);
  try {
    for (const s of values.site) model.site(s); // unknown sites fail here, naming the close ones
    const data = (await load()).slice(0, limit);
    const labels = target === 'stroke' ? await topHalfInk(data) : undefined;
    const status = statusLine('probe:');
    const onProgress = (p: { stage: string; done: number; total: number }) => status.stage(p);
    const sweep = await probeLayers(model, data, {
      sites: values.site, kind, target: target === 'stroke' ? 'continuous' : 'class', labels, split, pool, epochs, seed, onProgress,
    });
    status.clear();
    await mkdir(values.out, { recursive: true });
    const path = join(values.out, 'probe.json');
    const site = (r: ProbeResult) => ({
      site: r.site, features: r.features, rows: r.rows, metric: r.metric, train: r.train, test: r.test, majority: r.majority,
      control: r.control, selectivity: r.selectivity, randomNetwork: r.randomNetwork, checks: r.checks,
    });
    await writeFile(path, toJson({ model: positionals[0], data: `${name} test [0, ${data.size})`, target, kind, params: sweep.sites[0].params, sites: sweep.sites.map(site), best: sweep.best, checks: sweep.checks }));
    for (const r of sweep.sites) {
      const f = (v: number | null | undefined) => (v === null || v === undefined ? '—' : v.toFixed(3));
      console.log(`${r.site}: ${r.metric} ${f(r.test)} (train ${f(r.train)}, majority ${f(r.majority)}), control ${f(r.control?.test)}, selectivity ${f(r.selectivity)}, random network ${f(r.randomNetwork?.test)}`);
    }
    console.log(`wrote ${path}`);
  } finally {
    await model.dispose();
  }
}
