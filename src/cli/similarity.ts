/**
 * `glassbox similarity MODEL_A MODEL_B --data NAME --out DIR [--measure cka]`: the layer × layer similarity matrix of
 * two models (or of one with itself) on the same inputs, as DIR/similarity.json (every score, its permutation
 * baseline's bound and the checks) and DIR/similarity.png (a heat map: rows A's sites, columns B's).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist, loadMnist, Model, type Dataset } from '../index.js';
import { encodePng } from '../data/png.js';
import { Tensor } from '../runtime/tensor.js';
import { layerSimilarity, MEASURES, type LayerSimilarity, type Measure } from '../methods/representations/similarity.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { statusLine } from './status.js';
import { toJson } from './format.js';

const DATASETS: Record<string, () => Promise<Dataset>> = {
  mnist: () => loadMnist('test'),
  'fashion-mnist': () => loadFashionMnist('test'),
};

function positive(flag: string, text: string | undefined, fallback: number, zero = false): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || (!zero && Number(text) < 1)) throw new UsageError(`bad ${flag} '${text}': expected a ${zero ? 'non-negative' : 'positive'} integer`, 'similarity');
  return Number(text);
}

/** The default sites of a model: every ReLU output, then its first output (the logits). */
function defaultSites(model: Model): string[] {
  const relus = model.sites.filter((s) => s.op === 'Relu').map((s) => s.name);
  return [...relus, model.outputs[0].name];
}

export async function similarity(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('similarity', argv, {
    data: { type: 'string' },
    out: { type: 'string' },
    measure: { type: 'string' },
    'site-a': { type: 'string', multiple: true },
    'site-b': { type: 'string', multiple: true },
    limit: { type: 'string' },
    pooling: { type: 'string' },
    permutations: { type: 'string' },
    seed: { type: 'string' },
  });
  if (positionals.length !== 2) throw new UsageError(`similarity takes two models, MODEL_A MODEL_B (the same file twice compares a model with itself); got ${positionals.length}`, 'similarity');
  if (!values.out) throw new UsageError('similarity needs --out DIR', 'similarity');
  const measure = (values.measure ?? 'cka') as Measure;
  if (!MEASURES.includes(measure)) throw new UsageError(`unknown --measure '${measure}' (known: ${MEASURES.join(', ')})`, 'similarity');
  const name = values.data ?? 'mnist';
  const load = DATASETS[name];
  if (!load) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(DATASETS).join(', ')})`, 'similarity');
  const pooling = values.pooling ?? 'mean';
  if (pooling !== 'mean' && pooling !== 'flatten') throw new UsageError(`bad --pooling '${pooling}': expected mean or flatten`, 'similarity');
  const limit = positive('--limit', values.limit, 1000);
  const permutations = positive('--permutations', values.permutations, 5, true);
  const seed = positive('--seed', values.seed, 0, true);

  const a = await Model.load(positionals[0]);
  const b = positionals[1] === positionals[0] ? a : await Model.load(positionals[1]);
  try {
    const sitesA = values['site-a']?.length ? values['site-a'] : defaultSites(a);
    const sitesB = values['site-b']?.length ? values['site-b'] : values['site-a']?.length && b === a ? sitesA : defaultSites(b);
    for (const s of sitesA) a.site(s);
    for (const s of sitesB) b.site(s);
    const data = await load();
    const status = statusLine('similarity:');
    const r = await layerSimilarity(a, b, data, { sitesA, sitesB, measure, limit, pooling, permutations, seed, onProgress: (p) => status.stage(p) });
    status.clear();
    await mkdir(values.out, { recursive: true });
    await writeFile(join(values.out, 'similarity.json'), toJson({ modelA: positionals[0], modelB: positionals[1], data: name, pooling, ...r }));
    await writeFile(join(values.out, 'similarity.png'), heatmap(r));
    for (const c of r.checks) console.log(`${c.name}: ${typeof c.value === 'number' ? c.value.toFixed(3) : c.value} — ${c.detail}`);
    console.log(`wrote ${join(values.out, 'similarity.json')} and similarity.png (${sitesA.length} × ${sitesB.length}, ${measure}, n = ${r.n})`);
  } finally {
    await a.dispose();
    if (b !== a) await b.dispose();
  }
}

/** The matrix as a PNG, CELL px per cell, dark blue (least similar) to yellow (most); distances are flipped. */
export function heatmap(r: LayerSimilarity, cell = 24): Uint8Array {
  const rows = r.values.length;
  const cols = r.values[0].length;
  const flat = r.values.flat();
  const lo = Math.min(...flat);
  const hi = Math.max(...flat);
  const [h, w] = [rows * cell, cols * cell];
  const img = new Float32Array(3 * h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = r.values[Math.floor(y / cell)][Math.floor(x / cell)];
      let t = hi > lo ? (v - lo) / (hi - lo) : 1;
      if (r.measure === 'procrustes') t = 1 - t;
      const rgb = [0.27 + 0.72 * t * t, 0.0 + 0.9 * t, 0.33 + 0.2 * t - 0.45 * t * t];
      for (let c = 0; c < 3; c++) img[(c * h + y) * w + x] = rgb[c];
    }
  }
  return encodePng(Tensor.float32(img, [1, 3, h, w]), { range: [0, 1] });
}
