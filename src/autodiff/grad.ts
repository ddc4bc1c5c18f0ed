/**
 * The gradient graph builder: for L = sum(of ⊙ seed), appends to a forward graph the VJP ops of every node between
 * the `wrt` values and `of`, so forward and backward run in one ONNX Runtime session. Integer and boolean values
 * carry no gradient (Shape, comparisons and indices are cut); an op on the path without a rule is an error that names
 * the op and node before anything is built.
 */
import type { Graph } from '../onnx/graph.js';
import { attr, getAttr, makeNode, makeValueInfo, type AttributeProto, type NodeProto, type TensorProto } from '../onnx/proto.js';
import { addInputs, freshName } from '../onnx/rewrite.js';
import { ONNX_DTYPE, tensorFromProto, tensorToProto } from '../onnx/tensor-proto.js';
import { Tensor, type DType } from '../runtime/tensor.js';
import type { Emitter, RuleTable, ValueShape } from './types.js';

export interface GradSpec {
  /** The value differentiated (a graph output or any site), seeded by a tensor of its shape. */
  readonly of: string;
  /** Values to differentiate with respect to: graph inputs, intermediate values, initializers or Constant outputs. */
  readonly wrt: readonly string[];
  readonly rules: RuleTable;
  /** Dtype and shape of every forward value (from the model's probe). */
  readonly info: (name: string) => ValueShape;
}

export interface GradGraph {
  readonly graph: Graph;
  /** Name of the seed input (same shape and dtype as `of`). */
  readonly seed: string;
  /** For each `wrt` value, the output holding its gradient. */
  readonly grads: Readonly<Record<string, string>>;
}

const FLOATS = new Set<DType>(['float32', 'float64', 'float16']);

function ruleKey(n: NodeProto): string {
  return n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType;
}

/** Nodes on a differentiable path from some `wrt` value to `of`, in forward order, and the values that depend on `wrt`. */
function pathNodes(g: Graph, spec: GradSpec, differentiable: (v: string) => boolean): { path: number[]; reach: Set<string> } {
  const reach = new Set(spec.wrt);
  const forward: number[] = [];
  g.nodes.forEach((n, i) => {
    if (n.input.some((x) => reach.has(x) && differentiable(x))) {
      forward.push(i);
      for (const o of n.output) if (o && differentiable(o)) reach.add(o);
    }
  });
  const needed = new Set([spec.of]);
  const path: number[] = [];
  for (let k = forward.length - 1; k >= 0; k--) {
    const n = g.nodes[forward[k]];
    if (!n.output.some((o) => needed.has(o))) continue;
    path.push(forward[k]);
    for (const x of n.input) if (x && reach.has(x)) needed.add(x);
  }
  return { path: path.reverse(), reach };
}

