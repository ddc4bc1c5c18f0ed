/**
 * Tokens and attention (Räuker et al. V): attention patterns per head, attention rollout and attention flow (Abnar &
 * Zuidema 2020, "Quantifying Attention Flow in Transformers"), head importance by ablation and by gradient (Michel et
 * al. 2019, "Are Sixteen Heads Really Better than One?"), with the logit lens and direct logit attribution in
 * logit-lens.ts, and per-token attribution (any registered attribution method at the token embedding) rendered over text.
 *
 * Two head layouts are read off the site names: fused heads (the builders' `gpt`, PyTorch exports):
 * `blocks.L.attn.softmax` [N, H, T, T] and head outputs on axis 1 of `blocks.L.attn.matmul_1` [N, H, T, Dh]; and
 * per-head sites (`attnOnly`): `blocks.L.head.H.pattern.softmax` [N, T, T] and `blocks.L.head.H.out.matmul`.
 *
 * @example
 * const p = await attentionPatterns(model, tokens);
 * const r = attentionRollout(headAverage(p, 0)); // r.rollout[i][j]: share of output position i from input token j
 */
import type { Model } from '../../model/model.js';
import type { Intervention } from '../../model/interventions.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { spearman } from '../../evaluate/sanity/similarity.js';
import { passive, RAUKER_V, type MethodInfo } from '../taxonomy.js';
import { FlowGraph } from './flow.js';
import { checkTokens, directLogitAttribution, logitLens, unembedding } from './logit-lens.js';
import { attributionMethod } from '../registry.js';
import { escapeHtml } from '../../report/html.js';

export interface HeadLayout {
  readonly layers: number;
  readonly heads: number;
  readonly fused: boolean;
  /** The pattern site of layer l (fused) or of head h of layer l. */
  readonly pattern: (l: number, h: number) => string;
  /** The intervention that removes head h of layer l, and the site whose value·gradient scores it. */
  readonly output: (l: number, h: number) => { readonly site: string; readonly units?: readonly number[]; readonly axis?: number };
}

/** The model's attention layout, from its site names; a model without attention sites is an error naming them. */
export function headLayout(model: Model): HeadLayout {
  const names = new Set(model.sites.map((s) => s.name));
  let layers = 0;
  let heads = 0;
  for (const s of model.sites) {
    const f = /^blocks\.(\d+)\.attn\.softmax$/.exec(s.name);
    if (f) {
      layers = Math.max(layers, Number(f[1]) + 1);
      heads = Math.max(heads, Number(s.shape?.[1] ?? 0));
    }
  }
  if (layers > 0) {
    if (!(heads > 0)) throw new Error('attention: blocks.0.attn.softmax has no static head axis ([N, H, T, T])');
    for (let l = 0; l < layers; l++) if (!names.has(`blocks.${l}.attn.matmul_1`)) throw new Error(`attention: no site blocks.${l}.attn.matmul_1 (the head outputs softmax·V)`);
    return { layers, heads, fused: true, pattern: (l) => `blocks.${l}.attn.softmax`, output: (l, h) => ({ site: `blocks.${l}.attn.matmul_1`, units: [h], axis: 1 }) };
  }
  for (const s of model.sites) {
    const m = /^blocks\.(\d+)\.head\.(\d+)\.pattern\.softmax$/.exec(s.name);
    if (m) [layers, heads] = [Math.max(layers, Number(m[1]) + 1), Math.max(heads, Number(m[2]) + 1)];
  }
  if (layers === 0) throw new Error('attention: the model has no attention sites (blocks.L.attn.softmax or blocks.L.head.H.pattern.softmax)');
  return { layers, heads, fused: false, pattern: (l, h) => `blocks.${l}.head.${h}.pattern.softmax`, output: (l, h) => ({ site: `blocks.${l}.head.${h}.out.matmul` }) };
}

export interface AttentionPatterns {
  readonly layers: readonly number[];
  readonly heads: number;
  /** [N, T] */
  readonly shape: readonly [number, number];
  /** Per layer asked for: [N, H, T, T] (query row, key column). */
  readonly patterns: readonly Tensor<'float32'>[];
  readonly checks: Check[];
}

const vocabOf = (model: Model) => unembedding(model).vocab;

function checkLayers(layers: readonly number[], count: number, where: string): void {
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= count) throw new Error(`${where}: unknown layer ${l}: the model has layers 0..${count - 1}`);
}

