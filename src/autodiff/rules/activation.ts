/** VJP rules of more elementwise activations: Gelu (opset 20), Softsign, Elu, Selu, Sin, Cos. Each is dx = g ⊙ f′(x). */
import { floatAttr } from '../helpers.js';
import type { DType } from '../../runtime/tensor.js';
import type { Emitter, VjpArgs, VjpRule } from '../types.js';
import { dtypeOf, strAttr, where } from './spatial.js';

/** A unary rule: dx = g ⊙ f′, with f′ built from x, y = f(x), the emitter and the dtype. */
function unary(derivative: (e: Emitter, x: string, y: string, t: DType, a: VjpArgs) => string): VjpRule {
  return (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    return [a.emit.op1('Mul', [g, derivative(a.emit, a.inputs[0], a.outputs[0], dtypeOf(a, a.inputs[0]), a)])];
  };
}

const SELU_ALPHA = 1.67326319217681884765625;
const SELU_GAMMA = 1.05070102214813232421875;

export const activationRules = {
  /**
   * Gelu (Hendrycks & Gimpel 2016). Exact: y = x·Φ(x), y′ = Φ(x) + x·φ(x) with Φ(x) = ½(1 + erf(x/√2)),
   * φ(x) = e^(−x²/2)/√(2π). Tanh form: y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³),
   * y′ = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).
   */
  Gelu: unary((e, x, _y, t, a) => {
    const c = (v: number) => e.scalar(v, t);
    const approximate = strAttr(a, 'approximate', 'none');
    const x2 = e.op1('Mul', [x, x]);
    if (approximate === 'tanh') {
      const k = Math.sqrt(2 / Math.PI);
      const u = e.op1('Mul', [c(k), e.op1('Add', [x, e.op1('Mul', [c(0.044715), e.op1('Mul', [x2, x])])])]);
      const th = e.op1('Tanh', [u]);
      const du = e.op1('Mul', [c(k), e.op1('Add', [c(1), e.op1('Mul', [c(3 * 0.044715), x2])])]);
      const sech2 = e.op1('Sub', [c(1), e.op1('Mul', [th, th])]);
      const left = e.op1('Mul', [c(0.5), e.op1('Add', [c(1), th])]);
      return e.op1('Add', [left, e.op1('Mul', [e.op1('Mul', [c(0.5), x]), e.op1('Mul', [sech2, du])])]);
    }
    if (approximate !== 'none') throw new Error(`${where(a)}: approximate '${approximate}' is not known`);
    const cdf = e.op1('Mul', [c(0.5), e.op1('Add', [c(1), e.op1('Erf', [e.op1('Mul', [x, c(Math.SQRT1_2)])])])]);
    const pdf = e.op1('Mul', [c(1 / Math.sqrt(2 * Math.PI)), e.op1('Exp', [e.op1('Mul', [x2, c(-0.5)])])]);
    return e.op1('Add', [cdf, e.op1('Mul', [x, pdf])]);
  }),
  /** y = x/(1 + |x|), y′ = 1/(1 + |x|)². */
  Softsign: unary((e, x, _y, t) => {
    const d = e.op1('Add', [e.scalar(1, t), e.op1('Abs', [x])]);
    return e.op1('Reciprocal', [e.op1('Mul', [d, d])]);
  }),
  /** y = x for x > 0, α(eˣ − 1) otherwise; y′ = 1, or y + α (PyTorch's choice at 0: α). */
  Elu: unary((e, x, y, t, a) => {
    const alpha = e.scalar(floatAttr(a.node, 'alpha', 1), t);
    return e.op1('Where', [e.op1('Greater', [x, e.scalar(0, t)]), e.scalar(1, t), e.op1('Add', [y, alpha])]);
  }),
  /** y = γx for x > 0, γα(eˣ − 1) otherwise; y′ = γ, or y + γα. */
  Selu: unary((e, x, y, t, a) => {
    const gamma = floatAttr(a.node, 'gamma', SELU_GAMMA);
    const ga = e.scalar(gamma * floatAttr(a.node, 'alpha', SELU_ALPHA), t);
    return e.op1('Where', [e.op1('Greater', [x, e.scalar(0, t)]), e.scalar(gamma, t), e.op1('Add', [y, ga])]);
  }),
  Sin: unary((e, x) => e.op1('Cos', [x])),
  Cos: unary((e, x) => e.op1('Neg', [e.op1('Sin', [x])])),
} satisfies Record<string, VjpRule>;
