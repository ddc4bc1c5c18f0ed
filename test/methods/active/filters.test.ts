/**
 * Interpretable filters (Zhang, Wu, Zhu 2018): the filter loss term against a float64 host reference and against
 * MI = 0 for a batch of identical maps, the templates and the peak mask against their closed forms, and a CNN trained
 * with the mask and the loss on procedural scenes with part masks, dissected against its unregularised twin.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { conceptDataset } from '../../../src/data/datasets/concepts.js';
import { cnn, mlp } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  filterLoss,
  filterLossReference,
  filterMasks,
  filterTemplates,
  INTERPRETABLE_FILTER_METHODS,
  interpretableFiltersRegularizer,
  maskedFilters,
  scoreFilters,
  siteSize,
  trainInterpretableFilters,
} from '../../../src/methods/active/filters.js';
import { seeded } from '../../helpers.js';

const mlpModel = mlp({ inputs: 4, hidden: [3], classes: 2, seed: 1 });
const report = (...xs: unknown[]) => console.log('  ·', ...xs);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** x [N, 2, 3, 3] → Mul by a trainable scalar (1) → `scale.mul`, the site the loss reads. */
function scaled() {
  const net = new Net(0);
  const w = net.param('scale.weight', Tensor.float32([1], [1]));
  net.op('scale', 'Mul', ['x', w], [], ['y']);
  return net.model({ name: 'scale', doc: 'x·s', input: { name: 'x', dtype: 'float32', shape: ['N', 2, 3, 3] }, output: { name: 'y', shape: ['N', 2, 3, 3] } });
}

async function termValue(maps: Float32Array, n: number, tau?: number): Promise<number> {
  const trainer = await Trainer.create(scaled(), { optimizer: { kind: 'sgd', lr: 1e-3 }, head: 'none', terms: [filterLoss({ site: 'scale.mul', weight: 2, tau })] });
  const r = await trainer.step({ x: Tensor.float32(maps, [n, 2, 3, 3]), y: Tensor.int64(new Array(n).fill(0), [n]) });
  await trainer.dispose();
  return r.terms['filter-mi'] / 2;
}

test('templates, masks and the filter loss match their closed forms', async () => {
  // 3×3 maps: n = 3, τ = ½/9, β = 4; T_μ(i) = τ·max(1 − 4‖i − μ‖₁/3, −1).
  const { matrix, logPrior } = filterTemplates(3, 3);
  const tau = 0.5 / 9;
  const T = (i: number, mu: number) => matrix[i * 10 + mu];
  assert.ok(Math.abs(T(4, 4) - tau) < 1e-7, 'peak value τ');
  assert.ok(Math.abs(T(3, 4) - tau * (1 - 4 / 3)) < 1e-7, 'one step: τ(1 − 4/3)');
  assert.ok(Math.abs(T(0, 8) + tau) < 1e-7, 'far: −τ');
  assert.ok(Math.abs(T(5, 9) + tau) < 1e-7, 'negative template −τ');
  assert.ok(Math.abs(Math.exp(logPrior[9]) - 0.1) < 1e-6 && Math.abs(Math.exp(logPrior[0]) - 0.1) < 1e-6, 'α = 9/10: p(T⁻) = 0.1, p(T_μ) = 0.9/9');
  const masks = filterMasks(3, 3);
  assert.deepEqual(Array.from(masks.subarray(4 * 9, 5 * 9), (v) => +v.toFixed(4)), [-1, -0.3333, -1, -0.3333, 1, -0.3333, -1, -0.3333, -1]);

  const r = seeded(5);
  const maps = Float32Array.from({ length: 4 * 18 }, () => 3 * r());
  for (const t of [undefined, 0.5]) {
    const got = await termValue(maps, 4, t);
    const want = filterLossReference(maps, [4, 2, 3, 3], { tau: t });
    assert.ok(Math.abs(got - want) < 1e-4 * Math.max(1, Math.abs(want)), `τ ${t ?? 'default'}: graph ${got} vs reference ${want}`);
    assert.ok(want < 0, `−MI is negative for varied maps: ${want}`);
  }
  // Identical maps over the batch: p(x|T) is uniform for every T, so p(x|T) = p(x) and MI = 0.
  const same = new Float32Array(4 * 18);
  for (let i = 0; i < 4; i++) same.set(maps.subarray(0, 18), i * 18);
  assert.ok(Math.abs(await termValue(same, 4, 0.5)) < 1e-6, 'MI of identical maps is 0');
  // One peak per image at a different place beats a diffuse map: higher MI (lower loss), by the reference.
  const peaks = new Float32Array(4 * 18);
  [0, 2, 6, 8].forEach((p, i) => ((peaks[i * 18 + p] = 3), (peaks[i * 18 + 9 + p] = 3)));
  const diffuse = new Float32Array(4 * 18).map((_, j) => 3 / 9 + 0.01 * (j % 5));
  assert.ok(filterLossReference(peaks, [4, 2, 3, 3], { tau: 0.5 }) < filterLossReference(diffuse, [4, 2, 3, 3], { tau: 0.5 }), 'peaked maps have lower loss');

  // The mask: relu(x ∘ M_argmax x), per image and filter.
  const m = maskedFilters(scaled(), 'scale.mul', { size: [3, 3] });
  assert.equal(m.site, 'scale.mul.mask.relu');
  const loaded = await Model.load(encodeModel(m.model));
  const out = (await loaded.run({ x: Tensor.float32(maps, [4, 2, 3, 3]) })).outputs.y.data as Float32Array;
  for (let k = 0; k < 8; k++) {
    const x = maps.subarray(k * 9, k * 9 + 9);
    const arg = x.indexOf(Math.max(...x));
    for (let p = 0; p < 9; p++) assert.ok(Math.abs(out[k * 9 + p] - Math.max(0, x[p] * masks[arg * 9 + p])) < 1e-6, `map ${k}, pixel ${p}`);
  }
  await loaded.dispose();
  assert.throws(() => filterTemplates(3, 3, { tau: 0 }), /tau must be positive/);
  assert.throws(() => interpretableFiltersRegularizer(scaled(), { site: 'scale.mul', size: [3, 3], weight: NaN }), /weight must be a finite number/);
  assert.throws(() => maskedFilters(scaled(), 'scale.mull', { size: [3, 3] }), /scale\.mul/);
  assert.deepEqual(await siteSize(scaled(), 'scale.mul', [2, 3, 3]), [3, 3]);
  await assert.rejects(siteSize(mlpModel, 'fc1.relu', [4]), /needs a conv map/);
  await assert.rejects(termValue(new Float32Array(18).fill(NaN), 1), /NaN/);
});

