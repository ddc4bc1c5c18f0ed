import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { split } from '../../../src/data/datasets/split.js';
import { loadBreastCancer } from '../../../src/data/datasets/tabular.js';
import { Net } from '../../../src/model/builders/net.js';
import { Trainer } from '../../../src/model/train/index.js';
import { attr } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { asMofN, binarize, booleanDataset, formatRule, onMask, quantileCuts } from '../../../src/methods/rules/boolean.js';
import { kt } from '../../../src/methods/rules/kt.js';
import { kmeans1d, mOfN } from '../../../src/methods/rules/mofn.js';
import { findCheck, sigmoidMlp } from '../../helpers.js';

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f'];
const MAJORITY = ([a, b, c]: readonly boolean[]) => Number(a) + Number(b) + Number(c) >= 2;

test('M-of-N returns exactly 2 of {a, b, c} for a sigmoid MLP trained on majority-of-three (3 distractors)', async () => {
  const ds = booleanDataset(MAJORITY, NAMES);
  const t = await Trainer.create(sigmoidMlp(6, [2], 2, 1), { optimizer: { kind: 'adam', lr: 0.05 } });
  await t.fit(ds, { epochs: 300, batchSize: 16, seed: 1 });
  assert.equal((await t.evaluate(ds)).accuracy, 1);
  const model = t.exportModel();
  await t.dispose();
  const r = await mOfN(model, { inputNames: NAMES, classNames: ['no', 'yes'] });
  assert.ok(r.classClauses[1]);
  assert.equal(formatRule([r.classClauses[1]], NAMES), '2 of {a, b, c}');
  assert.equal(formatRule([r.classClauses[0]!], NAMES), '2 of {NOT a, NOT b, NOT c}');
  assert.equal(r.fidelity, 1);
  assert.equal(findCheck(r, 'on/off rules complementary').value, 0);
  // Each hidden unit reads as one M-of-N clause over a, b, c (the distractors' clusters are eliminated).
  for (const u of r.units.filter((x) => x.layer === 0)) {
    assert.equal(u.on.length, 1, `${u.name}: ${u.on.join(' | ')}`);
    assert.match(u.on[0], /^2 of \{(NOT )?a, (NOT )?b, (NOT )?c\}$/);
  }
  assert.ok(r.clusters.kept < r.clusters.weights / 3, `${r.clusters.kept} clusters for ${r.clusters.weights} weights`);
  // The cost saved: count vectors over clusters instead of subsets over weights, fewer than KT's pruned subsets.
  const k = await kt(model, { inputNames: NAMES });
  assert.equal(k.fidelity, 1);
  assert.ok(r.cost.examined < k.cost.examined, `M-of-N ${r.cost.examined} vs KT ${k.cost.examined}`);
  assert.equal(r.cost.exhaustive, k.cost.exhaustive);
});

test('M-of-N on a hand-wired unit: cluster, eliminate the small weights, read off the closed form', async () => {
  // No hidden layer: logit(yes) − logit(no) = 2.1a + 1.9b + 2c + 0.05d − 0.04e − 3 (f unused).
  const net = new Net(0);
  const w = Tensor.float32([0, 0, 0, 0, 0, 0, 2.1, 1.9, 2, 0.05, -0.04, 0], [2, 6]);
  net.op('fc1', 'Gemm', ['x', net.param('fc1.weight', w), net.param('fc1.bias', Tensor.float32([0, -3], [2]))], [attr('transB', { int: 1 })], ['logits']);
  const model = net.model({ name: 'unit', doc: 'one unit', input: { name: 'x', dtype: 'float32', shape: ['N', 6] }, output: { name: 'logits', shape: ['N', 2] } });
  const r = await mOfN(model, { inputNames: NAMES, classNames: ['no', 'yes'] });
  assert.equal(r.units.length, 1);
  const [u] = r.units;
  assert.deepEqual(u.on, ['2 of {a, b, c}']);
  assert.deepEqual(u.off, ['2 of {NOT a, NOT b, NOT c}']);
  assert.equal(u.groups.length, 1);
  assert.ok(Math.abs(u.groups[0].gain - 2) < 1e-6, 'the cluster mean (2.1 + 1.9 + 2) / 3');
  assert.deepEqual(r.clusters, { kept: 1, weights: 5 });
  // 2 of {a, b, c}: the search steps through counts 1, 2 (on) and 1, 2 (off) after the empty vector.
  assert.deepEqual(r.cost, { examined: 6, exhaustive: 64, saved: 1 - 6 / 64 });
  assert.equal(r.fidelity, 1);
});

