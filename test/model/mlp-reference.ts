/** A plain-TypeScript forward pass of the MLP fixture, with a hook per layer: the closed form interventions are checked against. */
import { readFileSync } from 'node:fs';
import { Graph } from '../../src/onnx/graph.js';
import { getAttr } from '../../src/onnx/proto.js';
import { tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { torchFixture } from '../helpers.js';

export type Rows = number[][];
export type Hook = (name: 'x' | 'fc1.gemm' | 'relu1.relu' | 'fc2.gemm' | 'relu2.relu' | 'fc3.gemm', v: Rows) => Rows;

interface Layer { w: Float32Array; b: Float32Array; out: number; inp: number }

function layer(g: Graph, name: string): Layer {
  const node = g.nodes.find((n) => n.name === `/${name}/Gemm`)!;
  if (Number(getAttr(node, 'transB')?.i ?? 0) !== 1) throw new Error('expected Gemm with transB=1 (PyTorch Linear)');
  const w = tensorFromProto(g.initializers.get(`${name}.weight`)!);
  const b = tensorFromProto(g.initializers.get(`${name}.bias`)!);
  return { w: w.data as Float32Array, b: b.data as Float32Array, out: w.shape[0], inp: w.shape[1] };
}

export function mlpReference(): (x: Rows, hook?: Hook) => Rows {
  const g = Graph.decode(readFileSync(torchFixture('mlp').path));
  const [l1, l2, l3] = ['fc1', 'fc2', 'fc3'].map((n) => layer(g, n));
  const affine = (l: Layer, x: Rows) =>
    x.map((row) => Array.from({ length: l.out }, (_, o) => {
      let s = l.b[o];
      for (let i = 0; i < l.inp; i++) s += row[i] * l.w[o * l.inp + i];
      return s;
    }));
  const relu = (x: Rows) => x.map((r) => r.map((v) => Math.max(0, v)));
  return (x, hook = (_n, v) => v) => {
    let h = hook('x', x);
    h = hook('fc1.gemm', affine(l1, h));
    h = hook('relu1.relu', relu(h));
    h = hook('fc2.gemm', affine(l2, h));
    h = hook('relu2.relu', relu(h));
    return hook('fc3.gemm', affine(l3, h));
  };
}

export function rowsOf(data: ArrayLike<number>, rows: number): Rows {
  const cols = data.length / rows;
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => data[r * cols + c]));
}
