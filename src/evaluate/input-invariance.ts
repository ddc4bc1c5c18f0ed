/**
 * Input invariance (Kindermans, Hooker, Adebayo, Alber, Schütt, Dähne, Erhan, Kim 2017, "The (Un)reliability of
 * saliency methods"): shift the input by a constant m and give a second network the shift in its first layer's bias
 * (b' = b − W·m, absorb-shift.ts), so that f₂(x + m) = f₁(x) with identical weights and gradients. A method is input
 * invariant when it attributes the same to x under f₁ as to x + m under f₂. The gradient is; gradient × input and
 * integrated gradients from a zero baseline are not; integrated gradients from a baseline shifted with the input are.
 *
 * Per example the value is ‖Φ₂ − Φ₁‖∞ / ‖Φ₁‖∞ (lower is better); the check passes when every example is within the
 * tolerance. A second check reports that the two models agree on their outputs, without which the test means nothing.
 *
 * @example
 * const [g, gxi, ig0, igShift] = await inputInvarianceAll(model, { x }, [
 *   { method: 'gradient' }, { method: 'gradient-x-input' },
 *   { method: 'integrated-gradients' }, { method: 'integrated-gradients', shiftBaseline: true },
 * ], { shift: -1, target: 3 });
 * g.checks[0].passed; // true: the gradient is input invariant
 */
import { resolveBaseline } from '../methods/attribution/baseline.js';
import type { ExplainOptions } from '../methods/attribution/method.js';
import type { Model } from '../model/model.js';
import { Tensor } from '../runtime/tensor.js';
import { absorbShift } from './absorb-shift.js';
import { explainWith, mean, targetOf, type Evaluation, type Inputs, type MethodRef, type MetricBaseOptions } from './evaluation.js';

export interface InvarianceCase {
  readonly method: MethodRef;
  /** Options of the method (its steps, baseline…). */
  readonly explain?: ExplainOptions;
  /** Move the method's baseline with the input in the second model: b₂ = b₁ + m (default false). */
  readonly shiftBaseline?: boolean;
}

export interface InvarianceOptions extends MetricBaseOptions {
  /** The shift m: a number for every value, or a tensor of one example's shape (default −1). */
  readonly shift?: number | Tensor;
  /** Largest relative ‖Φ₂ − Φ₁‖∞ / ‖Φ₁‖∞ that counts as invariant (default 1e-3). */
  readonly tolerance?: number;
  /** Largest difference of the two models' outputs, relative to max(1, |output|), that counts as agreeing (default 1e-4). */
  readonly outputTolerance?: number;
}

/** Input invariance of one method (see inputInvarianceAll). */
export async function inputInvariance(model: Model, inputs: Inputs, method: MethodRef, options: InvarianceOptions & Omit<InvarianceCase, 'method'> = {}): Promise<Evaluation> {
  return (await inputInvarianceAll(model, inputs, [{ method, explain: options.explain, shiftBaseline: options.shiftBaseline }], options))[0];
}

