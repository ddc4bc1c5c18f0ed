/**
 * Tiny models with closed-form attributions (issue 4's toy cases), built as ONNX graphs. Each takes x float32 [N, k]
 * and outputs y [N, 1]; targets are output 0.
 */
import { Net } from '../../src/model/builders/net.js';
import type { ModelProto } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';

const col = (values: number[]) => Tensor.float32(values, [values.length, 1]);
const scalar = (v: number) => Tensor.float32([v], []);

function finish(net: Net, k: number, name: string): ModelProto {
  return net.model({ name, doc: name, input: { name: 'x', dtype: 'float32', shape: ['N', k] }, output: { name: 'y', shape: ['N', 1] } });
}

/** f = ReLU(ReLU(x1) − 1 − ReLU(x2)); at x = (3, 1), baseline 0: IG = (1.5, −0.5). */
export function igToy(): ModelProto {
  const net = new Net(0);
  const r = net.op('r', 'Relu', ['x']);
  const s = net.op('s', 'Add', [net.op('s', 'MatMul', [r, net.constant('s', col([1, -1]))]), net.constant('s', scalar(-1))]);
  net.op('out', 'Relu', [s], [], ['y']);
  return finish(net, 2, 'ig-toy');
}

/** f = ReLU(s − 10) + 3·ReLU(s + 1) − 1, s = x1 + x2 + x3; at x = (20, 50, 30): occlusion (80, 200, 120), Shapley (76.667, 196.667, 116.667). */
export function shapleyToy(): ModelProto {
  const net = new Net(0);
  const s = net.op('sum', 'MatMul', ['x', net.constant('sum', col([1, 1, 1]))]);
  const a = net.op('a', 'Relu', [net.op('a', 'Add', [s, net.constant('a', scalar(-10))])]);
  const b = net.op('b', 'Relu', [net.op('b', 'Add', [s, net.constant('b', scalar(1))])]);
  const f = net.op('f', 'Add', [a, net.op('f', 'Mul', [b, net.constant('f', scalar(3))])]);
  net.op('out', 'Add', [f, net.constant('out', scalar(-1))], [], ['y']);
  return finish(net, 3, 'shapley-toy');
}

/** f = 2·ReLU(x1) + 2·ReLU(x2 − 1.5); at x = (1, 2), baseline 0: DeepLIFT rescale = (2, 1). */
export function deepliftToy(): ModelProto {
  const net = new Net(0);
  const h = net.op('h', 'Relu', [net.op('h', 'Add', ['x', net.constant('h', Tensor.float32([0, -1.5], [2]))])]);
  net.op('out', 'MatMul', [h, net.constant('out', col([2, 2]))], [], ['y']);
  return finish(net, 2, 'deeplift-toy');
}

/** Linear(3→3, all weights 2) → ReLU → Linear(3→1, all weights 3), no biases; at x = (1, 2, 3): LRP-ε = (18, 36, 54). */
export function lrpToy(): ModelProto {
  const net = new Net(0);
  const h = net.op('fc1', 'MatMul', ['x', net.param('fc1.weight', Tensor.float32(new Array(9).fill(2), [3, 3]))]);
  const r = net.op('relu', 'Relu', [h]);
  net.op('fc2', 'MatMul', [r, net.param('fc2.weight', Tensor.float32([3, 3, 3], [3, 1]))], [], ['y']);
  return finish(net, 3, 'lrp-toy');
}

/** f = Σ x_i² over x [N, k]: the gradient is 2x. */
export function squareToy(k: number): ModelProto {
  const net = new Net(0);
  const sq = net.op('sq', 'Mul', ['x', 'x']);
  net.op('out', 'MatMul', [sq, net.constant('out', col(new Array<number>(k).fill(1)))], [], ['y']);
  return finish(net, k, 'square-toy');
}

/** f = w·x + 0.5 over x [N, k]. */
export function linearToy(w: number[]): ModelProto {
  const net = new Net(0);
  const h = net.op('fc', 'MatMul', ['x', net.constant('fc', col(w))]);
  net.op('out', 'Add', [h, net.constant('out', scalar(0.5))], [], ['y']);
  return finish(net, w.length, 'linear-toy');
}
