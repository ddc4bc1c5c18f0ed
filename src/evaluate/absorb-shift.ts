/**
 * The bias-absorbing rewrite of Kindermans et al. 2017 ("The (Un)reliability of saliency methods", §2): for a
 * constant shift m of the input, a second network whose first layer's bias absorbs it, b' = b − W·m, computes from
 * x + m exactly what the first computes from x, with the same weights and the same gradients.
 *
 * The first layer is the Gemm, MatMul (+ Add) or Conv that reads the input, through any Flatten/Reshape/Identity.
 * W·m is computed by ONNX Runtime itself on the layer without its bias (so every attribute — transB, alpha, strides,
 * groups — means what it means in the model). Where W·m is one value per output unit (Gemm, MatMul, an unpadded Conv
 * with a spatially constant shift) it is folded into the bias; a padded Conv sees zeros, not m, at its borders, so
 * there no per-channel bias can absorb m and the correction is a per-position bias added after the Conv.
 *
 * @example
 * const shifted = await absorbShift(model, Tensor.float32(new Array(784).fill(-1), [784]));
 * // shifted.model.run({ x: x − 1 }) ≈ model.run({ x }); shifted.layer === '/fc1/Gemm', shifted.mode === 'bias'
 */
import { Graph } from '../onnx/graph.js';
import { getAttr, makeNode, type NodeProto } from '../onnx/proto.js';
import { freshName, interpose, prune, selectOutputs } from '../onnx/rewrite.js';
import { tensorFromProto, tensorToProto } from '../onnx/tensor-proto.js';
import { Model } from '../model/model.js';
import { Tensor } from '../runtime/tensor.js';

export interface ShiftedModel {
  /** The rewritten model: f'(x + shift) = f(x). */
  readonly model: Model;
  /** The node whose bias absorbed the shift. */
  readonly layer: string;
  /** 'bias': b' = b − W·shift in the layer's own bias; 'per-position': a bias tensor added after a padded Conv. */
  readonly mode: 'bias' | 'per-position';
}

const PASS_THROUGH = new Set(['Flatten', 'Reshape', 'Identity']);
const LINEAR = new Set(['Gemm', 'MatMul', 'Conv']);

