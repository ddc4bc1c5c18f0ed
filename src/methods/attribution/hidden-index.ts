/**
 * Registry entries of the methods that look inside the network: modified backpropagation, class activation maps, and
 * layer and neuron attribution (Räuker et al. III-E). Layer and neuron methods need `site`; neuron methods `neuron`.
 *
 * @example
 * const r = await hiddenAttributionMethods['layer-conductance'].explain(model, { x }, { site: 'relu1.relu', steps: 32 });
 */
import { NEURON_ATTRIBUTION, passiveAttribution } from '../taxonomy.js';
import { deconvNet, guidedBackprop } from './backprop.js';
import { gradCam, guidedGradCam } from './cam.js';
import { layerActivationXGradient, layerConductance, layerIntegratedGradients } from './layer.js';
import type { MethodEntry } from './method.js';
import { neuronConductance, neuronGradient, neuronIntegratedGradients } from './neuron.js';

const hidden = () => passiveAttribution('local', NEURON_ATTRIBUTION);

export const hiddenAttributionMethods = {
  'guided-backprop': {
    info: { title: 'Guided backpropagation', reference: 'Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net', taxonomy: passiveAttribution() },
    explain: (model, inputs, o) => guidedBackprop(model, inputs, o),
  },
  deconvnet: {
    info: { title: 'DeconvNet', reference: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks', taxonomy: passiveAttribution() },
    explain: (model, inputs, o) => deconvNet(model, inputs, o),
  },
  'grad-cam': {
    info: { title: 'Grad-CAM', reference: 'Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization', taxonomy: passiveAttribution() },
    explain: (model, inputs, o) => gradCam(model, inputs, o),
  },
  'guided-grad-cam': {
    info: { title: 'Guided Grad-CAM', reference: 'Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization', taxonomy: passiveAttribution() },
    explain: (model, inputs, o) => guidedGradCam(model, inputs, o),
  },
  'layer-activation-x-gradient': {
    info: { title: 'Layer activation × gradient', reference: 'Shrikumar et al. 2016, Not Just a Black Box (gradient × input at a hidden layer)', taxonomy: hidden() },
    explain: (model, inputs, o) => layerActivationXGradient(model, inputs, o),
  },
  'layer-integrated-gradients': {
    info: { title: 'Layer integrated gradients', reference: 'Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks (at a hidden layer)', taxonomy: hidden(), complete: true },
    explain: (model, inputs, o) => layerIntegratedGradients(model, inputs, o),
  },
  'layer-conductance': {
    info: { title: 'Layer conductance', reference: 'Dhamdhere et al. 2018, How Important Is a Neuron?', taxonomy: hidden(), complete: true },
    explain: (model, inputs, o) => layerConductance(model, inputs, o),
  },
  'neuron-gradient': {
    info: { title: 'Neuron gradient', reference: 'Simonyan et al. 2014, Deep Inside Convolutional Networks (the gradient of a hidden unit)', taxonomy: hidden() },
    explain: (model, inputs, o) => neuronGradient(model, inputs, o),
  },
  'neuron-integrated-gradients': {
    info: { title: 'Neuron integrated gradients', reference: 'Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks (of a hidden unit)', taxonomy: hidden(), complete: true },
    explain: (model, inputs, o) => neuronIntegratedGradients(model, inputs, o),
  },
  'neuron-conductance': {
    info: { title: 'Neuron conductance', reference: 'Dhamdhere et al. 2018, How Important Is a Neuron?', taxonomy: hidden() },
    explain: (model, inputs, o) => neuronConductance(model, inputs, o),
  },
} satisfies Record<string, MethodEntry>;
