/**
 * A multilayer perceptron as PyTorch would export it: Flatten (for image-shaped inputs), then Linear layers `fc1`…
 * (Gemm, W [out, in]) with ReLU between them. Input `x` float32 [N, ...inputs], output `logits` [N, classes].
 *
 * @example
 * const model = mlp({ inputs: [1, 28, 28], hidden: [128], classes: 10, seed: 1 }); // x → flatten → fc1 → fc1.relu → fc2
 */
import { attr, type ModelProto } from '../../onnx/proto.js';
import { Net } from './net.js';

export interface MlpSpec {
  /** Features per example, or the shape of one example (flattened first). */
  readonly inputs: number | readonly number[];
  /** Widths of the hidden layers. */
  readonly hidden: readonly number[];
  readonly classes: number;
  readonly seed: number;
}

export function mlp(spec: MlpSpec): ModelProto {
  const shape = typeof spec.inputs === 'number' ? [spec.inputs] : [...spec.inputs];
  checkSizes('mlp', { ...Object.fromEntries(shape.map((d, i) => [`inputs[${i}]`, d])), classes: spec.classes }, spec.hidden);
  const net = new Net(spec.seed);
  let h = 'x';
  const width = shape.reduce((a, b) => a * b, 1);
  if (shape.length > 1) h = net.op('flatten', 'Flatten', [h], [attr('axis', { int: 1 })]); // [N, C·H·W]
  const widths = [...spec.hidden, spec.classes];
  denseHead(net, h, width, widths, (i) => `fc${i + 1}`);
  return net.model({
    name: 'mlp',
    doc: `glassbox mlp: ${[shape.join('×'), ...widths].join(' → ')}, ReLU`,
    input: { name: 'x', dtype: 'float32', shape: ['N', ...shape] },
    output: { name: 'logits', shape: ['N', spec.classes] },
  });
}

/** Every size a positive integer, or an error naming the builder and the size. */
export function checkSizes(builder: string, sizes: Readonly<Record<string, number>>, list: readonly number[] = []): void {
  for (const [k, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${builder}: ${k} must be a positive integer, got ${v}`);
  }
  list.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${builder}: layer width ${i} must be a positive integer, got ${v}`);
  });
}

/**
 * Linear layers of the given widths with ReLU between them; the last writes `logits`. Shared by the MLP and the
 * CNN's classifier head. `scope(i)` names layer i (`fc1`…, or `fc` for a single layer).
 */
export function denseHead(net: Net, input: string, inWidth: number, widths: readonly number[], scope: (i: number) => string): string {
  let h = input;
  let width = inWidth;
  widths.forEach((out, i) => {
    const last = i === widths.length - 1;
    h = net.linear(scope(i), h, width, out, last ? 'logits' : undefined);
    if (!last) h = net.op(scope(i), 'Relu', [h]);
    width = out;
  });
  return h;
}
