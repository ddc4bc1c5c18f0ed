/**
 * `glassbox probe` end to end on an MNIST CNN trained by `glassbox train mnist-cnn`: probe.json holds what the
 * library computes for the same settings, digit identity is read best at the deepest site asked, the stroke target is
 * scored by R², and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { loadMnist, Model } from '../../src/index.js';
import { probeLayers } from '../../src/methods/representations/probing.js';

const glassbox = glassboxWithin(300_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-probe-'));
  const r = glassbox('train', 'mnist-cnn', '--limit', '4000', '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'mnist-cnn.onnx');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface SiteJson { site: string; metric: string; test: number; majority: number; selectivity: number; control: { test: number }; randomNetwork: { test: number } }

test('probe writes per-site accuracy, control, selectivity and the random-network baseline: the library\'s numbers', async () => {
  const out = join(dir, 'class');
  const r = glassbox('probe', modelPath, '--data', 'mnist', '--site', 'c1.relu', '--site', 'flatten.flatten', '--limit', '800', '--epochs', '10', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /flatten\.flatten: accuracy 0\.\d+ \(train .*\), control 0\.\d+, selectivity -?\d\.\d+, random network 0\.\d+/);
  const json = JSON.parse(await readFile(join(out, 'probe.json'), 'utf8')) as { sites: SiteJson[]; best: string };
  assert.deepEqual(json.sites.map((s) => s.site), ['c1.relu', 'flatten.flatten']);
  assert.equal(json.best, 'flatten.flatten');
  const [c1, flat] = json.sites;
  assert.ok(flat.test > c1.test && flat.test > 0.7 && flat.selectivity > 0, JSON.stringify(json.sites));
  const model = await Model.load(modelPath);
  try {
    const lib = await probeLayers(model, (await loadMnist('test')).slice(0, 800), { sites: ['c1.relu', 'flatten.flatten'], epochs: 10, seed: 0 });
    lib.sites.forEach((s, i) => {
      assert.equal(json.sites[i].test, s.test, `${s.site}: held-out accuracy as the library computes it`);
      assert.equal(json.sites[i].control.test, s.control!.test);
      assert.equal(json.sites[i].randomNetwork.test, s.randomNetwork!.test);
    });
  } finally {
    await model.dispose();
  }
});

test('probe --target stroke scores mean top-half ink by ridge R²; bad requests fail clearly', () => {
  const out = join(dir, 'stroke');
  const r = glassbox('probe', modelPath, '--data', 'mnist', '--site', 'c1.relu', '--target', 'stroke', '--limit', '600', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /c1\.relu: r2 0\.[89]\d*/);
  const bad = (args: string[], message: RegExp, code = 2) => {
    const b = glassbox('probe', ...args);
    assert.equal(b.code, code, b.stderr);
    assert.match(b.stderr, message);
  };
  bad([modelPath, '--site', 'c1.relu'], /probe needs --out DIR/);
  bad([modelPath, '--out', out], /probe needs --site SITE/);
  bad([modelPath, '--site', 'c1.relu', '--data', 'cifar', '--out', out], /unknown --data 'cifar' \(known: mnist, fashion-mnist\)/);
  bad([modelPath, '--site', 'c1.relu', '--target', 'stroke', '--kind', 'softmax', '--out', out], /--target stroke is continuous and needs --kind ridge/);
  bad([modelPath, '--site', 'c1.rleu', '--out', out], /c1\.relu/, 1);
});
