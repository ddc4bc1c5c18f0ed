/**
 * `glassbox explain` and `glassbox methods` end to end: the files written hold what the library computes, the checks
 * are recorded, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model, readNpy, readPng } from '../../src/index.js';
import { integratedGradients } from '../../src/methods/attribution/gradient.js';
import { ATTRIBUTION_METHODS } from '../../src/methods/registry.js';
import { HIDDEN_METHODS } from '../../src/methods/hidden.js';
import { REPRESENTATION_METHODS } from '../../src/methods/representations/index.js';
import { RULE_METHODS } from '../../src/methods/rules/index.js';
import { ACTIVE_METHODS } from '../../src/methods/active/index.js';
import { EXAMPLE_EXPLANATION_METHODS } from '../../src/methods/examples/index.js';
import { METRICS } from '../../src/evaluate/index.js';
import { sanityMetrics } from '../../src/evaluate/sanity/index.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CNN = join(ROOT, 'fixtures/torch/cnn.onnx');
const CNN_INPUT = join(ROOT, 'fixtures/torch/cnn.input.npy');

function glassbox(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-explain-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('explain writes the integrated gradients the library computes, the convergence delta, and heatmaps', async () => {
  const out = join(dir, 'ig');
  const r = glassbox('explain', CNN, '--input', CNN_INPUT, '--method', 'integrated-gradients', '--steps', '20', '--target', '3', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /check convergence delta: passed/);
  const written = await readNpy(join(out, 'attributions.npy'));
  const model = await Model.load(CNN);
  try {
    const x = await readNpy(CNN_INPUT);
    const lib = await integratedGradients(model, { x }, { steps: 20, target: 3 });
    assert.deepEqual(written.shape, [4, 1, 28, 28]);
    assert.deepEqual(Array.from(written.data as Float32Array), Array.from(lib.attributions.data));
    const record = JSON.parse(await readFile(join(out, 'explanation.json'), 'utf8')) as { method: string; targets: number[]; checks: { name: string; value: number[]; passed: boolean }[]; taxonomy: { zhang: { format: string } }; params: { steps: number } };
    assert.equal(record.method, 'integrated-gradients');
    assert.deepEqual(record.targets, [3, 3, 3, 3]);
    assert.equal(record.params.steps, 20);
    assert.equal(record.taxonomy.zhang.format, 'attribution');
    const delta = record.checks.find((c) => c.name === 'convergence delta')!;
    assert.ok(delta.passed);
    (delta.value as number[]).forEach((d, i) => assert.ok(Math.abs(d - (lib.checks[0].value as number[])[i]) < 1e-6));
    // The heatmap of example 0: red where the attribution is most positive, blue where most negative.
    const heat = await readPng(join(out, 'heatmap-0.png'), { channels: 3 });
    const a = written.data as Float32Array;
    let hi = 0;
    let lo = 0;
    for (let p = 0; p < 784; p++) {
      if (a[p] > a[hi]) hi = p;
      if (a[p] < a[lo]) lo = p;
    }
    const px = (c: number, p: number) => heat.data[c * 784 + p];
    assert.ok(px(0, hi) > px(2, hi) + 0.3, 'the most positive pixel is red');
    assert.ok(px(2, lo) > px(0, lo) + 0.3, 'the most negative pixel is blue');
  } finally {
    await model.dispose();
  }
});

test('methods lists every registered method with its taxonomy, as a table and as JSON', () => {
  const r = glassbox('methods', '--json');
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as Record<'attribution' | 'global', { name: string; taxonomy: { zhang: { engagement: string; scope: string } } }[]> & { evaluation: { name: string; reference: string }[] };
  assert.deepEqual(json.attribution.map((m) => m.name).sort(), Object.keys(ATTRIBUTION_METHODS).sort());
  for (const m of json.attribution) assert.equal(m.taxonomy.zhang.engagement, 'passive');
  for (const m of json.global) assert.equal(m.taxonomy.zhang.scope, 'global');
  const hidden = (json as unknown as { hidden: { name: string; reference: string; taxonomy: { zhang: { format: string }; rauker?: { part: string } } }[] }).hidden;
  assert.deepEqual(hidden.map((m) => m.name).sort(), Object.keys(HIDDEN_METHODS).sort());
  for (const m of hidden) {
    assert.equal(m.taxonomy.zhang.format, 'hidden semantics', m.name);
    assert.ok(['weights', 'neurons', 'subnetworks'].includes(m.taxonomy.rauker?.part ?? ''), `${m.name} has its place in Räuker et al.`);
    assert.match(m.reference, /\d{4}/, `${m.name} cites its paper`);
  }
  assert.deepEqual(json.evaluation.map((m) => m.name).sort(), [...Object.keys(METRICS), ...Object.keys(sanityMetrics)].sort());
  for (const m of json.evaluation) assert.match(m.reference, /\d{4}/, `${m.name} cites its paper`);
  const t = glassbox('methods');
  assert.equal(t.code, 0);
  const more = json as unknown as Record<'representations' | 'examples', { name: string; taxonomy: { zhang: { format: string }; rauker?: { part: string } } }[]>;
  assert.deepEqual(more.representations.map((m) => m.name).sort(), Object.keys(REPRESENTATION_METHODS).sort());
  for (const m of more.representations) assert.equal(m.taxonomy.rauker?.part, 'representations', m.name);
  assert.deepEqual(more.examples.map((m) => m.name).sort(), Object.keys(EXAMPLE_EXPLANATION_METHODS).sort());
  for (const m of more.examples) assert.equal(m.taxonomy.zhang.format, 'examples', m.name);
  const groups = json as unknown as Record<'rules' | 'active', { name: string; reference: string; taxonomy: { zhang: { engagement: string; format: string } } }[]>;
  assert.deepEqual(groups.rules.map((m) => m.name).sort(), Object.keys(RULE_METHODS).sort());
  for (const m of groups.rules) assert.deepEqual([m.taxonomy.zhang.engagement, m.taxonomy.zhang.format], ['passive', 'rules'], m.name);
  assert.deepEqual(groups.active.map((m) => m.name).sort(), Object.keys(ACTIVE_METHODS).sort());
  for (const m of groups.active) {
    assert.equal(m.taxonomy.zhang.engagement, 'active', m.name);
    assert.match(m.reference, /\d{4}/, `${m.name} cites its paper`);
  }
  const names = [ATTRIBUTION_METHODS, HIDDEN_METHODS, REPRESENTATION_METHODS, EXAMPLE_EXPLANATION_METHODS, RULE_METHODS, ACTIVE_METHODS].flatMap((t) => Object.keys(t));
  for (const name of names) assert.match(t.stdout, new RegExp(`^  ${name} `, 'm'));
});

test('explain refuses unknown methods, bad targets and a missing --out with a clear message', () => {
  const cases: [string[], number, RegExp][] = [
    [['explain', CNN, '--input', CNN_INPUT, '--method', 'integrated-gradient', '--out', dir], 1, /unknown attribution method 'integrated-gradient'; nearest: integrated-gradients/],
    [['explain', CNN, '--input', CNN_INPUT, '--target', 'cat', '--out', dir], 2, /bad --target 'cat'/],
    [['explain', CNN, '--input', CNN_INPUT, '--target', '12', '--out', dir], 1, /class 12 of example 0 is outside \[0, 10\)/],
    [['explain', CNN, '--input', CNN_INPUT], 2, /explain needs --out DIR/],
    [['explain', CNN, '--input', CNN_INPUT, '--steps', '0', '--out', dir], 2, /bad --steps '0'/],
  ];
  for (const [args, code, pattern] of cases) {
    const r = glassbox(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});
