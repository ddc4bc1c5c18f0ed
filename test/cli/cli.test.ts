/**
 * The `glassbox` command end to end: each test spawns the compiled CLI on the PyTorch fixtures and checks what it
 * wrote or printed against the fixtures' references, closed forms, or the library run the same way.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model, Tensor, encodeNpy, encodePng, readNpy, tensorFromProto } from '../../src/index.js';
import { safeFileName } from '../../src/cli/outputs.js';

// Compiled to build/test/cli/, so the CLI is build/src/cli/main.js and the repository root three levels up.
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TORCH = join(ROOT, 'fixtures/torch');
const CNN = join(TORCH, 'cnn.onnx');
const CNN_INPUT = join(TORCH, 'cnn.input.npy');

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function glassbox(...args: string[]): Result {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 (or `code`), one `glassbox: …` line on stderr matching `pattern`, no stack trace. */
function assertFails(r: Result, pattern: RegExp, code = 1): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, /^glassbox: /);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

function floats(t: Tensor): Float32Array {
  assert.equal(t.dtype, 'float32');
  return t.data as Float32Array;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= tol, `${what}: max |diff| ${worst} > ${tol}`);
}

let dir: string;
let model: Model;
let x: Tensor;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-cli-'));
  model = await Model.load(CNN);
  x = await readNpy(CNN_INPUT);
});

after(async () => {
  await model.dispose();
  await rm(dir, { recursive: true, force: true });
});

test('run writes the outputs equal to the PyTorch reference, captures, and an index', async () => {
  const out = join(dir, 'plain');
  const r = glassbox('run', CNN, '--input', `x=${CNN_INPUT}`, '--capture', 'relu1.relu', '--capture', 'c1.conv', '--out', out);
  assert.equal(r.code, 0, r.stderr);

  const logits = await readNpy(join(out, 'logits.npy'));
  const reference = await readNpy(join(TORCH, 'cnn.output.npy'));
  assert.deepEqual(logits.shape, [4, 10]);
  assertClose(floats(logits), floats(reference), 1e-5, 'logits vs PyTorch');

  // relu1 = max(0, c1) elementwise, and nothing negative.
  const relu = floats(await readNpy(join(out, 'relu1.relu.npy')));
  const conv = floats(await readNpy(join(out, 'c1.conv.npy')));
  assert.equal(relu.length, 4 * 32 * 28 * 28);
  assert.ok(relu.every((v) => v >= 0));
  assert.ok(relu.some((v) => v > 0) && conv.some((v) => v < 0), 'the check is not vacuous');
  assertClose(relu, conv.map((v) => Math.max(0, v)), 0, 'relu1 vs max(0, c1)');

  const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(index, {
    'logits.npy': { kind: 'output', name: 'logits', dtype: 'float32', shape: [4, 10] },
    'relu1.relu.npy': { kind: 'site', name: 'relu1.relu', value: '/relu1/Relu_output_0', dtype: 'float32', shape: [4, 32, 28, 28] },
    'c1.conv.npy': { kind: 'site', name: 'c1.conv', value: '/c1/Conv_output_0', dtype: 'float32', shape: [4, 32, 28, 28] },
  });

  // The summary names each file with its shape, and the argmax of the logits per row.
  const argmax = [0, 1, 2, 3].map((row) => {
    const v = Array.from(floats(reference).subarray(row * 10, row * 10 + 10));
    return v.indexOf(Math.max(...v));
  });
  assert.match(r.stdout, /logits\.npy\s+output\s+float32\s+\[4, 10\]/);
  assert.match(r.stdout, new RegExp(`argmax per row: ${argmax.join(' ')}`));
});

