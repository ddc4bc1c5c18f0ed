/**
 * Pedagogical rule extraction from real networks: MLPs trained here on iris, breast cancer and an MNIST slice. The
 * tabular models standardise inside the graph, so they read raw features and the rules are in raw units. Checked:
 * held-out fidelity above the majority-class baseline, bounded size, querying against the same learner without
 * queries, and on iris the setosa split of the published tree.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { loadBreastCancer, loadIris, loadMnist, Model, split, type Dataset } from '../../../src/index.js';
import { mlp } from '../../../src/model/builders/mlp.js';
import { Trainer } from '../../../src/model/train/trainer.js';
import { encodeModel, type ModelProto } from '../../../src/onnx/proto.js';
import { patchFeatures } from '../../../src/methods/rules/features.js';
import { extractionJson, formatRules } from '../../../src/methods/rules/format.js';
import { extractRules, PEDAGOGICAL_METHODS, type RuleExtraction } from '../../../src/methods/rules/pedagogical.js';
import { rawFeatureMlp } from '../../helpers.js';

async function trained(proto: ModelProto, train: Dataset, epochs: number, lr: number, batchSize: number): Promise<Model> {
  const t = await Trainer.create(proto, { optimizer: { kind: 'adam', lr } });
  await t.fit(train, { epochs, batchSize, seed: 1 });
  return Model.load(encodeModel(t.exportModel()));
}

const summary = (r: RuleExtraction): string =>
  `${r.method}: fidelity ${r.fidelity.toFixed(3)} (majority ${r.baselines.majority.toFixed(3)}, no queries ${r.baselines.noQueries.toFixed(3)}), ` +
  `accuracy ${r.accuracy.toFixed(3)} (network ${r.networkAccuracy.toFixed(3)}), ${r.size.rules} rules, ${r.size.antecedents} antecedents, depth ${r.size.depth}, ${r.queries.total} queries, ${r.ms.toFixed(0)} ms`;

const setup = (async () => {
  const [irisTrain, irisTest] = split(await loadIris(), [0.7, 0.3], { seed: 1, stratify: true });
  const [bcTrain, bcTest] = split(await loadBreastCancer(), [0.7, 0.3], { seed: 1, stratify: true });
  const iris = await Model.load(encodeModel(await rawFeatureMlp(irisTrain, { epochs: 60 })));
  const cancer = await Model.load(encodeModel(await rawFeatureMlp(bcTrain, { epochs: 30, lr: 0.005, batchSize: 32 })));
  return { iris, irisTrain, irisTest, cancer, bcTrain, bcTest };
})();

test('iris: a depth-3 tree reads the network with setosa split off by one petal condition', async () => {
  const { iris, irisTrain, irisTest } = await setup;
  const r = await extractRules(iris, irisTrain, irisTest, { maxDepth: 3, queries: 600, seed: 1 });
  console.log(summary(r));
  console.log(formatRules(r));
  assert.ok(r.networkAccuracy >= 0.9, `network accuracy ${r.networkAccuracy}`);
  assert.ok(r.fidelity >= 0.9 && r.fidelity > r.baselines.majority, summary(r));
  assert.ok(r.checks.find((c) => c.name === 'fidelity vs majority')?.passed);
  assert.ok(r.size.depth <= 3 && r.size.leaves <= 8 && r.size.rules <= r.size.leaves);
  // The root separates setosa (class 0) by a petal measurement, between the setosa maximum and the versicolor minimum
  // (petal length 1.9 / 3.0 cm, petal width 0.6 / 1.0 cm); the rule for setosa decides a third of the held-out
  // flowers (15 of 45), all as the network does.
  const root = r.tree?.root;
  assert.ok(root?.kind === 'split' && root.feature >= 2, 'root splits on a petal measurement');
  if (root?.kind === 'split') assert.ok(root.threshold > (root.feature === 2 ? 1.9 : 0.6) && root.threshold < (root.feature === 2 ? 3.0 : 1.0), `root threshold ${root.threshold}`);
  const setosa = r.rules.rules.findIndex((rule, k) => rule.label === 0 && r.ruleStats[k].support > 0);
  assert.ok(setosa >= 0 && r.ruleStats[setosa].support === 15 && r.ruleStats[setosa].fidelity === 1, JSON.stringify(r.ruleStats));
  // Per-rule coverage adds up to 1 over the held-out data; JSON keeps antecedents as {feature, op, threshold}.
  assert.ok(Math.abs(r.ruleStats.reduce((a, s) => a + s.coverage, 0) - 1) < 1e-9);
  const json = extractionJson(r) as { rules: { if: { feature: string; op: string; threshold: number }[] }[] };
  assert.ok(json.rules.some((x) => x.if.some((c) => c.feature.startsWith('petal') && (c.op === '<=' || c.op === '>') && Number.isFinite(c.threshold))));
  assert.match(formatRules(r), /^IF petal (length|width) \(cm\) <= [\d.]+ AND .* THEN setosa {2}\[coverage 0\.33, fidelity 1\.00\]$/m);
});

test('iris: a sequential-covering rule set is faithful and small', async () => {
  const { iris, irisTrain, irisTest } = await setup;
  const r = await PEDAGOGICAL_METHODS['covering-rules'].run(iris, irisTrain, irisTest, { queries: 600, seed: 1 });
  console.log(summary(r));
  console.log(formatRules(r));
  assert.ok(r.fidelity >= 0.85 && r.fidelity > r.baselines.majority, summary(r));
  assert.ok(r.size.rules <= 10 && r.size.antecedents <= 20, summary(r));
  assert.ok(r.rules.ordered && r.rules.defaultLabel !== null);
});

test('breast cancer: tree and rule set are faithful, well above the majority baseline, and small', async () => {
  const { cancer, bcTrain, bcTest } = await setup;
  const tree = await extractRules(cancer, bcTrain, bcTest, { maxDepth: 4, queries: 1000, seed: 1 });
  const rules = await extractRules(cancer, bcTrain, bcTest, { kind: 'rules', queries: 1000, seed: 1 });
  console.log(summary(tree));
  console.log(summary(rules));
  console.log(formatRules(rules));
  for (const r of [tree, rules]) {
    assert.ok(r.networkAccuracy >= 0.9, `network accuracy ${r.networkAccuracy}`);
    assert.ok(r.fidelity >= 0.9 && r.fidelity > r.baselines.majority + 0.2, summary(r));
    assert.ok(r.accuracy >= 0.88, summary(r));
  }
  assert.ok(tree.size.depth <= 4 && tree.size.leaves <= 16);
  assert.ok(rules.size.rules <= 12, summary(rules));
});

test('breast cancer from 57 training examples: querying the network raises held-out fidelity', async () => {
  const [small, rest] = split(await loadBreastCancer(), [0.1, 0.9], { seed: 1, stratify: true });
  const model = await Model.load(encodeModel(await rawFeatureMlp(small, { epochs: 30, lr: 0.005 })));
  const tree = await extractRules(model, small, rest, { maxDepth: 4, queries: 1000, seed: 1 });
  const rules = await extractRules(model, small, rest, { kind: 'rules', queries: 1000, seed: 1 });
  console.log(summary(tree));
  console.log(summary(rules));
  // Trepan's querying put examples into thin nodes, and the no-query baseline is the same learner on the 57 alone.
  assert.ok(tree.queries.nodes > 0 && tree.queries.global === 500, JSON.stringify(tree.queries));
  for (const r of [tree, rules]) {
    assert.ok(r.fidelity > r.baselines.noQueries, summary(r));
    assert.equal(r.checks.find((c) => c.name === 'fidelity vs no queries')?.passed, true);
  }
});

test('MNIST: a tree over 7×7-pixel patch means beats the majority baseline in fidelity', async () => {
  const images = await loadMnist('train');
  const train = images.slice(0, 2000);
  const held = images.slice(2000, 2600);
  const model = await trained(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 1 }), train, 3, 0.003, 64);
  const r = await extractRules(model, train, held, { features: patchFeatures([1, 28, 28], 7), maxDepth: 6, queries: 2000, seed: 1 });
  console.log(summary(r));
  console.log(formatRules(r).split('\n').slice(0, 4).join('\n'));
  assert.ok(r.networkAccuracy >= 0.8, `network accuracy ${r.networkAccuracy}`);
  assert.ok(r.fidelity > r.baselines.majority + 0.25, summary(r));
  assert.ok(r.size.depth <= 6 && r.size.leaves <= 64);
  assert.match(formatRules(r), /^IF patch\(r\d,c\d\) (<=|>) [\d.]+/);
});

test('bad arguments are named', async () => {
  const { iris, irisTrain, irisTest } = await setup;
  await assert.rejects(extractRules(iris, irisTrain, irisTest, { maxDepth: -1 }), /maxDepth must be a non-negative integer/);
  await assert.rejects(extractRules(iris, irisTrain, irisTest, { output: 'logit' }), /unknown output 'logit'; nearest: logits/);
  await assert.rejects(extractRules(iris, irisTrain, irisTest, { features: patchFeatures([1, 28, 28], 7) }), /has inputs \[4\], the feature space reads \[1,28,28\]/);
  assert.throws(() => patchFeatures([1, 28, 28], 5), /patch size 5 must be a positive integer dividing/);
});
