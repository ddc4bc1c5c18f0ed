/**
 * Where a method sits in the field's two taxonomies, as data: every registered method carries its coordinates and
 * `glassbox methods` prints the grid.
 *
 * - Zhang, Tiňo, Leonardis, Tang, "A Survey on Neural Network Interpretability" (IEEE TETCI 2021): engagement
 *   (passive: explain a trained network; active: change training) × explanation format × scope.
 * - Räuker, Ho, Casper, Hadfield-Menell, "Toward Transparent AI: A Survey on Interpreting the Inner Structures of Deep
 *   Neural Networks" (SaTML 2023): the part of the network explained, intrinsic or post hoc, and the section.
 *   Methods that explain inputs only (saliency on pixels) have no place there.
 */
export type Engagement = 'passive' | 'active';
export type Format = 'rules' | 'hidden semantics' | 'attribution' | 'examples';
export type Scope = 'local' | 'semi-local' | 'global';
export type Part = 'weights' | 'neurons' | 'subnetworks' | 'representations';

export interface Taxonomy {
  readonly zhang: { readonly engagement: Engagement; readonly format: Format; readonly scope: Scope };
  readonly rauker?: { readonly part: Part; readonly when: 'intrinsic' | 'post hoc'; readonly section: string };
}

/** What a registry entry says about itself. */
export interface MethodInfo {
  readonly title: string;
  /** The paper that defines it (author year, short title). */
  readonly reference: string;
  readonly taxonomy: Taxonomy;
  /** The explanation satisfies completeness: attributions sum to f(x) − f(baseline) (up to the reported delta). */
  readonly complete?: boolean;
  /** The result depends on a random seed (sampling methods); the same seed gives the same result. */
  readonly stochastic?: boolean;
}

/** Zhang et al.'s coordinates of a passive method whose explanation is in the format given. */
export const passive = (format: Format, scope: Scope, rauker?: Taxonomy['rauker']): Taxonomy => ({
  zhang: { engagement: 'passive', format, scope },
  ...(rauker ? { rauker } : {}),
});

export const passiveAttribution = (scope: Scope = 'local', rauker?: Taxonomy['rauker']): Taxonomy => passive('attribution', scope, rauker);

/** Räuker et al. III-E: gradient attribution to neurons (and, by extension, to layers of them). */
export const NEURON_ATTRIBUTION = { part: 'neurons', when: 'post hoc', section: 'III-E' } as const;

/**
 * Räuker et al.'s places of the hidden-semantics methods (issue: hidden semantics), by section and the heading the
 * survey files the method under: II weights, III neurons, IV subnetworks.
 */
export const RAUKER = {
  weightMasking: { part: 'weights', when: 'post hoc', section: 'II: weight masking' },
  frivolousWeights: { part: 'weights', when: 'post hoc', section: 'II: frivolous weights (pruning)' },
  datasetExamples: { part: 'neurons', when: 'post hoc', section: 'III: dataset examples' },
  dissection: { part: 'neurons', when: 'post hoc', section: 'III: dataset examples (network dissection)' },
  featureSynthesis: { part: 'neurons', when: 'post hoc', section: 'III: feature synthesis' },
  ablation: { part: 'neurons', when: 'post hoc', section: 'III: perturbation and ablation' },
  shapley: { part: 'neurons', when: 'post hoc', section: 'III: perturbation and ablation (Shapley values)' },
  hazards: { part: 'neurons', when: 'post hoc', section: 'III: polysemantic and frivolous neurons' },
  partitioning: { part: 'subnetworks', when: 'post hoc', section: 'IV: modular partitioning' },
  circuits: { part: 'subnetworks', when: 'post hoc', section: 'IV: circuit analysis' },
} as const satisfies Record<string, NonNullable<Taxonomy['rauker']>>;

/** Zhang et al.'s coordinates of a passive hidden-semantics method (explains what a part of the network computes). */
export const passiveHidden = (scope: Scope, rauker: Taxonomy['rauker']): Taxonomy => passive('hidden semantics', scope, rauker);

/** Räuker et al. V (internal representations): the places of the representation methods (issue: representations). */
export const RAUKER_V = {
  probing: { part: 'representations', when: 'post hoc', section: 'V: probing' },
  conceptVectors: { part: 'representations', when: 'post hoc', section: 'V: concept vectors' },
  similarity: { part: 'representations', when: 'post hoc', section: 'V: representation comparison' },
  attention: { part: 'representations', when: 'post hoc', section: 'V: tokens and attention' },
  dictionaries: { part: 'representations', when: 'post hoc', section: 'V: disentanglement (sparse dictionaries)' },
  adversaries: { part: 'representations', when: 'post hoc', section: 'V: adversarial examples' },
} as const satisfies Record<string, NonNullable<Taxonomy['rauker']>>;

/** Zhang et al.'s coordinates of an active method: a loss term or layer that changes training so the result reads. */
export const active = (format: Format, scope: Scope, rauker?: Taxonomy['rauker']): Taxonomy => ({
  zhang: { engagement: 'active', format, scope },
  ...(rauker ? { rauker } : {}),
});

/**
 * Räuker et al.'s places of the intrinsic methods (issue: rules and active interpretability): interpretability built
 * in by training, by the part of the network it shapes.
 */
export const RAUKER_INTRINSIC = {
  continualLearning: { part: 'weights', when: 'intrinsic', section: 'II: continual learning' },
  interpretableFilters: { part: 'neurons', when: 'intrinsic', section: 'III: intrinsic (one filter, one concept)' },
  sparsity: { part: 'subnetworks', when: 'intrinsic', section: 'IV: sparsity' },
  modularity: { part: 'subnetworks', when: 'intrinsic', section: 'IV: modularity' },
  selfExplaining: { part: 'representations', when: 'intrinsic', section: 'V: self-explaining models' },
  adversarialTraining: { part: 'representations', when: 'intrinsic', section: 'V: adversarial training' },
  disentanglement: { part: 'representations', when: 'intrinsic', section: 'V: disentanglement' },
} as const satisfies Record<string, NonNullable<Taxonomy['rauker']>>;