/** Input invariance of several methods against one shifted model, built once. */
export async function inputInvarianceAll(model: Model, inputs: Inputs, cases: readonly InvarianceCase[], options: InvarianceOptions = {}): Promise<Evaluation[]> {
  const floats = model.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
  const wrt = options.wrt ?? (floats.length === 1 ? floats[0] : undefined);
  if (wrt === undefined) throw new Error(`input invariance: the model has ${floats.length} float32 inputs (${floats.join(', ')}); name the one to shift with { wrt }`);
  if (!model.inputs.some((i) => i.name === wrt)) throw new Error(`input invariance: '${wrt}' is not an input of the model; the shift is absorbed by the first layer, so attribute to an input`);
  const x = inputs[wrt];
  if (x?.dtype !== 'float32' || x.rank < 1) throw new Error(`input invariance: input '${wrt}' must be given as float32 [N, ...], got ${x ? `${x.dtype} [${x.shape.join(', ')}]` : 'nothing'}`);
  const tolerance = options.tolerance ?? 1e-3;
  const outputTolerance = options.outputTolerance ?? 1e-4;
  if (!(tolerance >= 0) || !(outputTolerance >= 0)) throw new Error(`input invariance: tolerances must be ≥ 0, got ${tolerance} and ${outputTolerance}`);
  const rowShape = x.shape.slice(1);
  const R = x.size / Math.max(1, x.shape[0]);
  const shiftOpt = options.shift ?? -1;
  const m = shiftRow(shiftOpt, rowShape, R);

  const started = performance.now();
  const shifted = await absorbShift(model, new Tensor('float32', m, rowShape), { input: wrt });
  try {
    const x2 = new Tensor('float32', Float32Array.from(x.data as Float32Array, (v, k) => v + m[k % R]), x.shape);
    const inputs2 = { ...inputs, [wrt]: x2 };
    const agree = await outputsAgree(model, inputs, shifted.model, inputs2, outputTolerance);
    const setup = performance.now() - started;
    const results: Evaluation[] = [];
    for (const c of cases) {
      const t0 = performance.now();
      const base = { ...c.explain, wrt, target: options.target ?? c.explain?.target, maxBatchBytes: options.maxBatchBytes, signal: options.signal };
      const a1 = await explainWith(c.method, model, inputs, base);
      const explain2: ExplainOptions = { ...base, target: targetOf(a1, base.target) };
      const b2 = c.shiftBaseline ? shiftedBaseline(c.explain?.baseline, x as Tensor<'float32'>, m) : undefined;
      const a2 = await explainWith(c.method, shifted.model, inputs2, b2 ? { ...explain2, baseline: b2 } : explain2);
      const values = relativeDiffs(a1.attributions.data, a2.attributions.data, x.shape[0], R);
      const worst = Math.max(0, ...values);
      const invariant = worst <= tolerance;
      results.push({
        metric: 'input-invariance',
        method: c.shiftBaseline ? `${a1.method} (baseline shifted with the input)` : a1.method,
        values,
        mean: mean(values),
        higherIsBetter: false,
        checks: [
          { name: 'input invariance', value: values, passed: invariant && agree.passed === true, detail: `‖Φ(x; f₁) − Φ(x + m; f₂)‖∞ / ‖Φ(x; f₁)‖∞ per example, worst ${worst.toPrecision(3)} (tolerance ${tolerance})${agree.passed ? '' : '; the two models disagree, see the other check'}` },
          agree,
        ],
        params: { shift: typeof shiftOpt === 'number' ? shiftOpt : `tensor [${shiftOpt.shape.join(', ')}]`, shiftBaseline: c.shiftBaseline ?? false, tolerance, layer: shifted.layer, absorbed: shifted.mode },
        ms: setup + performance.now() - t0,
      });
    }
    return results;
  } finally {
    await shifted.model.dispose();
  }
}

/** The shift as one example's values. */
function shiftRow(shift: number | Tensor, rowShape: readonly number[], R: number): Float32Array {
  if (typeof shift === 'number') {
    if (!Number.isFinite(shift)) throw new Error(`input invariance: shift must be finite, got ${shift}`);
    return new Float32Array(R).fill(shift);
  }
  const shape = shift.shape[0] === 1 && shift.rank === rowShape.length + 1 ? shift.shape.slice(1) : shift.shape;
  if (shift.dtype !== 'float32' || shape.join() !== rowShape.join()) throw new Error(`input invariance: the shift must be a number or float32 of one example's shape [${rowShape.join(', ')}], got ${shift.dtype} [${shift.shape.join(', ')}]`);
  return (shift.data as Float32Array).slice();
}

/** The method's baseline for x, moved by m: the baseline of the same point in the shifted input space. */
function shiftedBaseline(baseline: ExplainOptions['baseline'], x: Tensor<'float32'>, m: Float32Array): Tensor<'float32'> {
  const b = resolveBaseline(baseline, x, 'input invariance: baseline');
  return new Tensor('float32', Float32Array.from(b.data, (v, k) => v + m[k % m.length]), x.shape);
}

async function outputsAgree(m1: Model, in1: Inputs, m2: Model, in2: Inputs, tolerance: number) {
  const [o1, o2] = [(await m1.run(in1)).outputs, (await m2.run(in2)).outputs];
  let worst = 0;
  for (const [k, t] of Object.entries(o1)) {
    if (t.dtype !== 'float32') continue;
    for (let i = 0; i < t.size; i++) worst = Math.max(worst, Math.abs(t.at(i) - o2[k].at(i)) / Math.max(1, Math.abs(t.at(i))));
  }
  return { name: 'outputs agree', value: worst, passed: worst <= tolerance, detail: `max relative |f₁(x) − f₂(x + m)| over the outputs: ${worst.toExponential(2)} (tolerance ${tolerance})` };
}

function relativeDiffs(a: Float32Array, b: Float32Array, n: number, R: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    let d = 0;
    let s = 0;
    for (let j = 0; j < R; j++) {
      d = Math.max(d, Math.abs(a[i * R + j] - b[i * R + j]));
      s = Math.max(s, Math.abs(a[i * R + j]));
    }
    return d === 0 ? 0 : s === 0 ? Infinity : d / s;
  });
}
