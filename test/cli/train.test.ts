/**
 * `glassbox train` end to end on the Brown-corpus language model: the run must beat the unigram baseline, the
 * baseline it prints must be the closed-form unigram cross-entropy of the two token streams, and the .onnx it writes
 * must be the trained model (its loss, recomputed here from its logits, is the one the trainer reported).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brownWords, Model, priorBaseline, Tensor, type BrownWords } from '../../src/index.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { dataset } from '../../src/data/datasets/dataset.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function glassbox(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Mean cross-entropy (nats) of a unigram model fitted, add-one smoothed, to `fit` and scored on `score`. */
function unigramCrossEntropy(fit: ArrayLike<number>, score: ArrayLike<number>, vocab: number): number {
  const counts = new Float64Array(vocab);
  for (let i = 0; i < fit.length; i++) counts[fit[i]]++;
  const total = fit.length + vocab;
  let sum = 0;
  for (let i = 0; i < score.length; i++) sum -= Math.log((counts[score[i]] + 1) / total);
  return sum / score.length;
}

let dir: string;
let brown: BrownWords;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-train-'));
  brown = await brownWords({ vocabSize: 4096, context: 32 });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('brownWords holds out every tenth text, keeps tags aligned with windows, and maps rare words to <unk>', () => {
  assert.equal(brown.testCorpus.documents.length, 50);
  assert.equal(brown.trainCorpus.documents.length, 450);
  assert.deepEqual(brown.testCorpus.documents.slice(0, 3).map((d) => d.id), ['ca10', 'ca20', 'ca30']);
  assert.equal(brown.trainCorpus.numTokens + brown.testCorpus.numTokens, 1_161_192);
  assert.equal(brown.vocabulary.size, 4096);
  // Window 7, position 5 of the test set is token windowStart(7) + 5 of the test corpus (and its next word is y).
  const { x, y } = brown.test.get(7);
  const at = brown.test.windowStart(7) + 5;
  const word = (i: number) => brown.testCorpus.token(i).word.toLowerCase();
  const expect = (w: string) => (brown.vocabulary.has(w) ? w : '<unk>');
  assert.equal(brown.vocabulary.decode([x.at(5)])[0], expect(word(at)));
  assert.equal(brown.vocabulary.decode([y.at(5)])[0], expect(word(at + 1)));
});

test('priorBaseline is the add-one unigram cross-entropy and the majority-class accuracy', () => {
  const labels = (ys: number[]) => dataset({ name: 't', size: ys.length, inputShape: [1], inputDType: 'float32', numClasses: 3, gather: (ix) => ({ x: Tensor.zeros('float32', [ix.length, 1]), y: Tensor.int64(Array.from(ix, (i) => ys[i]), [ix.length]) }) });
  const b = priorBaseline(labels([0, 0, 0, 1]), labels([0, 1, 2, 2]));
  // p = (4, 2, 1) / 7: loss = −(ln 4/7 + ln 2/7 + 2 ln 1/7) / 4; the majority class 0 is right once in four.
  assert.ok(Math.abs(b.loss - -(Math.log(4 / 7) + Math.log(2 / 7) + 2 * Math.log(1 / 7)) / 4) < 1e-12);
  assert.equal(b.accuracy, 0.25);
});

test('glassbox train brown-gpt beats the unigram baseline and writes the model it evaluated', async () => {
  const limit = 9600; // 300 steps of 32 windows
  const r = glassbox('train', 'brown-gpt', '--limit', String(limit), '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  const baseline = Number(/baseline, the unigram model: test loss ([\d.]+)/.exec(r.stdout)?.[1]);
  const reported = Number(/test accuracy [\d.]+%, loss ([\d.]+)/.exec(r.stdout)?.[1]);

  // The baseline, recomputed from the token streams: the targets are the stream shifted by one, window by window.
  const T = brown.train.context;
  const ids = (d: typeof brown.train, n: number) => Int32Array.from({ length: n * T }, (_, i) => Number(d.get(Math.floor(i / T)).y.at(i % T)));
  const expected = unigramCrossEntropy(ids(brown.train, limit), ids(brown.test, brown.test.size), 4096);
  assert.ok(Math.abs(baseline - expected) < 1e-4, `printed baseline ${baseline}, closed form ${expected}`);
  assert.ok(reported < baseline - 0.2, `test loss ${reported} should beat the unigram baseline ${baseline}`);

  // The written model: its cross-entropy over the whole test set, from its logits, is the loss the trainer reported.
  const path = join(dir, 'brown-gpt.onnx');
  const meta = decodeModel(await readFile(path)).metadataProps.find((p) => p.key === 'glassbox.trained');
  assert.ok(meta, 'the model records how it was trained');
  const summary = JSON.parse(meta.value) as { testLoss: number; baselineLoss: number; steps: number };
  assert.equal(summary.steps, limit / 32);
  const model = await Model.load(path);
  try {
    let sum = 0;
    let n = 0;
    for (const b of brown.test.batches(256)) {
      const logits = (await model.run({ tokens: b.x })).outputs.logits.data as Float32Array;
      const V = 4096;
      for (let p = 0; p < b.y.size; p++) {
        let max = -Infinity;
        for (let c = 0; c < V; c++) max = Math.max(max, logits[p * V + c]);
        let z = 0;
        for (let c = 0; c < V; c++) z += Math.exp(logits[p * V + c] - max);
        sum += max + Math.log(z) - logits[p * V + Number(b.y.data[p])];
        n++;
      }
    }
    const loss = sum / n;
    assert.ok(Math.abs(loss - summary.testLoss) < 1e-3, `recomputed ${loss}, recorded ${summary.testLoss}`);
    assert.ok(Math.abs(loss - reported) < 1e-3, `recomputed ${loss}, printed ${reported}`);
  } finally {
    await model.dispose();
  }
});

test('train refuses bad recipes and options with a clear message', () => {
  const cases: [string[], RegExp][] = [
    [['train', 'imagenet'], /unknown recipe 'imagenet' \(known: mnist-cnn, mnist-mlp, fashion-cnn, mnist-backdoor, induction-attn, brown-gpt, iris-mlp, wine-mlp, breast-cancer-mlp\)/],
    [['train', 'brown-gpt', '--lr-decay', '2'], /bad --lr-decay 2/],
    [['train', 'brown-gpt', '--optimizer', 'lbfgs'], /bad --optimizer 'lbfgs'/],
    [['train', 'brown-gpt', '--epochs', '1.5'], /bad --epochs '1.5'/],
  ];
  for (const [args, pattern] of cases) {
    const r = glassbox(...args);
    assert.equal(r.code, 2, `usage errors exit 2: ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});