test('--ablate c2.conv leaves only the fc bias in the logits (closed form)', async () => {
  const out = join(dir, 'ablate');
  const r = glassbox('run', CNN, '--input', `x=${CNN_INPUT}`, '--ablate', 'c2.conv', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  // c2 = 0 ⇒ relu2 = 0 ⇒ pool = 0 ⇒ logits = 0·W + b = b for every row.
  const bias = floats(tensorFromProto(model.graph.initializers.get('fc.bias') ?? assert.fail('no fc.bias')));
  assert.equal(bias.length, 10);
  const expected = new Float32Array(40);
  for (let row = 0; row < 4; row++) expected.set(bias, row * 10);
  assertClose(floats(await readNpy(join(out, 'logits.npy'))), expected, 1e-6, 'ablated logits vs fc.bias');
});

test('--ablate-unit zeroes only those channels and matches the library run', async () => {
  const out = join(dir, 'units');
  const r = glassbox('run', CNN, '--input', `x=${CNN_INPUT}`, '--ablate-unit', 'c2.conv=3,7', '--capture', 'c2.conv', '--out', out);
  assert.equal(r.code, 0, r.stderr);

  const lib = await model.run({ x }, { interventions: [{ site: 'c2.conv', kind: 'zero', units: [3, 7] }] });
  const plain = await model.run({ x }, { capture: ['c2.conv'] });
  const logits = floats(await readNpy(join(out, 'logits.npy')));
  assertClose(logits, floats(lib.outputs.logits), 1e-6, 'CLI vs library intervention');
  const moved = logits.reduce((m, v, i) => Math.max(m, Math.abs(v - floats(plain.outputs.logits)[i])), 0);
  assert.ok(moved > 1e-4, `ablating two channels should move the logits (moved ${moved})`);

  // The captured site shows the intervention: channels 3 and 7 zero, every other channel as in the plain run.
  const got = floats(await readNpy(join(out, 'c2.conv.npy')));
  const ref = floats(plain.captures['c2.conv']);
  const hw = 28 * 28;
  for (let n = 0; n < 4; n++) {
    for (let c = 0; c < 64; c++) {
      const at = (n * 64 + c) * hw;
      const expected = c === 3 || c === 7 ? new Float32Array(hw) : ref.subarray(at, at + hw);
      assertClose(got.subarray(at, at + hw), expected, 0, `row ${n} channel ${c}`);
    }
  }
});

test('run accepts a PNG input, with the channels the model input declares', async () => {
  const img = new Float32Array(28 * 28).map((_, i) => ((i * 37) % 256) / 255);
  const png = join(dir, 'digit.png');
  await writeFile(png, encodePng(new Tensor('float32', img, [1, 1, 28, 28]), { range: [0, 1] }));
  const out = join(dir, 'png');
  const r = glassbox('run', CNN, '--input', `x=${png}`, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const lib = await model.run({ x: new Tensor('float32', img, [1, 1, 28, 28]) });
  assertClose(floats(await readNpy(join(out, 'logits.npy'))), floats(lib.outputs.logits), 1e-5, 'PNG run vs library');
});

test('inspect --json lists sites, shapes and ops as the file has them', async () => {
  const r = glassbox('inspect', CNN, '--json');
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as {
    irVersion: number;
    opsets: Record<string, number>;
    inputs: { name: string; dtype: string; shape: unknown[] }[];
    outputs: { name: string; shape: unknown[] }[];
    ops: Record<string, number>;
    sites: { name: string; value: string; op: string; dtype: string; shape: unknown[] }[];
    probeError: string | null;
  };
  assert.deepEqual(d.ops, { Conv: 2, Relu: 2, Flatten: 1, Gemm: 1, MaxPool: 1 });
  // The same counts straight from the file's nodes.
  const counted: Record<string, number> = {};
  for (const n of model.graph.nodes) counted[n.opType] = (counted[n.opType] ?? 0) + 1;
  assert.deepEqual(d.ops, counted);
  assert.equal(d.irVersion, Number(model.graph.model.irVersion));
  assert.deepEqual(d.opsets, { 'ai.onnx': 17 });
  assert.deepEqual(d.inputs, [{ name: 'x', dtype: 'float32', shape: ['N', 1, 28, 28] }]);
  assert.deepEqual(d.outputs.map((o) => [o.name, o.shape]), [['logits', ['N', 10]]]);
  assert.deepEqual(d.sites.find((s) => s.name === 'c2.conv'), { name: 'c2.conv', value: '/c2/Conv_output_0', op: 'Conv', dtype: 'float32', shape: ['N', 64, 28, 28] });
  assert.deepEqual(d.sites.map((s) => s.name), ['x', 'c1.conv', 'relu1.relu', 'c2.conv', 'relu2.relu', 'pool.maxpool', 'flatten.flatten', 'fc.gemm']);
  assert.equal(d.probeError, null);
});

test('inspect prints aligned tables, and --input-shape gives concrete shapes', () => {
  const r = glassbox('inspect', CNN, '--input-shape', 'x=2x1x28x28');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^producer\s+pytorch/m);
  assert.match(r.stdout, /^ {2}c2\.conv +\/c2\/Conv_output_0 +Conv +float32 +\[2, 64, 28, 28\]$/m);
  assert.match(r.stdout, /^ {2}fc\.gemm +logits +Gemm +float32 +\[2, 10\]$/m);
  assert.match(r.stdout, /^ {2}Conv +2$/m);
});

test('an unknown site fails with exit 1, naming the nearest sites', () => {
  const r = glassbox('run', CNN, '--input', `x=${CNN_INPUT}`, '--capture', 'c2.cnv', '--out', join(dir, 'never'));
  assertFails(r, /unknown site 'c2\.cnv'; nearest: c2\.conv/);
});

test('bad inputs fail with exit 1 and a clear message', async () => {
  const out = join(dir, 'never');
  assertFails(glassbox('run', CNN, '--input', `x=${join(dir, 'missing.npy')}`, '--out', out), /missing\.npy: no such file/);
  assertFails(glassbox('run', CNN, '--input', CNN_INPUT, '--out', out), /bad --input '.*cnn\.input\.npy': expected NAME=FILE/);
  assertFails(glassbox('run', CNN, '--input', `y=${CNN_INPUT}`, '--out', out), /unknown input 'y'; nearest: x/);

  const wrong = join(dir, 'wrong.npy');
  await writeFile(wrong, encodeNpy(Tensor.zeros('float32', [4, 1, 27, 28])));
  assertFails(glassbox('run', CNN, '--input', `x=${wrong}`, '--out', out), /input 'x' must have shape \[N, 1, 28, 28\], got \[4, 1, 27, 28\]/);

  assertFails(glassbox('inspect', CNN, '--input-shape', 'x=1x1xtwox28'), /bad shape '1x1xtwox28'/);
  assertFails(glassbox('inspect', join(dir, 'nothing.onnx')), /nothing\.onnx: no such file/);
});

test('help, usage errors and --version', async () => {
  const unknown = glassbox('frobnicate');
  assertFails(unknown, /unknown command 'frobnicate'/, 2);
  assert.match(glassbox('--help').stdout, /glassbox inspect MODEL/);
  assert.match(glassbox('help', 'run').stdout, /--ablate-unit SITE=U,V/);
  assertFails(glassbox('run', CNN, '--input', `x=${CNN_INPUT}`), /run needs --out DIR/, 2);
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const v = glassbox('--version');
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
});

test('file names are sanitised', () => {
  assert.equal(safeFileName('/layer1/conv:0'), '_layer1_conv_0');
  assert.equal(safeFileName('..'), '_..');
  assert.equal(safeFileName('relu1.relu'), 'relu1.relu');
});

test('the tour runs on the pretrained classifier and prints probabilities that sum to 1', () => {
  const r = glassbox();
  assert.equal(r.code, 0, r.stderr);
  const rows = [...r.stdout.matchAll(/p\(0°\) = ([-\d.e+]+)\s+p\(180°\) = ([-\d.e+]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal(rows.length, 2, r.stdout);
  for (const [p0, p180] of rows) {
    assert.ok(p0 >= 0 && p180 >= 0);
    assert.ok(Math.abs(p0 + p180 - 1) < 2e-4, `${p0} + ${p180}`);
  }
  assert.match(r.stdout, /Capture \S+ .*\n {2}shape +\[2, \d+, \d+, \d+\]/);
  assert.match(r.stdout, /Ablate: zero channel \d+ of \S+/);
  assert.match(r.stdout, /glassbox run \S+ --input x=\S+text-line\.npy/);
});
