/**
 * `glassbox tcav` end to end on an MNIST CNN trained by `glassbox train mnist-cnn`: a concept made of images of the
 * target class itself is significant for that class, the JSON's p-values are the t-test and Bonferroni of its own
 * scores, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { writeNpy } from '../../src/index.js';
import { loadMnist } from '../../src/data/datasets/images.js';
import { tTest } from '../../src/methods/representations/stats.js';

const glassbox = glassboxWithin(300_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-tcav-'));
  const r = glassbox('train', 'mnist-cnn', '--limit', '6000', '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'mnist-cnn.onnx');
  // Concept: 40 training images of the digit 3 (the target class itself).
  const train = await loadMnist('train');
  const threes = Array.from({ length: 2000 }, (_, i) => i).filter((i) => train.labels![i] === 3).slice(0, 40);
  await writeNpy(join(dir, 'threes.npy'), train.gather(threes).x);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Row { concept: string; mean: number; p: number; pCorrected: number; significant: boolean; scores: number[]; randomScores: number[]; cavAccuracies: number[] }

test('tcav writes scores and p-values: the target class as a concept is significant for it', async () => {
  const out = join(dir, 'out');
  const npy = join(dir, 'threes.npy');
  const r = glassbox('tcav', modelPath, '--site', 'c2.relu', '--concept', npy, '--concept', 'concepts:stripes-horizontal', '--target', '3', '--random', '10', '--examples', '40', '--inputs', '60', '--seed', '1', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /threes\.npy: TCAV [\d.]+ ± [\d.]+ \(random [\d.]+\), p \S+, corrected \S+ significant/);
  const json = JSON.parse(await readFile(join(out, 'tcav.json'), 'utf8')) as { concepts: Row[]; target: number; inputs: number };
  assert.equal(json.target, 3);
  assert.equal(json.concepts.length, 2);
  const [threes, stripes] = json.concepts;
  assert.equal(threes.concept, npy);
  assert.equal(stripes.concept, 'concepts:stripes-horizontal');
  assert.ok(threes.significant && threes.mean > 0.8, `threes: ${threes.mean}, corrected p ${threes.pCorrected}`);
  assert.ok(threes.cavAccuracies.every((a) => a >= 0.8), `CAV accuracies ${threes.cavAccuracies}`);
  for (const row of json.concepts) {
    assert.equal(row.scores.length, 10);
    const t = tTest(row.scores, row.randomScores);
    assert.ok(Math.abs(t.p - row.p) <= 1e-12, `${row.concept}: p ${row.p} vs recomputed ${t.p}`);
    assert.equal(row.pCorrected, Math.min(1, 2 * row.p));
  }
});

test('tcav rejects bad requests with a clear message', () => {
  const unknownSite = glassbox('tcav', modelPath, '--site', 'c2.rel', '--concept', 'concepts:dots', '--target', '3', '--out', join(dir, 'x'));
  assert.equal(unknownSite.code, 1);
  assert.match(unknownSite.stderr, /c2\.rel/);
  const noTarget = glassbox('tcav', modelPath, '--site', 'c2.relu', '--concept', 'concepts:dots', '--out', join(dir, 'x'));
  assert.equal(noTarget.code, 2);
  assert.match(noTarget.stderr, /tcav needs --target CLASS/);
  const oneRandom = glassbox('tcav', modelPath, '--site', 'c2.relu', '--concept', 'concepts:dots', '--target', '3', '--random', '1', '--out', join(dir, 'x'));
  assert.equal(oneRandom.code, 2);
  assert.match(oneRandom.stderr, /bad --random '1': expected an integer ≥ 2/);
  const badConcept = glassbox('tcav', modelPath, '--site', 'c2.relu', '--concept', 'concepts:zebra', '--target', '3', '--out', join(dir, 'x'));
  assert.notEqual(badConcept.code, 0);
  assert.match(badConcept.stderr, /unknown concept 'concepts:zebra'/);
});
