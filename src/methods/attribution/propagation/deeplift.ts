/**
 * DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
 * Propagating Activation Differences"): multipliers m = Δy/Δx through elementwise nonlinearities, the ordinary
 * gradient through linear ops, and attributions (x − reference) ⊙ m, which sum to f(x) − f(reference)
 * ("summation-to-delta") wherever every nonlinearity on the path is elementwise.
 *
 * How the rule sees both x and the reference: each chunk of examples runs as one doubled batch [x; ref] (2k rows),
 * so every nonlinearity's input and output hold both halves in the same graph. A rescale rule views them as [2, −1],
 * takes Δx = x − x_ref and Δy = y − y_ref from the two rows, and multiplies the incoming gradient of both halves by
 * m = Δy/Δx (by the exact derivative where |Δx| ≤ eps). Linear ops act on rows independently, so the first half of
 * the input gradient holds the multipliers; the second half is never read. Max-pooling sends each window's Δy to
 * its winner under x (or under the reference) and divides by Δx, which keeps summation-to-delta exact. Softmax, global and
 * reduce maxima and products of two activations keep their gradients; summation-to-delta then holds only
 * approximately, which the check reports. A model whose graph fixes the batch size (a Reshape to a literal batch
 * dimension) cannot run the doubled batch.
 *
 * @example
 * const d = await deepLift(model, { x }, { target: 0, baseline: 0 });
 * d.checks[0].passed; // Σ attributions = f(x) − f(baseline) per example
 */
import { defaultRules } from '../../../autodiff/rules/index.js';
import type { RuleTable, VjpArgs, VjpRule } from '../../../autodiff/types.js';
import type { Model } from '../../../model/model.js';
import { Tensor, type DType } from '../../../runtime/tensor.js';
import { slice } from '../../../autodiff/helpers.js';
import { attr } from '../../../onnx/proto.js';
import { Attributor, attributionResult, gatherRows, type AttributionOptions } from '../attributor.js';
import { resolveBaseline, type Baseline } from '../baseline.js';
import { completenessCheck, type Attribution } from '../explanation.js';
import { describeBaseline } from '../baseline.js';
import type { Inputs } from '../gradient.js';

/** Elementwise nonlinearities that get the rescale rule (input 0 is the only one on the path). */
export const RESCALED_OPS = [
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'Softplus', 'Softsign', 'Gelu', 'HardSigmoid', 'HardSwish',
  'Clip', 'Erf', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Abs', 'Sin', 'Cos',
] as const satisfies readonly (keyof typeof defaultRules)[];

/** Views of the doubled batch: [2k, ...] → [2, k·…] (row 0 x, row 1 the reference), and Δ = row 0 − row 1. */
function pairs(a: VjpArgs) {
  const e = a.emit;
  const shape = e.constant(Tensor.int64([2, -1]));
  const halves = (v: string) => e.op1('Reshape', [v, shape]);
  const rows = (v: string) => {
    const h = halves(v);
    return [slice(e, h, [0], [1], [0]), slice(e, h, [1], [2], [0])]; // [1, k·…] each
  };
  const delta = (v: string) => e.op1('Sub', rows(v));
  return { halves, rows, delta };
}

/** m = Δy/Δx over the doubled batch, falling back to the exact rule where |Δx| ≤ eps. */
function rescale(exact: VjpRule, eps: number): VjpRule {
  return (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const e = a.emit;
    const [x, y] = [a.inputs[0], a.outputs[0]];
    const t = (a.info(x).dtype ?? 'float32') as DType;
    const { halves, delta } = pairs(a);
    const dx = delta(x);
    const wide = e.op1('Greater', [e.op1('Abs', [dx]), e.scalar(eps, t)]);
    const m = e.op1('Div', [delta(y), e.op1('Where', [wide, dx, e.scalar(1, t)])]);
    const out = e.op1('Where', [wide, e.op1('Mul', [halves(g), m]), halves(exact(a)[0]!)]);
    return [e.op1('Reshape', [out, e.op1('Shape', [x])])];
  };
}

/**
 * Max-pooling: a window's change Δy = x[p] − ref[q] (p the winner under x, q under the reference) times g goes
 * whole to p where Δx[p] is not tiny, else to q (where then Δx[q] = Δy up to eps), and each input's multiplier is
 * the mass it received over its Δx. Every window's inputs thus share exactly g·Δy: summation-to-delta holds
 * through the pool, including windows that are dead under x (all zeros after a ReLU).
 */
