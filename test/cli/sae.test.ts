/**
 * `glassbox sae train|inspect` end to end on an MNIST MLP trained by `glassbox train mnist-mlp`: the metrics JSON
 * holds what the library computes from the saved autoencoder, the page's top examples re-encode to their recorded
 * activations, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { Model } from '../../src/index.js';
import { loadMnist } from '../../src/data/datasets/images.js';
import { evaluateSae, siteRows, siteSource, SparseAutoencoder } from '../../src/methods/representations/sae.js';

const glassbox = glassboxWithin(300_000);
const SITE = 'fc1.relu';

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-sae-'));
  const r = glassbox('train', 'mnist-mlp', '--limit', '6000', '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'mnist-mlp.onnx');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('sae train writes an autoencoder whose recorded metrics the library reproduces', async () => {
  const out = join(dir, 'sae');
  const r = glassbox('sae', 'train', modelPath, '--site', SITE, '--data', 'mnist', '--features', '256', '--topk', '16', '--steps', '200', '--limit', '3000', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /fc1\.relu: 256 features, FVE [\d.]+, L0 16, \d+ dead, loss recovered/);
  const json = JSON.parse(await readFile(join(out, `${SITE}.sae.json`), 'utf8')) as {
    test: { fve: number; l0: number; dead: number[] }; spliced: { recovered: number; clean: number; zeroAblated: number }; checks: { name: string; passed?: boolean }[];
  };
  const sae = await SparseAutoencoder.load(join(out, `${SITE}.sae.onnx`));
  const model = await Model.load(modelPath);
  try {
    assert.deepEqual(sae.sparsity, { kind: 'topk', k: 16 });
    const m = await evaluateSae(sae, siteSource(model, (await loadMnist('test')).slice(0, 600), SITE));
    assert.ok(Math.abs(m.fve - json.test.fve) < 1e-6, `${m.fve} vs ${json.test.fve}`);
    assert.deepEqual(m.dead, json.test.dead);
    assert.ok(json.test.l0 <= 16);
    assert.ok(json.spliced.clean < json.spliced.zeroAblated);
    assert.ok(json.spliced.recovered > 0.8, `loss recovered ${json.spliced.recovered}`);
    assert.ok(json.checks.every((c) => c.passed !== false), JSON.stringify(json.checks));
  } finally {
    await sae.dispose();
    await model.dispose();
  }

  const page = join(dir, 'page');
  const s = glassbox('sae', 'inspect', modelPath, join(out, `${SITE}.sae.onnx`), '--site', SITE, '--data', 'mnist', '--limit', '300', '--features', '4', '--k', '5', '--out', page);
  assert.equal(s.code, 0, s.stderr);
  const html = await readFile(join(page, `${SITE}.sae.html`), 'utf8');
  const top = JSON.parse(await readFile(join(page, `${SITE}.sae.top.json`), 'utf8')) as { features: { feature: number; examples: number[]; values: number[] }[] };
  assert.equal(top.features.length, 4);
  for (const f of top.features) assert.match(html, new RegExp(`<h3>feature ${f.feature}</h3>[\\s\\S]*feature-${f.feature}\\.png`));
  // The recorded top example of the first feature, re-encoded, has the recorded activation.
  const f0 = top.features[0];
  const m2 = await Model.load(modelPath);
  const sae2 = await SparseAutoencoder.load(join(out, `${SITE}.sae.onnx`));
  try {
    const x = (await loadMnist('test')).gather([f0.examples[0]]).x;
    const act = (await m2.run({ x }, { capture: [SITE] })).captures[SITE];
    const { latents } = await sae2.encode(siteRows(act, 'positions').rows);
    assert.ok(Math.abs(latents[f0.feature] - f0.values[0]) < 1e-4);
  } finally {
    await sae2.dispose();
    await m2.dispose();
  }
});

test('sae rejects bad requests with a clear message', () => {
  const noSparsity = glassbox('sae', 'train', modelPath, '--site', SITE, '--features', '8', '--out', dir);
  assert.notEqual(noSparsity.code, 0);
  assert.match(noSparsity.stderr, /exactly one of --topk K or --l1 X/);
  const badSite = glassbox('sae', 'train', modelPath, '--site', 'fc1.rleu', '--features', '8', '--topk', '2', '--out', dir);
  assert.notEqual(badSite.code, 0);
  assert.match(badSite.stderr, /fc1\.relu/);
  const bigK = glassbox('sae', 'train', modelPath, '--site', SITE, '--features', '8', '--topk', '9', '--out', dir);
  assert.match(bigK.stderr, /--topk 9: more than the 8 features/);
  const sub = glassbox('sae', 'fit');
  assert.match(sub.stderr, /unknown sae subcommand 'fit'/);
});
