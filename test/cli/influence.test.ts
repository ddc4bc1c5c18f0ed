/**
 * `glassbox influence` end to end on an MNIST MLP trained by `glassbox train mnist-mlp`: the JSON holds what the
 * library computes for the same request, the picture holds those training images, every method runs, and bad
 * requests fail with a clear message.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { Model, readPng } from '../../src/index.js';
import { loadMnist } from '../../src/data/datasets/images.js';
import { influenceFunctions } from '../../src/methods/examples/index.js';
import { gridOrigin } from '../../src/report/grid.js';

const glassbox = glassboxWithin(300_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-influence-'));
  const r = glassbox('train', 'mnist-mlp', '--limit', '2000', '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'mnist-mlp.onnx');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Ranked {
  index: number;
  label: number;
  score: number;
}

test('influence writes the library\'s top helpful and harmful examples, and a grid of them', async () => {
  const out = join(dir, 'if');
  const r = glassbox('influence', modelPath, '--data', 'mnist', '--test-index', '3', '--train-limit', '300', '--k', '4', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /influence: test example 3 \(label \d, predicted \d\); most helpful: #\d+/);
  const json = JSON.parse(await readFile(join(out, 'influence.json'), 'utf8')) as { helpful: Ranked[]; harmful: Ranked[]; checks: { name: string; passed?: boolean }[]; test: { label: number } };
  assert.equal(json.helpful.length, 4);
  for (const c of json.checks) assert.notEqual(c.passed, false, c.name);
  const train = (await loadMnist('train')).slice(0, 300);
  const test = (await loadMnist('test')).subset([3]);
  const model = await Model.load(modelPath);
  try {
    const lib = await influenceFunctions(model, train, test, { l2: 1e-3, damping: 0.01 });
    assert.deepEqual(json.helpful.map((e) => e.index), lib.helpful(0, 4).map((e) => e.index));
    assert.deepEqual(json.harmful.map((e) => e.index), lib.harmful(0, 4).map((e) => e.index));
    json.helpful.forEach((e, i) => assert.ok(Math.abs(e.score - lib.helpful(0, 4)[i].score) <= 1e-9 * Math.max(1, Math.abs(e.score))));
    assert.ok(json.helpful.every((e) => e.score < 0) && json.harmful.every((e) => e.score > 0), 'helpful scores are negative, harmful positive');
  } finally {
    await model.dispose();
  }
  // The grid: row 0 the test image then the helpful ones, row 1 a blank then the harmful ones (scale 2, pad 1).
  const png = await readPng(join(out, 'influence.png'));
  const width = png.shape[png.shape.length - 1];
  assert.equal(width, 5 * 57 + 1);
  const images = [test.gather([0]).x.data, ...json.helpful.map((e) => train.gather([e.index]).x.data)];
  images.forEach((img, i) => {
    const [oy, ox] = gridOrigin(i, 28, 28, { columns: 5, pad: 1, scale: 2, count: 10 });
    for (const [py, px] of [[14, 14], [10, 18], [20, 9]]) {
      const got = png.data[(oy + 2 * py) * width + ox + 2 * px];
      assert.ok(Math.abs(got - img[py * 28 + px]) <= 1 / 255 + 1e-6, `image ${i} pixel (${py}, ${px})`);
    }
  });
});

test('influence runs TracIn, representer points and nearest neighbours', async () => {
  for (const method of ['tracin', 'representer', 'neighbours']) {
    const out = join(dir, method);
    const r = glassbox('influence', modelPath, '--test-index', '0', '--train-limit', '200', '--method', method, '--k', '3', '--out', out);
    assert.equal(r.code, 0, `${method}: ${r.stderr}`);
    const json = JSON.parse(await readFile(join(out, 'influence.json'), 'utf8')) as { helpful: Ranked[]; checks: { name: string; passed?: boolean }[] };
    assert.equal(json.helpful.length, 3, method);
    for (const c of json.checks) assert.notEqual(c.passed, false, `${method}: ${c.name}`);
    // Every method ranks best first.
    const s = json.helpful.map((e) => e.score);
    assert.ok(s.every((v, i) => i === 0 || v <= s[i - 1]), `${method}: ${s.join(', ')}`);
  }
});

test('influence refuses bad requests with a clear message', () => {
  const cases: [string[], number, RegExp][] = [
    [['influence', modelPath, '--test-index', '0'], 2, /influence needs --out DIR/],
    [['influence', modelPath, '--out', dir], 2, /influence needs --test-index I/],
    [['influence', modelPath, '--test-index', '0', '--method', 'shapley', '--out', dir], 2, /unknown --method 'shapley' \(known: influence, tracin, representer, neighbours\)/],
    [['influence', modelPath, '--test-index', '0', '--data', 'cifar', '--out', dir], 2, /unknown --data 'cifar'/],
    [['influence', modelPath, '--test-index', '99999', '--out', dir], 2, /the mnist test set has 10000 examples/],
    [['influence', modelPath, '--test-index', '0', '--k', '0', '--out', dir], 2, /bad --k '0'/],
    [['influence', modelPath, '--test-index', '0', '--method', 'neighbours', '--site', 'fc9', '--out', dir], 1, /fc9/],
  ];
  for (const [args, code, message] of cases) {
    const r = glassbox(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
