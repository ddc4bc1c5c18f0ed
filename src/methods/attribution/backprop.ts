/**
 * Modified backpropagation through ReLUs, as rule tables that replace only the Relu rule of the default table:
 *
 * - Guided backpropagation (Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for Simplicity: The All
 *   Convolutional Net", ICLR workshop 2015): a ReLU passes back only positive gradients, and only where its input was
 *   positive: dx = [x > 0] · max(g, 0).
 * - DeconvNet (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014): a ReLU applies
 *   ReLU to the gradient and ignores the forward input: dx = max(g, 0). Its other parts (transposed filters, max-pool
 *   switches) are what the ordinary Conv and MaxPool rules already compute.
 *
 * Only Relu nodes change; a ReLU written another way (Clip at 0, Max with 0) keeps its exact gradient, and the
 * 'relu nodes' check counts the nodes the rules apply to.
 *
 * @example
 * const gb = await guidedBackprop(model, { x }, { target: 3 }); // gb.attributions: [N, ...x]
 * const dn = await deconvNet(model, { x }, { target: 3 });
 */
import { defaultRules } from '../../autodiff/rules/index.js';
import type { RuleTable, VjpArgs, VjpRule } from '../../autodiff/types.js';
import type { Model } from '../../model/model.js';
import type { DType, Tensor } from '../../runtime/tensor.js';
import { Tensor as T } from '../../runtime/tensor.js';
import { passiveAttribution } from '../taxonomy.js';
import { Attributor, type AttributionOptions } from './attributor.js';
import type { Attribution } from './explanation.js';
import { assemble } from './hidden-shared.js';

const zeroOf = (a: VjpArgs) => a.emit.scalar(0, (a.info(a.inputs[0]).dtype ?? 'float32') as DType);

/** Guided backpropagation's ReLU: the gradient where both it and the forward input are positive. */
const guidedRelu: VjpRule = (a) => {
  const g = a.grads[0];
  if (!g || !a.wants[0]) return [];
  const e = a.emit;
  const zero = zeroOf(a);
  return [e.op1('Where', [e.op1('Greater', [a.inputs[0], zero]), e.op1('Relu', [g]), zero])];
};

/** DeconvNet's ReLU: the rectified gradient, whatever the forward input was. */
const deconvRelu: VjpRule = (a) => {
  const g = a.grads[0];
  if (!g || !a.wants[0]) return [];
  return [a.emit.op1('Relu', [g])];
};

/** The two rule sets by name: the default table with its Relu rule replaced. */
export const backpropRules = {
  'guided-backprop': { ...defaultRules, Relu: guidedRelu },
  deconvnet: { ...defaultRules, Relu: deconvRelu },
} satisfies Record<string, RuleTable>;

export type BackpropRule = keyof typeof backpropRules;

/** Modified gradients of the target with respect to `wrt` (an input or a site) under one rule set. */
export async function modifiedBackprop(model: Model, inputs: Readonly<Record<string, Tensor>>, rule: BackpropRule, options: AttributionOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const table = backpropRules[rule];
  if (!table) throw new Error(`backprop: unknown rule set '${String(rule)}' (known: ${Object.keys(backpropRules).join(', ')})`);
  const { a, grads: g } = await Attributor.withGradient(model, inputs, options, { table, name: rule });
  const relus = a.runModel.graph.nodes.filter((n) => n.opType === 'Relu' && (!n.domain || n.domain === 'ai.onnx')).length;
  return assemble(a, {
    method: rule,
    taxonomy: passiveAttribution(),
    attributions: new T('float32', g, a.x.shape),
    checks: [
      {
        name: 'relu nodes',
        value: relus,
        detail: relus === 0 ? 'no Relu node between the value attributed to and the output: the result is the plain gradient' : `${relus} Relu nodes backpropagate by the ${rule} rule`,
      },
    ],
    params: { rule },
    started,
  });
}

export const guidedBackprop = (model: Model, inputs: Readonly<Record<string, Tensor>>, options: AttributionOptions = {}) => modifiedBackprop(model, inputs, 'guided-backprop', options);

export const deconvNet = (model: Model, inputs: Readonly<Record<string, Tensor>>, options: AttributionOptions = {}) => modifiedBackprop(model, inputs, 'deconvnet', options);