/** The rewritten model for `shift`, one example's shape ([...] or [1, ...]) of float input `input` (default: the only one). */
export async function absorbShift(model: Model, shift: Tensor, options: { readonly input?: string } = {}): Promise<ShiftedModel> {
  const g = model.graph;
  const floats = model.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
  const input = options.input ?? (floats.length === 1 ? floats[0] : undefined);
  if (input === undefined) throw new Error(`absorbShift: the model has ${floats.length} float32 inputs (${floats.join(', ')}); name one with { input }`);
  if (!model.inputs.some((i) => i.name === input)) throw new Error(`absorbShift: '${input}' is not an input of the model (inputs: ${model.inputs.map((i) => i.name).join(', ')})`);
  if (shift.dtype !== 'float32') throw new Error(`absorbShift: the shift must be float32, got ${shift.dtype}`);
  const sd = shift.data as Float32Array;
  for (let i = 0; i < sd.length; i++) if (!Number.isFinite(sd[i])) throw new Error(`absorbShift: the shift holds NaN or infinity (value ${i})`);

  const node = firstLayer(g, input);
  const what = `absorbShift: first layer '${node.name || node.opType}' (${node.opType})`;
  const weight = g.values.get(node.input[1]);
  if (weight?.kind !== 'initializer' && weight?.kind !== 'constant') throw new Error(`${what}: its weight '${node.input[1]}' is computed, not stored; only a stored weight can be folded`);
  if (node.opType === 'Gemm' && (getAttr(node, 'transA')?.i ?? 0n) !== 0n) throw new Error(`${what}: transA = 1 puts the batch on axis 1; not supported`);

  // W·shift: the layer without its bias, run on the shift alone (one example).
  const out = node.output[0];
  const unbiased = g.nodes.map((n) => (n === node ? { ...n, input: n.input.slice(0, 2) } : n));
  const probeGraph = prune(selectOutputs(g.withGraph({ node: unbiased }), [out]));
  const probe = await Model.load(probeGraph.encode(), { runtime: model.runtime, probe: false });
  const rank = model.inputs.find((i) => i.name === input)?.shape?.length;
  const batched = rank === undefined ? shift.shape[0] === 1 && shift.rank > 1 : shift.rank === rank;
  if (batched && shift.shape[0] !== 1) throw new Error(`absorbShift: the shift [${shift.shape.join(', ')}] must be one example of '${input}', [...] or [1, ...]`);
  const one = batched ? shift : shift.reshape([1, ...shift.shape]);
  const ws = await probe
    .run({ [input]: one })
    .then((r) => r.outputs[out] as Tensor<'float32'>)
    .finally(() => probe.dispose());
  const perExample = ws.shape.slice(1); // [M], [T, M] or [M, H', W']

  let rewritten: Graph;
  let mode: ShiftedModel['mode'] = 'bias';
  if (node.opType === 'Gemm') {
    const beta = getAttr(node, 'beta')?.f ?? 1;
    if (beta === 0) throw new Error(`${what}: beta = 0 ignores the bias, which therefore cannot absorb the shift`);
    const b = node.input[2] ? broadcastTo(stored(g, node.input[2], what), perExample, what) : new Float64Array(ws.size);
    rewritten = setInput(g, node, 2, newBias(g, node, b.map((v, j) => v - ws.data[j] / beta), perExample));
  } else if (node.opType === 'MatMul') {
    const add = addAfter(g, out);
    if (add) {
      const b = broadcastTo(stored(g, add.bias, what), perExample, what);
      rewritten = setInput(g, add.node, add.slot, newBias(g, add.node, b.map((v, j) => v - ws.data[j]), perExample));
    } else {
      rewritten = addBias(g, out, Float64Array.from(ws.data, (v) => -v), perExample);
    }
  } else {
    const M = perExample[0];
    const plane = ws.size / M;
    const pads = getAttr(node, 'pads')?.ints.some((p) => p !== 0n) ?? false;
    const autoPad = new TextDecoder().decode(getAttr(node, 'auto_pad')?.s ?? new Uint8Array());
    const samePad = pads || autoPad.startsWith('SAME');
    const shiftPlane = shift.size / (one.shape[1] ?? 1);
    const flatPerChannel = Array.from({ length: one.shape[1] ?? 1 }, (_, c) => sd.subarray(c * shiftPlane, (c + 1) * shiftPlane).every((v) => v === sd[c * shiftPlane]));
    if (!samePad && flatPerChannel.every(Boolean)) {
      const b = node.input[2] ? broadcastTo(stored(g, node.input[2], what), [M], what) : new Float64Array(M);
      const folded = b.map((v, m) => {
        let s = 0;
        for (let p = 0; p < plane; p++) s += ws.data[m * plane + p];
        return v - s / plane; // every position holds the same W·shift; the mean only averages rounding
      });
      rewritten = setInput(g, node, 2, newBias(g, node, folded, [M]));
    } else {
      mode = 'per-position';
      rewritten = addBias(g, out, Float64Array.from(ws.data, (v) => -v), perExample);
    }
  }
  const shifted = await Model.load(prune(rewritten).encode(), { runtime: model.runtime });
  return { model: shifted, layer: node.name || `${node.opType} → ${out}`, mode };
}

/** The Gemm/MatMul/Conv reading `input`, through shape-only ops; each value on the way must have one reader. */
function firstLayer(g: Graph, input: string): NodeProto {
  let value = input;
  for (;;) {
    const readers = g.consumers.get(value) ?? [];
    if (readers.length !== 1) {
      throw new Error(`absorbShift: '${value}' is read by ${readers.length} nodes (${readers.map((i) => g.nodes[i].opType).join(', ') || 'none'}); the shift can be absorbed only by a single first layer`);
    }
    const n = g.nodes[readers[0]];
    if (LINEAR.has(n.opType) && n.input[0] === value) return n;
    if (!PASS_THROUGH.has(n.opType) || n.input[0] !== value) {
      throw new Error(`absorbShift: the input reaches a ${n.opType} ('${n.name}') before any Gemm, MatMul or Conv; only Flatten, Reshape and Identity may come first`);
    }
    value = n.output[0];
  }
}