/** Every head's attention pattern over the tokens, from the captured softmax sites. */
export async function attentionPatterns(model: Model, tokens: Tensor, options: { readonly layers?: readonly number[] } = {}): Promise<AttentionPatterns> {
  const lay = headLayout(model);
  checkTokens(tokens, vocabOf(model), 'attentionPatterns');
  const layers = options.layers ?? Array.from({ length: lay.layers }, (_, l) => l);
  checkLayers(layers, lay.layers, 'attentionPatterns');
  const H = lay.heads;
  const sites = layers.flatMap((l) => (lay.fused ? [lay.pattern(l, 0)] : Array.from({ length: H }, (_, h) => lay.pattern(l, h))));
  const run = await model.run({ tokens }, { capture: sites });
  const [N, T] = tokens.shape;
  const patterns = layers.map((l) => {
    if (lay.fused) return run.captures[lay.pattern(l, 0)] as Tensor<'float32'>;
    const out = new Float32Array(N * H * T * T);
    for (let h = 0; h < H; h++) {
      const p = run.captures[lay.pattern(l, h)].data as Float32Array; // [N, T, T]
      for (let n = 0; n < N; n++) out.set(p.subarray(n * T * T, (n + 1) * T * T), (n * H + h) * T * T);
    }
    return Tensor.float32(out, [N, H, T, T]);
  });
  let rowGap = 0;
  let future = 0;
  for (const p of patterns) {
    const d = p.data;
    for (let r = 0; r < d.length / T; r++) {
      let s = 0;
      for (let j = 0; j < T; j++) {
        s += d[r * T + j];
        if (j > r % T) future = Math.max(future, d[r * T + j]);
      }
      rowGap = Math.max(rowGap, Math.abs(s - 1));
    }
  }
  return {
    layers,
    heads: H,
    shape: [N, T],
    patterns,
    checks: [
      { name: 'rows-sum-to-one', value: rowGap, passed: rowGap < 1e-4, detail: `max |Σ_j A[i, j] − 1| = ${rowGap.toExponential(2)}` },
      { name: 'causal', value: future, detail: `largest attention to a later token: ${future.toExponential(2)} (0 for a causal model)` },
    ],
  };
}

/** Row n of the patterns as plain matrices: per layer, the head-averaged [T][T] (or head `head` alone). */
export function headAverage(p: AttentionPatterns, n: number, head?: number): number[][][] {
  const [N, T] = p.shape;
  if (!Number.isInteger(n) || n < 0 || n >= N) throw new Error(`headAverage: row ${n} is outside [0, ${N})`);
  if (head !== undefined && (!Number.isInteger(head) || head < 0 || head >= p.heads)) throw new Error(`headAverage: head ${head} is outside [0, ${p.heads})`);
  const hs = head === undefined ? Array.from({ length: p.heads }, (_, h) => h) : [head];
  return p.patterns.map((t) =>
    Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => hs.reduce((s, h) => s + t.data[((n * p.heads + h) * T + i) * T + j], 0) / hs.length)),
  );
}

/** A' = (1 − r)·A + r·I, rows renormalised (Abnar & Zuidema's residual augmentation); validates [T][T] layers. */
function augment(layers: readonly (readonly (readonly number[])[])[], residual: number, where: string): number[][][] {
  if (!(residual >= 0 && residual <= 1)) throw new Error(`${where}: residual must be in [0, 1], got ${residual}`);
  if (layers.length === 0) throw new Error(`${where}: no layers`);
  const T = layers[0].length;
  return layers.map((a, l) => {
    if (a.length !== T || a.some((row) => row.length !== T)) throw new Error(`${where}: layer ${l} is not [${T}][${T}]`);
    return a.map((row, i) =>
      row.map((v, j) => {
        if (!Number.isFinite(v) || v < 0) throw new Error(`${where}: layer ${l} [${i}][${j}] = ${v} is not a finite non-negative weight`);
        return (1 - residual) * v + (i === j ? residual : 0);
      }),
    ).map((row) => {
      const s = row.reduce((x, y) => x + y, 0);
      return s > 0 ? row.map((v) => v / s) : row;
    });
  });
}

export interface Rollout {
  /** [T][T]: row i (output position), column j (input token). */
  readonly rollout: number[][];
  readonly checks: Check[];
}

