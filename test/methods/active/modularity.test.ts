/**
 * The modularity regulariser: its off-block masks against the planted partition written out by hand, and a training
 * on breast cancer against the unregularised twin, scored by Filan et al.'s n-cut and clusterability test
 * (subnetworks/partition.ts): the regularised network must cut lower, be clusterable at p < 0.05 with a p no higher
 * than the twin's and a far lower z, and lose at most 3 points of accuracy.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { split } from '../../../src/data/datasets/split.js';
import { loadBreastCancer } from '../../../src/data/datasets/tabular.js';
import { mlp } from '../../../src/model/builders/index.js';
import { MODULARITY_METHODS, modularityRegularizer, moduleOf, offBlockMasks, offBlockShare, trainModular } from '../../../src/methods/active/modularity.js';
import { weightLayers } from '../../../src/methods/active/sparsity.js';

test('off-block masks follow the planted modules ⌊i·k/n⌋ of both ends of every weight', () => {
  const model = mlp({ inputs: 6, hidden: [4], classes: 3, seed: 1 });
  const masks = offBlockMasks(weightLayers(model), 2);
  const fc1 = masks.get('fc1.weight')!; // [4 out, 6 in]: units 0-1 | 2-3, inputs 0-2 | 3-5
  for (let o = 0; o < 4; o++) for (let i = 0; i < 6; i++) assert.equal(fc1[o * 6 + i], (o < 2) !== (i < 3) ? 1 : 0, `fc1 [${o}, ${i}]`);
  const fc2 = masks.get('fc2.weight')!; // [3 out, 4 in]: classes 0-1 | 2 (⌊2c/3⌋), units 0-1 | 2-3
  for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) assert.equal(fc2[c * 4 + i], (c < 2) !== (i < 2) ? 1 : 0, `fc2 [${c}, ${i}]`);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => moduleOf(i, 5, 3)), [0, 0, 1, 1, 2]);
  // A proximal step zeroes small off-block weights and only those.
  const term = modularityRegularizer(model, { strength: 1, k: 2 }).hostTerms![0];
  const ws = new Map([['fc1.weight', new Float32Array(24).fill(0.05)], ['fc2.weight', new Float32Array(12).fill(0.05)]]);
  term.afterStep!(ws, new Map(), 0.1);
  ws.get('fc1.weight')!.forEach((v, f) => assert.equal(v, fc1[f] ? 0 : Math.fround(0.05)));
  // A network blind to the partition has about 1 − 1/k of its |W| between modules.
  const share = offBlockShare(mlp({ inputs: 30, hidden: [32, 32], classes: 2, seed: 3 }), 2);
  assert.ok(Math.abs(share - 0.5) < 0.05, `off-block share at initialisation ${share}`);
});

test('the modularity regulariser cuts lower and is more clusterable than its twin on breast cancer, at ≤ 3 points of accuracy', async (t) => {
  const [train, test] = split(await loadBreastCancer(), [0.7, 0.3], { seed: 1, stratify: true, standardize: true });
  const model = mlp({ inputs: 30, hidden: [32, 32], classes: 2, seed: 1 });
  const r = await trainModular(model, { train, test, epochs: 20, batchSize: 16, seed: 1, optimizer: { kind: 'adam', lr: 1e-2 }, k: 2, strength: 0.1, shuffles: 40 });
  const [reg, twin] = [r.partition.regularized, r.partition.twin];
  const msg = `n-cut ${reg.ncut.toFixed(3)} vs twin ${twin.ncut.toFixed(3)}; p ${reg.baseline.p.toFixed(3)} (z ${reg.baseline.z.toFixed(1)}) vs ${twin.baseline.p.toFixed(3)} (z ${twin.baseline.z.toFixed(1)}); off-block ${r.offBlock.regularized.toFixed(3)} vs ${r.offBlock.twin.toFixed(3)}; accuracy ${r.regularized.accuracy.toFixed(3)} vs ${r.twin.accuracy.toFixed(3)}`;
  t.diagnostic(msg);
  assert.ok(reg.ncut < 0.5 * twin.ncut, msg);
  assert.ok(reg.baseline.p < 0.05 && reg.baseline.p <= twin.baseline.p, msg);
  assert.ok(reg.baseline.z < twin.baseline.z - 5, msg);
  assert.ok(r.offBlock.regularized < 0.2 && r.offBlock.twin > 0.4, msg);
  assert.ok(r.twin.accuracy - r.regularized.accuracy <= 0.03, msg);
  assert.ok(r.checks.find((c) => c.name === 'n-cut')!.passed && r.checks.find((c) => c.name === 'clusterability')!.passed, msg);
  // The spectral partition finds the planted modules: hidden units split by ⌊i·k/n⌋.
  const sizes = new Map(reg.layers.map((l) => [l.name, l]));
  const units = reg.clusters.filter((c) => sizes.get(c.layer)!.op !== 'Input' && c.cluster >= 0);
  const same = units.filter((c) => c.cluster === moduleOf(c.index, sizes.get(c.layer)!.units, 2)).length;
  const agree = Math.max(same, units.length - same) / units.length; // k = 2: up to swapping the labels
  assert.ok(agree >= 0.9, `${(100 * agree).toFixed(0)}% of ${units.length} units in their planted module; ${msg}`);
});

test('modularity: bad options are named', () => {
  const model = mlp({ inputs: 4, hidden: [4], classes: 2, seed: 1 });
  assert.throws(() => modularityRegularizer(model, { strength: 0.1, k: 1 }), /k must be an integer ≥ 2, got 1/);
  assert.throws(() => modularityRegularizer(model, { strength: -1 }), /strength must be a positive number, got -1/);
  assert.equal(MODULARITY_METHODS.modularity.info.taxonomy.rauker?.section, 'IV: modularity');
});
