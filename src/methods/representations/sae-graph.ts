/**
 * The ONNX graphs of a sparse autoencoder: the forward pass (encoder → latents → decoder) with the weights as graph
 * inputs, and the training step graph (forward → loss → every weight gradient, from the autodiff VJP rules), so one
 * session run per step returns the loss parts and the gradients, and Adam updates the weights on the host.
 *
 * Forward (Bricken et al. 2023; Gao et al. 2024): f = act((x − b_dec) W_enc + b_enc), x̂ = f W_dec + b_dec, with act
 * ReLU, or for TopK the ReLU of the pre-activations kept only where they are among the k largest of their row (the
 * mask is a comparison with the k-th largest, so no gradient flows through the selection, as in Gao et al.).
 * Loss: mean over the batch of ‖x − x̂‖² (summed over dimensions) + λ · mean over the batch of ‖f‖₁ (ReLU only).
 */
import { buildGradGraph } from '../../autodiff/grad.js';
import { defaultRules } from '../../autodiff/rules/index.js';
import { Graph } from '../../onnx/graph.js';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo, type Dim, type NodeProto, type TensorProto } from '../../onnx/proto.js';
import { selectOutputs } from '../../onnx/rewrite.js';
import { ONNX_DTYPE, tensorToProto } from '../../onnx/tensor-proto.js';
import { probeShapes } from '../../model/train/graph.js';
import type { Runtime } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';

/** How latents are made sparse: an L1 penalty on ReLU latents, or exactly the k largest pre-activations kept. */
export type Sparsity = { readonly kind: 'relu'; readonly l1: number } | { readonly kind: 'topk'; readonly k: number };

/** The four weights, in this order everywhere (feeds, gradients, saved initializers). */
export const SAE_WEIGHTS = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;
export type SaeWeight = (typeof SAE_WEIGHTS)[number];

export const SAE_IO = { x: 'x', latents: 'latents', recon: 'reconstruction', loss: 'loss', mse: 'mse', l1: 'l1' } as const;

export function weightShapes(d: number, f: number): Record<SaeWeight, number[]> {
  return { W_enc: [d, f], b_enc: [f], W_dec: [f, d], b_dec: [d] };
}

interface Emit {
  nodes: NodeProto[];
  op(opType: string, inputs: string[], attributes?: ReturnType<typeof attr>[], output?: string): string;
  constant(t: Tensor): string;
}

function emitter(): Emit {
  const nodes: NodeProto[] = [];
  let k = 0;
  const op: Emit['op'] = (opType, inputs, attributes = [], output) => {
    const name = `/sae/${opType}_${k++}`;
    const out = output ?? `${name}_output_0`;
    nodes.push(makeNode(opType, inputs, [out], { name, attributes }));
    return out;
  };
  return { nodes, op, constant: (t) => op('Constant', [], [attr('value', { tensor: tensorToProto(t) })]) };
}

/** Emits the encoder and decoder; returns the latents and reconstruction values. */
function emitForward(e: Emit, sparsity: Sparsity, latentsName?: string, reconName?: string): { f: string; xhat: string } {
  const centred = e.op('Sub', [SAE_IO.x, 'b_dec']);
  const pre = e.op('Add', [e.op('MatMul', [centred, 'W_enc']), 'b_enc']); // [N, F]
  let f: string;
  if (sparsity.kind === 'relu') {
    f = e.op('Relu', [pre], [], latentsName);
  } else {
    const k = e.constant(Tensor.int64([sparsity.k]));
    const top = '/sae/TopK_values';
    e.nodes.push(makeNode('TopK', [pre, k], [top, '/sae/TopK_indices'], { name: '/sae/TopK', attributes: [attr('axis', { int: -1 })] })); // [N, k], descending
    const kth = e.op('Gather', [top, e.constant(Tensor.int64([sparsity.k - 1]))], [attr('axis', { int: 1 })]); // [N, 1]
    const keep = e.op('Cast', [e.op('GreaterOrEqual', [pre, kth])], [attr('to', { int: ONNX_DTYPE.float32 })]);
    f = e.op('Mul', [e.op('Relu', [pre]), keep], [], latentsName);
  }
  const xhat = e.op('Add', [e.op('MatMul', [f, 'W_dec']), 'b_dec'], [], reconName);
  return { f, xhat };
}