export function buildGradGraph(g: Graph, spec: GradSpec): GradGraph {
  for (const w of [spec.of, ...spec.wrt]) if (!g.values.has(w)) throw new Error(`grad: the graph has no value '${w}'`);
  const dtypeOf = (v: string) => spec.info(v).dtype ?? g.values.get(v)?.dtype;
  const differentiable = (v: string) => FLOATS.has(dtypeOf(v) as DType);
  const ofType = dtypeOf(spec.of);
  if (!ofType || !FLOATS.has(ofType)) throw new Error(`grad: '${spec.of}' is ${ofType ?? 'of unknown type'}; only float values can be differentiated`);
  for (const w of spec.wrt) if (!differentiable(w)) throw new Error(`grad: '${w}' is ${dtypeOf(w) ?? 'of unknown type'}; gradients exist only for float values`);

  const { path, reach } = pathNodes(g, spec, differentiable);
  const missing = path.map((i) => g.nodes[i]).filter((n) => !spec.rules[ruleKey(n)]);
  if (missing.length) {
    const n = missing[0];
    const ops = [...new Set(missing.map(ruleKey))].join(', ');
    throw new Error(`grad: no VJP rule for ${ops} (first: node '${n.name || n.output[0]}'), on the path from ${spec.wrt.join(', ')} to ${spec.of}`);
  }

  const taken = new Set<string>();
  const fresh = (base: string) => {
    const n = freshName(g, base, taken);
    taken.add(n);
    return n;
  };
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const emit: Emitter = {
    opset: g.opset.get('') ?? 0,
    op(opType, inputs, attributes: readonly AttributeProto[] = [], outputs = 1) {
      const outs = Array.from({ length: outputs }, () => fresh(`grad/${opType}`));
      nodes.push(makeNode(opType, inputs, outs, { name: fresh(`glassbox/grad/${opType}`), attributes }));
      return outs;
    },
    op1(opType, inputs, attributes) {
      return this.op(opType, inputs, attributes, 1)[0];
    },
    constant(t: Tensor) {
      const name = fresh('grad/const');
      inits.push(tensorToProto(t, name));
      return name;
    },
    scalar(value: number, dtype: DType) {
      const t = Tensor.zeros(dtype, []);
      (t.data as unknown as (number | bigint)[])[0] = dtype === 'int64' || dtype === 'uint64' ? BigInt(value) : value;
      return this.constant(t);
    },
  };

  const constant = (name: string): Tensor | undefined => {
    const init = g.initializers.get(name);
    if (init) return tensorFromProto(init);
    const p = g.producerOf(name);
    const t = p && p.opType === 'Constant' ? getAttr(p, 'value')?.t : undefined;
    return t ? tensorFromProto(t) : undefined;
  };
  const seed = fresh('glassbox_seed');
  const contributions = new Map<string, string[]>([[spec.of, [seed]]]);
  const gradOf = (v: string): string | undefined => {
    const parts = contributions.get(v);
    if (!parts || parts.length === 0) return undefined;
    if (parts.length > 1) contributions.set(v, [emit.op1('Sum', parts)]);
    return contributions.get(v)![0];
  };
  // Only values that depend on some wrt value need gradients: weights are skipped when only inputs are asked for.
  const wanted = reach;

  for (let k = path.length - 1; k >= 0; k--) {
    const node = g.nodes[path[k]];
    const grads = node.output.map((o) => (o ? gradOf(o) : undefined));
    if (grads.every((x) => x === undefined)) continue;
    const wants = node.input.map((x) => x !== '' && wanted.has(x) && differentiable(x));
    const out = spec.rules[ruleKey(node)]({ node, inputs: node.input, outputs: node.output, grads, wants, info: spec.info, constant, emit });
    node.input.forEach((x, j) => {
      const d = out[j];
      if (!d || !wants[j]) return;
      const list = contributions.get(x) ?? [];
      list.push(d);
      contributions.set(x, list);
    });
  }

  const grads: Record<string, string> = {};
  for (const w of spec.wrt) {
    let d = gradOf(w);
    // A value the output does not depend on has a zero gradient of its own shape.
    if (!d) d = emit.op1('ConstantOfShape', [emit.op1('Shape', [w])], [attr('value', { tensor: tensorToProto(Tensor.zeros(dtypeOf(w) as DType, [1])) })]);
    const name = fresh(`grad_${w}`);
    nodes.push(makeNode('Identity', [d], [name], { name: fresh('glassbox/grad/out') }));
    grads[w] = name;
  }
  let graph = addInputs(g, [makeValueInfo(seed, ONNX_DTYPE[ofType])]);
  graph = graph.withGraph({ node: [...graph.nodes, ...nodes], initializer: [...graph.proto.initializer, ...inits] });
  const outputs = Object.values(grads).map((n, i) => makeValueInfo(n, ONNX_DTYPE[dtypeOf(spec.wrt[i]) as DType]));
  graph = graph.withGraph({ output: [...graph.proto.output, ...outputs] });
  return { graph, seed, grads };
}
