/**
 * Finite-difference checks of VJP rules on one-node graphs: L = sum(out ⊙ seed); the rule's gradient must match
 * central differences of L (computed in float64 on the host from the runtime's outputs).
 */
import assert from 'node:assert/strict';
import { buildGradGraph } from '../../src/autodiff/grad.js';
import { defaultRules } from '../../src/autodiff/rules/index.js';
import type { RuleTable } from '../../src/autodiff/types.js';
import { Graph } from '../../src/onnx/graph.js';
import { makeGraph, makeModel, makeNode, makeValueInfo, type AttributeProto } from '../../src/onnx/proto.js';
import { ONNX_DTYPE, tensorToProto } from '../../src/onnx/tensor-proto.js';
import { nodeRuntime } from '../../src/runtime/node.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { seeded } from '../helpers.js';

export interface RuleCase {
  op: string;
  /** Inputs fed at run time (differentiable ones are checked); `consts` become initializers (e.g. shapes, axes). */
  inputs: Record<string, Tensor>;
  consts?: Record<string, Tensor>;
  /** Input order of the node: names from `inputs`/`consts`, '' for an absent optional input. */
  order: string[];
  attributes?: AttributeProto[];
  outputs?: number;
  opset?: number;
  /** Inputs to check (default: every float input). */
  wrt?: string[];
  eps?: number;
  tol?: number;
  rules?: RuleTable;
}

function oneNodeGraph(c: RuleCase, outs: string[]): Graph {
  const node = makeNode(c.op, c.order, outs, { name: `/${c.op}`, attributes: c.attributes });
  const graph = makeGraph({
    name: c.op,
    node: [node],
    input: Object.entries(c.inputs).map(([k, t]) => makeValueInfo(k, ONNX_DTYPE[t.dtype], t.shape)),
    output: outs.map((o) => makeValueInfo(o)),
    initializer: Object.entries(c.consts ?? {}).map(([k, t]) => tensorToProto(t, k)),
  });
  return new Graph(makeModel({ irVersion: 8n, opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: BigInt(c.opset ?? 17) }], graph }));
}

export async function checkRule(c: RuleCase): Promise<number> {
  const outs = Array.from({ length: c.outputs ?? 1 }, (_, i) => `y${i}`);
  const g = oneNodeGraph(c, outs);
  const fwd = await nodeRuntime.createSession(g.encode());
  const y = await fwd.run(c.inputs);
  const rand = seeded(99);
  const seeds = outs.map((o) => Tensor.float32(Array.from({ length: y[o].size }, () => rand() * 2 - 1), y[o].shape));
  const shapes = new Map<string, Tensor>([...Object.entries(c.inputs), ...Object.entries(c.consts ?? {}), ...outs.map((o) => [o, y[o]] as const)]);
  const info = (v: string) => ({ dtype: shapes.get(v)?.dtype, shape: shapes.get(v)?.shape });
  const wrt = c.wrt ?? Object.keys(c.inputs).filter((k) => c.inputs[k].dtype === 'float32');
  let worst = 0;
  // One output is seeded at a time; the rule sees only that output's gradient flowing (others undefined).
  for (let k = 0; k < outs.length; k++) {
    const gg = buildGradGraph(g, { of: outs[k], wrt, rules: c.rules ?? defaultRules, info });
    const s = await nodeRuntime.createSession(gg.graph.encode());
    const r = await s.run({ ...c.inputs, [gg.seed]: seeds[k] });
    const single = async (feeds: Record<string, Tensor>) => {
      const o = (await fwd.run(feeds))[outs[k]];
      let sum = 0;
      o.toArray().forEach((v, i) => (sum += v * seeds[k].at(i)));
      return sum;
    };
    for (const w of wrt) {
      const x = c.inputs[w];
      const grad = r[gg.grads[w]];
      assert.deepEqual(grad.shape, x.shape, `${c.op}: gradient of ${w} has the input's shape`);
      const eps = c.eps ?? 1e-2;
      for (let i = 0; i < x.size; i++) {
        const plus = new Float32Array(x.data as Float32Array);
        const minus = new Float32Array(x.data as Float32Array);
        plus[i] += eps;
        minus[i] -= eps;
        const fd = ((await single({ ...c.inputs, [w]: new Tensor('float32', plus, x.shape) })) - (await single({ ...c.inputs, [w]: new Tensor('float32', minus, x.shape) }))) / (2 * eps);
        const err = Math.abs(fd - grad.at(i)) / (1 + Math.abs(fd));
        worst = Math.max(worst, err);
        assert.ok(err < (c.tol ?? 2e-3), `${c.op} d/d${w}[${i}]: rule ${grad.at(i)}, finite difference ${fd}`);
      }
    }
  }
  return worst;
}

/** Uniform values in [lo, hi) from a seeded stream, kept away from kinks (|x| ≥ gap) for ops like Relu. */
export function randomTensor(shape: number[], seed: number, lo = -1, hi = 1, gap = 0): Tensor<'float32'> {
  const rand = seeded(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.float32(Array.from({ length: n }, () => {
    let v = 0;
    do v = lo + (hi - lo) * rand(); while (Math.abs(v) < gap);
    return v;
  }), shape);
}

/** Distinct values spaced 2/n apart in a shuffled order: finite differences never change which element is a max. */
export function distinct(shape: number[], seed: number): Tensor<'float32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  const keys = randomTensor([n], seed).toArray();
  const order = keys.map((k, i) => [k, i]).sort((x, y) => x[0] - y[0]).map(([, i]) => i);
  const out = new Float32Array(n);
  order.forEach((i, rank) => (out[i] = -1 + (2 * rank) / n));
  return new Tensor('float32', out, shape);
}
