import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Graph } from '../../src/onnx/graph.js';
import { addOutputs, cutEdge, insertNodes, interpose, prune, topoSort } from '../../src/onnx/rewrite.js';
import { makeNode, makeTensorProto } from '../../src/onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../src/onnx/tensor-proto.js';
import { nodeRuntime } from '../../src/runtime/node.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { PADDLE_CLS, PADDLE_REC, bitMismatches, torchFixture } from '../helpers.js';

const MODELS = ['mlp', 'cnn', 'resnet18', 'gpt'] as const;

test('decode → encode is byte-identical for the PyTorch exports and the PaddleOCR models', () => {
  for (const path of [...MODELS.map((m) => torchFixture(m).path), PADDLE_CLS, PADDLE_REC]) {
    const bytes = readFileSync(path);
    const out = Graph.decode(bytes, path).encode();
    assert.equal(Buffer.compare(Buffer.from(out), bytes), 0, path);
  }
});

test('a re-encoded model runs to bit-identical outputs', async () => {
  const { path, input } = torchFixture('cnn');
  const bytes = readFileSync(path);
  const a = await nodeRuntime.createSession(bytes);
  const b = await nodeRuntime.createSession(Graph.decode(bytes).encode());
  const ya = (await a.run({ x: input })).logits;
  const yb = (await b.run({ x: input })).logits;
  assert.equal(bitMismatches(ya, yb), 0);
});

test('the IR indexes producers, consumers, initializers and Constant-node weights', () => {
  const g = Graph.decode(readFileSync(torchFixture('cnn').path));
  assert.deepEqual(Object.fromEntries(g.opHistogram()), { Conv: 2, Relu: 2, MaxPool: 1, Flatten: 1, Gemm: 1 });
  assert.equal(g.producerOf('/c2/Conv_output_0')?.opType, 'Conv');
  assert.deepEqual(g.consumers.get('/c1/Conv_output_0')?.map((i) => g.nodes[i].opType), ['Relu']);
  assert.deepEqual(g.inputs.map((i) => [i.name, i.dtype, i.shape]), [['x', 'float32', ['N', 1, 28, 28]]]);
  const w = tensorFromProto(g.initializers.get('fc.bias')!);
  assert.deepEqual(w.shape, [10]);
  assert.equal(g.opset.get(''), 17);

  const paddle = Graph.decode(readFileSync(PADDLE_CLS));
  const constants = [...paddle.values.values()].filter((v) => v.kind === 'constant');
  assert.equal(constants.length, paddle.opHistogram().get('Constant'));
  const bn = constants.find((v) => v.name === 'batch_norm_0.w_0')!;
  assert.deepEqual([bn.dtype, bn.shape], ['float32', [8]]);
});

test('tensorToProto and tensorFromProto round-trip every dtype', () => {
  const cases = [
    Tensor.float32([1.5, -2, 3e-8], [3]),
    Tensor.float64([Math.PI, -1e300], [2, 1]),
    Tensor.int64([2n ** 62n, -5n], [2]),
    Tensor.bool([1, 0, 1, 1], [2, 2]),
    new Tensor('int8', Int8Array.from([-128, 127]), [2]),
    new Tensor('uint16', Uint16Array.from([65535, 1]), [2]),
    new Tensor('string', ['a', 'βγ'], [2]),
  ];
  for (const t of cases) {
    const back = tensorFromProto(tensorToProto(t, 'w'));
    assert.deepEqual([back.dtype, back.shape], [t.dtype, t.shape]);
    assert.deepEqual([...back.data], [...t.data]);
  }
});

test('addOutputs exposes values; the rest of the graph is unchanged', async () => {
  const { path, input } = torchFixture('mlp');
  const g = Graph.decode(readFileSync(path));
  const g2 = addOutputs(g, ['/relu1/Relu_output_0']);
  assert.deepEqual(g2.proto.output.map((o) => o.name), ['logits', '/relu1/Relu_output_0']);
  assert.equal(g.proto.output.length, 1, 'the source graph is untouched');
  const s = await nodeRuntime.createSession(g2.encode());
  const out = await s.run({ x: input });
  assert.ok(out['/relu1/Relu_output_0'].toArray().every((v) => v >= 0));
  assert.throws(() => addOutputs(g, ['nope']), /no value 'nope'/);
});

test('cutEdge feeds a value from outside: the cut graph on a captured value reproduces the output', async () => {
  const { path, input } = torchFixture('cnn');
  const g = Graph.decode(readFileSync(path));
  const full = await nodeRuntime.createSession(addOutputs(g, ['/pool/MaxPool_output_0']).encode());
  const ref = await full.run({ x: input });
  assert.throws(() => cutEdge(g, '/pool/MaxPool_output_0'), /declares no element type/);
  const cut = cutEdge(g, '/pool/MaxPool_output_0', 'float32');
  assert.ok(!cut.nodes.some((n) => n.opType === 'Conv'), 'upstream nodes are pruned');
  const s = await nodeRuntime.createSession(cut.encode());
  const out = await s.run({ '/pool/MaxPool_output_0': ref['/pool/MaxPool_output_0'] });
  assert.equal(bitMismatches(out.logits, ref.logits), 0);
});