test('kmeans1d is the optimal 1-D clustering (brute force over every split of the sorted values)', () => {
  const rand = mulberry32(5);
  const sse = (xs: number[]) => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.reduce((s, x) => s + (x - m) ** 2, 0);
  };
  for (let trial = 0; trial < 20; trial++) {
    const values = Array.from({ length: 7 }, () => rand() * 10 - 5);
    const sorted = [...values].sort((a, b) => a - b);
    for (let k = 1; k <= 4; k++) {
      let best = Infinity;
      const rec = (start: number, left: number, acc: number): void => {
        if (left === 1) return void (best = Math.min(best, acc + sse(sorted.slice(start))));
        for (let end = start + 1; end <= sorted.length - left + 1; end++) rec(end, left - 1, acc + sse(sorted.slice(start, end)));
      };
      rec(0, k, 0);
      const got = kmeans1d(values, k).reduce((s, idx) => s + sse(idx.map((i) => values[i])), 0);
      assert.ok(Math.abs(got - best) < 1e-9, `trial ${trial} k=${k}: ${got} vs ${best}`);
    }
  }
  assert.throws(() => kmeans1d([1, 2], 3), /k must be in \[1, 2\]/);
});

test('asMofN reads M-of-N functions off a truth table and rejects the others', () => {
  const c = asMofN(onMask(([a, b, c]) => Number(a) + Number(!b) + Number(c) >= 2, 4), 4);
  assert.equal(c && formatRule([c], NAMES), '2 of {a, NOT b, c}');
  const and = asMofN(onMask(([a, b]) => a && b, 3), 3);
  assert.equal(and && formatRule([and], NAMES), 'a AND b');
  assert.equal(asMofN(onMask(([a, b]) => a !== b, 2), 2), null, 'XOR is not monotone');
  assert.equal(asMofN(onMask(([a, b, c]) => (a && b) || c, 3), 3), null, 'a∧b ∨ c does not depend on a count');
});

test('M-of-N on binarized breast cancer (3 features at their medians): fidelity on held-out tumours', async () => {
  const [train, test] = split(await loadBreastCancer(), [0.7, 0.3], { seed: 1, stratify: true });
  const cuts = quantileCuts(train, [0.5], [20, 22, 27]); // worst radius, worst perimeter, worst concave points
  const [btrain, btest] = [binarize(train, cuts), binarize(test, cuts)];
  const t = await Trainer.create(sigmoidMlp(cuts.length, [2], 2, 1), { optimizer: { kind: 'adam', lr: 0.05 } });
  await t.fit(btrain, { epochs: 30, batchSize: 32, seed: 1 });
  const model = t.exportModel();
  await t.dispose();
  const r = await mOfN(model, { data: btrain, test: btest });
  const fid = Number(findCheck(r, 'fidelity (held out)').value);
  assert.ok(fid >= 0.9, `held-out fidelity ${fid}`);
  assert.ok(Number(findCheck(r, 'rule accuracy (held out)').value) >= 0.85);
  assert.equal(findCheck(r, 'composed = layered').value, 0);
  assert.ok(r.clusters.kept <= r.clusters.weights);
  await assert.rejects(mOfN(model, { maxClusters: 0 }), /maxClusters must be a positive integer/);
});
