/**
 * Reading the residual stream through the unembedding: the logit lens (nostalgebraist 2020, "interpreting GPT: the
 * logit lens") and direct logit attribution (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits").
 *
 * The unembedding is found in the graph: the MatMul that writes the logits, its stored weight W [D, V], and the final
 * LayerNormalization feeding it (γ, β, ε), if any. The stream is captured at each block's entry and at the final norm's
 * input; the lens applies LN and W on the host (float64), so at the last layer it reproduces the model's logits.
 *
 * @example
 * const lens = await logitLens(model, tokens); // lens.layers[l].prob: the final prediction's probability per position
 */
import type { Model } from '../../model/model.js';
import { getAttr } from '../../onnx/proto.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';

export interface Unembedding {
  /** [D, V] row-major. */
  readonly weight: Float64Array;
  readonly d: number;
  readonly vocab: number;
  /** The final LayerNorm (absent in attention-only models). */
  readonly norm?: { readonly scale: Float64Array; readonly bias: Float64Array; readonly epsilon: number };
  /** The site holding the final stream (the norm's input, or the MatMul's). */
  readonly stream: string;
  readonly output: string;
}

function stored(model: Model, name: string, what: string): Tensor {
  const g = model.graph;
  const init = g.initializers.get(name);
  const p = init ? undefined : g.producerOf(name);
  const proto = init ?? (p?.opType === 'Constant' ? getAttr(p, 'value')?.t : undefined);
  if (!proto) throw new Error(`${what}: '${name}' is not a stored weight`);
  return tensorFromProto(proto);
}

const f64 = (t: Tensor) => Float64Array.from(t.data as Float32Array);
const siteOfValue = (model: Model, value: string) => model.sites.find((s) => s.value === value)?.name ?? value;

/** The unembedding of a transformer whose output `output` is MatMul(stream or LN(stream), W) (pass-through Identity skipped). */
export function unembedding(model: Model, output = model.outputs[0]?.name ?? 'logits'): Unembedding {
  const where = 'unembedding';
  let node = model.graph.producerOf(output);
  while (node?.opType === 'Identity') node = model.graph.producerOf(node.input[0]);
  if (node?.opType !== 'MatMul') throw new Error(`${where}: output '${output}' is not written by a MatMul with the unembedding weight (got ${node?.opType ?? 'no node'})`);
  const w = stored(model, node.input[1], where);
  if (w.rank !== 2) throw new Error(`${where}: weight '${node.input[1]}' must be [D, V], got [${w.shape.join(', ')}]`);
  const [d, vocab] = w.shape;
  let src = node.input[0];
  let prev = model.graph.producerOf(src);
  while (prev?.opType === 'Identity') {
    src = prev.input[0];
    prev = model.graph.producerOf(src);
  }
  if (prev?.opType === 'LayerNormalization') {
    const axis = Number(getAttr(prev, 'axis')?.i ?? -1);
    if (axis !== -1 && axis !== 2) throw new Error(`${where}: the final LayerNormalization normalises axis ${axis}, not the last`);
    const epsilon = getAttr(prev, 'epsilon')?.f ?? 1e-5;
    const norm = { scale: f64(stored(model, prev.input[1], where)), bias: prev.input[2] ? f64(stored(model, prev.input[2], where)) : new Float64Array(d), epsilon };
    return { weight: f64(w), d, vocab, norm, stream: siteOfValue(model, prev.input[0]), output };
  }
  return { weight: f64(w), d, vocab, stream: siteOfValue(model, node.input[0]), output };
}

/** The normalised stream rows (x − μ)/σ·γ + β, and each row's σ; rows of length D. */
export function normalise(u: Unembedding, x: ArrayLike<number>, rows: number): { y: Float64Array; sigma: Float64Array } {
  const { d } = u;
  const y = new Float64Array(rows * d);
  const sigma = new Float64Array(rows).fill(1);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let i = 0; i < d; i++) mu += x[r * d + i];
    mu = u.norm ? mu / d : 0;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mu) ** 2;
    sigma[r] = u.norm ? Math.sqrt(v / d + u.norm.epsilon) : 1;
    for (let i = 0; i < d; i++) y[r * d + i] = u.norm ? ((x[r * d + i] - mu) / sigma[r]) * u.norm.scale[i] + u.norm.bias[i] : x[r * d + i];
  }
  return { y, sigma };
}

