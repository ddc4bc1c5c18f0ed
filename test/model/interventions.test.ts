import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import type { Intervention } from '../../src/model/interventions.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { bitMismatches, seeded, torchFixture } from '../helpers.js';
import { mlpReference, rowsOf, type Hook, type Rows } from './mlp-reference.js';

const fx = torchFixture('mlp');
const forward = mlpReference();
const rand = seeded(7);
const N = 5;
const x = Tensor.float32(Array.from({ length: N * 784 }, () => rand() * 2 - 1), [N, 784]);
const xOther = Tensor.float32(Array.from({ length: N * 784 }, () => rand() * 2 - 1), [N, 784]);
const vec = Tensor.float32(Array.from({ length: 128 }, () => rand() - 0.5), [128]);
const X = rowsOf(x.data, N);

function close(actual: Tensor, expected: Rows, what: string): void {
  const flat = expected.flat();
  assert.equal(actual.size, flat.length, what);
  let worst = 0;
  flat.forEach((e, i) => (worst = Math.max(worst, Math.abs(actual.at(i) - e) / (1 + Math.abs(e)))));
  assert.ok(worst < 2e-5, `${what}: worst relative error ${worst}`);
}

const at = (site: string, f: (v: Rows) => Rows): Hook => (name, v) => (name === site ? f(v) : v);
const mapUnits = (v: Rows, units: number[], f: (val: number, row: number, unit: number) => number) =>
  v.map((r, i) => r.map((val, u) => (units.includes(u) ? f(val, i, u) : val)));
/** relu1.relu of the other inputs, the source of the patch. */
function valueAt(site: string, input: Rows): Rows {
  let out: Rows = [];
  forward(input, (n, v) => (n === site ? (out = v) : v));
  return out;
}
const H1 = valueAt('relu1.relu', rowsOf(xOther.data, N));

/** Each intervention kind, with the same change written out in the reference forward pass. */
const CASES: { name: string; iv: Intervention; hook: Hook }[] = [
  { name: 'zero units', iv: { site: 'relu1.relu', kind: 'zero', units: [3, 5, 100] }, hook: at('relu1.relu', (v) => mapUnits(v, [3, 5, 100], () => 0)) },
  { name: 'zero all', iv: { site: 'fc2.gemm', kind: 'zero' }, hook: at('fc2.gemm', (v) => v.map((r) => r.map(() => 0))) },
  {
    name: 'mean over the batch',
    iv: { site: 'relu1.relu', kind: 'mean', units: [0, 1, 2, 9] },
    hook: at('relu1.relu', (v) => mapUnits(v, [0, 1, 2, 9], (_, __, u) => v.reduce((s, r) => s + r[u], 0) / v.length)),
  },
  {
    name: 'given mean',
    iv: { site: 'relu1.relu', kind: 'mean', value: vec },
    hook: at('relu1.relu', (v) => v.map((r) => r.map((_, u) => vec.at(u)))),
  },
  {
    name: 'set units from a full tensor',
    iv: { site: 'fc1.gemm', kind: 'set', units: [1], value: Tensor.float32(Array.from({ length: N * 128 }, (_, i) => i / 100), [N, 128]) },
    hook: at('fc1.gemm', (v) => mapUnits(v, [1], (_, row, u) => (row * 128 + u) / 100)),
  },
  {
    name: 'add a steering vector',
    iv: { site: 'relu1.relu', kind: 'add', value: vec, scale: 0.5 },
    hook: at('relu1.relu', (v) => v.map((r) => r.map((val, u) => val + 0.5 * vec.at(u)))),
  },
  { name: 'scale by a number', iv: { site: 'relu2.relu', kind: 'scale', factor: 3 }, hook: at('relu2.relu', (v) => v.map((r) => r.map((val) => 3 * val))) },
  {
    name: 'scale per unit',
    iv: { site: 'relu1.relu', kind: 'scale', factor: vec },
    hook: at('relu1.relu', (v) => v.map((r) => r.map((val, u) => val * vec.at(u)))),
  },
  {
    name: 'mask keeps units',
    iv: { site: 'relu1.relu', kind: 'mask', keep: [0, 4, 8] },
    hook: at('relu1.relu', (v) => v.map((r) => r.map((val, u) => ([0, 4, 8].includes(u) ? val : 0)))),
  },
  {
    name: 'patch from another run',
    iv: { site: 'relu1.relu', kind: 'patch', from: { x: xOther }, units: [7, 8] },
    hook: at('relu1.relu', (v) => mapUnits(v, [7, 8], (_, row, u) => H1[row][u])),
  },
  {
    name: 'on the input',
    iv: { site: 'x', kind: 'zero', units: [0, 783] },
    hook: at('x', (v) => mapUnits(v, [0, 783], () => 0)),
  },
  { name: 'on the output', iv: { site: 'logits', kind: 'scale', factor: -2 }, hook: at('fc3.gemm', (v) => v.map((r) => r.map((val) => -2 * val))) },
];

for (const c of CASES) {
  test(`intervention: ${c.name} matches the closed form`, async () => {
    const model = await Model.load(fx.path);
    const { outputs, captures } = await model.run({ x }, { interventions: [c.iv], capture: ['relu2.relu'] });
    close(outputs.logits, forward(X, c.hook), 'logits');
    let relu2: Rows = [];
    forward(X, (n, v) => (n === 'relu2.relu' ? (relu2 = c.hook(n, v)) : c.hook(n, v)));
    close(captures['relu2.relu'], relu2, 'captured relu2.relu');
    await model.dispose();
  });
}

test('interventions apply in order, and a capture reads the changed value', async () => {
  const model = await Model.load(fx.path);
  const { outputs, captures } = await model.run(
    { x },
    { interventions: [{ site: 'relu1.relu', kind: 'add', value: vec }, { site: 'relu1.relu', kind: 'scale', factor: 2 }], capture: ['relu1.relu'] },
  );
  const hook = at('relu1.relu', (v) => v.map((r) => r.map((val, u) => (val + vec.at(u)) * 2)));
  close(outputs.logits, forward(X, hook), 'logits');
  close(captures['relu1.relu'], valueAt('relu1.relu', X).map((r) => r.map((val, u) => (val + vec.at(u)) * 2)), 'relu1.relu');
});

test('the model never changes: a plain run after interventions is bit-identical, and sessions are reused across values', async () => {
  const model = await Model.load(fx.path);
  const before = (await model.run({ x })).outputs.logits;
  await model.run({ x }, { interventions: [{ site: 'relu1.relu', kind: 'zero', units: [1] }] });
  const compiled = model.compiledVariants;
  for (const units of [[2], [3, 4], [127]]) await model.run({ x }, { interventions: [{ site: 'relu1.relu', kind: 'zero', units }] });
  assert.equal(model.compiledVariants, compiled, 'other units reuse the compiled variant');
  const after = (await model.run({ x })).outputs.logits;
  assert.equal(bitMismatches(before, after), 0);
  assert.equal(model.graph.proto.output.length, 1);
});
