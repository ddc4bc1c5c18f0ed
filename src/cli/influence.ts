/**
 * `glassbox influence MODEL --data mnist --test-index I --out DIR`: the training examples a prediction rests on, by
 * one of the explanation-by-example methods (influence functions, TracIn, representer points, nearest neighbours).
 * Writes DIR/influence.json (the test example, the top helpful and harmful training examples with their scores and
 * labels, the checks) and DIR/influence.png: the test image, then the helpful examples; below, the harmful ones.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist, loadMnist, Model, type Dataset } from '../index.js';
import type { Check } from '../methods/attribution/explanation.js';
import { influenceFunctions, lastLayer, nearestNeighbours, representerPoints, tracin, type RankedExample } from '../methods/examples/index.js';
import { imageGrid } from '../report/grid.js';
import { Tensor } from '../runtime/tensor.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { statusLine } from './status.js';
import { toJson } from './format.js';

const DATASETS: Record<string, (split: 'train' | 'test') => Promise<Dataset<'float32'>>> = { mnist: loadMnist, 'fashion-mnist': loadFashionMnist };
const METHODS = ['influence', 'tracin', 'representer', 'neighbours'] as const;
type Method = (typeof METHODS)[number];

function integer(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`bad ${flag} '${text}': expected ${min === 0 ? 'a non-negative' : 'a positive'} integer`, 'influence');
  return Number(text);
}

function positive(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!(v > 0) || !Number.isFinite(v)) throw new UsageError(`bad ${flag} '${text}': expected a positive number`, 'influence');
  return v;
}

/** What every method gives the page: ranked examples and its checks. */
interface Found {
  readonly helpful: RankedExample[];
  readonly harmful?: RankedExample[];
  readonly checks: readonly Check[];
  readonly about: string;
}

export async function influence(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('influence', argv, {
    data: { type: 'string' },
    'test-index': { type: 'string' },
    'train-limit': { type: 'string' },
    method: { type: 'string' },
    k: { type: 'string' },
    l2: { type: 'string' },
    damping: { type: 'string' },
    solver: { type: 'string' },
    seed: { type: 'string' },
    site: { type: 'string' },
    checkpoint: { type: 'string', multiple: true },
    lr: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'influence needs a MODEL file' : `influence takes one MODEL, got ${positionals.length}`, 'influence');
  if (!values.out) throw new UsageError('influence needs --out DIR', 'influence');
  if (values['test-index'] === undefined) throw new UsageError('influence needs --test-index I (a test example)', 'influence');
  const name = values.data ?? 'mnist';
  const load = DATASETS[name];
  if (!load) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(DATASETS).join(', ')})`, 'influence');
  const method = (values.method ?? 'influence') as Method;
  if (!METHODS.includes(method)) throw new UsageError(`unknown --method '${method}' (known: ${METHODS.join(', ')})`, 'influence');
  const solver = values.solver ?? 'cg';
  if (solver !== 'cg' && solver !== 'lissa') throw new UsageError(`bad --solver '${solver}': expected cg or lissa`, 'influence');
  const index = integer('--test-index', values['test-index'], 0, 0);
  const limit = integer('--train-limit', values['train-limit'], 1000, 1);
  const k = integer('--k', values.k, 8, 1);
  const l2 = positive('--l2', values.l2, 1e-3);
  const damping = positive('--damping', values.damping, 0.01);
  const lr = positive('--lr', values.lr, 1);
  const seed = integer('--seed', values.seed, 0, 0);

  const [trainAll, testAll] = await Promise.all([load('train'), load('test')]);
  if (index >= testAll.size) throw new UsageError(`bad --test-index ${index}: the ${name} test set has ${testAll.size} examples`, 'influence');
  const train = trainAll.slice(0, limit);
  const test = testAll.subset([index], `${name} test #${index}`);
  const model = await Model.load(positionals[0]);
  const extra = await Promise.all((values.checkpoint ?? []).map((p) => Model.load(p)));
  const status = statusLine(`${method}:`);
  const onProgress = (p: { stage: string; done: number; total: number }) => status.stage(p);
  try {
    const run = async (): Promise<Found> => {
      if (method === 'influence') {
        const r = await influenceFunctions(model, train, test, { l2, damping, solver, lissa: { seed }, onProgress });
        return { helpful: r.helpful(0, k), harmful: r.harmful(0, k), checks: r.checks, about: `influence functions (Koh & Liang 2017) on the last layer '${r.parameters.weight}' (${r.parameters.count} parameters), ${solver}; score I_up,loss (negative = helpful)` };
      }
      if (method === 'tracin') {
        const r = await tracin([...extra, model].map((m) => ({ model: m, lr })), train, test, { onProgress });
        return { helpful: r.helpful(0, k), harmful: r.harmful(0, k), checks: r.checks, about: `TracIn (Pruthi et al. 2020) over ${r.checkpoints} checkpoint(s), last layer, lr ${lr}; score Σ lr·∇L·∇L (positive = proponent)` };
      }
      if (method === 'representer') {
        const r = await representerPoints(model, train, test, { l2, onProgress });
        return { helpful: r.helpful(0, k), harmful: r.harmful(0, k), checks: r.checks, about: `representer points (Yeh et al. 2018) of class ${r.classes[0]}, last layer refitted with λ ${l2}; score α_i·(f_i·f_t) (positive = excitatory)` };
      }
      const site = values.site ?? lastLayer(model).input;
      const r = await nearestNeighbours(model, site, train, test.gather([0]).x, { k, onProgress });
      return { helpful: [...r.neighbours[0]], checks: r.checks, about: `nearest neighbours at '${site}' by cosine similarity` };
    };
    const found = await run();
    status.clear();
    const example = test.gather([0]);
    const logits = (await model.run({ [model.inputs[0].name]: example.x })).outputs[model.outputs[0].name].data as Float32Array;
    const predicted = logits.indexOf(Math.max(...logits));
    const label = Number(example.y.data[0]);
    const describe = (list: RankedExample[]) => list.map((e) => ({ index: e.index, label: train.labels![e.index], score: e.score }));
    await mkdir(values.out, { recursive: true });
    await writeFile(join(values.out, 'influence.json'), toJson({
      model: positionals[0], data: name, method, about: found.about, trainExamples: train.size,
      test: { index, label, predicted },
      helpful: describe(found.helpful),
      harmful: found.harmful ? describe(found.harmful) : undefined,
      checks: found.checks,
    }));
    await writeFile(join(values.out, 'influence.png'), imageGrid(picture(example.x, train, found), { columns: k + 1, scale: 2 }));
    const top = found.helpful.slice(0, 3).map((e) => `#${e.index} (${train.labels![e.index]})`).join(', ');
    console.log(`${method}: test example ${index} (label ${label}, predicted ${predicted}); most helpful: ${top}; wrote ${join(values.out, 'influence.json')} and influence.png`);
  } finally {
    await Promise.all([model, ...extra].map((m) => m.dispose()));
  }
}

/** [test, helpful…] then [blank, harmful…]: rows of k + 1 images [B, C, H, W]. */
function picture(x: Tensor, train: Dataset<'float32'>, found: Found): Tensor {
  const per = x.size;
  const blank = new Float32Array(per).fill(1);
  const parts: Float32Array[] = [x.data as Float32Array, train.gather(found.helpful.map((e) => e.index)).x.data];
  if (found.harmful) parts.push(blank, train.gather(found.harmful.map((e) => e.index)).x.data);
  const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return Tensor.float32(data, [data.length / per, ...x.shape.slice(1)]);
}
