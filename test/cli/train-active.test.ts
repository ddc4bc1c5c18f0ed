/**
 * `glassbox train` with a training-time method, end to end on iris: L1 reaches exact zeros its plain twin lacks, a
 * concept table trains a bottleneck whose concept units predict held-out concepts, prototypes train a prototype
 * network; conflicting or malformed options fail clearly, and --resume refuses a different method.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadIris } from '../../src/index.js';
import { tabularSplit } from '../../src/cli/recipes.js';
import { Model } from '../../src/model/model.js';
import { tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { glassboxWithin } from './spawn.js';

const glassbox = glassboxWithin(90_000);
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-train-active-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Fraction of exactly-zero entries over the model's weight matrices (rank-2 initializers). */
async function zeroFraction(path: string): Promise<number> {
  const model = await Model.load(path);
  let zeros = 0;
  let total = 0;
  for (const t of model.graph.initializers.values()) {
    if (t.dims.length !== 2) continue;
    const d = tensorFromProto(t).data as Float32Array;
    total += d.length;
    for (const v of d) zeros += v === 0 ? 1 : 0;
  }
  await model.dispose();
  return zeros / total;
}

const accuracy = (stdout: string) => Number(/test accuracy ([\d.]+)%/.exec(stdout)?.[1]);

test('--regularize l1 writes iris-mlp-l1.onnx with far more exact zeros than the plain recipe, at similar accuracy', async () => {
  const plain = glassbox('train', 'iris-mlp', '--out', dir, '--epochs', '30');
  assert.equal(plain.code, 0, plain.stderr);
  const l1 = glassbox('train', 'iris-mlp', '--out', dir, '--epochs', '30', '--regularize', 'l1', '--strength', '0.5');
  assert.equal(l1.code, 0, l1.stderr);
  assert.match(l1.stdout, /l1 regularisation, strength 0\.5; writes .*iris-mlp-l1\.onnx/);
  assert.match(l1.stdout, /^epoch 30\/30 .* l1 \d/m);
  const [z0, z1] = [await zeroFraction(join(dir, 'iris-mlp.onnx')), await zeroFraction(join(dir, 'iris-mlp-l1.onnx'))];
  assert.ok(z0 < 0.01 && z1 > 0.3, `exact zeros: plain ${z0}, l1 ${z1}`);
  assert.ok(accuracy(l1.stdout) >= accuracy(plain.stdout) - 10, `accuracy ${accuracy(l1.stdout)}% vs ${accuracy(plain.stdout)}%`);
  const resume = glassbox('train', 'iris-mlp', '--out', dir, '--regularize', 'l1', '--resume');
  assert.equal(resume.code, 1);
  assert.match(resume.stderr, /--resume continues the checkpoint's run, trained with \{"regularize":"l1","strength":0\.5\}/);
});

test('--concepts FILE trains a joint bottleneck whose concept units predict held-out concepts', async () => {
  // Two concepts of the raw flower, one row per training example (the recipe's split, in order).
  const { train, test: held } = await tabularSplit(loadIris);
  const concepts = (x: Float32Array, i: number) => [x[i * 4 + 2] > 4 ? 1 : 0, x[i * 4 + 3] > 1.5 ? 1 : 0];
  const all = (ds: typeof train) => ds.gather(Int32Array.from({ length: ds.size }, (_, i) => i)).x;
  const xt = all(train).data;
  const rows = Array.from({ length: train.size }, (_, i) => concepts(xt, i).join(','));
  const file = join(dir, 'concepts.csv');
  await writeFile(file, ['petal long,petal wide', ...rows].join('\n'));
  const r = glassbox('train', 'iris-mlp', '--out', dir, '--epochs', '40', '--concepts', file);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /joint concept bottleneck over 2 concepts \(petal long, petal wide\)/);
  const model = await Model.load(join(dir, 'iris-mlp-cbm.onnx'));
  const x = all(held);
  const probs = (await model.run({ x }, { capture: ['concepts.sigmoid'] })).captures['concepts.sigmoid'].data as Float32Array;
  let right = 0;
  for (let i = 0; i < held.size; i++) {
    const truth = concepts(x.data, i);
    for (let k = 0; k < 2; k++) right += (probs[i * 2 + k] > 0.5 ? 1 : 0) === truth[k] ? 1 : 0;
  }
  assert.ok(right / (2 * held.size) >= 0.9, `held-out concept accuracy ${right / (2 * held.size)}`);
  assert.ok(accuracy(r.stdout) >= 80, `task accuracy ${accuracy(r.stdout)}%`);
  await model.dispose();
  await writeFile(join(dir, 'short.csv'), ['petal long,petal wide', ...rows.slice(0, 10)].join('\n'));
  const short = glassbox('train', 'iris-mlp', '--out', dir, '--concepts', join(dir, 'short.csv'));
  assert.equal(short.code, 1);
  assert.match(short.stderr, /10 rows of concept labels, but the training set has 120 examples/);
});

test('--prototypes N trains a prototype network on tabular data (Li et al.), well above chance', () => {
  const r = glassbox('train', 'iris-mlp', '--out', dir, '--epochs', '40', '--prototypes', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /prototype autoencoder \(Li et al\. 2018\), 6 prototypes/);
  assert.ok(accuracy(r.stdout) >= 70, `accuracy ${accuracy(r.stdout)}%`);
});

test('conflicting or malformed training-time options fail with a usage message', () => {
  const bad = (args: string[], message: RegExp) => {
    const r = glassbox('train', 'iris-mlp', '--out', dir, ...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  };
  bad(['--regularize', 'dropout'], /unknown --regularize 'dropout' \(known: l1, group-lasso, l0, modularity, tree, filters\)/);
  bad(['--regularize', 'l1', '--prototypes', '2'], /give one of --regularize, --prototypes, --concepts and --adversarial/);
  bad(['--strength', '2'], /--strength, --site and --modules go with --regularize/);
  bad(['--regularize', 'filters'], /--regularize filters needs --site SITE/);
  bad(['--adversarial', '0'], /bad --adversarial '0': expected a number > 0/);
});
