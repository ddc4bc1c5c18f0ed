import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { inductionDataset } from '../../../src/data/datasets/induction.js';
import { attnOnly } from '../../../src/model/builders/attn-only.js';
import { gpt } from '../../../src/model/builders/gpt.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { torchFixture } from '../../helpers.js';
import { ATTENTION_METHODS, attentionFlow, attentionPatterns, attentionRollout, headAverage, headImportance, tokenAttribution, tokenHtml } from '../../../src/methods/representations/attention.js';
import { FlowGraph } from '../../../src/methods/representations/flow.js';
import { directLogitAttribution, logitLens } from '../../../src/methods/representations/logit-lens.js';

const close = (a: number, b: number, tol = 1e-9, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} ≠ ${b}`);
const int64 = (v: number[], shape: number[]) => new Tensor('int64', BigInt64Array.from(v.map(BigInt)), shape);

// Two layers over T = 2: A1 rows [1, 0], [½, ½]; A2 rows [1, 0], [0.2, 0.8].
// Ã = ½A + ½I: Ã1 = [[1, 0], [¼, ¾]], Ã2 = [[1, 0], [0.1, 0.9]].
const A1 = [[1, 0], [0.5, 0.5]];
const A2 = [[1, 0], [0.2, 0.8]];

test('rollout of a hand-made 2-layer pattern: Ã2·Ã1', () => {
  const r = attentionRollout([A1, A2]);
  // Row 1: [0.1·1 + 0.9·¼, 0.9·¾] = [0.325, 0.675].
  [[1, 0], [0.325, 0.675]].forEach((row, i) => row.forEach((v, j) => close(r.rollout[i][j], v, 1e-12, `rollout[${i}][${j}]`)));
  assert.ok(r.checks[0].passed);
  // Without the residual it is the plain product A2·A1: row 1 = [0.2 + 0.8·½, 0.8·½].
  const plain = attentionRollout([A1, A2], { residual: 0 });
  close(plain.rollout[1][0], 0.6, 1e-12);
  close(plain.rollout[1][1], 0.4, 1e-12);
});

test('max flow: CLRS figure 26.1 (value 23) and attention flow on the 2-layer pattern by hand', () => {
  const g = new FlowGraph(6);
  for (const [u, v, c] of [[0, 1, 16], [0, 2, 13], [2, 1, 4], [1, 3, 12], [3, 2, 9], [2, 4, 14], [4, 3, 7], [3, 5, 20], [4, 5, 4]]) g.addEdge(u, v, c);
  assert.equal(g.maxFlow(0, 5), 23);
  // Output 1 → input 0: through (1, 0) min(0.1, 1) plus through (1, 1) min(0.9, ¼) = 0.35 (rollout says 0.325);
  // output 1 → input 1: only through (1, 1): min(0.9, ¾) = 0.75; output 0 → input 0: 1; output 0 → input 1: 0.
  const f = attentionFlow([A1, A2]);
  [[1, 0], [0.35, 0.75]].forEach((row, i) => row.forEach((v, j) => close(f.flow[i][j], v, 1e-12, `flow[${i}][${j}]`)));
  assert.ok(f.checks[0].passed);
});

async function builderGpt() {
  return Model.load(encodeModel(gpt({ vocab: 16, context: 8, dModel: 16, heads: 2, layers: 2, seed: 3 })));
}
const TOK = int64([1, 2, 3, 4, 5, 6, 7, 0, 3, 3, 2, 1, 9, 8, 15, 6], [2, 8]);

test('logit lens: the last layer reproduces the logits (builders gpt, attnOnly, PyTorch GPT)', async () => {
  const { path, input } = torchFixture('gpt');
  const models: [string, Model, Tensor][] = [
    ['gpt', await builderGpt(), TOK],
    ['attnOnly', await Model.load(encodeModel(attnOnly({ vocab: 16, context: 8, dModel: 16, heads: 2, layers: 2, seed: 2 }))), TOK],
    ['torch', await Model.load(path), input],
  ];
  for (const [name, model, tokens] of models) {
    const lens = await logitLens(model, tokens);
    assert.equal(lens.layers.length, 3, name);
    assert.ok(lens.checks[0].passed, `${name}: ${lens.checks[0].detail}`);
    assert.ok((lens.checks[0].value as number) < 1e-4);
    // At the last layer the model's prediction is rank 0 everywhere, with its softmax probability.
    const last = lens.layers[2];
    assert.ok(last.rank.every((r) => r === 0), name);
    assert.ok(last.top.every((t, r) => t[0].token === lens.predicted[r]), name);
  }
});

test('direct logit attribution: contributions sum to the logit; in attnOnly a last-layer head is exactly its ablation', async () => {
  const { path, input } = torchFixture('gpt');
  for (const model of [await builderGpt(), await Model.load(path)]) {
    const tokens = model.source.endsWith('.onnx') ? input : TOK;
    const d = await directLogitAttribution(model, tokens, { position: 5 });
    assert.ok(d.checks[0].passed, d.checks[0].detail);
    for (let n = 0; n < d.logit.length; n++) close(d.contributions.reduce((s, c) => s + c.value[n], 0), d.logit[n], 1e-4, `row ${n}`);
    assert.ok(d.contributions.some((c) => c.name === 'blocks.1.head.1') && d.contributions.some((c) => c.name === 'ln_f.bias'));
  }
  // No LayerNorm: the logit is linear in a last-layer head's output, so zeroing it moves the logit by its contribution.
  const model = await Model.load(encodeModel(attnOnly({ vocab: 16, context: 8, dModel: 16, heads: 2, layers: 2, seed: 2 })));
  const d = await directLogitAttribution(model, TOK, { target: 4 });
  const ablated = (await model.run({ tokens: TOK }, { interventions: [{ kind: 'zero', site: 'blocks.1.head.1.out.matmul' }] })).outputs.logits.data as Float32Array;
  const c = d.contributions.find((x) => x.name === 'blocks.1.head.1')!.value;
  for (let n = 0; n < 2; n++) close(d.logit[n] - ablated[(n * 8 + 7) * 16 + 4], c[n], 1e-5, `row ${n}`);
});

test('head-mask gradient: |∂L/∂ξ_h| matches a central finite difference of scaling the head (one sequence)', async () => {
  const model = await Model.load(encodeModel(attnOnly({ vocab: 16, context: 8, dModel: 16, heads: 2, layers: 2, seed: 4 })));
  const one = int64([1, 2, 3, 4, 5, 6, 7, 0], [1, 8]);
  const r = await headImportance(model, one);
  const targets = Array.from({ length: 7 }, (_, t) => Number(one.data[t + 1]));
  const loss = async (site: string, factor: number) => {
    const l = (await model.run({ tokens: one }, { interventions: [{ kind: 'scale', site, factor }] })).outputs.logits.data as Float32Array;
    let s = 0;
    for (let t = 0; t < 7; t++) {
      const row = Array.from(l.subarray(t * 16, (t + 1) * 16), Number);
      const m = Math.max(...row);
      s += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[targets[t]];
    }
    return s / 7;
  };
  for (const h of r.scores) {
    const site = `blocks.${h.layer}.head.${h.head}.out.matmul`;
    const eps = 1e-2;
    const fd = Math.abs((await loss(site, 1 + eps)) - (await loss(site, 1 - eps))) / (2 * eps);
    close(h.gradient, fd, 2e-3 * Math.max(1, fd), site);
    close(h.ablation, (await loss(site, 0)) - r.loss, 1e-5, `${site} ablation`);
  }
});

test('per-token attribution: integrated gradients at tok_emb.gather is complete; the HTML escapes tokens', async () => {
  const model = await builderGpt();
  const a = await tokenAttribution(model, TOK, { method: 'integrated-gradients', steps: 64 });
  assert.equal(a.scores[0].length, 8);
  const completeness = a.checks.find((c) => /convergence/.test(c.name));
  assert.ok(completeness?.passed, JSON.stringify(a.checks));
  // Causal model: tokens after the explained position get nothing.
  const early = await tokenAttribution(model, TOK, { method: 'gradient-x-input', position: 3 });
  early.scores.forEach((row) => row.slice(4).forEach((v) => assert.equal(v, 0)));
  const html = tokenHtml(['<b>', 'x'], [1, -0.5]);
  assert.match(html, /&lt;b&gt;/);
  assert.match(html, /rgba\(220,38,38,1\.000\).*rgba\(37,99,235,0\.500\)/);
});

test('bad input: unknown layer, tokens out of vocab, wrong rank, bad residual, ragged layer', async () => {
  const model = await builderGpt();
  await assert.rejects(attentionPatterns(model, TOK, { layers: [2] }), /unknown layer 2: the model has layers 0\.\.1/);
  await assert.rejects(attentionPatterns(model, int64([1, 16], [1, 2])), /token 16 at index 1 is outside the vocabulary \[0, 16\)/);
  await assert.rejects(logitLens(model, int64([1, 2], [2])), /tokens must be \[N, T\], got rank 1/);
  await assert.rejects(headImportance(model, Tensor.float32([1, 2], [1, 2])), /tokens must be int64/);
  await assert.rejects(directLogitAttribution(model, TOK, { position: 8 }), /position 8 is outside \[0, 8\)/);
  assert.throws(() => attentionRollout([A1], { residual: 1.5 }), /residual must be in \[0, 1\]/);
  assert.throws(() => attentionFlow([A1, [[1, 0]]]), /layer 1 is not \[2\]\[2\]/);
  assert.throws(() => attentionRollout([[[NaN, 0], [0, 1]]]), /is not a finite non-negative weight/);
  await assert.rejects(tokenAttribution(model, TOK, { wrt: 'tok_emb.gathr' }), /unknown site 'tok_emb\.gathr'.*tok_emb\.gather/s);
  await assert.rejects(tokenAttribution(model, TOK, { method: 'integrated-gradient' }), /integrated-gradients/);
});

// The induction model of test/methods/subnetworks/circuits.test.ts, same settings.
const SPEC = { vocab: 32, context: 19, dModel: 48, heads: 3, dHead: 16, layers: 2, positions: 'relative', seed: 1 } as const;
const HALF = 10;

test('head importance on an induction model: ablation and gradient both rank the induction head first', async () => {
  const t0 = performance.now();
  const trainer = await Trainer.create(attnOnly(SPEC), { optimizer: { kind: 'adam', lr: 0.008 } });
  await trainer.fit(inductionDataset({ size: 2048, half: HALF, vocab: SPEC.vocab, seed: 1 }), { epochs: 16, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(trainer.exportModel()));
  await trainer.dispose();
  const ds = inductionDataset({ size: 64, half: HALF, vocab: SPEC.vocab, seed: 7 });
  const { x, y } = ds.gather(Array.from({ length: 64 }, (_, i) => i));
  console.log(`induction model trained in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const r = await headImportance(model, x, { targets: y, positions: ds.positions });
  console.log(`loss ${r.loss.toFixed(3)}; heads ${r.scores.map((s) => `${s.layer}.${s.head}: Δloss ${s.ablation.toFixed(3)}, |grad| ${s.gradient.toFixed(3)}`).join('; ')}`);
  console.log(`by ablation ${r.byAblation.join(' ')}, by gradient ${r.byGradient.join(' ')}, ${r.checks[0].detail}`);
  const induction = r.byAblation.find((h) => h.startsWith('1.'))!;
  assert.equal(r.byAblation[0], induction);
  assert.equal(r.byGradient[0], induction);
  assert.ok(r.scores.find((s) => `${s.layer}.${s.head}` === induction)!.ablation > 1, 'ablating the induction head costs > 1 nat');
  const mean = await headImportance(model, x, { targets: y, positions: ds.positions, ablation: 'mean' });
  console.log(`mean ablation: ${mean.byAblation.join(' ')}`);
  assert.equal(mean.byAblation[0], induction);

  // A previous-token head in layer 0: most of its attention on t − 1.
  const p = await attentionPatterns(model, x, { layers: [0] });
  assert.ok(p.checks[0].passed);
  assert.equal(p.checks[1].value, 0);
  const [N, T] = p.shape;
  const mass = Array.from({ length: p.heads }, (_, h) => {
    let s = 0;
    for (let n = 0; n < N; n++) for (let t = 1; t < T; t++) s += p.patterns[0].data[((n * p.heads + h) * T + t) * T + t - 1];
    return s / (N * (T - 1));
  });
  console.log(`layer-0 attention mass on t−1: ${mass.map((m) => m.toFixed(3)).join(', ')}`);
  assert.ok(Math.max(...mass) > 0.5, `previous-token mass ${mass}`);
  // The same head, alone, is the one whose rollout of row 0 puts weight on t − 1 (rollout of one layer = Ã).
  const prev = mass.indexOf(Math.max(...mass));
  // Both measures put the same two heads on top: the induction head, then this previous-token head.
  assert.deepEqual([r.byAblation[1], r.byGradient[1]], [`0.${prev}`, `0.${prev}`]);
  const roll = attentionRollout(headAverage(p, 0, prev), { residual: 0 }).rollout;
  close(roll[T - 1][T - 2], p.patterns[0].data[((0 * p.heads + prev) * T + T - 1) * T + T - 2], 1e-6, 'one-layer rollout');
  assert.deepEqual(Object.keys(ATTENTION_METHODS).slice(0, 6), ['attention-patterns', 'attention-rollout', 'attention-flow', 'logit-lens', 'head-importance', 'direct-logit-attribution']);
});
