import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { Graph } from '../../src/onnx/graph.js';
import { DataLocation, makeNode } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { seeded, torchFixture } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'glassbox-bad-'));
const cnn = torchFixture('cnn');
const cnnBytes = readFileSync(cnn.path);
const file = (name: string, bytes: Uint8Array | string) => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};

test('unreadable model files are named and explained', async () => {
  const rand = seeded(5);
  const cases: [string, RegExp][] = [
    [file('truncated.onnx', cnnBytes.subarray(0, cnnBytes.length >> 1)), /truncated\.onnx: not an ONNX model or a truncated one/],
    [file('random.onnx', Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256))), /random\.onnx: not (a valid )?an? ONNX model|random\.onnx: not an ONNX model/],
    [file('text.onnx', 'This is a README, not a model.\n'), /text\.onnx: not an ONNX model/],
    [file('empty.onnx', new Uint8Array()), /empty\.onnx: not an ONNX model \(empty file\)/],
    [join(dir, 'missing.onnx'), /missing\.onnx: no such file/],
    [dir, /is a directory/],
  ];
  for (const [path, message] of cases) await assert.rejects(Model.load(path), message, path);
});

test('a model whose node reads an undefined value is rejected before the runtime sees it', async () => {
  const g = Graph.decode(cnnBytes);
  const broken = g.withGraph({ initializer: g.proto.initializer.filter((t) => t.name !== 'fc.bias') });
  await assert.rejects(Model.load(broken.encode()), /node '\/fc\/Gemm' \(Gemm\) reads 'fc\.bias', which no node, input or initializer defines/);
});

test('an op from an unknown domain is named', async () => {
  const g = Graph.decode(cnnBytes);
  const node = g.nodes.map((n) => (n.opType === 'Relu' ? { ...n, domain: 'com.nowhere', opType: 'Sparkle' } : n));
  const bad = g.withGraph({ node });
  await assert.rejects(Model.load(bad.encode()), /com\.nowhere/);
  const foreign = { ...bad.model, opsetImport: [...bad.model.opsetImport, { ...bad.model.opsetImport[0], domain: 'com.nowhere', version: 1n }] };
  await assert.rejects(Model.load(new Graph(foreign).encode()), /cannot load the model: .*(com\.nowhere|Sparkle)/);
});

test('external data: bytes alone give a clear error; from a path the weights are read', async () => {
  const g = Graph.decode(cnnBytes);
  const weights: Uint8Array[] = [];
  let offset = 0;
  const initializer = g.proto.initializer.map((t) => {
    const entry = (key: string, value: string) => ({ $typeName: 'onnx.StringStringEntryProto' as const, key, value });
    const ext = { ...t, rawData: new Uint8Array(), dataLocation: DataLocation.EXTERNAL, externalData: [entry('location', 'cnn.weights'), entry('offset', String(offset)), entry('length', String(t.rawData.length))] };
    weights.push(t.rawData);
    offset += t.rawData.length;
    return ext;
  });
  const external = g.withGraph({ initializer }).encode();
  const path = file('cnn-external.onnx', external);
  file('cnn.weights', Buffer.concat(weights));
  await assert.rejects(Model.load(external), /external/i);
  const model = await Model.load(path);
  const y = (await model.run({ x: cnn.input })).outputs.logits;
  const ref = (await (await Model.load(cnnBytes)).run({ x: cnn.input })).outputs.logits;
  assert.deepEqual(y.toArray(), ref.toArray());
  writeFileSync(join(dir, 'cnn.weights'), Buffer.concat(weights).subarray(0, 100));
  await assert.rejects(Model.load(path), /external data 'cnn\.weights' has 100 bytes/);
});

test('bad feeds are named before anything runs', async () => {
  const model = await Model.load(cnnBytes);
  const x = cnn.input;
  const nan = Tensor.float32(x.data as Float32Array, x.shape);
  (nan.data as Float32Array)[17] = NaN;
  const cases: [Record<string, Tensor>, RegExp][] = [
    [{}, /missing input 'x' \(float32 \[N, 1, 28, 28\]\)/],
    [{ x, y: x }, /unknown input 'y'; nearest: x/],
    [{ x: Tensor.float32(new Float32Array(4 * 27 * 28), [4, 1, 27, 28]) }, /input 'x' must have shape \[N, 1, 28, 28\], got \[4, 1, 27, 28\]/],
    [{ x: Tensor.float32(new Float32Array(784), [784]) }, /input 'x' must have shape/],
    [{ x: new Tensor('float64', new Float64Array(x.size), x.shape) }, /input 'x' must be float32, got float64/],
    [{ x: nan }, /input 'x' holds NaN at flat index 17/],
  ];
  for (const [feeds, message] of cases) await assert.rejects(model.run(feeds), message);
});

test('bad captures and interventions are named before anything runs', async () => {
  const model = await Model.load(cnnBytes);
  const x = cnn.input;
  await assert.rejects(model.run({ x }, { capture: ['relu_1'] }), /unknown site 'relu_1'; nearest: relu1\.relu/);
  await assert.rejects(model.run({ x }, { capture: ['relu9'] }), /unknown site 'relu9'; nearest: relu1\.relu, relu2\.relu,/);
  const bad: [object, RegExp][] = [
    [{ site: 'c3.conv', kind: 'zero' }, /unknown site 'c3\.conv'; nearest: c1\.conv, c2\.conv/],
    [{ site: 'c2.conv', kind: 'zero', units: [64] }, /unit 64 is out of range; axis 1 of shape \[4, 64, 28, 28\] has 64 units/],
    [{ site: 'c2.conv', kind: 'set', value: Tensor.float32(new Float32Array(5), [5]) }, /the value of shape \[5\] does not broadcast to the site's shape \[4, 64, 28, 28\]/],
    [{ site: 'c2.conv', kind: 'set', value: Tensor.float64(new Float64Array(28), [28]) }, /the value is float64 but the site holds float32/],
    [{ site: 'c2.conv', kind: 'add', value: Tensor.float32(new Float32Array(63), [63]) }, /does not broadcast/],
    [{ site: 'c2.conv', kind: 'add', value: Tensor.float32([NaN], [1]) }, /holds NaN/],
    [{ site: 'c2.conv', kind: 'mask', keep: [0], axis: 4 }, /axis 4 is out of range/],
    [{ site: 'c2.conv', kind: 'patch', from: { x: Tensor.float32(new Float32Array(756), [1, 1, 28, 27]) } }, /input 'x' must have shape/],
  ];
  for (const [iv, message] of bad) await assert.rejects(model.run({ x }, { interventions: [iv as never] }), message, JSON.stringify(iv));
  const y = (await model.run({ x })).outputs.logits;
  assert.ok(y.toArray().every(Number.isFinite), 'the model still runs after every rejected call');
});

test('the node name helper stays out of the way of bad graphs', () => {
  // A hand-built node with an empty name still yields a usable error label.
  const g = Graph.decode(cnnBytes);
  const extra = makeNode('Relu', ['nothing_here'], ['y2']);
  const broken = g.withGraph({ node: [...g.nodes, extra] });
  assert.throws(() => broken.validate('hand-built'), /hand-built: node #7 \(Relu\) reads 'nothing_here'/);
});
