/**
 * `glassbox counterfactual` end to end on an MLP trained here on raw iris features (its graph standardises inside):
 * the printed changes are the JSON's, the model run again on the JSON's x' gives the target class, x' is closer than
 * the nearest example of that class, and bad requests fail with a clear message.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { glassboxWithin } from './spawn.js';
import { loadIris, Model, type Dataset } from '../../src/index.js';
import { counterfactual } from '../../src/cli/counterfactual.js';
import { UsageError } from '../../src/cli/errors.js';
import { fmt } from '../../src/methods/rules/perturb.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { printed, rawFeatureMlp } from '../helpers.js';

const glassbox = glassboxWithin(60_000);


let dir: string;
let modelPath: string;
let iris: Dataset<'float32'>;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-counterfactual-'));
  iris = await loadIris();
  modelPath = join(dir, 'iris-mlp.onnx');
  await writeFile(modelPath, encodeModel(await rawFeatureMlp(iris, { epochs: 60 })));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface CounterfactualJson {
  x: number[];
  counterfactual: number[];
  changes: { feature: number; name: string; from: number; to: number }[];
  prediction: { class: number; name: string };
  original: { class: number; name: string };
  distance: number;
  checks: { name: string; passed?: boolean; value: number }[];
}

/** Example 60 of iris, a versicolor, sent to virginica: what the printout and the JSON must say. */
async function checkOutput(stdout: string, jsonPath: string): Promise<void> {
  const json = JSON.parse(await readFile(jsonPath, 'utf8')) as CounterfactualJson;
  assert.equal(json.original.name, 'versicolor');
  assert.equal(json.prediction.name, 'virginica');
  assert.match(stdout, /^iris example 60: predicted versicolor \(p = [\d.]+\)$/m);
  assert.match(stdout, /^new prediction: virginica \(p = [\d.]+\)$/m);
  assert.ok(json.changes.length >= 1);
  const row = iris.get(60).x.data;
  for (const c of json.changes) {
    assert.equal(c.from, row[c.feature]);
    assert.ok(stdout.includes(`${fmt(c.from)} → ${fmt(c.to)}`), `${c.name} missing from\n${stdout}`);
  }
  // The model itself, run here on the written x', gives virginica.
  const model = await Model.load(modelPath);
  const z = (await model.run({ x: Tensor.float32(json.counterfactual, [1, 4]) })).outputs.logits.data as Float32Array;
  await model.dispose();
  assert.equal(z.indexOf(Math.max(...z)), 2);
  const closer = json.checks.find((c) => c.name === 'closer than the nearest example of the target class')!;
  assert.ok(closer.passed && json.distance === closer.value, JSON.stringify(closer));
}

test('counterfactual (in process) prints the changes and the new prediction, and writes them as JSON', async () => {
  const json = join(dir, 'in-process.json');
  const out = await printed(() => counterfactual([modelPath, '--data', 'iris', '--index', '60', '--target', 'virginica', '--json', json]));
  await checkOutput(out, json);
  await assert.rejects(counterfactual([modelPath, '--data', 'iris', '--index', '60', '--target', 'rose']), (e: Error) => e instanceof UsageError && /bad --target 'rose'.*setosa, versicolor, virginica/.test(e.message));
  await assert.rejects(counterfactual([modelPath, '--data', 'iris', '--index', '60', '--target', 'versicolor']), /already predicted as class 1/);
  await assert.rejects(counterfactual([modelPath, '--data', 'iris', '--index', '60', '--immutable', 'petal size']), /bad --immutable 'petal size'/);
  await assert.rejects(counterfactual([modelPath, '--data', 'mnist', '--index', '60']), /explains tabular examples/);
});

test('glassbox counterfactual runs as a command', async () => {
  const json = join(dir, 'spawned.json');
  const r = glassbox('counterfactual', modelPath, '--data', 'iris', '--index', '60', '--target', '2', '--json', json);
  assert.equal(r.code, 0, r.stderr);
  await checkOutput(r.stdout, json);
  const bad = glassbox('counterfactual', modelPath, '--data', 'iris');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /counterfactual needs --index I/);
});
