/**
 * PyTorch's default initialisations, drawn from the project's seeded PRNG (mulberry32) so that a builder with the
 * same seed gives the same weights on every machine. nn.Linear and nn.Conv2d use kaiming_uniform_(a=√5), which is
 * U(−1/√fan_in, 1/√fan_in), and the same bound for their bias; nn.Embedding draws N(0, 1); nn.LayerNorm starts at
 * weight 1, bias 0.
 */
import { sizeOf, Tensor } from '../../runtime/tensor.js';

export type Rand = () => number;

/** U(−bound, bound) in float32. */
export function uniform(rand: Rand, shape: readonly number[], bound: number): Tensor<'float32'> {
  const data = new Float32Array(sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = (2 * rand() - 1) * bound;
  return new Tensor('float32', data, shape);
}

/** N(0, std²) in float32, by the Box–Muller transform (two uniforms per pair of values). */
export function normal(rand: Rand, shape: readonly number[], std: number): Tensor<'float32'> {
  const data = new Float32Array(sizeOf(shape));
  for (let i = 0; i < data.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand())); // 1 − u ∈ (0, 1]: no log(0)
    const t = 2 * Math.PI * rand();
    data[i] = std * r * Math.cos(t);
    if (i + 1 < data.length) data[i + 1] = std * r * Math.sin(t);
  }
  return new Tensor('float32', data, shape);
}

export function filled(shape: readonly number[], value: number): Tensor<'float32'> {
  return new Tensor('float32', new Float32Array(sizeOf(shape)).fill(value), shape);
}

/** torch.nn.init's bound for Linear/Conv weights and biases: kaiming_uniform_(a=√5) gives 1/√fan_in. */
export function defaultBound(fanIn: number): number {
  return 1 / Math.sqrt(fanIn);
}