/** Abnar & Zuidema 2020, attention rollout: Ã_L · … · Ã_1 with Ã = ½A + ½I (layers given bottom first). */
export function attentionRollout(layers: readonly (readonly (readonly number[])[])[], options: { readonly residual?: number } = {}): Rollout {
  const aug = augment(layers, options.residual ?? 0.5, 'attentionRollout');
  const T = aug[0].length;
  let r = aug[0];
  for (const a of aug.slice(1)) r = a.map((row) => Array.from({ length: T }, (_, j) => row.reduce((s, v, k) => s + v * r[k][j], 0)));
  const gap = Math.max(...r.map((row) => Math.abs(row.reduce((s, v) => s + v, 0) - 1)));
  return { rollout: r, checks: [{ name: 'rows-sum-to-one', value: gap, passed: gap < 1e-9, detail: `max |Σ_j rollout[i, j] − 1| = ${gap.toExponential(2)}` }] };
}

export interface Flow {
  /** [T][T]: the max-flow value from output position i (top layer) to input token j. */
  readonly flow: number[][];
  readonly checks: Check[];
}

/**
 * Abnar & Zuidema 2020, attention flow: the layered graph with nodes (layer ℓ, position), edges from (ℓ+1, i) to
 * (ℓ, j) of capacity Ã_ℓ[i][j] (residual-augmented attention); flow[i][j] = max flow from (L, i) to (0, j) (Dinic).
 */
export function attentionFlow(layers: readonly (readonly (readonly number[])[])[], options: { readonly residual?: number } = {}): Flow {
  const aug = augment(layers, options.residual ?? 0.5, 'attentionFlow');
  const L = aug.length;
  const T = aug[0].length;
  const node = (l: number, i: number) => l * T + i;
  let bound = 0;
  const flow = Array.from({ length: T }, (_, i) =>
    Array.from({ length: T }, (_, j) => {
      const g = new FlowGraph((L + 1) * T);
      for (let l = 0; l < L; l++) for (let a = 0; a < T; a++) for (let b = 0; b < T; b++) if (aug[l][a][b] > 0) g.addEdge(node(l + 1, a), node(l, b), aug[l][a][b]);
      const f = g.maxFlow(node(L, i), node(0, j));
      bound = Math.max(bound, f - 1);
      return f;
    }),
  );
  return { flow, checks: [{ name: 'bounded-by-one', value: bound, passed: bound <= 1e-9, detail: 'each flow ≤ 1, the capacity out of an output position' }] };
}

export interface HeadScore {
  readonly layer: number;
  readonly head: number;
  /** Loss with the head ablated minus the clean loss. */
  readonly ablation: number;
  /** Michel et al.'s I_h = E_x |∂L/∂ξ_h| = E_x |Σ (head output)·∂L/∂(head output)|. */
  readonly gradient: number;
}

export interface HeadImportance {
  readonly loss: number;
  readonly scores: readonly HeadScore[];
  /** Head names ('L.H') by decreasing importance. */
  readonly byAblation: readonly string[];
  readonly byGradient: readonly string[];
  readonly checks: Check[];
}

export interface HeadImportanceOptions {
  /** Next-token targets [N, T] (default: tokens shifted left, the last position unused). */
  readonly targets?: Tensor;
  /** Positions whose loss counts (default 0..T−2, or 0..T−1 with targets given). */
  readonly positions?: readonly number[];
  /** Zero (default) or mean ablation. */
  readonly ablation?: 'zero' | 'mean';
}

/** Mean cross-entropy over the chosen positions, and ∂L_n/∂logits (per-example loss L_n, mean over positions). */
function crossEntropy(logits: Float32Array, y: BigInt64Array, N: number, T: number, V: number, positions: readonly number[]): { loss: number; seed: Float32Array } {
  const seed = new Float32Array(N * T * V);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    for (const t of positions) {
      const off = (n * T + t) * V;
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, logits[off + v]);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(logits[off + v] - m);
      const target = Number(y[n * T + t]);
      loss += m + Math.log(s) - logits[off + target];
      for (let v = 0; v < V; v++) seed[off + v] = (Math.exp(logits[off + v] - m) / s - (v === target ? 1 : 0)) / positions.length;
    }
  }
  return { loss: loss / (N * positions.length), seed };
}

