/**
 * A model that reads raw features: (x − mean) / std of the training data in front of it, as Constant nodes (not
 * weights) under /standardize, so rules, anchors and counterfactuals speak in the data's own units.
 */
import { featureStats } from '../../data/datasets/split.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import { Graph } from '../../onnx/graph.js';
import { attr, makeNode, type ModelProto } from '../../onnx/proto.js';
import { interpose } from '../../onnx/rewrite.js';
import { tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';

/**
 * The model with (x − mean) / std of the training data in front (nodes /standardize/Sub and /standardize/Div,
 * constants, not weights): it then reads raw features.
 */
export function standardized(model: ModelProto, train: Dataset<'float32'>): ModelProto {
  const { mean, std } = featureStats(train);
  const g = new Graph(model);
  const input = g.inputs[0].name;
  const constant = (name: string, values: ArrayLike<number>) =>
    makeNode('Constant', [], [`${name}_output_0`], { name, attributes: [attr('value', { tensor: tensorToProto(Tensor.float32(Array.from(values), [values.length])) })] });
  return interpose(g, input, (source) => ({
    nodes: [
      constant('/standardize/Constant', mean),
      constant('/standardize/Constant_1', Array.from(std, (s) => (s > 0 ? s : 1))),
      makeNode('Sub', [source, '/standardize/Constant_output_0'], ['/standardize/Sub_output_0'], { name: '/standardize/Sub' }),
      makeNode('Div', ['/standardize/Sub_output_0', '/standardize/Constant_1_output_0'], [input], { name: '/standardize/Div' }),
    ],
  })).model;
}
