/**
 * The hidden-semantics methods (Zhang et al.: what a part of the network computes; Räuker et al. II–IV: weights,
 * neurons, subnetworks) in one table, as `glassbox methods` lists them. Each entry keeps its own `run` signature
 * (a scan takes a dataset, a circuit clean and corrupted inputs), like the global attribution methods.
 */
import { NEURON_METHODS } from './neurons/index.js';
import { SUBNETWORK_METHODS } from './subnetworks/index.js';
import type { MethodInfo } from './taxonomy.js';
import { WEIGHT_METHODS } from './weights/index.js';

export const HIDDEN_METHODS = { ...WEIGHT_METHODS, ...NEURON_METHODS, ...SUBNETWORK_METHODS } satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