function rescaleMaxPool(exact: VjpRule, eps: number): VjpRule {
  return (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const e = a.emit;
    const [x, y] = [a.inputs[0], a.outputs[0]];
    const t = (a.info(x).dtype ?? 'float32') as DType;
    const { halves, rows, delta } = pairs(a);
    const dx = delta(x); // [1, F]
    const flat = e.constant(Tensor.int64([-1]));
    // Δx at each half's winner: the doubled pool's indices are flat over [2k, ...], and both halves of [Δx; Δx] hold Δx.
    const [, idx] = e.op('MaxPool', [x], a.node.attribute.filter((v) => v.name !== 'storage_order'), 2);
    const both = e.op1('Reshape', [e.op1('Concat', [dx, dx], [attr('axis', { int: 0 })]), flat]);
    const atWinner = rows(e.op1('Reshape', [e.op1('Gather', [both, e.op1('Reshape', [idx, flat])]), e.op1('Shape', [y])]));
    const useX = e.op1('Greater', [e.op1('Abs', [atWinner[0]]), e.scalar(eps, t)]); // [1, Fo]
    const mass = e.op1('Mul', [rows(g)[0], delta(y)]);
    const zero = e.scalar(0, t);
    const sent = e.op1('Concat', [e.op1('Where', [useX, mass, zero]), e.op1('Where', [useX, zero, mass])], [attr('axis', { int: 0 })]);
    const routed = e.op1('Add', rows(exact({ ...a, grads: [e.op1('Reshape', [sent, e.op1('Shape', [y])]), ...a.grads.slice(1)] })[0]!)); // [1, F]
    const wide = e.op1('Greater', [e.op1('Abs', [dx]), e.scalar(eps, t)]);
    const m = e.op1('Div', [routed, e.op1('Where', [wide, dx, e.scalar(1, t)])]);
    const out = e.op1('Where', [wide, m, halves(exact(a)[0]!)]);
    return [e.op1('Reshape', [out, e.op1('Shape', [x])])];
  };
}

/** The default table with the rescale rule on every elementwise nonlinearity. */
export function rescaleRules(eps: number): RuleTable {
  const table: Record<string, VjpRule> = { ...defaultRules };
  for (const op of RESCALED_OPS) table[op] = rescale(defaultRules[op], eps);
  table.MaxPool = rescaleMaxPool(defaultRules.MaxPool, eps);
  return table;
}

export interface DeepLiftOptions extends AttributionOptions {
  /** The reference input (default zeros). */
  readonly baseline?: Baseline;
  /** |Δx| at or below which a multiplier is the derivative (default 1e-6). */
  readonly eps?: number;
  /** Largest relative summation-to-delta error that passes (default 1e-3). */
  readonly tolerance?: number;
}

export async function deepLift(model: Model, inputs: Inputs, options: DeepLiftOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const eps = options.eps ?? 1e-6;
  if (!(eps >= 0 && Number.isFinite(eps))) throw new Error(`deeplift: eps must be a finite number ≥ 0, got ${options.eps}`);
  const a = await Attributor.create(model, inputs, options);
  const ref = resolveBaseline(options.baseline, a.x, 'deeplift: baseline');
  const R = a.rowSize;
  const rules = { table: rescaleRules(eps), name: `deeplift-rescale:${eps}` };
  const isOutput = a.runModel.outputs.some((o) => o.name === a.target.output);
  const mult = new Float32Array(a.x.size);
  let refScores: Float32Array = new Float32Array(a.n);
  // Chunks of k examples run as 2k rows; the budget split is ours, so the model must not split the pairs apart.
  const k = Math.max(1, Math.floor(a.rowsPerChunk / 2));
  for (let s = 0; s < a.n; s += k) {
    options.signal?.throwIfAborted();
    const e = Math.min(a.n, s + k);
    const rows = new Float32Array(2 * (e - s) * R);
    rows.set(a.x.data.subarray(s * R, e * R));
    rows.set(ref.data.subarray(s * R, e * R), (e - s) * R);
    const owner = Int32Array.from({ length: 2 * (e - s) }, (_, i) => s + (i % (e - s)));
    const seed = gatherRows(a.target.seed, owner);
    const r = await a.runModel.grad(a.feeds(rows, owner), {
      of: a.target.output, wrt: [a.wrt], seed, rules: rules.table, rulesName: rules.name, maxBatchBytes: Infinity, signal: options.signal,
    });
    mult.set((r.grads[a.wrt].data as Float32Array).subarray(0, (e - s) * R), s * R);
    const out = r.outputs[a.target.output] as Tensor<'float32'> | undefined;
    if (isOutput && out) {
      const row = out.size / out.shape[0];
      for (let i = 0; i < e - s; i++) {
        let acc = 0;
        for (let j = 0; j < row; j++) acc += out.data[(e - s + i) * row + j] * seed.data[(e - s + i) * row + j];
        refScores[s + i] = acc;
      }
    }
    options.onProgress?.(e, a.n);
  }
  if (!isOutput) refScores = await a.scores(a.n, (s, e) => ({ rows: ref.data.slice(s * R, e * R), owner: Int32Array.from({ length: e - s }, (_, i) => s + i) }));
  const attr = new Float32Array(a.x.size);
  for (let i = 0; i < attr.length; i++) attr[i] = (a.x.data[i] - ref.data[i]) * mult[i];
  const check = completenessCheck(new Tensor('float32', attr, a.x.shape), a.scores0, refScores, options.tolerance ?? 1e-3);
  const params = { rule: 'rescale', baseline: describeBaseline(options.baseline), eps };
  return attributionResult(a, { method: 'deeplift', attributions: attr, started, checks: [{ ...check, name: 'summation-to-delta' }], params, extra: { baselineScores: Array.from(refScores) } });
}
