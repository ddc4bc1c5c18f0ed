/**
 * `glassbox rules` end to end on an MLP trained here on raw iris features: the printed rules and rules.json are the
 * library's extraction for the same settings, in raw units with class names; bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { loadIris, Model } from '../../src/index.js';
import { tabularSplit } from '../../src/cli/recipes.js';
import { rules } from '../../src/cli/rules.js';
import { mlp } from '../../src/model/builders/mlp.js';
import { Trainer } from '../../src/model/train/trainer.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { extractRules } from '../../src/methods/rules/pedagogical.js';
import { formatRules } from '../../src/methods/rules/format.js';

const glassbox = glassboxWithin(60_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-rules-'));
  // The command's own split (the tabular recipes' 80/20): the network learns from the training part only.
  const { train } = await tabularSplit(loadIris);
  const t = await Trainer.create(mlp({ inputs: 4, hidden: [16], classes: 3, seed: 1 }), { optimizer: { kind: 'adam', lr: 0.02 } });
  await t.fit(train, { epochs: 80, batchSize: 16, seed: 1 });
  modelPath = join(dir, 'iris-mlp.onnx');
  await writeFile(modelPath, encodeModel(t.exportModel()));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The library's extraction with the command's settings for iris. */
async function library(kind: 'tree' | 'rules') {
  const { train, test } = await tabularSplit(loadIris);
  const model = await Model.load(modelPath);
  try {
    return await extractRules(model, train, test, { kind, maxDepth: 3, minSamples: 40, queries: 2 * train.size, seed: 0 });
  } finally {
    await model.dispose();
  }
}

interface RulesJson {
  method: string;
  rules: { if: { feature: string; op: string; threshold: number }[]; then: string; coverage: number; fidelity: number | null }[];
  fidelity: number;
  baselines: { majority: number; noQueries: number };
  size: { rules: number; depth: number };
}

test('rules prints the library\'s tree with coverage and fidelity, and writes it as JSON', async () => {
  const json = join(dir, 'rules.json');
  const r = glassbox('rules', modelPath, '--data', 'iris', '--max-depth', '3', '--json', json);
  assert.equal(r.code, 0, r.stderr);
  const lib = await library('tree');
  assert.ok(lib.networkAccuracy >= 0.9 && lib.fidelity > lib.baselines.majority, `network ${lib.networkAccuracy}, fidelity ${lib.fidelity}`);
  assert.ok(r.stdout.includes(formatRules(lib)), r.stdout);
  assert.match(r.stdout, /^IF petal (length|width) \(cm\) <= \d\.\d+.* THEN setosa {2}\[coverage 0\.\d\d, fidelity 1\.00\]$/m);
  const out = JSON.parse(await readFile(json, 'utf8')) as RulesJson;
  assert.equal(out.method, 'trepan-tree');
  assert.equal(out.fidelity, lib.fidelity);
  assert.equal(out.rules.length, lib.rules.rules.length);
  assert.deepEqual(out.rules[0].if[0], { feature: lib.featureNames[lib.rules.rules[0].conditions[0].feature], op: lib.rules.rules[0].conditions[0].op, threshold: lib.rules.rules[0].conditions[0].threshold });
  assert.ok(out.size.depth <= 3);
});

test('the exported command runs in-process: --kind rules prints a decision list ending in a default', async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await rules([modelPath, '--data', 'iris', '--kind', 'rules']);
  } finally {
    console.log = log;
  }
  const text = lines.join('\n');
  const lib = await library('rules');
  assert.ok(text.includes(formatRules(lib)), text);
  assert.match(text, /^covering-rules on iris: fitted to the network's labels on 120 examples and 240 queries/);
  assert.match(text, /^ELSE (setosa|versicolor|virginica) {2}\[coverage 0\.\d\d, fidelity [01]\.\d\d\]$/m);
  await assert.rejects(rules([modelPath, '--data', 'cifar']), /unknown --data 'cifar' \(known: iris, wine, breast-cancer, mnist\)/);
  await assert.rejects(rules([modelPath, '--data', 'iris', '--kind', 'forest']), /bad --kind 'forest': expected tree or rules/);
  await assert.rejects(rules([modelPath, '--data', 'iris', '--max-depth', 'x']), /bad --max-depth 'x'/);
  // A model reading 4 features cannot explain 784-pixel images.
  await assert.rejects(rules([modelPath, '--data', 'mnist', '--limit', '50']), /input 'x' must have shape \[N, 4\], got \[50, 1, 28, 28\]/);
});

test('rules fails clearly on bad requests', () => {
  const bad = (args: string[], message: RegExp, code = 2) => {
    const b = glassbox('rules', ...args);
    assert.equal(b.code, code, b.stderr);
    assert.match(b.stderr, message);
  };
  bad([modelPath], /rules needs --data NAME/);
  bad([modelPath, '--data', 'iris', '--kind', 'forest'], /bad --kind 'forest'/);
  bad([join(dir, 'missing.onnx'), '--data', 'iris'], /missing\.onnx/, 1);
});
