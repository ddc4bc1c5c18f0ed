/**
 * `glassbox attention MODEL --text "..." | --tokens FILE.npy --out DIR`: one sequence through a transformer, as an HTML
 * page: every head's attention pattern (a heat-map table per head), attention rollout and attention flow (Abnar &
 * Zuidema 2020), the logit lens table (nostalgebraist 2020), head importance by ablation and gradient (Michel et al.
 * 2019), direct logit attribution (Elhage et al. 2021) and per-token attribution coloured over the tokens.
 * Text is tokenised with the Brown-corpus vocabulary that `glassbox train brown-gpt` trains with (rebuilt from the
 * corpus: lower-cased words, the 4096 most frequent, unknown words → <unk>). Writes DIR/attention.html and .json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brownWords, Model } from '../index.js';
import { readNpy } from '../data/npy.js';
import type { Vocabulary } from '../data/datasets/vocab.js';
import { Tensor } from '../runtime/tensor.js';
import { attentionFlow, attentionPatterns, attentionRollout, headAverage, headImportance, tokenAttribution, tokenHtml } from '../methods/representations/attention.js';
import { directLogitAttribution, logitLens, unembedding } from '../methods/representations/logit-lens.js';
import { escapeHtml, formatNumber, htmlPage, htmlTable } from '../report/html.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { statusLine } from './status.js';
import { toJson } from './format.js';

/** The brown-gpt recipe's vocabulary settings (src/cli/train.ts BROWN). */
const BROWN_VOCAB = 4096;

/** Brown-style word tokens: lower-cased words (with inner ' and -), `--`, and single punctuation marks. */
export function brownTokens(text: string): string[] {
  let open = true;
  return (text.toLowerCase().match(/[a-z0-9]+(?:['\-.][a-z0-9]+)*|--|[^\sa-z0-9]/g) ?? []).map((t) => {
    if (t !== '"') return t;
    open = !open;
    return open ? "''" : '``';
  });
}

/** A heat-map table: cell (i, j) shaded by m[i][j] / max, the value in its tooltip. */
function heatTable(m: readonly (readonly number[])[], rows: readonly string[], cols: readonly string[]): string {
  const max = Math.max(1e-12, ...m.flat().map(Math.abs));
  const head = `<tr><th></th>${cols.map((c) => `<th class="v">${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = m
    .map((row, i) => `<tr><th>${escapeHtml(rows[i])}</th>${row.map((v) => `<td title="${formatNumber(v)}" style="background:rgba(234,88,12,${(Math.abs(v) / max).toFixed(3)})"></td>`).join('')}</tr>`)
    .join('');
  return `<table class="heat">${head}${body}</table>`;
}

const HEAT_STYLE = `<style>.heat td{width:10px;height:10px;padding:0;border:1px solid #eee}.heat th{font-size:9px;font-weight:normal;padding:0 2px}
.heat th.v{writing-mode:vertical-rl}.heads{display:flex;flex-wrap:wrap;gap:14px}.heads figure{margin:0}.tokens{line-height:2}</style>`;

function positiveInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`bad ${flag} '${text}': expected a non-negative integer`, 'attention');
  return Number(text);
}

/** The sequence as int64 [1, T] and its words. */
async function sequence(values: { text?: string; tokens?: string; vocab?: string }, vocab: number): Promise<{ tokens: Tensor; words: string[]; vocabulary?: Vocabulary }> {
  if ((values.text === undefined) === (values.tokens === undefined)) throw new UsageError('attention needs exactly one of --text "..." or --tokens FILE.npy', 'attention');
  let vocabulary: Vocabulary | undefined;
  if (values.text !== undefined || values.vocab !== undefined) {
    if ((values.vocab ?? 'brown') !== 'brown') throw new UsageError(`unknown --vocab '${values.vocab}' (known: brown)`, 'attention');
    if (vocab !== BROWN_VOCAB) throw new Error(`attention: the brown vocabulary has ${BROWN_VOCAB} words but the model's unembedding has ${vocab} (train the model with glassbox train brown-gpt, or give --tokens)`);
    vocabulary = (await brownWords({ vocabSize: BROWN_VOCAB })).vocabulary;
  }
  if (values.text !== undefined) {
    const words = brownTokens(values.text);
    if (words.length === 0) throw new Error('attention: --text holds no words');
    const ids = vocabulary!.encode(words);
    return { tokens: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, words.length]), words, vocabulary };
  }
  const t = await readNpy(values.tokens!);
  if (t.dtype !== 'int64' && t.dtype !== 'int32') throw new Error(`attention: --tokens ${values.tokens} must hold int64 or int32 token ids, got ${t.dtype}`);
  if (!(t.rank === 1 || (t.rank === 2 && t.shape[0] === 1))) throw new Error(`attention: --tokens ${values.tokens} must be one sequence [T] or [1, T], got [${t.shape.join(', ')}]`);
  const data = t.dtype === 'int64' ? (t.data as BigInt64Array) : BigInt64Array.from(t.data as Int32Array, BigInt);
  const T = data.length;
  const words = Array.from(data, (v) => (vocabulary && v >= 0n && v < BigInt(vocabulary.size) ? vocabulary.tokens[Number(v)] : `#${v}`));
  return { tokens: new Tensor('int64', data, [1, T]), words, vocabulary };
}

