/**
 * `glassbox similarity` end to end on two MLPs written to disk: the JSON holds the matrix the library computes on the
 * same MNIST images, the PNG is the heat map of that matrix (one 24-px cell per layer pair), a model compared with
 * itself has CKA 1 on the diagonal, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { Model, readPng } from '../../src/index.js';
import { loadMnist } from '../../src/data/datasets/images.js';
import { mlp } from '../../src/model/builders/index.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { layerSimilarity } from '../../src/methods/representations/similarity.js';

const glassbox = glassboxWithin(120_000);
let dir: string;
const paths: string[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-similarity-'));
  for (const seed of [1, 2]) {
    const path = join(dir, `mlp${seed}.onnx`);
    await writeFile(path, encodeModel(mlp({ inputs: [1, 28, 28], hidden: [32, 16], classes: 10, seed })));
    paths.push(path);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('similarity writes the layer × layer matrix the library computes, as JSON and a heat map', async () => {
  const out = join(dir, 'ab');
  const r = glassbox('similarity', paths[0], paths[1], '--data', 'mnist', '--out', out, '--limit', '300', '--permutations', '2');
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(await readFile(join(out, 'similarity.json'), 'utf8')) as { sitesA: string[]; sitesB: string[]; values: number[][]; bounds: number[][]; n: number };
  assert.deepEqual(json.sitesA, ['fc1.relu', 'fc2.relu', 'logits']);
  assert.equal(json.n, 300);
  const [a, b] = await Promise.all(paths.map((p) => Model.load(p)));
  const lib = await layerSimilarity(a, b, (await loadMnist('test')).slice(0, 300), { sitesA: json.sitesA, permutations: 0 });
  lib.values.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - json.values[i][j]) < 1e-9, `cell ${i},${j}`)));
  const png = await readPng(join(out, 'similarity.png'));
  assert.deepEqual(png.shape.slice(2), [3 * 24, 3 * 24]);
  // The brightest cell of the picture is the largest score.
  const flat = json.values.flat();
  const best = flat.indexOf(Math.max(...flat));
  const [bi, bj] = [Math.floor(best / 3), best % 3];
  const green = (i: number, j: number) => png.data[(1 * 72 + i * 24 + 12) * 72 + j * 24 + 12] as number;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) assert.ok(green(bi, bj) >= green(i, j));
});

test('a model compared with itself has CKA 1 on the diagonal; bad requests fail clearly', async () => {
  const out = join(dir, 'aa');
  const r = glassbox('similarity', paths[0], paths[0], '--out', out, '--limit', '200', '--permutations', '0');
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(await readFile(join(out, 'similarity.json'), 'utf8')) as { values: number[][] };
  json.values.forEach((row, i) => assert.ok(Math.abs(row[i] - 1) < 1e-6));
  const bad = glassbox('similarity', paths[0], paths[1], '--out', out, '--measure', 'nope');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unknown --measure 'nope'/);
  const site = glassbox('similarity', paths[0], paths[1], '--out', out, '--site-a', 'fc9.relu');
  assert.notEqual(site.code, 0);
  assert.match(site.stderr, /fc9\.relu/);
});
