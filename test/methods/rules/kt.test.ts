import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { split } from '../../../src/data/datasets/split.js';
import { loadIris } from '../../../src/data/datasets/tabular.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { attr, encodeModel, type ModelProto } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  binarize, booleanDataset, dnfHolds, equivalence, formatTerm, maskOf, onMask, quantileCuts, simplifyDnf, truthTable, type Term,
} from '../../../src/methods/rules/boolean.js';
import { forward, minimalCounts, readMlp, unitRules } from '../../../src/methods/rules/decompositional.js';
import { kt } from '../../../src/methods/rules/kt.js';
import { DECOMPOSITIONAL_METHODS } from '../../../src/methods/rules/mofn.js';
import { readFileSync } from 'node:fs';
import { findCheck, sigmoidMlp, torchFixture } from '../../helpers.js';

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f'];
const TARGET = ([a, b, c, d]: readonly boolean[]) => (a && b) || (c && !d);



/** The network's class on every row of x, by ONNX Runtime (argmax of the logits). */
async function classesOf(model: ModelProto, x: Float32Array, n: number): Promise<Int32Array> {
  const m = await Model.load(encodeModel(model));
  const out = (await m.run({ x: new Tensor('float32', x, [x.length / n, n]) })).outputs.logits;
  await m.dispose();
  const c = out.shape[1];
  return Int32Array.from({ length: x.length / n }, (_, r) => {
    let best = 0;
    for (let k = 1; k < c; k++) if (out.at(r * c + k) > out.at(r * c + best)) best = k;
    return best;
  });
}

let trained: ModelProto | undefined;
async function formulaNet(): Promise<ModelProto> {
  if (trained) return trained;
  const ds = booleanDataset(TARGET, NAMES);
  const t = await Trainer.create(sigmoidMlp(6, [2], 2, 1), { optimizer: { kind: 'adam', lr: 0.05 } });
  await t.fit(ds, { epochs: 300, batchSize: 16, seed: 1 });
  assert.equal((await t.evaluate(ds)).accuracy, 1, 'the network learns the formula');
  trained = t.exportModel();
  await t.dispose();
  return trained;
}

test('KT recovers (a AND b) OR (c AND NOT d) from a sigmoid MLP trained on its truth table (2 distractors)', async () => {
  const r = await kt(await formulaNet(), { inputNames: NAMES, classNames: ['no', 'yes'] });
  const yes = r.classes[1].dnf;
  assert.ok(yes, 'the class rules compose into a DNF on the inputs');
  const eq = equivalence((on) => dnfHolds(yes, on), onMask(TARGET, 6), 6);
  assert.ok(eq.equivalent, `composed rules differ from the formula on ${eq.mismatches} inputs: ${r.classes[1].rules.join('; ')}`);
  assert.deepEqual(new Set(yes.map((t) => formatTerm(t, NAMES))), new Set(['a AND b', 'c AND NOT d']), 'the prime implicants of the formula');
  assert.equal(r.fidelity, 1);
  assert.equal(findCheck(r, 'fidelity').passed, true);
  assert.match(String(findCheck(r, 'fidelity').detail), /truth table of 6 inputs, exact/);
  assert.equal(findCheck(r, 'weights read').passed, true);
  assert.equal(findCheck(r, 'on/off rules complementary').value, 0);
  assert.equal(findCheck(r, 'composed = layered').value, 0);
  // The pruned search examines a small share of the 2·2^fan-in subsets: 2·64 per hidden unit, 2·4 for the output.
  assert.equal(r.cost.exhaustive, 2 * 64 * 2 + 2 * 4);
  assert.ok(r.cost.examined < r.cost.exhaustive / 5, `examined ${r.cost.examined} of ${r.cost.exhaustive}`);
  // No unit rule mentions a distractor.
  for (const u of r.units) for (const rule of [...u.on, ...u.off]) assert.doesNotMatch(rule, /\b[ef]\b/, `${u.name}: ${rule}`);
});

/**
 * Hand-wired: h0 = σ(3a + 2b + 2c − 2d − 4), h1 = σ(2 − 4e), logit(yes) − logit(no) = 4h0 + 4h1 − 6.
 * By hand (Fu's worst case, binary levels): h0 on ⇐ {a,b,c}, {a,b,¬d}, {a,c,¬d} (7 > 6); h0 off ⇐ {¬a}, {¬b,¬c},
 * {¬b,d}, {¬c,d} (≥ 3); h1 on ⇐ ¬e, off ⇐ e; yes ⇐ h0 ∧ h1; no ⇐ ¬h0 or ¬h1. The search examines 7 + 7, 2 + 2 and 3 + 3
 * sets (traced in the test's comment of minimalCounts) against 2·2^4 + 2·2^1 + 2·2^2 = 44.
 */