export async function attention(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('attention', argv, {
    text: { type: 'string' },
    tokens: { type: 'string' },
    vocab: { type: 'string' },
    out: { type: 'string' },
    method: { type: 'string' },
    position: { type: 'string' },
    steps: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'attention needs a MODEL file' : `attention takes one MODEL, got ${positionals.length}`, 'attention');
  if (!values.out) throw new UsageError('attention needs --out DIR', 'attention');
  const model = await Model.load(positionals[0]);
  const u = unembedding(model);
  const { tokens, words, vocabulary } = await sequence(values, u.vocab);
  const T = words.length;
  const context = model.graph.initializers.get('pos_emb.weight')?.dims[0];
  if (context !== undefined && T > Number(context)) throw new Error(`attention: ${T} tokens exceed the model's context of ${context}`);
  const position = positiveInt('--position', values.position) ?? T - 1;
  const steps = positiveInt('--steps', values.steps) ?? 32;
  const word = (id: number) => (vocabulary ? vocabulary.tokens[id] : `#${id}`);
  const labels = words.map((w, i) => `${i}:${w}`);

  const status = statusLine('attention:');
  const stages = 5;
  const at = (done: number, stage: string) => status.update(`${stage} (${done}/${stages})`);
  at(0, 'attention patterns');
  const patterns = await attentionPatterns(model, tokens);
  const layers = headAverage(patterns, 0);
  const rollout = attentionRollout(layers);
  const flow = attentionFlow(layers);
  at(1, 'logit lens');
  const lens = await logitLens(model, tokens);
  at(2, 'head importance');
  const importance = T > 1 ? await headImportance(model, tokens) : undefined;
  at(3, 'direct logit attribution');
  const dla = await directLogitAttribution(model, tokens, { position });
  at(4, `token attribution (${values.method ?? 'integrated-gradients'})`);
  const attribution = await tokenAttribution(model, tokens, { method: values.method ?? 'integrated-gradients', position, steps });
  status.clear();

  const heads = patterns.layers.flatMap((l, li) =>
    Array.from({ length: patterns.heads }, (_, h) => `<figure><figcaption>layer ${l} head ${h}</figcaption>${heatTable(headAverage(patterns, 0, h)[li], labels, labels)}</figure>`),
  );
  const target = dla.target[0];
  const body = [
    HEAT_STYLE,
    `<h2>Per-token attribution (${escapeHtml(attribution.method)}) of the logit of '${escapeHtml(word(target))}' at position ${position}</h2>`,
    tokenHtml(words, attribution.scores[0]),
    `<h2>Logit lens: top token (probability) per layer and position</h2>`,
    htmlTable(['layer', ...labels], lens.layers.map((l) => [l.name, ...Array.from({ length: T }, (_, t) => `${word(l.top[t][0].token)} ${formatNumber(l.top[t][0].prob)}`)])),
    htmlTable(['rank of the final prediction', ...labels], lens.layers.map((l) => [l.name, ...Array.from(l.rank.subarray(0, T))])),
    `<h2>Attention rollout and attention flow (residual 0.5; rows: output positions, columns: input tokens)</h2>`,
    `<div class="heads"><figure><figcaption>rollout</figcaption>${heatTable(rollout.rollout, labels, labels)}</figure><figure><figcaption>flow</figcaption>${heatTable(flow.flow, labels, labels)}</figure></div>`,
    `<h2>Direct logit attribution to '${escapeHtml(word(target))}' at position ${position} (logit ${formatNumber(dla.logit[0])})</h2>`,
    htmlTable(['component', 'contribution'], dla.contributions.map((c) => [c.name, c.value[0]])),
    importance ? `<h2>Head importance on next-token loss ${formatNumber(importance.loss)} (${escapeHtml(importance.checks[0].detail)})</h2>` : '',
    importance ? htmlTable(['head', 'Δloss when zeroed', '|∂L/∂ξ|'], importance.scores.map((s) => [`${s.layer}.${s.head}`, s.ablation, s.gradient])) : '',
    `<h2>Attention of every head (rows: queries, columns: keys)</h2>`,
    `<div class="heads">${heads.join('')}</div>`,
  ].join('\n');
  const checks = [...patterns.checks, ...rollout.checks, ...flow.checks, ...lens.checks, ...dla.checks, ...(importance?.checks ?? []), ...attribution.checks];
  await mkdir(values.out, { recursive: true });
  const page = join(values.out, 'attention.html');
  await writeFile(page, htmlPage(`Attention: ${positionals[0]}`, `${T} tokens: ${words.join(' ')}`, body));
  await writeFile(join(values.out, 'attention.json'), toJson({
    model: positionals[0],
    tokens: Array.from(tokens.data as BigInt64Array, Number),
    words,
    patterns: patterns.layers.map((l, li) => ({ layer: l, heads: Array.from({ length: patterns.heads }, (_, h) => headAverage(patterns, 0, h)[li]) })),
    rollout: rollout.rollout,
    flow: flow.flow,
    logitLens: lens.layers.map((l) => ({ name: l.name, site: l.site, top: l.top.slice(0, T), prob: Array.from(l.prob), rank: Array.from(l.rank) })),
    headImportance: importance && { loss: importance.loss, scores: importance.scores, byAblation: importance.byAblation, byGradient: importance.byGradient },
    directLogitAttribution: { position, target, logit: dla.logit[0], contributions: dla.contributions.map((c) => ({ name: c.name, value: c.value[0] })) },
    tokenAttribution: { method: attribution.method, target: attribution.target[0], scores: attribution.scores[0] },
    checks,
  }));
  const failed = checks.filter((c) => c.passed === false);
  console.log(`attention: ${T} tokens, ${patterns.layers.length} layers × ${patterns.heads} heads; wrote ${page}${failed.length ? `; failed checks: ${failed.map((c) => c.name).join(', ')}` : ''}`);
}
