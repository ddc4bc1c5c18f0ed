/**
 * What subnetworks do (Räuker et al. IV): modular partitioning of the unit graph (by weights or activations, with
 * clusterability against shuffled baselines) and circuits (activation, path and attribution patching; ACDC-style
 * discovery with its faithfulness).
 */
import { CIRCUIT_METHODS } from './circuit.js';
import { PARTITION_METHODS } from './partition.js';

export const SUBNETWORK_METHODS = { ...PARTITION_METHODS, ...CIRCUIT_METHODS };

export { partitionWeights, partitionActivations, PARTITION_METHODS, type Partition, type PartitionOptions, type WeightPartitionOptions, type ActivationPartitionOptions, type UnitCluster } from './partition.js';
export { unitGraph, spectralPartition, ncut, type UnitGraph, type UnitGraphOptions } from './unit-graph.js';
export { activationPatching, attributionPatching, tokenLogProb, type PatchingOptions, type PatchingResult, type AttributionPatchingOptions, type AttributionPatchingResult, type Metric } from './patching.js';
export { pathPatching, residualEdges, type PathPatchingOptions, type PathPatchingResult, type Edge, type ResidualNode } from './heads.js';
export { discoverCircuit, CIRCUIT_METHODS, type CircuitOptions, type CircuitResult, type CircuitEdge } from './circuit.js';