/** Rows [rows, D] times W [D, V]. */
export function unembed(u: Unembedding, y: Float64Array, rows: number): Float64Array {
  const { d, vocab: V, weight } = u;
  const out = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < d; i++) {
      const a = y[r * d + i];
      if (a === 0) continue;
      for (let v = 0; v < V; v++) out[r * V + v] += a * weight[i * V + v];
    }
  }
  return out;
}

/** Residual-stream sites: each block's entry, then the final stream (before the final norm). */
export function streamSites(model: Model, u = unembedding(model)): { name: string; site: string }[] {
  const entries: { name: string; site: string }[] = [];
  for (let l = 0; ; l++) {
    const fused = model.sites.find((s) => s.name === `blocks.${l}.ln1.layernormalization`);
    const perHead = model.sites.find((s) => s.name === `blocks.${l}.head.0.q_in.identity`);
    const at = fused ?? perHead;
    if (!at) break;
    const node = model.graph.nodes.find((n) => n.output.includes(at.value));
    if (!node) break;
    entries.push({ name: l === 0 ? 'embed' : `blocks.${l - 1}`, site: siteOfValue(model, node.input[0]) });
  }
  if (entries.length === 0) throw new Error('logit lens: no blocks found (expected sites blocks.L.ln1.layernormalization or blocks.L.head.H.q_in.identity)');
  entries.push({ name: `blocks.${entries.length - 1}`, site: u.stream });
  return entries;
}

export interface LensLayer {
  readonly name: string;
  readonly site: string;
  /** Top-k tokens and probabilities per row (N·T rows, row = n·T + t). */
  readonly top: readonly (readonly { readonly token: number; readonly prob: number }[])[];
  /** Probability and rank (0 = top) of the model's final prediction, per row. */
  readonly prob: Float64Array;
  readonly rank: Int32Array;
}

export interface LogitLens {
  readonly layers: readonly LensLayer[];
  /** The model's prediction per row. */
  readonly predicted: Int32Array;
  readonly shape: readonly [number, number];
  readonly checks: Check[];
}

/** Softmax of one row of logits in place into `p`. */
function softmaxRow(l: Float64Array, off: number, V: number, p: Float64Array): void {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, l[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += (p[v] = Math.exp(l[off + v] - m));
  for (let v = 0; v < V; v++) p[v] /= s;
}

/** Check int64 tokens [N, T] against the vocabulary. */
export function checkTokens(tokens: Tensor, vocab: number, where: string): void {
  if (tokens.dtype !== 'int64') throw new Error(`${where}: tokens must be int64, got ${tokens.dtype}`);
  if (tokens.rank !== 2) throw new Error(`${where}: tokens must be [N, T], got rank ${tokens.rank} [${tokens.shape.join(', ')}]`);
  const data = tokens.data as BigInt64Array;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < 0n || data[i] >= BigInt(vocab)) throw new Error(`${where}: token ${data[i]} at index ${i} is outside the vocabulary [0, ${vocab})`);
  }
}

