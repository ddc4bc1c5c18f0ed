/**
 * `glassbox attention` end to end: on a GPT trained briefly by `glassbox train brown-gpt` with --text (tokenised by the
 * rebuilt Brown vocabulary), and on the PyTorch-exported GPT with --tokens. The JSON holds what the library computes
 * (rollout re-derived from the written patterns, direct logit attribution summing to the model's logit), the page
 * escapes the text, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { brownWords, Model } from '../../src/index.js';
import { encodeNpy } from '../../src/data/npy.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { attentionRollout } from '../../src/methods/representations/attention.js';
import { brownTokens } from '../../src/cli/attention.js';
import { torchFixture } from '../helpers.js';

const glassbox = glassboxWithin(300_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-attention-'));
  const r = glassbox('train', 'brown-gpt', '--limit', '2000', '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'brown-gpt.onnx');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface PageJson {
  tokens: number[];
  words: string[];
  patterns: { layer: number; heads: number[][][] }[];
  rollout: number[][];
  logitLens: { name: string; top: { token: number; prob: number }[][]; rank: number[] }[];
  directLogitAttribution: { position: number; target: number; logit: number; contributions: { name: string; value: number }[] };
  tokenAttribution: { method: string; scores: number[] };
  checks: { name: string; passed?: boolean; detail: string }[];
}

const TEXT = 'The jury said "it was <b>fine</b>" and went home.';

test('attention --text on a brown-gpt model: Brown tokens, library numbers, escaped page', async () => {
  const out = join(dir, 'text');
  const r = glassbox('attention', modelPath, '--text', TEXT, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /attention: 19 tokens, 2 layers × 4 heads/);
  const j = JSON.parse(await readFile(join(out, 'attention.json'), 'utf8')) as PageJson;
  // Tokens: the Brown recipe's vocabulary (<unk> = 0 for '<', '>' and '/'), quotes as `` and ''.
  const vocabulary = (await brownWords({ vocabSize: 4096 })).vocabulary;
  assert.deepEqual(j.words, brownTokens(TEXT));
  assert.deepEqual(j.words.slice(3, 5), ['``', 'it']);
  assert.deepEqual(j.tokens, Array.from(vocabulary.encode(j.words)));
  for (const c of j.checks) assert.ok(c.passed !== false, `${c.name}: ${c.detail}`);
  // Rollout re-derived from the written per-head patterns (head mean per layer).
  const mean = j.patterns.map((l) => l.heads[0].map((row, i) => row.map((_, k) => l.heads.reduce((s, h) => s + h[i][k], 0) / l.heads.length)));
  const again = attentionRollout(mean).rollout;
  again.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - j.rollout[i][k]) < 1e-9)));
  // Direct logit attribution: the components sum to the model's own logit of the explained token.
  const model = await Model.load(modelPath);
  const T = j.tokens.length;
  const logits = (await model.run({ tokens: new Tensor('int64', BigInt64Array.from(j.tokens.map(BigInt)), [1, T]) })).outputs.logits.data as Float32Array;
  const d = j.directLogitAttribution;
  const logit = logits[(T - 1) * 4096 + d.target];
  assert.ok(Math.abs(d.contributions.reduce((s, c) => s + c.value, 0) - logit) < 1e-3, 'DLA sums to the logit');
  // The logit lens's last layer predicts the model's argmax at every position.
  for (let t = 0; t < T; t++) {
    let best = 0;
    for (let v = 1; v < 4096; v++) if (logits[t * 4096 + v] > logits[t * 4096 + best]) best = v;
    assert.equal(j.logitLens.at(-1)!.top[t][0].token, best);
  }
  const html = await readFile(join(out, 'attention.html'), 'utf8');
  assert.match(html, /&lt;/);
  assert.doesNotMatch(html, /<b>fine/);
  assert.equal((html.match(/<figcaption>layer \d head \d<\/figcaption>/g) ?? []).length, 8);
  assert.equal((html.match(/<span title=/g) ?? []).length, T);
});

test('attention --tokens on the PyTorch GPT, and bad requests', async () => {
  const { path, input } = torchFixture('gpt');
  const T = input.shape[1];
  const one = join(dir, 'one.npy');
  await writeFile(one, encodeNpy(new Tensor('int64', (input.data as BigInt64Array).slice(0, T), [1, T])));
  const out = join(dir, 'tokens');
  const r = glassbox('attention', path, '--tokens', one, '--out', out, '--method', 'gradient-x-input', '--position', '5');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(await readFile(join(out, 'attention.json'), 'utf8')) as PageJson;
  assert.equal(j.directLogitAttribution.position, 5);
  assert.deepEqual(j.tokenAttribution.scores.slice(6), Array(T - 6).fill(0), 'nothing after the explained position');
  assert.equal(j.words[0], `#${input.data[0]}`);

  const two = join(dir, 'two.npy');
  await writeFile(two, encodeNpy(input));
  const fails: [string[], RegExp][] = [
    [[path, '--tokens', one], /needs --out DIR/],
    [[path, '--out', out], /exactly one of --text/],
    [[path, '--text', 'hello', '--out', out], /brown vocabulary has 4096 words but the model's unembedding has 96/],
    [[path, '--tokens', two, '--out', out], /must be one sequence \[T\] or \[1, T\], got \[3, 16\]/],
    [[path, '--tokens', one, '--out', out, '--position', '99'], /position 99 is outside \[0, 16\)/],
    [[modelPath, '--text', 'hi', '--vocab', 'penn', '--out', out], /unknown --vocab 'penn'/],
  ];
  for (const [args, message] of fails) {
    const f = glassbox('attention', ...args);
    assert.notEqual(f.code, 0, args.join(' '));
    assert.match(f.stderr, message, args.join(' '));
  }
});