/** Michel et al. 2019: each head's importance by ablation (Δ next-token loss) and by the head-mask gradient. */
export async function headImportance(model: Model, tokens: Tensor, options: HeadImportanceOptions = {}): Promise<HeadImportance> {
  const where = 'headImportance';
  const lay = headLayout(model);
  const u = unembedding(model);
  checkTokens(tokens, u.vocab, where);
  const [N, T] = tokens.shape;
  const y = options.targets ?? new Tensor('int64', (tokens.data as BigInt64Array).map((_, i) => (tokens.data as BigInt64Array)[i % T === T - 1 ? i : i + 1]), [N, T]);
  if (options.targets) checkTokens(options.targets, u.vocab, `${where} targets`);
  if (y.shape[0] !== N || y.shape[1] !== T) throw new Error(`${where}: targets [${y.shape.join(', ')}] differ from tokens [${N}, ${T}]`);
  const positions = options.positions ?? Array.from({ length: options.targets ? T : T - 1 }, (_, t) => t);
  if (positions.length === 0) throw new Error(`${where}: no positions`);
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new Error(`${where}: position ${p} is outside [0, ${T})`);
  const V = u.vocab;
  const yd = y.data as BigInt64Array;
  const heads = Array.from({ length: lay.layers * lay.heads }, (_, i) => ({ layer: Math.floor(i / lay.heads), head: i % lay.heads }));
  const outSites = [...new Set(heads.map((h) => lay.output(h.layer, h.head).site))];
  const g = await model.grad({ tokens }, { of: u.output, wrt: outSites, capture: outSites, seed: Tensor.float32(crossEntropy((await model.run({ tokens })).outputs[u.output].data as Float32Array, yd, N, T, V, positions).seed, [N, T, V]) });
  const clean = crossEntropy(g.outputs[u.output].data as Float32Array, yd, N, T, V, positions).loss;
  const scores: HeadScore[] = [];
  for (const { layer, head } of heads) {
    const o = lay.output(layer, head);
    const iv: Intervention = options.ablation === 'mean' ? { kind: 'mean', site: o.site, ...(o.units ? { units: o.units, axis: o.axis } : {}) } : { kind: 'zero', site: o.site, ...(o.units ? { units: o.units, axis: o.axis } : {}) };
    const ablated = crossEntropy((await model.run({ tokens }, { interventions: [iv] })).outputs[u.output].data as Float32Array, yd, N, T, V, positions).loss;
    const a = g.captures[o.site].data as Float32Array;
    const d = g.grads[o.site].data as Float32Array;
    const per = a.length / N; // one example's elements
    let total = 0;
    for (let n = 0; n < N; n++) {
      let s = 0;
      if (o.units) {
        const inner = per / lay.heads; // [T, Dh] of head h on axis 1 of [N, H, T, Dh]
        for (let k = 0; k < inner; k++) s += a[n * per + head * inner + k] * d[n * per + head * inner + k];
      } else for (let k = 0; k < per; k++) s += a[n * per + k] * d[n * per + k];
      total += Math.abs(s);
    }
    scores.push({ layer, head, ablation: ablated - clean, gradient: total / N });
  }
  const order = (key: 'ablation' | 'gradient') => [...scores].sort((p, q) => q[key] - p[key]).map((s) => `${s.layer}.${s.head}`);
  const rho = scores.length > 1 ? spearman(scores.map((s) => s.ablation), scores.map((s) => s.gradient)) : NaN;
  return {
    loss: clean,
    scores,
    byAblation: order('ablation'),
    byGradient: order('gradient'),
    checks: [{ name: 'spearman-ablation-gradient', value: rho, detail: `Spearman correlation of the two rankings over ${scores.length} heads: ${rho.toFixed(3)}` }],
  };
}

export interface TokenAttribution {
  readonly method: string;
  readonly position: number;
  /** The token whose logit at `position` is explained, per row. */
  readonly target: Int32Array;
  /** Per row, per token: the attribution at `wrt` summed over the embedding axis. */
  readonly scores: readonly (readonly number[])[];
  readonly checks: readonly Check[];
}

export interface TokenAttributionOptions {
  /** A registered attribution method (default 'integrated-gradients'). */
  readonly method?: string;
  /** The site of the token embeddings [N, T, D] (default 'tok_emb.gather'). */
  readonly wrt?: string;
  /** Position whose logit is explained (default the last). */
  readonly position?: number;
  /** Token whose logit is explained (default the predicted one). */
  readonly target?: number;
  readonly steps?: number;
}