/** nostalgebraist 2020: the final LN and unembedding applied to the stream after every block. */
export async function logitLens(model: Model, tokens: Tensor, options: { readonly top?: number } = {}): Promise<LogitLens> {
  const u = unembedding(model);
  checkTokens(tokens, u.vocab, 'logitLens');
  const k = options.top ?? 5;
  if (!Number.isInteger(k) || k <= 0) throw new Error(`logitLens: top must be a positive integer, got ${k}`);
  const sites = streamSites(model, u);
  const run = await model.run({ tokens }, { capture: sites.map((s) => s.site) });
  const [N, T] = tokens.shape;
  const rows = N * T;
  const V = u.vocab;
  const final = run.outputs[u.output].data as Float32Array;
  const predicted = new Int32Array(rows);
  for (let r = 0; r < rows; r++) for (let v = 1; v < V; v++) if (final[r * V + v] > final[r * V + predicted[r]]) predicted[r] = v;
  const p = new Float64Array(V);
  let lastDiff = 0;
  const layers = sites.map(({ name, site }, li) => {
    const logits = unembed(u, normalise(u, run.captures[site].data as Float32Array, rows).y, rows);
    if (li === sites.length - 1) for (let i = 0; i < logits.length; i++) lastDiff = Math.max(lastDiff, Math.abs(logits[i] - final[i]));
    const prob = new Float64Array(rows);
    const rank = new Int32Array(rows);
    const top = Array.from({ length: rows }, (_, r) => {
      softmaxRow(logits, r * V, V, p);
      prob[r] = p[predicted[r]];
      let above = 0;
      for (let v = 0; v < V; v++) if (p[v] > prob[r]) above++;
      rank[r] = above;
      return Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, k).map((token) => ({ token, prob: p[token] }));
    });
    return { name, site, top, prob, rank };
  });
  const scale = Math.max(1, ...Array.from(final, Math.abs));
  return {
    layers,
    predicted,
    shape: [N, T],
    checks: [{ name: 'last-layer-reproduces-logits', value: lastDiff, passed: lastDiff <= 1e-4 * scale, detail: `max |lens logits at ${u.stream} − model logits| = ${lastDiff.toExponential(2)} (tolerance 1e-4 × ${scale.toPrecision(3)})` }],
  };
}

export interface LogitContribution {
  /** 'embed', 'blocks.L.head.H', 'blocks.L.attn.bias', 'blocks.L.mlp', 'ln_f.bias'. */
  readonly name: string;
  /** Contribution to the target logit, per batch row. */
  readonly value: Float64Array;
}

export interface DirectLogitAttribution {
  readonly position: number;
  /** The token whose logit is explained, per row. */
  readonly target: Int32Array;
  readonly logit: Float64Array;
  readonly contributions: readonly LogitContribution[];
  readonly checks: Check[];
}

/** A stored bias added by the Add node that writes `site` (its initializer operand). */
function addedBias(model: Model, site: string): Float64Array | undefined {
  const node = model.graph.producerOf(model.site(site).value);
  const b = node?.input.find((i) => model.graph.initializers.has(i));
  return b ? f64(stored(model, b, 'directLogitAttribution')) : undefined;
}

/**
 * Elhage et al. 2021: the target logit split over what wrote the residual stream — the embeddings, every head (its
 * output z_h times its rows of the output projection), each attention bias, each MLP (with its bias) and the final
 * norm's bias. The final LayerNorm is treated as linear with its scale 1/σ frozen at the value it takes on the actual
 * stream: centring is linear, so the contributions then sum to the logit exactly (the check). Works on the builders'
 * `gpt` layout (fused heads, `blocks.L.attn.matmul_1` [N, H, T, Dh]) and on `attnOnly` (per-head outputs, no norm).
 */
