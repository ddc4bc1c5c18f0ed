/**
 * What neurons do (Räuker et al. III; Zhang et al.'s hidden semantics): dataset examples, network dissection and
 * compositional labels, feature synthesis, ablation and Shapley values, and the hazards (polysemantic and frivolous
 * units). Every result carries the checks that test it.
 */
import { ABLATION_METHODS } from './ablation.js';
import { DISSECTION_METHODS } from './dissection.js';
import { EXAMPLE_METHODS } from './examples.js';
import { SYNTHESIS_METHODS } from './synthesis.js';

export const NEURON_METHODS = { ...EXAMPLE_METHODS, ...DISSECTION_METHODS, ...SYNTHESIS_METHODS, ...ABLATION_METHODS };

export { scanExamples, ExampleScan, EXAMPLE_METHODS, type ScanOptions, type ExampleScanJSON, type SiteLayout, type UnitExample, type BinSpec } from './examples.js';
export { dissect, unitMasks, DISSECTION_METHODS, type Dissection, type DissectOptions, type UnitLabel, type ConceptScore } from './dissection.js';
export { explainCompositional, beamSearch, type CompositionalExplanation, type CompositionalOptions, type UnitFormula } from './compositional.js';
export { synthesize, SYNTHESIS_METHODS, type Synthesis, type SynthesisOptions, type Objective } from './synthesis.js';
export { ablateUnits, ABLATION_METHODS, type AblationOptions, type AblationResult, type GroupEffect, type Replacement } from './ablation.js';
export { neuronShapley, type ShapleyOptions, type ShapleyResult, type UnitShapley, type ShapleyMetric } from './shapley.js';
export { polysemanticity, polysemanticUnits, frivolousUnits, topExamples, type PolysemanticityResult, type FrivolousResult, type FrivolousOptions } from './hazards.js';
