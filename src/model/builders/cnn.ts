/**
 * A small convolutional classifier as PyTorch would export it: blocks `c1`, `c2`… of Conv (k×k, "same" padding) →
 * ReLU → MaxPool 2×2, then Flatten and Linear layers (`fc`, or `fc1`… with ReLU between when `hidden` is given).
 * Input `x` float32 [N, C, H, W], output `logits` [N, classes]. Sites: `c1.conv`, `c1.relu`, `c1.maxpool`, …, `fc.gemm`.
 *
 * @example
 * const model = cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed: 1 });
 */
import { attr, type ModelProto } from '../../onnx/proto.js';
import { defaultBound, uniform } from './init.js';
import { checkSizes, denseHead } from './mlp.js';
import { Net } from './net.js';

export interface CnnSpec {
  /** One example's shape [C, H, W]. */
  readonly input: readonly [number, number, number];
  /** Output channels of each conv block. */
  readonly channels: readonly number[];
  /** Square kernel size (odd; default 3). */
  readonly kernel?: number;
  /** Widths of hidden Linear layers after the convolutions (default none). */
  readonly hidden?: readonly number[];
  readonly classes: number;
  readonly seed: number;
}

export function cnn(spec: CnnSpec): ModelProto {
  const k = spec.kernel ?? 3;
  const [c0, h0, w0] = spec.input;
  checkSizes('cnn', { 'input C': c0, 'input H': h0, 'input W': w0, kernel: k, classes: spec.classes }, [...spec.channels, ...(spec.hidden ?? [])]);
  if (k % 2 === 0) throw new Error(`cnn: kernel must be odd for "same" padding, got ${k}`);
  const net = new Net(spec.seed);
  let h = 'x';
  let [c, hh, ww] = [c0, h0, w0];
  const pad = (k - 1) / 2;
  spec.channels.forEach((out, i) => {
    const scope = `c${i + 1}`;
    if (hh < 2 || ww < 2) throw new Error(`cnn: block ${scope} would pool a ${hh}×${ww} map; use fewer blocks or larger inputs`);
    const bound = defaultBound(c * k * k);
    const w = net.param(`${scope}.weight`, uniform(net.rand, [out, c, k, k], bound));
    const b = net.param(`${scope}.bias`, uniform(net.rand, [out], bound));
    h = net.op(scope, 'Conv', [h, w, b], [attr('kernel_shape', { ints: [k, k] }), attr('pads', { ints: [pad, pad, pad, pad] })]);
    h = net.op(scope, 'Relu', [h]);
    h = net.op(scope, 'MaxPool', [h], [attr('kernel_shape', { ints: [2, 2] }), attr('strides', { ints: [2, 2] })]);
    [c, hh, ww] = [out, Math.floor(hh / 2), Math.floor(ww / 2)];
  });
  h = net.op('flatten', 'Flatten', [h], [attr('axis', { int: 1 })]); // [N, C·H·W]
  const widths = [...(spec.hidden ?? []), spec.classes];
  denseHead(net, h, c * hh * ww, widths, (i) => (widths.length === 1 ? 'fc' : `fc${i + 1}`));
  return net.model({
    name: 'cnn',
    doc: `glassbox cnn: ${spec.input.join('×')} → conv${k}×${k} [${spec.channels.join(', ')}] → ${widths.join(' → ')}`,
    input: { name: 'x', dtype: 'float32', shape: ['N', c0, h0, w0] },
    output: { name: 'logits', shape: ['N', spec.classes] },
  });
}