test('interpose puts ops between a value and all its readers, graph outputs included', async () => {
  const { path, input } = torchFixture('mlp');
  const g = Graph.decode(readFileSync(path));
  const two = tensorToProto(Tensor.float32([2], []), 'two');
  const doubled = interpose(g, 'logits', (src) => ({ nodes: [makeNode('Mul', [src, 'two'], ['logits'])], initializers: [two] }));
  const ref = await (await nodeRuntime.createSession(g.encode())).run({ x: input });
  const out = await (await nodeRuntime.createSession(doubled.encode())).run({ x: input });
  const r = ref.logits.toArray();
  out.logits.toArray().forEach((v, i) => assert.equal(v, 2 * r[i]));
  // On a graph input the input keeps its name: doubling x doubles the first layer's pre-bias output.
  const dx = interpose(g, 'x', (src) => ({ nodes: [makeNode('Mul', [src, 'two'], ['x'])], initializers: [two] }));
  assert.deepEqual(dx.inputs.map((i) => i.name), ['x']);
  const s = await nodeRuntime.createSession(addOutputs(dx, ['/fc1/Gemm_output_0']).encode());
  const twice = Tensor.float32((input.data as Float32Array).map((v) => 2 * v), input.shape);
  const a = (await s.run({ x: input }))['/fc1/Gemm_output_0'];
  const b = (await (await nodeRuntime.createSession(addOutputs(g, ['/fc1/Gemm_output_0']).encode())).run({ x: twice }))['/fc1/Gemm_output_0'];
  assert.equal(bitMismatches(a, b), 0);
});

test('topoSort orders inserted nodes after their producers and rejects cycles', () => {
  const a = makeNode('Relu', ['x'], ['a']);
  const b = makeNode('Relu', ['a'], ['b']);
  const c = makeNode('Relu', ['b'], ['c']);
  assert.deepEqual(topoSort([c, a, b]).map((n) => n.output[0]), ['a', 'b', 'c']);
  const loop1 = makeNode('Add', ['q', 'x'], ['p']);
  const loop2 = makeNode('Add', ['p', 'x'], ['q']);
  assert.throws(() => topoSort([loop1, loop2]), /cycle/);
  const g = Graph.decode(readFileSync(torchFixture('mlp').path));
  const g2 = insertNodes(g, [makeNode('Neg', ['/relu1/Relu_output_0'], ['neg'])]);
  const order = g2.nodes.map((n) => n.output[0]);
  assert.ok(order.indexOf('neg') > order.indexOf('/relu1/Relu_output_0'));
  assert.equal(prune(g2).nodes.length, g.nodes.length, 'prune drops the dead Neg');
});

test('tensorFromProto reads the typed repeated fields, not only raw_data', () => {
  const f = tensorFromProto(makeTensorProto({ dataType: 1, dims: [2n], floatData: [1.5, -2] }));
  assert.deepEqual([f.dtype, f.toArray()], ['float32', [1.5, -2]]);
  const i8 = tensorFromProto(makeTensorProto({ dataType: 3, dims: [3n], int32Data: [-128, 0, 127] }));
  assert.deepEqual([i8.dtype, i8.toArray()], ['int8', [-128, 0, 127]]);
  const b = tensorFromProto(makeTensorProto({ dataType: 9, dims: [2n], int32Data: [1, 0] }));
  assert.deepEqual([b.dtype, b.toArray()], ['bool', [1, 0]]);
  const l = tensorFromProto(makeTensorProto({ dataType: 7, dims: [1n], int64Data: [-(2n ** 40n)] }));
  assert.equal(l.data[0], -(2n ** 40n));
  const d = tensorFromProto(makeTensorProto({ dataType: 11, dims: [], doubleData: [Math.E] }));
  assert.deepEqual([d.shape, d.toArray()], [[], [Math.E]]);
  const u = tensorFromProto(makeTensorProto({ dataType: 12, dims: [1n], uint64Data: [4000000000n] }));
  assert.deepEqual([u.dtype, u.toArray()], ['uint32', [4000000000]]);
  assert.throws(() => tensorFromProto(makeTensorProto({ name: 'w', dataType: 1, dims: [3n], floatData: [1] })), /tensor 'w': holds 1 values, shape \[3\] needs 3/);
  assert.throws(() => tensorFromProto(makeTensorProto({ name: 'w', dataType: 16, dims: [1n] })), /tensor 'w': element type bfloat16 is not supported/);
});