function weightInputs(d: number, f: number) {
  const shapes = weightShapes(d, f);
  return SAE_WEIGHTS.map((w) => makeValueInfo(w, ONNX_DTYPE.float32, shapes[w]));
}

function model(nodes: NodeProto[], inputs: ReturnType<typeof makeValueInfo>[], outputs: ReturnType<typeof makeValueInfo>[], initializer: TensorProto[] = []) {
  return makeModel({
    irVersion: 8n,
    producerName: 'glassbox',
    opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: 17n }],
    graph: makeGraph({ name: 'sparse_autoencoder', node: nodes, input: inputs, output: outputs, initializer }),
  });
}

/**
 * The inference graph: input `x` [N, d] → outputs `latents` [N, f] and `reconstruction` [N, d]. With `weights` the
 * weights are initializers (the file `save` writes); without, they are graph inputs fed each run (training-time eval).
 */
export function forwardModel(d: number, f: number, sparsity: Sparsity, weights?: Readonly<Record<SaeWeight, Tensor<'float32'>>>, doc = '') {
  const e = emitter();
  emitForward(e, sparsity, SAE_IO.latents, SAE_IO.recon);
  const batch: Dim = 'N';
  const m = model(
    e.nodes,
    [makeValueInfo(SAE_IO.x, ONNX_DTYPE.float32, [batch, d]), ...(weights ? [] : weightInputs(d, f))],
    [makeValueInfo(SAE_IO.latents, ONNX_DTYPE.float32, [batch, f]), makeValueInfo(SAE_IO.recon, ONNX_DTYPE.float32, [batch, d])],
    weights ? SAE_WEIGHTS.map((w) => tensorToProto(weights[w], w)) : [],
  );
  m.docString = doc;
  return m;
}

export interface SaeStepGraph {
  readonly bytes: Uint8Array;
  readonly seed: string;
  /** loss, mse, l1, then the gradient of each weight in SAE_WEIGHTS order. */
  readonly fetches: readonly string[];
}

/** The training step graph for batches of exactly `batch` rows. */
export async function buildSaeStep(runtime: Runtime, d: number, f: number, batch: number, sparsity: Sparsity): Promise<SaeStepGraph> {
  const e = emitter();
  const { f: lat, xhat } = emitForward(e, sparsity);
  const diff = e.op('Sub', [xhat, SAE_IO.x]);
  const axis1 = e.constant(Tensor.int64([1]));
  const perRow = e.op('ReduceSum', [e.op('Mul', [diff, diff]), axis1], [attr('keepdims', { int: 0 })]); // [N]
  e.op('ReduceMean', [perRow], [attr('keepdims', { int: 0 })], SAE_IO.mse);
  const l1Row = e.op('ReduceSum', [lat, axis1], [attr('keepdims', { int: 0 })]); // latents are ≥ 0, so this is ‖f‖₁
  e.op('ReduceMean', [l1Row], [attr('keepdims', { int: 0 })], SAE_IO.l1);
  const lambda = sparsity.kind === 'relu' ? sparsity.l1 : 0;
  e.op('Add', [SAE_IO.mse, e.op('Mul', [SAE_IO.l1, e.constant(Tensor.float32([lambda], []))])], [], SAE_IO.loss);
  const scalar = (n: string) => makeValueInfo(n, ONNX_DTYPE.float32, []);
  const g = new Graph(model(e.nodes, [makeValueInfo(SAE_IO.x, ONNX_DTYPE.float32, [batch, d]), ...weightInputs(d, f)], [scalar(SAE_IO.loss), scalar(SAE_IO.mse), scalar(SAE_IO.l1)]));
  const shapes = weightShapes(d, f);
  const feeds: Record<string, Tensor> = { [SAE_IO.x]: Tensor.zeros('float32', [batch, d]) };
  for (const w of SAE_WEIGHTS) feeds[w] = Tensor.zeros('float32', shapes[w]);
  const info = await probeShapes(runtime, g, feeds);
  const gg = buildGradGraph(g, { of: SAE_IO.loss, wrt: [...SAE_WEIGHTS], rules: defaultRules, info: (v) => info.get(v) ?? g.values.get(v) ?? {} });
  const fetches = [SAE_IO.loss, SAE_IO.mse, SAE_IO.l1, ...SAE_WEIGHTS.map((w) => gg.grads[w])];
  return { bytes: selectOutputs(gg.graph, fetches).encode(), seed: gg.seed, fetches };
}