function handWired(): ModelProto {
  const net = new Net(0);
  const w1 = Tensor.float32([3, 0, 2, 0, 2, 0, -2, 0, 0, -4], [5, 2]); // MatMul layout [in, out]
  const h = net.op('fc1', 'Add', [net.op('fc1', 'MatMul', ['x', net.param('fc1.weight', w1)]), net.param('fc1.bias', Tensor.float32([-4, 2], [2]))]);
  const s = net.op('fc1', 'Sigmoid', [h]);
  const w2 = Tensor.float32([0, 0, 4, 4], [2, 2]); // Gemm [out, in]
  net.op('fc2', 'Gemm', [s, net.param('fc2.weight', w2), net.param('fc2.bias', Tensor.float32([3, -3], [2]))], [attr('transB', { int: 1 })], ['logits']);
  return net.model({ name: 'hand', doc: 'hand-wired', input: { name: 'x', dtype: 'float32', shape: ['N', 5] }, output: { name: 'logits', shape: ['N', 2] } });
}

test('KT on a hand-wired network gives the closed-form rules and search counts', async () => {
  const names = ['a', 'b', 'c', 'd', 'e'];
  const r = await kt(handWired(), { inputNames: names, classNames: ['no', 'yes'], levels: 'binary' });
  const unit = (name: string) => r.units.find((u) => u.name === name)!;
  assert.deepEqual(new Set(unit('fc1[0]').on), new Set(['a AND b AND c', 'a AND b AND NOT d', 'a AND c AND NOT d']));
  assert.deepEqual(new Set(unit('fc1[0]').off), new Set(['NOT a', 'NOT b AND NOT c', 'NOT b AND d', 'NOT c AND d']));
  assert.deepEqual(unit('fc1[1]').on, ['NOT e']);
  assert.deepEqual(unit('fc1[1]').off, ['e']);
  assert.deepEqual(unit('yes > no').on, ['fc1[0] AND fc1[1]']);
  assert.deepEqual(new Set(unit('yes > no').off), new Set(['NOT fc1[0]', 'NOT fc1[1]']));
  assert.deepEqual([unit('fc1[0]').examined, unit('fc1[1]').examined, unit('yes > no').examined], [14, 4, 6]);
  assert.deepEqual(r.cost, { examined: 24, exhaustive: 44, saved: 1 - 24 / 44 });
  assert.deepEqual(new Set(r.classes[1].dnf!.map((t) => formatTerm(t, names))), new Set(['a AND b AND c AND NOT e', 'a AND b AND NOT d AND NOT e', 'a AND c AND NOT d AND NOT e']));
  assert.equal(r.fidelity, 1, 'the hand-set margins keep every sigmoid on the right side');
});

test('the pruned search finds exactly the minimal subsets a brute-force enumeration finds', () => {
  const rand = mulberry32(7);
  for (let trial = 0; trial < 40; trial++) {
    const n = 6;
    const gains = Float64Array.from({ length: n }, () => Math.round((rand() * 2 - 1) * 8) / 2);
    const base = Math.round((rand() * 2 - 1) * 8) / 2 + 0.25;
    const r = unitRules({ base, groups: Array.from(gains, (gain, v) => ({ gain, members: [v] })) }, n, { who: 't', unit: 'u', maxRules: 1e6, maxLiterals: Infinity });
    // Reference: a subset S of literals is an on-rule when every completion switches the unit on, and minimal.
    const net = (on: number) => base + gains.reduce((s, g, i) => s + ((on >> i) & 1 ? g : 0), 0);
    const forces = (pos: number, neg: number, wantOn: boolean) => {
      for (let on = 0; on < 2 ** n; on++) if ((on & pos) === pos && (on & neg) === 0 && net(on) > 0 !== wantOn) return false;
      return true;
    };
    for (const wantOn of [true, false]) {
      const expected = new Set<string>();
      for (let s = 0; s < 3 ** n; s++) {
        let pos = 0, neg = 0;
        for (let i = 0, t = s; i < n; i++, t = Math.floor(t / 3)) {
          if (t % 3 === 1) pos |= 1 << i;
          if (t % 3 === 2) neg |= 1 << i;
        }
        if (!forces(pos, neg, wantOn)) continue;
        const smaller = [...Array(n).keys()].some((i) => ((pos >> i) & 1 && forces(pos & ~(1 << i), neg, wantOn)) || ((neg >> i) & 1 && forces(pos, neg & ~(1 << i), wantOn)));
        if (!smaller) expected.add(`${pos}/${neg}`);
      }
      const got = new Set((wantOn ? r.on : r.off).map((rule) => {
        let pos = 0, neg = 0;
        for (const l of rule.flatMap((c) => c.literals)) {
          if (l.on) pos |= 1 << l.v;
          else neg |= 1 << l.v;
        }
        return `${pos}/${neg}`;
      }));
      assert.deepEqual(got, expected, `trial ${trial} ${wantOn ? 'on' : 'off'}: gains ${[...gains]}, base ${base}`);
    }
    assert.ok(r.examined <= r.exhaustive);
  }
  // maxLiterals stops the search at short rules; maxRules fails loudly.
  const wide = minimalCounts([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], 3.5, true, { who: 't', unit: 'u', maxRules: 100, maxLiterals: 3 });
  assert.equal(wide.vectors.length, 0, 'every rule needs 4 antecedents');
  assert.throws(() => minimalCounts([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], 2.5, true, { who: 't', unit: 'u7', maxRules: 10, maxLiterals: Infinity }), /unit u7 has more than 10 rules/);
});