/** Per-token attribution of one position's logit to the token embeddings, via the attribution registry. */
export async function tokenAttribution(model: Model, tokens: Tensor, options: TokenAttributionOptions = {}): Promise<TokenAttribution> {
  const where = 'tokenAttribution';
  const u = unembedding(model);
  checkTokens(tokens, u.vocab, where);
  const [N, T] = tokens.shape;
  const V = u.vocab;
  const position = options.position ?? T - 1;
  if (!Number.isInteger(position) || position < 0 || position >= T) throw new Error(`${where}: position ${position} is outside [0, ${T})`);
  if (options.target !== undefined && (!Number.isInteger(options.target) || options.target < 0 || options.target >= V)) throw new Error(`${where}: target ${options.target} is outside the vocabulary [0, ${V})`);
  const method = attributionMethod(options.method ?? 'integrated-gradients');
  const wrt = options.wrt ?? 'tok_emb.gather';
  model.site(wrt);
  const logits = (await model.run({ tokens })).outputs[u.output].data as Float32Array;
  const target = new Int32Array(N);
  const seed = new Float32Array(N * T * V);
  for (let n = 0; n < N; n++) {
    const off = (n * T + position) * V;
    if (options.target === undefined) for (let v = 1; v < V; v++) { if (logits[off + v] > logits[off + target[n]]) target[n] = v; }
    else target[n] = options.target;
    seed[off + target[n]] = 1;
  }
  const a = await method.explain(model, { tokens }, { wrt, target: { output: u.output, seed: Tensor.float32(seed, [N, T, V]) }, ...(options.steps ? { steps: options.steps } : {}) });
  if (a.attributions.rank !== 3 || a.attributions.shape[1] !== T) throw new Error(`${where}: '${wrt}' must be [N, T, D] token embeddings, got [${a.attributions.shape.join(', ')}]`);
  const D = a.attributions.shape[2];
  const d = a.attributions.data;
  const scores = Array.from({ length: N }, (_, n) => Array.from({ length: T }, (_, t) => d.subarray((n * T + t) * D, (n * T + t + 1) * D).reduce((s, v) => s + v, 0)));
  return { method: method.name, position, target, scores, checks: a.checks };
}

/** The tokens as inline spans, background red for positive and blue for negative scores, opacity ∝ |score| / max. */
export function tokenHtml(words: readonly string[], scores: readonly number[]): string {
  if (words.length !== scores.length) throw new Error(`tokenHtml: ${words.length} words but ${scores.length} scores`);
  const max = Math.max(1e-12, ...scores.map(Math.abs));
  return `<p class="tokens">${words
    .map((w, i) => {
      const a = (Math.abs(scores[i]) / max).toFixed(3);
      const rgb = scores[i] >= 0 ? '220,38,38' : '37,99,235';
      return `<span title="${escapeHtml(scores[i].toPrecision(4))}" style="background:rgba(${rgb},${a});padding:1px 2px;margin:1px;border-radius:2px">${escapeHtml(w)}</span>`;
    })
    .join(' ')}</p>`;
}

const hidden = passive('hidden semantics', 'local', RAUKER_V.attention);
const attribution = passive('attribution', 'local', RAUKER_V.attention);

export const ATTENTION_METHODS = {
  'attention-patterns': { info: { title: 'Attention patterns per head', reference: 'Vaswani et al. 2017, Attention Is All You Need', taxonomy: hidden }, run: attentionPatterns },
  'attention-rollout': { info: { title: 'Attention rollout', reference: 'Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers', taxonomy: hidden }, run: attentionRollout },
  'attention-flow': { info: { title: 'Attention flow (max-flow)', reference: 'Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers', taxonomy: hidden }, run: attentionFlow },
  'logit-lens': { info: { title: 'Logit lens', reference: 'nostalgebraist 2020, interpreting GPT: the logit lens', taxonomy: hidden }, run: logitLens },
  'head-importance': { info: { title: 'Head importance (ablation and head-mask gradient)', reference: 'Michel et al. 2019, Are Sixteen Heads Really Better than One?', taxonomy: hidden }, run: headImportance },
  'direct-logit-attribution': { info: { title: 'Direct logit attribution', reference: 'Elhage et al. 2021, A Mathematical Framework for Transformer Circuits', taxonomy: attribution }, run: directLogitAttribution },
  'token-attribution': { info: { title: 'Per-token attribution over text', reference: 'Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks (at the token embedding)', taxonomy: attribution }, run: tokenAttribution },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
