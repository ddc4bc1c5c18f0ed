/**
 * `glassbox anchor` end to end on an MLP trained here on raw iris features (its graph standardises inside): the
 * printed rule is the JSON's, its thresholds are quartiles of the iris features, the anchor's precision clears τ,
 * and bad requests fail with a clear message.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { glassboxWithin } from './spawn.js';
import { loadIris, type Dataset } from '../../src/index.js';
import { anchor } from '../../src/cli/anchor.js';
import { UsageError } from '../../src/cli/errors.js';
import { percentile } from '../../src/methods/rules/perturb.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { printed, rawFeatureMlp } from '../helpers.js';

const glassbox = glassboxWithin(60_000);


let dir: string;
let modelPath: string;
let iris: Dataset<'float32'>;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-anchor-'));
  iris = await loadIris();
  modelPath = join(dir, 'iris-mlp.onnx');
  await writeFile(modelPath, encodeModel(await rawFeatureMlp(iris, { epochs: 60 })));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface AnchorJson {
  rule: string;
  found: boolean;
  prediction: number;
  precision: number;
  precisionBounds: [number, number];
  coverage: number;
  predicates: { feature: number; op: string; threshold: number }[];
  index: number;
}

/** What the JSON and the printout must say, whichever way the command ran. */
async function checkOutput(stdout: string, jsonPath: string): Promise<void> {
  const json = JSON.parse(await readFile(jsonPath, 'utf8')) as AnchorJson;
  assert.equal(json.index, 0);
  assert.ok(json.found, stdout);
  assert.match(json.rule, /^IF .+ THEN setosa$/);
  assert.ok(stdout.includes(`  ${json.rule}\n`), stdout);
  assert.match(stdout, /precision 1\.000|precision 0\.9\d\d/);
  assert.match(stdout, /coverage 0\.\d{3}/);
  assert.ok(json.precisionBounds[0] > 0.95, `lower bound ${json.precisionBounds[0]}`);
  // Every threshold is a quartile of its feature over the dataset (numpy's linear percentile).
  const all = iris.gather(Array.from({ length: iris.size }, (_, i) => i)).x.data;
  for (const p of json.predicates) {
    const col = Float64Array.from({ length: iris.size }, (_, r) => all[r * 4 + p.feature]).sort();
    const quartiles = [25, 50, 75].map((q) => Math.fround(percentile(col, q)));
    assert.ok(quartiles.includes(p.threshold), `threshold ${p.threshold} of feature ${p.feature} is not a quartile (${quartiles})`);
    const v = all[p.feature];
    assert.ok(p.op === '>' ? v > p.threshold : v <= p.threshold, 'iris row 0 satisfies its anchor');
  }
}

test('anchor (in process) prints the rule, precision and coverage, and writes them as JSON', async () => {
  const json = join(dir, 'in-process.json');
  const out = await printed(() => anchor([modelPath, '--data', 'iris', '--index', '0', '--seed', '1', '--json', json]));
  await checkOutput(out, json);
  await assert.rejects(anchor([modelPath, '--data', 'irs', '--index', '0']), (e: Error) => e instanceof UsageError && /unknown --data 'irs' \(known: iris, wine, breast-cancer, mnist\)/.test(e.message));
  await assert.rejects(anchor([modelPath, '--data', 'iris', '--index', '150']), /bad --index '150': expected an integer in 0\.\.149/);
  await assert.rejects(anchor([modelPath, '--data', 'iris', '--index', '1', '--threshold', '2']), /bad --threshold '2'/);
  await assert.rejects(anchor([modelPath, '--data', 'wine', '--index', '1']), /takes inputs \[4\] per example; wine has \[13\]/);
  await assert.rejects(anchor([modelPath, '--index', '1']), /anchor needs --data NAME/);
});

test('glassbox anchor runs as a command', async () => {
  const json = join(dir, 'spawned.json');
  const r = glassbox('anchor', modelPath, '--data', 'iris', '--index', '0', '--seed', '1', '--json', json);
  assert.equal(r.code, 0, r.stderr);
  await checkOutput(r.stdout, json);
  const bad = glassbox('anchor', modelPath, '--data', 'iris', '--index', 'x');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bad --index 'x'/);
});