test('simplifyDnf returns an equivalent DNF of prime implicants', () => {
  const t = (pos: number, neg: number): Term => ({ pos: BigInt(pos), neg: BigInt(neg) });
  // a∧b∧d ∨ a∧b∧¬d ∨ c∧¬d ∨ a∧b∧c  ≡  a∧b ∨ c∧¬d
  const s = simplifyDnf([t(0b1011, 0), t(0b0011, 0b1000), t(0b0100, 0b1000), t(0b0111, 0)]);
  assert.deepEqual(new Set(s.map((x) => formatTerm(x, NAMES))), new Set(['a AND b', 'c AND NOT d']));
  const rand = mulberry32(3);
  for (let trial = 0; trial < 20; trial++) {
    const terms = Array.from({ length: 6 }, () => {
      const pos = Math.floor(rand() * 32);
      return t(pos, Math.floor(rand() * 32) & ~pos);
    });
    assert.ok(equivalence((on) => dnfHolds(terms, on), (on) => dnfHolds(simplifyDnf(terms), on), 5).equivalent);
  }
});

test('KT on binarized iris (petal length and width at tertiles): fidelity on held-out flowers', async () => {
  const [train, test] = split(await loadIris(), [0.7, 0.3], { seed: 1, stratify: true });
  const cuts = quantileCuts(train, [1 / 3, 2 / 3], [2, 3]);
  const [btrain, btest] = [binarize(train, cuts), binarize(test, cuts)];
  const t = await Trainer.create(sigmoidMlp(cuts.length, [3], 3, 1), { optimizer: { kind: 'adam', lr: 0.05 } });
  await t.fit(btrain, { epochs: 100, batchSize: 16, seed: 1 });
  const model = t.exportModel();
  await t.dispose();
  const r = await kt(model, { data: btrain, test: btest });
  assert.equal(r.classes.length, 3);
  // Held-out fidelity, recomputed from the class DNFs and the network run directly.
  const x = new Float32Array(btest.size * cuts.length);
  btest.gather([...Array(btest.size).keys()]).x.data.forEach((v, i) => (x[i] = Number(v)));
  const net = await classesOf(model, x, cuts.length);
  let agree = 0;
  for (let row = 0; row < btest.size; row++) {
    const on = maskOf(x, row, cuts.length);
    if (r.classes.findIndex((c) => dnfHolds(c.dnf!, on)) === net[row]) agree++;
  }
  assert.equal(findCheck(r, 'fidelity (held out)').value, agree / btest.size);
  assert.ok(agree / btest.size >= 0.9, `held-out fidelity ${agree / btest.size}`);
  assert.ok(Number(findCheck(r, 'rule accuracy (held out)').value) >= 0.9);
  // The 16-row truth table includes impossible codes (petal length > 4.9 but not > 1.9); fidelity there is reported, exact.
  const exact = Number(findCheck(r, 'fidelity (truth table)').value);
  assert.ok(exact > 0 && exact <= 1 && Number.isInteger(exact * 16));
});

test('KT on a ReLU MLP: the reported fidelity is the brute-force agreement of its rules with the network', async () => {
  const ds = booleanDataset(TARGET, NAMES);
  const t = await Trainer.create(mlp({ inputs: 6, hidden: [4], classes: 2, seed: 2 }), { optimizer: { kind: 'adam', lr: 0.05 } });
  await t.fit(ds, { epochs: 200, batchSize: 16, seed: 1 });
  const model = t.exportModel();
  await t.dispose();
  const r = await kt(model, { inputNames: NAMES });
  const x = truthTable(6);
  const net = await classesOf(model, x, 6);
  let agree = 0;
  for (let row = 0; row < 64; row++) if (r.classes.findIndex((c) => dnfHolds(c.dnf!, maskOf(x, row, 6))) === net[row]) agree++;
  assert.equal(r.fidelity, agree / 64);
  assert.equal(findCheck(r, 'fidelity').passed, r.fidelity >= 0.95);
  await assert.rejects(kt(model, { levels: 'binary' }), /layer 'fc1' is ReLU, which has no fixed on-level/);
});

