/** VJP rules of elementwise ops: arithmetic with broadcasting, activations, and value-preserving ops. */
import { attr } from '../../onnx/proto.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { floatAttr, unbroadcast } from '../helpers.js';
import type { DType } from '../../runtime/tensor.js';
import type { VjpArgs, VjpRule } from '../types.js';

const dt = (a: VjpArgs, v: string) => (a.info(v).dtype ?? 'float32') as DType;

/** Gradient of an input of a broadcasting binary op, reduced to that input's shape. */
function toInput(a: VjpArgs, j: number, g: string): string {
  return unbroadcast(a.emit, g, a.info(a.inputs[j]), a.info(a.outputs[0]), `${a.node.opType} '${a.node.name}'`);
}

/** A unary rule: grad_in = grad_out ⊙ f'(x, y), with f' built from the emitter. */
function unary(derivative: (a: VjpArgs, x: string, y: string) => string): VjpRule {
  return (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    return [a.emit.op1('Mul', [g, derivative(a, a.inputs[0], a.outputs[0])])];
  };
}

export const elementwiseRules = {
  Identity: (a) => [a.grads[0]],
  Dropout: (a) => [a.grads[0]], // inference: the identity on output 0
  Neg: (a) => [a.grads[0] && a.emit.op1('Neg', [a.grads[0]])],
  Add: (a) => {
    const g = a.grads[0]!;
    return [a.wants[0] ? toInput(a, 0, g) : undefined, a.wants[1] ? toInput(a, 1, g) : undefined];
  },
  Sub: (a) => {
    const g = a.grads[0]!;
    return [a.wants[0] ? toInput(a, 0, g) : undefined, a.wants[1] ? toInput(a, 1, a.emit.op1('Neg', [g])) : undefined];
  },
  Mul: (a) => {
    const g = a.grads[0]!;
    const [x, y] = a.inputs;
    return [
      a.wants[0] ? toInput(a, 0, a.emit.op1('Mul', [g, y])) : undefined,
      a.wants[1] ? toInput(a, 1, a.emit.op1('Mul', [g, x])) : undefined,
    ];
  },
  Div: (a) => {
    const g = a.grads[0]!;
    const [, y] = a.inputs;
    const gx = a.emit.op1('Div', [g, y]);
    // d(x/y)/dy = -(x/y)/y: reuse the forward output instead of squaring y.
    const gy = a.wants[1] ? a.emit.op1('Neg', [a.emit.op1('Mul', [gx, a.outputs[0]])]) : undefined;
    return [a.wants[0] ? toInput(a, 0, gx) : undefined, gy && toInput(a, 1, gy)];
  },
  Pow: (a) => {
    const g = a.grads[0]!;
    const [x, y] = a.inputs;
    const e = a.emit;
    let gx: string | undefined;
    if (a.wants[0]) {
      // y · x^(y−1), computed as Pow with a lowered exponent so x = 0 with y ≥ 1 stays finite.
      const ym1 = e.op1('Sub', [y, e.scalar(1, dt(a, y))]);
      gx = toInput(a, 0, e.op1('Mul', [g, e.op1('Mul', [y, e.op1('Pow', [x, ym1])])]));
    }
    const gy = a.wants[1] ? toInput(a, 1, e.op1('Mul', [g, e.op1('Mul', [a.outputs[0], e.op1('Log', [x])])])) : undefined;
    return [gx, gy];
  },
  Relu: (a) => {
    const g = a.grads[0];
    if (!g) return [];
    const e = a.emit;
    const t = dt(a, a.inputs[0]);
    // g · [x > 0] as a product: ONNX Runtime's Where is about twice as slow as Cast + Mul on large activations.
    // (It differs from a select only for a non-finite g where x ≤ 0, which gives NaN instead of 0.)
    return [e.op1('Mul', [g, e.op1('Cast', [e.op1('Greater', [a.inputs[0], e.scalar(0, t)])], [attr('to', { int: ONNX_DTYPE[t] })])])];
  },
  LeakyRelu: (a) => {
    const g = a.grads[0];
    if (!g) return [];
    const e = a.emit;
    const t = dt(a, a.inputs[0]);
    const slope = e.op1('Mul', [g, e.scalar(floatAttr(a.node, 'alpha', 0.01), t)]);
    return [e.op1('Where', [e.op1('Greater', [a.inputs[0], e.scalar(0, t)]), g, slope])];
  },
  Sigmoid: unary((a, _x, y) => a.emit.op1('Mul', [y, a.emit.op1('Sub', [a.emit.scalar(1, dt(a, y)), y])])),
  Tanh: unary((a, _x, y) => a.emit.op1('Sub', [a.emit.scalar(1, dt(a, y)), a.emit.op1('Mul', [y, y])])),
  Exp: unary((_a, _x, y) => y),
  Log: unary((a, x) => a.emit.op1('Reciprocal', [x])),
  Sqrt: unary((a, _x, y) => a.emit.op1('Div', [a.emit.scalar(0.5, dt(a, y)), y])),
  Reciprocal: unary((a, _x, y) => a.emit.op1('Neg', [a.emit.op1('Mul', [y, y])])),
  Abs: unary((a, x) => a.emit.op1('Sign', [x])),
  Erf: unary((a, x) => {
    const e = a.emit;
    const t = dt(a, x);
    return e.op1('Mul', [e.scalar(2 / Math.sqrt(Math.PI), t), e.op1('Exp', [e.op1('Neg', [e.op1('Mul', [x, x])])])]);
  }),
  Softplus: unary((a, x) => a.emit.op1('Sigmoid', [x])),
  HardSigmoid: unary((a, x) => {
    const e = a.emit;
    const t = dt(a, x);
    const alpha = floatAttr(a.node, 'alpha', 0.2);
    const z = e.op1('Add', [e.op1('Mul', [x, e.scalar(alpha, t)]), e.scalar(floatAttr(a.node, 'beta', 0.5), t)]);
    const inside = e.op1('And', [e.op1('Greater', [z, e.scalar(0, t)]), e.op1('Less', [z, e.scalar(1, t)])]);
    return e.op1('Where', [inside, e.scalar(alpha, t), e.scalar(0, t)]);
  }),
  HardSwish: unary((a, x) => {
    // y = x·clip(x/6 + 1/2, 0, 1): slope 0 below −3, 1 above 3, x/3 + 1/2 between.
    const e = a.emit;
    const t = dt(a, x);
    const mid = e.op1('Add', [e.op1('Div', [x, e.scalar(3, t)]), e.scalar(0.5, t)]);
    const hi = e.op1('Where', [e.op1('Greater', [x, e.scalar(3, t)]), e.scalar(1, t), mid]);
    return e.op1('Where', [e.op1('Less', [x, e.scalar(-3, t)]), e.scalar(0, t), hi]);
  }),
  Clip: (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const e = a.emit;
    const x = a.inputs[0];
    const t = dt(a, x);
    // Bounds are inputs from opset 11, attributes before; PyTorch passes the gradient at the bounds too.
    const lo = a.inputs[1] || (e.opset < 11 ? e.scalar(floatAttr(a.node, 'min', -3.4028234663852886e38), t) : '');
    const hi = a.inputs[2] || (e.opset < 11 ? e.scalar(floatAttr(a.node, 'max', 3.4028234663852886e38), t) : '');
    let keep: string | undefined;
    if (lo) keep = e.op1('Not', [e.op1('Less', [x, lo])]);
    if (hi) {
      const below = e.op1('Not', [e.op1('Greater', [x, hi])]);
      keep = keep ? e.op1('And', [keep, below]) : below;
    }
    return [keep ? e.op1('Where', [keep, g, e.scalar(0, t)]) : g];
  },
  Where: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const c = a.inputs[0];
    const zero = e.scalar(0, dt(a, a.outputs[0]));
    return [
      undefined,
      a.wants[1] ? toInput(a, 1, e.op1('Where', [c, g, zero])) : undefined,
      a.wants[2] ? toInput(a, 2, e.op1('Where', [c, zero, g])) : undefined,
    ];
  },
  Cast: (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const from = dt(a, a.inputs[0]);
    const to = dt(a, a.outputs[0]);
    return [from === to ? g : a.emit.op1('Cast', [g], [castTo(from)])];
  },
} satisfies Record<string, VjpRule>;

function castTo(t: DType) {
  return attr('to', { int: ONNX_DTYPE[t] });
}
