/** Host-side softmax pieces over rows of logits [N, C]: log-sum-exp, argmax, and the cross-entropy seed. */
import { Tensor } from '../runtime/tensor.js';

/** log Σ exp(d[off .. off + n)), computed stably. */
export function logSumExp(d: ArrayLike<number>, off: number, n: number): number {
  let max = -Infinity;
  for (let k = 0; k < n; k++) max = Math.max(max, d[off + k]);
  let z = 0;
  for (let k = 0; k < n; k++) z += Math.exp(d[off + k] - max);
  return max + Math.log(z);
}

/** Index of the largest entry of each row of [N, C] (the first on ties). */
export function argmaxRows(logits: Tensor, classes: number): Int32Array {
  const n = logits.size / classes;
  const out = new Int32Array(n);
  const d = logits.data as Float32Array;
  for (let i = 0; i < n; i++) for (let c = 1; c < classes; c++) if (d[i * classes + c] > d[i * classes + out[i]]) out[i] = c;
  return out;
}

/**
 * ∂(cross-entropy)/∂logits per row, (softmax − onehot(label)) · scale: the seed that turns a logits gradient into a
 * loss gradient (scale 1/n for the mean over n examples). Labels as numbers or an integer tensor [N].
 */
export function crossEntropySeed(logits: Tensor, labels: ArrayLike<number> | Tensor, scale = 1): Tensor<'float32'> {
  const [n, c] = logits.shape;
  const d = logits.data as Float32Array;
  const label = labels instanceof Tensor ? (i: number) => labels.at(i) : (i: number) => labels[i];
  const out = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    const lse = logSumExp(d, i * c, c);
    for (let k = 0; k < c; k++) out[i * c + k] = Math.exp(d[i * c + k] - lse) * scale;
    out[i * c + label(i)] -= scale;
  }
  return new Tensor('float32', out, [n, c]);
}