test('more inputs than the truth-table limit: fidelity on seeded random inputs', async () => {
  const net = new Net(0);
  const w = new Float32Array(2 * 20);
  w.set([10, 10], 0); // h0 = σ(10·x0 + 10·x1 − 15): x0 AND x1
  const h = net.op('fc1', 'Sigmoid', [net.op('fc1', 'Gemm', ['x', net.param('fc1.weight', new Tensor('float32', w, [2, 20])), net.param('fc1.bias', Tensor.float32([-15, -1], [2]))], [attr('transB', { int: 1 })])]);
  net.op('fc2', 'Gemm', [h, net.param('fc2.weight', Tensor.float32([8, 0], [1, 2])), net.param('fc2.bias', Tensor.float32([-4], [1]))], [attr('transB', { int: 1 })], ['logits']);
  const model = net.model({ name: 'wide', doc: 'wide', input: { name: 'x', dtype: 'float32', shape: ['N', 20] }, output: { name: 'logits', shape: ['N', 1] } });
  const r = await kt(model, { samples: 2000, seed: 3 });
  assert.match(String(r.params.evaluation), /2000 random boolean inputs \(seed 3\)/);
  assert.equal(r.checks.some((c) => c.name === 'fidelity (truth table)'), false);
  assert.equal(r.fidelity, 1);
  assert.deepEqual(r.classes[1].rules, ['IF x0 AND x1 THEN class 1']);
});

test('readMlp reads a PyTorch-exported MLP: its forward pass reproduces the PyTorch outputs', () => {
  const fx = torchFixture('mlp');
  const m = readMlp(new Uint8Array(readFileSync(fx.path)), 'test');
  assert.deepEqual(m.layers.map((l) => [l.name, l.inSize, l.outSize, l.activation]), [['fc1', 784, 128, 'relu'], ['fc2', 128, 64, 'relu'], ['fc3', 64, 10, 'none']]);
  const rows = fx.input.shape[0];
  const logits = forward(m, Float32Array.from({ length: fx.input.size }, (_, i) => fx.input.at(i)), rows).at(-1)!;
  let worst = 0;
  for (let i = 0; i < logits.length; i++) worst = Math.max(worst, Math.abs(logits[i] - fx.output.at(i)));
  assert.ok(worst < 1e-4, `max |diff| ${worst}`);
});

test('bad input gets a clear error', async () => {
  await assert.rejects(kt(new Uint8Array(readFileSync(torchFixture('cnn').path))), /unsupported Conv node/);
  await assert.rejects(kt(new Uint8Array(readFileSync(torchFixture('mlp').path))), /unit fc1\[0\] has \d+ inputs of non-zero weight/);
  const gelu = new Net(0);
  gelu.op('fc1', 'Softplus', [gelu.linear('fc1', 'x', 3, 2)]);
  await assert.rejects(
    kt(gelu.model({ name: 'g', doc: 'g', input: { name: 'x', dtype: 'float32', shape: ['N', 3] }, output: { name: '/fc1/Softplus_output_0', shape: ['N', 2] } })),
    /unsupported Softplus node '\/fc1\/Softplus'.*Sigmoid, Relu or Tanh/,
  );
  await assert.rejects(kt(sigmoidMlp(30, [2], 2, 1)), /unit fc1\[0\] has 30 inputs of non-zero weight; the exact search is limited to maxFanIn = 24/);
  const model = await formulaNet();
  const notBoolean = booleanDataset(TARGET, NAMES);
  assert.throws(() => binarize(notBoolean, []), /no cuts/);
  await assert.rejects(kt(model, { inputNames: ['a'] }), /1 input names for 6 inputs/);
  await assert.rejects(kt(model, { maxRules: 0 }), /maxRules must be a positive integer/);
  const [iris] = split(await loadIris(), [1]);
  await assert.rejects(kt(sigmoidMlp(4, [2], 3, 1), { data: iris }), /row 0 feature 0 is [\d.]+; inputs must be 0 or 1/);
  assert.deepEqual(Object.keys(DECOMPOSITIONAL_METHODS), ['kt', 'm-of-n']);
  assert.equal(DECOMPOSITIONAL_METHODS.kt.info.taxonomy.zhang.format, 'rules');
});
