/**
 * "This looks like that" (Chen et al. 2019): a test image explained by the ProtoPNet prototypes it is most similar to,
 * each with its similarity, its class connection and where in the image it activates; and the pictures of both
 * prototype models — Li et al.'s decoded prototypes beside their nearest training images, ProtoPNet's prototypes as
 * the training-image patches they were pushed onto (the receptive field of the position, or the paper's box of the
 * upsampled similarity map above its 95th percentile) — written as PNGs and one HTML page.
 *
 * @example
 * const why = await explainProtoPNet(result, test.gather([0]).x);
 * await writeProtoPNetReport('out', result, train, test, [0, 1, 2]);
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from '../../data/datasets/dataset.js';
import { imageGrid } from '../../report/grid.js';
import { heatmapOverlay } from '../../report/heatmap.js';
import { htmlCard, htmlPage, htmlTable } from '../../report/html.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { PPN, prototypeClass, type ProtoPNetResult, type ProtoPNetSpec } from './protopnet.js';
import { argmax, loadModel, weightOf, type PrototypeAutoencoderResult } from './prototypes.js';

/** One prototype's part in an explanation. */
export interface PrototypeEvidence {
  readonly prototype: number;
  readonly class: number;
  /** log((d + 1)/(d + ε)) at the best position, and d there. */
  readonly similarity: number;
  readonly distance: number;
  /** W[j, predicted]: how much this similarity counts for the predicted class, and the product. */
  readonly weight: number;
  readonly contribution: number;
  /** Best position in the feature map, and the similarity at every position [h·w]. */
  readonly row: number;
  readonly col: number;
  readonly map: Float32Array;
}

export interface ProtoPNetExplanation {
  readonly predicted: number;
  readonly logits: readonly number[];
  /** The most similar prototypes, most similar first. */
  readonly top: readonly PrototypeEvidence[];
  readonly checks: readonly Check[];
}

type Trained = Pick<ProtoPNetResult, 'model' | 'spec' | 'mapShape'>;

/** The top prototypes of each image of x [n, C, H, W], with the logits recomputed from them as a check. */
export async function explainProtoPNet(r: Trained, x: Tensor, options: { top?: number } = {}): Promise<ProtoPNetExplanation[]> {
  const M = r.spec.classes * r.spec.perClass;
  const top = options.top ?? 3;
  if (!Number.isInteger(top) || top < 1 || top > M) throw new Error(`explainProtoPNet: top must be an integer in 1..${M}, got ${top}`);
  if (x.rank !== 4 || x.shape.slice(1).join() !== r.spec.input.join()) throw new Error(`explainProtoPNet: x must be [n, ${r.spec.input.join(', ')}], got [${x.shape.join(', ')}]`);
  const W = weightOf(r.model, PPN.last).data;
  const k = r.spec.classes;
  const eps = r.spec.epsilon ?? 1e-4;
  const out = await (await loadModel(r.model)).run({ x }, { capture: [PPN.distanceMap, PPN.distances] });
  const maps = out.captures[PPN.distanceMap].data as Float32Array; // [n, M, h·w]
  const dist = out.captures[PPN.distances].data as Float32Array;
  const logits = out.outputs[PPN.logits].data as Float32Array;
  const hw = r.mapShape[0] * r.mapShape[1];
  return Array.from({ length: x.shape[0] }, (_, i) => {
    const pred = argmax(logits, i * k, k);
    const sims = Array.from({ length: M }, (_, j) => Math.log((dist[i * M + j] + 1) / (dist[i * M + j] + eps)));
    const host = Array.from({ length: k }, (_, c) => sims.reduce((s, v, j) => s + v * W[j * k + c], 0));
    const err = Math.max(...host.map((v, c) => Math.abs(v - logits[i * k + c])));
    const order = sims.map((_, j) => j).sort((a, b) => sims[b] - sims[a]).slice(0, top);
    const evidence = order.map((j) => {
      const m = maps.subarray((i * M + j) * hw, (i * M + j + 1) * hw);
      const at = argmax(Array.from(m, (v) => -v), 0, hw);
      return {
        prototype: j,
        class: prototypeClass(r.spec, j),
        similarity: sims[j],
        distance: dist[i * M + j],
        weight: W[j * k + pred],
        contribution: sims[j] * W[j * k + pred],
        row: Math.floor(at / r.mapShape[1]),
        col: at % r.mapShape[1],
        map: Float32Array.from(m, (d) => Math.log((d + 1) / (d + eps))),
      };
    });
    const check: Check = { name: 'logits = W·similarities', value: err, passed: err <= 1e-4 * (1 + Math.max(...host.map(Math.abs))), detail: 'max |logit − Σ_j W_jc·sim_j| for this image' };
    return { predicted: pred, logits: Array.from(logits.subarray(i * k, (i + 1) * k)), top: evidence, checks: [check] };
  });
}