test('a CNN with interpretable filters: dissection and part consistency against its twin, and the accuracy cost', async () => {
  const S = 20;
  const train = conceptDataset({ size: 1500, seed: 1, height: S, width: S });
  const testData = conceptDataset({ size: 400, seed: 2, height: S, width: S });
  const concepts = conceptDataset({ size: 300, seed: 3, height: S, width: S });
  const model = cnn({ input: [1, S, S], channels: [8, 16], classes: 5, seed: 1 });
  const r = await trainInterpretableFilters(model, concepts, { train, test: testData, epochs: 3, batchSize: 64, seed: 1, site: 'c2.relu', weight: 1, tau: 0.5 });
  assert.deepEqual(r.params.size, [S / 2, S / 2], 'the map size read from the model');
  const [a, b] = [r.scores, r.twinScores];
  const raw = await scoreFilters(r.twins.regularized.model, 'c2.relu', concepts);
  for (const [name, s] of [[`filter loss (${a.site})`, a], ['filter loss, before the mask (c2.relu)', raw], ['twin (c2.relu)', b]] as const) {
    report(`${name}: labelled ${pct(s.labelledFraction)}, mean IoU ${s.meanIoU.toFixed(3)}, peak concentration ${pct(s.peakConcentration)}, part consistency ${pct(s.partConsistency)}; labels ${[...new Set(s.labels.filter((l) => l))].join(', ') || 'none'}`);
  }
  report(`accuracy ${pct(r.twins.regularized.accuracy)} vs twin ${pct(r.twins.twin.accuracy)}: cost ${pct(r.accuracyCost)}; filter loss per epoch ${r.twins.regularized.history.map((h) => h.terms!['filter-mi'].toFixed(3)).join(', ')}; ${(r.ms / 1000).toFixed(1)} s`);
  assert.equal(r.taxonomy, INTERPRETABLE_FILTER_METHODS['interpretable-filters'].info.taxonomy);
  assert.ok(a.labelledFraction > b.labelledFraction + 0.2, `labelled: ${pct(a.labelledFraction)} vs twin ${pct(b.labelledFraction)}`);
  assert.ok(a.meanIoU > 1.5 * b.meanIoU, `mean IoU: ${a.meanIoU.toFixed(3)} vs twin ${b.meanIoU.toFixed(3)}`);
  assert.ok(a.partConsistency > b.partConsistency + 0.2, `part consistency: ${pct(a.partConsistency)} vs twin ${pct(b.partConsistency)}`);
  // The masked map is one peak by construction; before the mask the maps are NOT more concentrated than the twin's.
  assert.equal(a.peakConcentration, 1);
  assert.ok(raw.peakConcentration < b.peakConcentration, `before the mask: ${pct(raw.peakConcentration)} vs twin ${pct(b.peakConcentration)}`);
  // The loss was optimised (MI grew), and the price is reported.
  const mi = r.twins.regularized.history.map((h) => h.terms!['filter-mi']);
  assert.ok(mi[mi.length - 1] < mi[0], `filter loss ${mi.join(' → ')}`);
  const cost = r.checks.find((c) => c.name === 'accuracy cost')!;
  assert.equal(cost.value, r.twins.twin.accuracy - r.twins.regularized.accuracy);
  assert.ok(r.checks.filter((c) => ['labelled filters', 'mean best IoU', 'part consistency'].includes(c.name)).every((c) => c.passed));
  await Promise.all([r.twins.regularized.model.dispose(), r.twins.twin.model.dispose()]);
});