export async function directLogitAttribution(model: Model, tokens: Tensor, options: { readonly position?: number; readonly target?: number | 'predicted' } = {}): Promise<DirectLogitAttribution> {
  const where = 'directLogitAttribution';
  const u = unembedding(model);
  checkTokens(tokens, u.vocab, where);
  const [N, T] = tokens.shape;
  const pos = options.position ?? T - 1;
  if (!Number.isInteger(pos) || pos < 0 || pos >= T) throw new Error(`${where}: position ${pos} is outside [0, ${T})`);
  const target = options.target ?? 'predicted';
  if (target !== 'predicted' && (!Number.isInteger(target) || target < 0 || target >= u.vocab)) throw new Error(`${where}: target ${target} is outside the vocabulary [0, ${u.vocab})`);
  const streams = streamSites(model, u);
  const L = streams.length - 1;
  const has = (s: string) => model.sites.some((x) => x.name === s);
  const fused = has('blocks.0.attn.matmul_1');
  type Part = { name: string; site: string; rows?: { w: Float64Array; h: number; heads: number; dh: number } } | { name: string; vector: Float64Array };
  const parts: Part[] = [{ name: 'embed', site: streams[0].site }];
  for (let l = 0; l < L; l++) {
    if (fused) {
      const proj = model.graph.producerOf(model.site(`blocks.${l}.attn.proj.matmul`).value);
      if (!proj) throw new Error(`${where}: no node writes blocks.${l}.attn.proj.matmul`);
      const w = f64(stored(model, proj.input[1], where));
      const shape = model.site(`blocks.${l}.attn.matmul_1`).shape ?? [];
      const [heads, dh] = [Number(shape[1]), Number(shape[3])];
      if (!(heads > 0 && dh > 0)) throw new Error(`${where}: blocks.${l}.attn.matmul_1 has no static [N, H, T, Dh] shape`);
      for (let h = 0; h < heads; h++) parts.push({ name: `blocks.${l}.head.${h}`, site: `blocks.${l}.attn.matmul_1`, rows: { w, h, heads, dh } });
      const b = addedBias(model, `blocks.${l}.attn.proj.add`);
      if (b) parts.push({ name: `blocks.${l}.attn.bias`, vector: b });
      if (!has(`blocks.${l}.mlp.proj.add`)) throw new Error(`${where}: no site blocks.${l}.mlp.proj.add (the MLP output)`);
      parts.push({ name: `blocks.${l}.mlp`, site: `blocks.${l}.mlp.proj.add` });
    } else {
      for (let h = 0; has(`blocks.${l}.head.${h}.out.matmul`); h++) parts.push({ name: `blocks.${l}.head.${h}`, site: `blocks.${l}.head.${h}.out.matmul` });
    }
  }
  const capture = [...new Set([u.stream, ...parts.flatMap((p) => ('site' in p ? [p.site] : []))])];
  const run = await model.run({ tokens }, { capture });
  const V = u.vocab;
  const d = u.d;
  const logits = run.outputs[u.output].data as Float32Array;
  const tgt = new Int32Array(N);
  const logit = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const off = (n * T + pos) * V;
    if (target === 'predicted') for (let v = 1; v < V; v++) { if (logits[off + v] > logits[off + tgt[n]]) tgt[n] = v; }
    else tgt[n] = target;
    logit[n] = logits[off + tgt[n]];
  }
  const stream = run.captures[u.stream].data as Float32Array;
  const sigma = new Float64Array(N);
  for (let n = 0; n < N; n++) sigma[n] = normalise(u, stream.subarray((n * T + pos) * d, (n * T + pos + 1) * d), 1).sigma[0];
  // Contribution of one D-vector c written to the stream at row n: Σ_i W[i, v] γ_i (c_i − mean c) / σ.
  const through = (c: Float64Array, n: number) => {
    const mu = u.norm ? c.reduce((s, x) => s + x, 0) / d : 0;
    let s = 0;
    for (let i = 0; i < d; i++) s += u.weight[i * V + tgt[n]] * (u.norm ? u.norm.scale[i] : 1) * (c[i] - mu);
    return s / sigma[n];
  };
  const contributions: LogitContribution[] = parts.map((p) => {
    const value = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      let c: Float64Array;
      if ('vector' in p) c = p.vector;
      else if (p.rows) {
        const { w, h, heads, dh } = p.rows;
        const z = run.captures[p.site].data as Float32Array; // [N, H, T, Dh]
        c = new Float64Array(d);
        for (let j = 0; j < dh; j++) {
          const a = z[((n * heads + h) * T + pos) * dh + j];
          for (let i = 0; i < d; i++) c[i] += a * w[(h * dh + j) * d + i];
        }
      } else c = Float64Array.from((run.captures[p.site].data as Float32Array).subarray((n * T + pos) * d, (n * T + pos + 1) * d));
      value[n] = through(c, n);
    }
    return { name: p.name, value };
  });
  if (u.norm) contributions.push({ name: 'ln_f.bias', value: Float64Array.from(tgt, (v) => u.norm!.bias.reduce((s, b, i) => s + b * u.weight[i * V + v], 0)) });
  let gap = 0;
  let scale = 1;
  for (let n = 0; n < N; n++) {
    gap = Math.max(gap, Math.abs(contributions.reduce((s, c) => s + c.value[n], 0) - logit[n]));
    scale = Math.max(scale, Math.abs(logit[n]));
  }
  return {
    position: pos,
    target: tgt,
    logit,
    contributions,
    checks: [{ name: 'sums-to-logit', value: gap, passed: gap <= 1e-4 * scale, detail: `max |Σ contributions − logit| = ${gap.toExponential(2)} over ${N} rows (final LN scale frozen at its actual 1/σ)` }],
  };
}
