/**
 * Concept bottleneck models (Koh et al. 2020) on dSprites-like sprites whose task is a known function of their
 * concepts: y = 2·[scale:large] + [x:right]. The concept loss against its closed form; the three training modes reach
 * concept accuracy far above the majority rate and test-time intervention raises task accuracy; leakage separates a
 * joint model with a tiny concept weight from the independent one when the concepts are incomplete.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { cnn, mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  bottleneckModel,
  CONCEPT_BOTTLENECK_METHODS,
  CONCEPT_LOGITS,
  CONCEPT_PROBS,
  conceptBottleneckRegularizer,
  conceptLoss,
  trainConceptBottleneck,
  type ConceptBottleneck,
  type Labelled,
} from '../../../src/methods/active/bottleneck.js';
import { factorConcepts, parseConceptTable, subsetTable } from '../../../src/methods/active/concept-data.js';
import { seeded } from '../../helpers.js';

const report = (...xs: unknown[]) => console.log('  ·', ...xs);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function splitLabelled(task: 'complete' | 'incomplete', n: number, nTest: number): { train: Labelled; test: Labelled } {
  const { data, table } = factorConcepts({ size: n + nTest, seed: 1, task });
  const tr = Array.from({ length: n }, (_, i) => i);
  const te = Array.from({ length: nTest }, (_, i) => n + i);
  return { train: { data: data.subset(tr, `${task} train`), table: subsetTable(table, tr) }, test: { data: data.subset(te, `${task} test`), table: subsetTable(table, te) } };
}

const encoder = mlp({ inputs: [1, 28, 28], hidden: [64], classes: 4, seed: 1 });
const settings = { epochs: 4, batchSize: 64, seed: 1 } as const;

test('the bottleneck computes head(σ(concept logits)) and its loss is the mean binary cross-entropy', async () => {
  const model = bottleneckModel(mlp({ inputs: 5, hidden: [6], classes: 3, seed: 2 }), 4, 7);
  const loaded = await Model.load(encodeModel(model));
  const r = seeded(3);
  const x = Tensor.float32(Array.from({ length: 8 * 5 }, () => 2 * r() - 1), [8, 5]);
  const c = Tensor.float32(Array.from({ length: 8 * 4 }, () => (r() < 0.5 ? 0 : 1)), [8, 4]);
  const run = await loaded.run({ x }, { capture: [CONCEPT_LOGITS, CONCEPT_PROBS, 'fc1.relu'] });
  const z = run.captures[CONCEPT_LOGITS].data as Float32Array;
  const h = run.captures['fc1.relu'].data as Float32Array;
  const w = new Map(model.graph!.initializer.map((t) => [t.name, t]));
  assert.ok(!w.has('fc2.weight') && w.has('concepts.weight') && w.has('head.weight'), 'the last layer is replaced');
  // Closed forms: z = h·Wcᵀ + bc; logits = σ(z)·Whᵀ + bh; BCE = mean(log(1 + e^z) − c·z).
  const trainer = await Trainer.create(model, { optimizer: { kind: 'sgd', lr: 1e-3 }, head: 'none', terms: [conceptLoss(0.5)] });
  const [Wc, bc, Wh, bh] = ['concepts.weight', 'concepts.bias', 'head.weight', 'head.bias'].map((n) => trainer.weights.get(n)!.data.slice());
  const step = await trainer.step({ x, y: Tensor.int64(new Array(8).fill(0), [8]) }, { concepts: c }); // the term at the weights before the update
  let bce = 0;
  const logits = run.outputs.logits.data as Float32Array;
  for (let i = 0; i < 8; i++) {
    const s: number[] = [];
    for (let j = 0; j < 4; j++) {
      let v = bc[j];
      for (let m = 0; m < 6; m++) v += h[i * 6 + m] * Wc[j * 6 + m];
      assert.ok(Math.abs(v - z[i * 4 + j]) < 1e-5, `z[${i},${j}] ${z[i * 4 + j]} vs ${v}`);
      s.push(1 / (1 + Math.exp(-v)));
      bce += (Math.log1p(Math.exp(v)) - c.data[i * 4 + j] * v) / 32;
    }
    for (let o = 0; o < 3; o++) {
      const want = bh[o] + s.reduce((a, sj, j) => a + sj * Wh[o * 4 + j], 0);
      assert.ok(Math.abs(want - logits[i * 3 + o]) < 1e-5, `logit[${i},${o}] ${logits[i * 3 + o]} vs ${want}`);
    }
  }
  assert.ok(Math.abs(step.terms['concept-bce'] - 0.5 * bce) < 1e-5, `term ${step.terms['concept-bce']} vs 0.5·BCE ${0.5 * bce}`);
  await trainer.dispose();
  await loaded.dispose();
  // The cnn builder ends with the same kind of layer: its features feed the concepts.
  const conv = await Model.load(encodeModel(bottleneckModel(cnn({ input: [1, 8, 8], channels: [4], classes: 3, seed: 1 }), 5)));
  assert.deepEqual(conv.site(CONCEPT_PROBS).shape?.slice(1), [5]);
  assert.deepEqual((await conv.run({ x: Tensor.float32(new Float32Array(2 * 64), [2, 1, 8, 8]) })).outputs.logits.shape, [2, 3]);
  await conv.dispose();
  assert.throws(() => bottleneckModel(model, 0), /concepts must be a positive integer/);
  assert.throws(() => bottleneckModel(model, 2), /already has a weight 'concepts.weight'/);
});

test('concept tables: JSON and CSV files, the per-batch feed, and errors that name the row', () => {
  const json = parseConceptTable(JSON.stringify({ concepts: ['a', 'b'], labels: [[1, 0], [0, 1], [true, true]] }), 'c.json');
  const csv = parseConceptTable('# comment\na,b\n1,0\n0,1\n\n1,1\n', 'c.csv');
  assert.deepEqual(json, csv);
  assert.deepEqual(Array.from(json.values), [1, 0, 0, 1, 1, 1]);
  const reg = conceptBottleneckRegularizer(encoder, json);
  const feed = reg.extra!({ x: Tensor.float32([0], [1]), y: Tensor.int64([0], [1]), indices: Int32Array.of(2, 0) }).concepts;
  assert.deepEqual([Array.from(feed.data as Float32Array), feed.shape], [[1, 1, 1, 0], [2, 2]]);
  assert.throws(() => reg.extra!({ x: Tensor.float32([0], [1]), y: Tensor.int64([0], [1]), indices: Int32Array.of(3) }), /example 3 is out of range \[0, 3\)/);
  assert.throws(() => parseConceptTable('a,b\n1,2\n', 'c.csv'), /line 2 has '2'; concept labels must be 0 or 1/);
  assert.throws(() => parseConceptTable('a,b\n1\n', 'c.csv'), /line 2 has 1 values for 2 concepts/);
  assert.throws(() => parseConceptTable('{"concepts": ["a"], "labels": [[1, 0]]}', 'c.json'), /row 0 must be an array of 1 values/);
  assert.throws(() => parseConceptTable('{"concepts": ["a", "a"], "labels": []}', 'c.json'), /concept 'a' is named twice/);
  assert.throws(() => parseConceptTable('a\n1\n', 'c.txt'), /unknown format/);
  assert.throws(() => conceptBottleneckRegularizer(encoder, json, { lambda: -1 }), /lambda must be a finite number ≥ 0/);
});

const complete = splitLabelled('complete', 1500, 500);

test('independent, sequential and joint bottlenecks learn the concepts, and interventions raise task accuracy', async () => {
  const results: ConceptBottleneck[] = [];
  let twin;
  for (const mode of ['independent', 'sequential', 'joint'] as const) {
    const r = await trainConceptBottleneck(encoder, { ...complete, mode, lambda: 1, ...settings, twin, probeEpochs: 0 });
    twin = r.twin;
    results.push(r);
    const iv = r.intervention.accuracy;
    report(`${mode}: concepts ${pct(r.meanConceptAccuracy)} (${r.concepts.map((c, j) => `${c} ${pct(r.conceptAccuracy[j])}`).join(', ')}; majority ${pct(r.conceptBaseline.reduce((a, b) => a + b) / 3)}), task ${pct(r.taskAccuracy)}, intervened ${iv.map(pct).join(' → ')}, standard model ${pct(r.twinAccuracy)}, cost ${pct(r.accuracyCost)}, ${(r.ms / 1000).toFixed(1)} s`);
    assert.equal(r.taxonomy, CONCEPT_BOTTLENECK_METHODS['concept-bottleneck'].info.taxonomy);
    r.conceptAccuracy.forEach((a, j) => assert.ok(a > r.conceptBaseline[j] + 0.25, `${mode}: ${r.concepts[j]} accuracy ${pct(a)} vs majority ${pct(r.conceptBaseline[j])}`));
    assert.ok(r.meanConceptAccuracy > 0.9, `${mode}: mean concept accuracy ${pct(r.meanConceptAccuracy)}`);
    assert.ok(iv[3] > iv[0] + 0.03, `${mode}: intervening on all concepts ${pct(iv[3])} vs none ${pct(iv[0])}`);
    assert.ok(r.checks.find((c) => c.name === 'concept accuracy vs majority rate')!.passed);
    assert.ok(r.checks.find((c) => c.name === 'test-time intervention')!.passed);
    assert.equal(r.checks.find((c) => c.name === 'accuracy cost')!.value, r.twinAccuracy - r.taskAccuracy);
  }
  const [independent, sequential] = results;
  // y is a function of the true concepts: a head trained on them is exact once they are given.
  assert.equal(independent.intervention.accuracy[3], 1, 'independent head on true concepts');
  // Independent and sequential share the x → c stage (same seed): identical concepts.
  assert.deepEqual(independent.conceptAccuracy, sequential.conceptAccuracy);
  await Promise.all(results.map((r) => r.model.dispose()));
  await twin!.model.dispose();
});

test('leakage: a joint model with a tiny concept weight carries task information the concepts do not; the independent one does not', async () => {
  const incomplete = splitLabelled('incomplete', 1500, 500);
  const independent = await trainConceptBottleneck(encoder, { ...incomplete, mode: 'independent', ...settings, probeEpochs: 10 });
  const joint = await trainConceptBottleneck(encoder, { ...incomplete, mode: 'joint', lambda: 0.01, ...settings, twin: independent.twin, probeEpochs: 10 });
  const [a, b] = [independent.leakage!, joint.leakage!];
  for (const [name, l] of [['independent', a], ['joint λ 0.01', b]] as const) {
    report(`${name}: probes ${pct(l.soft)} soft ĉ, ${pct(l.hard)} hard ĉ, ${pct(l.trueConcepts)} true concepts → leakage ${pct(l.leakage)}, soft − hard ${pct(l.softOverHard)}`);
  }
  // x:right is not a concept, so the true concepts give at most 50% (large and small are told apart, left and right not).
  assert.ok(a.trueConcepts <= 0.55, `true-concept probe ${pct(a.trueConcepts)}`);
  assert.ok(b.leakage > 0.15, `joint leakage ${pct(b.leakage)}`);
  assert.ok(a.leakage < 0.05, `independent leakage ${pct(a.leakage)}`);
  assert.ok(b.leakage > a.leakage + 0.15, `joint ${pct(b.leakage)} vs independent ${pct(a.leakage)}`);
  assert.ok(b.softOverHard > a.softOverHard, `soft − hard: joint ${pct(b.softOverHard)} vs independent ${pct(a.softOverHard)}`);
  assert.ok(joint.meanConceptAccuracy < independent.meanConceptAccuracy, `concepts: joint ${pct(joint.meanConceptAccuracy)} vs independent ${pct(independent.meanConceptAccuracy)}`);
  await Promise.all([independent.model.dispose(), joint.model.dispose(), independent.twin.model.dispose()]);
});