/** A stored float32 tensor (an initializer or a Constant node's value). */
function stored(g: Graph, name: string, what: string): Tensor<'float32'> {
  const v = g.values.get(name);
  const proto = v?.kind === 'initializer' ? g.initializers.get(name) : v?.kind === 'constant' ? getAttr(g.nodes[v.producer!], 'value')?.t : undefined;
  if (!proto) throw new Error(`${what}: its bias '${name}' is computed, not stored; only a stored bias can absorb the shift`);
  const t = tensorFromProto(proto);
  if (t.dtype !== 'float32') throw new Error(`${what}: its bias '${name}' is ${t.dtype}; only float32 is supported`);
  return t as Tensor<'float32'>;
}

/** `t` broadcast (numpy rules, right-aligned) to `shape`, as float64. */
function broadcastTo(t: Tensor<'float32'>, shape: readonly number[], what: string): Float64Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const ts = t.shape.slice(-shape.length);
  const lead = t.shape.slice(0, Math.max(0, t.rank - shape.length));
  const pad = [...new Array<number>(shape.length - ts.length).fill(1), ...ts];
  if (lead.some((d) => d !== 1) || pad.some((d, i) => d !== 1 && d !== shape[i])) throw new Error(`${what}: bias [${t.shape.join(', ')}] does not broadcast to one example's output [${shape.join(', ')}]`);
  const out = new Float64Array(size);
  for (let k = 0; k < size; k++) {
    let rest = k;
    let src = 0;
    let stride = size;
    let sstride = pad.reduce((a, b) => a * b, 1);
    for (let i = 0; i < shape.length; i++) {
      stride /= shape[i];
      sstride /= pad[i];
      const c = Math.floor(rest / stride);
      rest -= c * stride;
      src += (pad[i] === 1 ? 0 : c) * sstride;
    }
    out[k] = t.data[src];
  }
  return out;
}

function newBias(g: Graph, node: NodeProto, values: Float64Array, shape: readonly number[]): { name: string; tensor: Tensor<'float32'> } {
  return { name: freshName(g, `${node.name || node.output[0]}.shifted_bias`), tensor: new Tensor('float32', Float32Array.from(values), shape) };
}

/** `node` with input `slot` read from a new initializer. */
function setInput(g: Graph, node: NodeProto, slot: number, bias: { name: string; tensor: Tensor }): Graph {
  const node2 = g.nodes.map((n) => {
    if (n !== node) return n;
    const input = [...n.input];
    while (input.length <= slot) input.push('');
    input[slot] = bias.name;
    return { ...n, input };
  });
  return g.withGraph({ node: node2, initializer: [...g.proto.initializer, tensorToProto(bias.tensor, bias.name)] });
}

/** The Add that adds a stored bias to `value` (its only reader), or undefined. */
function addAfter(g: Graph, value: string): { node: NodeProto; slot: number; bias: string } | undefined {
  const readers = g.consumers.get(value) ?? [];
  if (readers.length !== 1) return undefined;
  const n = g.nodes[readers[0]];
  if (n.opType !== 'Add') return undefined;
  const slot = n.input[0] === value ? 1 : 0;
  const kind = g.values.get(n.input[slot])?.kind;
  return kind === 'initializer' || kind === 'constant' ? { node: n, slot, bias: n.input[slot] } : undefined;
}

/** An Add of a new bias tensor after `value`. */
function addBias(g: Graph, value: string, values: Float64Array, shape: readonly number[]): Graph {
  const name = freshName(g, `${value}.shift_bias`);
  return interpose(g, value, (source) => ({
    nodes: [makeNode('Add', [source, name], [value], { name: freshName(g, `${value}/AbsorbShift`) })],
    initializers: [tensorToProto(new Tensor('float32', Float32Array.from(values), shape), name)],
  }));
}