/** A h×w map resized to H×W by bilinear interpolation (pixel centres aligned, as PyTorch's align_corners=False). */
export function upsample(map: ArrayLike<number>, h: number, w: number, H: number, W: number): Float32Array {
  const out = new Float32Array(H * W);
  const src = (o: number, n: number, N: number) => Math.min(n - 1, Math.max(0, ((o + 0.5) * n) / N - 0.5));
  for (let y = 0; y < H; y++) {
    const sy = src(y, h, H);
    const y0 = Math.floor(sy);
    const y1 = Math.min(h - 1, y0 + 1);
    for (let x = 0; x < W; x++) {
      const sx = src(x, w, W);
      const x0 = Math.floor(sx);
      const x1 = Math.min(w - 1, x0 + 1);
      const [fy, fx] = [sy - y0, sx - x0];
      const top = map[y0 * w + x0] * (1 - fx) + map[y0 * w + x1] * fx;
      const bottom = map[y1 * w + x0] * (1 - fx) + map[y1 * w + x1] * fx;
      out[y * W + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** The smallest box [top, left, bottom, right] (inclusive) holding every pixel of an H×W map at or above its q-quantile. */
export function activationBox(map: ArrayLike<number>, H: number, W: number, q = 0.95): [number, number, number, number] {
  const sorted = Float32Array.from(map).sort();
  const cut = sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  let [t, l, b, r] = [H, W, -1, -1];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (map[y * W + x] >= cut) [t, l, b, r] = [Math.min(t, y), Math.min(l, x), Math.max(b, y), Math.max(r, x)];
  return [t, l, b, r];
}

/** A grey image [1, H, W] as RGB [3, H, W] with a red box drawn on it. */
function withBox(img: Float32Array, H: number, W: number, [t, l, b, r]: readonly number[]): Tensor<'float32'> {
  const out = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++) out.set(img.subarray(0, H * W), c * H * W);
  for (let y = t; y <= b; y++) for (let x = l; x <= r; x++) {
    if (y !== t && y !== b && x !== l && x !== r) continue;
    [1, 0, 0].forEach((v, c) => (out[c * H * W + y * W + x] = v));
  }
  return new Tensor('float32', out, [3, H, W]);
}

/**
 * The input pixels [top, left, bottom, right] (inclusive) that feature-map position (row, col) sees: the receptive
 * field of the backbone's blocks (3×3 conv, padding 1, then 2×2 max-pool each; the 1×1 add-on adds nothing).
 */
export function receptiveField(spec: ProtoPNetSpec, row: number, col: number): [number, number, number, number] {
  const blocks = (spec.channels ?? [16, 32, 32]).length;
  let [size, stride, start] = [1, 1, 0];
  for (let b = 0; b < blocks; b++) {
    [size, start] = [size + 2 * stride, start - stride]; // conv 3×3, padding 1
    [size, stride] = [size + stride, stride * 2]; // max-pool 2×2, stride 2
  }
  const [, H, W] = spec.input;
  const span = (q: number, n: number): [number, number] => [Math.max(0, start + q * stride), Math.min(n - 1, start + q * stride + size - 1)];
  const [t, b] = span(row, H);
  const [l, r] = span(col, W);
  return [t, l, b, r];
}

/**
 * Each prototype's source patch: a box on its training image (default: the receptive field of the position it was
 * pushed onto, the patch it equals; 'activation': the paper's 95th-percentile box of the upsampled similarity map)
 * and the crop resized to the image size.
 */
export function prototypePatches(
  r: Pick<ProtoPNetResult, 'spec' | 'sources' | 'mapShape'>,
  train: Dataset,
  box: 'receptive-field' | 'activation' = 'receptive-field',
): { boxed: Tensor<'float32'>; crops: Tensor<'float32'>; boxes: [number, number, number, number][] } {
  const [C, H, W] = r.spec.input;
  if (C !== 1) throw new Error(`prototype patches: only grey images are drawn, got ${C} channels`);
  const x = train.gather(r.sources.map((s) => s.index)).x.data as Float32Array;
  const boxes = r.sources.map((s) => (box === 'activation' ? activationBox(upsample(s.map, r.mapShape[0], r.mapShape[1], H, W), H, W) : receptiveField(r.spec, s.row, s.col)));
  const boxed = new Float32Array(r.sources.length * 3 * H * W);
  const crops = new Float32Array(r.sources.length * H * W);
  boxes.forEach(([t, l, b, rr], j) => {
    const img = x.subarray(j * H * W, (j + 1) * H * W);
    boxed.set(withBox(img, H, W, [t, l, b, rr]).data, j * 3 * H * W);
    for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) {
      const sy = t + Math.floor((y * (b - t + 1)) / H);
      const sx = l + Math.floor((xx * (rr - l + 1)) / W);
      crops[j * H * W + y * W + xx] = img[sy * W + sx];
    }
  });
  const n = r.sources.length;
  return { boxed: new Tensor('float32', boxed, [n, 3, H, W]), crops: new Tensor('float32', crops, [n, 1, H, W]), boxes };
}

/** Li et al.'s prototypes as one PNG: the decoded prototypes in the first row, their nearest training images below. */
export function prototypeAutoencoderPng(r: Pick<PrototypeAutoencoderResult, 'decoded' | 'nearestImage'>, train: Dataset, scale = 3): Uint8Array {
  const near = train.gather(r.nearestImage.map((n) => n.index)).x;
  const m = r.decoded.shape[0];
  const both = new Float32Array(2 * r.decoded.size);
  both.set(r.decoded.data);
  both.set(near.data as Float32Array, r.decoded.size);
  return imageGrid(new Tensor('float32', both, [2 * m, ...r.decoded.shape.slice(1)]), { columns: m, scale, pad: 2 });
}

/**
 * Writes `dir/index.html` with the prototypes (boxes on their training images, crops) and one card per test image:
 * its top prototypes, their similarities and class connections, and heat maps of where each activates.
 */
export async function writeProtoPNetReport(dir: string, r: ProtoPNetResult, train: Dataset, test: Dataset, indices: readonly number[], options: { top?: number; scale?: number } = {}): Promise<{ html: string; files: string[] }> {
  const scale = options.scale ?? 4;
  const [, H, W] = r.spec.input;
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const png = async (name: string, bytes: Uint8Array) => (await writeFile(join(dir, name), bytes), files.push(name), name);
  const patches = prototypePatches(r, train);
  await png('prototypes.png', imageGrid(patches.boxed, { columns: r.spec.perClass * 2, scale, pad: 2 }));
  await png('crops.png', imageGrid(patches.crops, { columns: r.spec.perClass * 2, scale, pad: 2 }));
  for (let j = 0; j < r.sources.length; j++) await png(`prototype-${j}.png`, imageGrid(sliceImage(patches.boxed, j), { scale }));
  const batch = test.gather(indices);
  const why = await explainProtoPNet(r, batch.x, options);
  const cards: string[] = [];
  for (const [n, e] of why.entries()) {
    const img = sliceImage(batch.x as Tensor<'float32'>, n);
    const images = [];
    for (const ev of e.top) {
      const heat = heatmapOverlay(img.reshape([1, H, W]), new Tensor('float32', shift(upsample(ev.map, r.mapShape[0], r.mapShape[1], H, W)), [H, W]));
      const name = await png(`test-${indices[n]}-p${ev.prototype}.png`, imageGrid(heat.reshape([1, 3, H, W]), { scale, pad: 0 }));
      images.push({ src: name, caption: `looks like prototype ${ev.prototype} here` }, { src: `prototype-${ev.prototype}.png`, caption: `prototype ${ev.prototype} (class ${ev.class})` });
    }
    const label = Number(batch.y.data[n]);
    const lines = e.top.map((ev) => `prototype ${ev.prototype} (class ${ev.class}): similarity ${ev.similarity.toFixed(3)} × weight ${ev.weight.toFixed(3)} = ${ev.contribution.toFixed(3)} to class ${e.predicted}`);
    cards.push(htmlCard({ title: `test image ${indices[n]}: predicted ${e.predicted} (label ${label})`, lines, images }));
  }
  const stages = htmlTable(['stage', 'test accuracy'], [['twin (plain CNN)', r.accuracy.twin], ['joint', r.accuracy.joint], ['after push', r.accuracy.pushed], ['last layer', r.accuracy.final]]);
  const checks = htmlTable(['check', 'value', 'passed', 'detail'], r.checks.map((c) => [c.name, Array.isArray(c.value) ? (c.value as number[]).length : (c.value as number), c.passed === undefined ? '–' : String(c.passed), c.detail]));
  const body = `<h2>Accuracy</h2>${stages}<h2>Checks</h2>${checks}<h2>Prototypes (training patches)</h2><p><img src="prototypes.png" alt="prototypes"> <img src="crops.png" alt="crops"></p><h2>This looks like that</h2><div class="cards">${cards.join('\n')}</div>`;
  const html = join(dir, 'index.html');
  await writeFile(html, htmlPage('ProtoPNet: this looks like that', `Chen et al. 2019; ${r.sources.length} prototypes, ${r.spec.perClass} per class, each a patch of a training image.`, body));
  return { html, files };
}

/** Image i of a batch [n, C, H, W] as [1, C, H, W]. */
function sliceImage(t: Tensor, i: number): Tensor<'float32'> {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return new Tensor('float32', Float32Array.from((t.data as Float32Array).subarray(i * per, (i + 1) * per)), [1, ...t.shape.slice(1)]);
}

/** A similarity map shifted so its minimum is 0 (white in the diverging heat map, the most similar part red). */
function shift(map: Float32Array): Float32Array {
  const lo = Math.min(...map);
  return map.map((v) => v - lo);
}
