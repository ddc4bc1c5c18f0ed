/**
 * The parameterised layers of a model and copies of it with some of them re-initialised, for the model-parameter
 * randomisation test of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps"). A layer is the group of float32
 * initializers sharing a name up to the last dot (`fc1.weight` and `fc1.bias` are layer `fc1`), ordered by the first
 * node that reads them, from the input to the output.
 *
 * Re-initialisation: every value of a weight is drawn from a normal distribution truncated at ±2 standard
 * deviations (the truncated normal Adebayo et al. re-initialised with), scaled so that the draw's standard deviation
 * equals the root mean square of the weight it replaces, so each randomised weight keeps its layer's scale. A weight
 * that is all zeros (an untouched bias) gets PyTorch's default scale instead, RMS 1/√(3·fan_in). Each layer draws
 * from its own seeded stream (mixSeed(seed, layer index)), so a layer is randomised identically in every step.
 *
 * @example
 * const layers = parameterLayers(model);                   // [{ name: 'fc1', weights: [...] }, { name: 'fc2', ... }]
 * const copy = await randomizedCopy(model, ['fc2'], 0);    // fc2 re-initialised, everything else as trained
 */
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import { Model } from '../../model/model.js';
import type { TensorProto } from '../../onnx/proto.js';
import { ONNX_DTYPE, tensorFromProto, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';

export interface ParameterLayer {
  readonly name: string;
  /** Its initializers (weights), in file order. */
  readonly weights: readonly string[];
}

const layerName = (weight: string): string => (weight.includes('.') ? weight.slice(0, weight.lastIndexOf('.')) : weight);

/** Layers of float32 initializers, from the input to the output (by the first node reading each). */
export function parameterLayers(model: Model): ParameterLayer[] {
  const g = model.graph;
  const first = new Map<string, number>();
  const weights = new Map<string, string[]>();
  for (const t of g.proto.initializer) {
    if (t.dataType !== ONNX_DTYPE.float32) continue;
    const readers = g.consumers.get(t.name);
    if (!readers || readers.length === 0) continue;
    const layer = layerName(t.name);
    first.set(layer, Math.min(first.get(layer) ?? Infinity, ...readers));
    weights.set(layer, [...(weights.get(layer) ?? []), t.name]);
  }
  return [...weights.keys()].sort((a, b) => first.get(a)! - first.get(b)!).map((name) => ({ name, weights: weights.get(name)! }));
}

/** σ of a standard normal truncated at ±2: √(1 − 4φ(2) / (2Φ(2) − 1)). */
const TRUNCATED_STD = Math.sqrt(1 - (4 * Math.exp(-2)) / Math.sqrt(2 * Math.PI) / 0.9544997361036416);

/** A fresh draw for one weight: truncated normal with the weight's RMS as its standard deviation. */
export function reinitialized(weight: Tensor<'float32'>, rand: () => number): Tensor<'float32'> {
  const d = weight.data;
  let ss = 0;
  for (let i = 0; i < d.length; i++) ss += d[i] * d[i];
  const fanIn = weight.rank > 1 ? weight.size / weight.shape[0] : weight.size;
  const rms = ss > 0 ? Math.sqrt(ss / d.length) : 1 / Math.sqrt(3 * Math.max(1, fanIn));
  const scale = rms / TRUNCATED_STD;
  const out = new Float32Array(d.length);
  for (let i = 0; i < out.length; ) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const t = 2 * Math.PI * rand();
    for (const z of [r * Math.cos(t), r * Math.sin(t)]) if (Math.abs(z) <= 2 && i < out.length) out[i++] = scale * z;
  }
  return new Tensor('float32', out, weight.shape);
}

/**
 * A new model whose layers `names` are re-initialised (seeded by `seed` and each layer's index); the given model is
 * left unchanged. Dispose of the copy when done.
 */
export async function randomizedCopy(model: Model, names: readonly string[], seed: number): Promise<Model> {
  const layers = parameterLayers(model);
  const index = new Map(layers.map((l, i) => [l.name, i]));
  for (const n of names) {
    if (!index.has(n)) throw new Error(`randomization: no layer '${n}' (layers with weights: ${layers.map((l) => l.name).join(', ')})`);
  }
  const drawn = new Map<string, TensorProto>();
  for (const n of names) {
    const rand = mulberry32(mixSeed(seed, index.get(n)!));
    for (const w of layers[index.get(n)!].weights) {
      const t = tensorFromProto(model.graph.initializers.get(w)!) as Tensor<'float32'>;
      drawn.set(w, tensorToProto(reinitialized(t, rand), w));
    }
  }
  const initializer = model.graph.proto.initializer.map((t) => drawn.get(t.name) ?? t);
  return Model.load(model.graph.withGraph({ initializer }).encode(), { runtime: model.runtime });
}
