import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { inductionDataset } from '../../../src/data/datasets/induction.js';
import { attnOnly, attnOnlyNodes, type ResidualNode } from '../../../src/model/builders/attn-only.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { torchFixture } from '../../helpers.js';
import { CIRCUIT_METHODS, discoverCircuit } from '../../../src/methods/subnetworks/circuit.js';
import { pathPatching } from '../../../src/methods/subnetworks/heads.js';
import { activationPatching, attributionPatching, tokenLogProb, type Outputs } from '../../../src/methods/subnetworks/patching.js';

const close = (a: number, b: number, tol = 1e-5, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} ≠ ${b}`);

/**
 * A residual toy computable by hand: e = x; A = 2·e; B = (e + A)²; y = e + A + B, each node reading the stream through
 * its own Identity copy. Clean x = 1 (e 1, A 2, B 9, y 12), corrupted x = 0 (everything 0); metric = mean y.
 */
async function toy(): Promise<{ model: Model; nodes: ResidualNode[] }> {
  const net = new Net(0);
  const two = net.constant('a', Tensor.float32([2], []));
  const e = net.op('embed', 'Identity', ['x']);
  const a = net.op('a/out', 'Mul', [net.op('a/in', 'Identity', [e]), two]);
  const inB = net.op('b/in', 'Identity', [net.op('s1', 'Add', [e, a])]);
  const b = net.op('b/out', 'Mul', [inB, inB]);
  net.op('o', 'Identity', [net.op('o/in', 'Identity', [net.op('s2', 'Sum', [e, a, b])])], [], ['y']);
  const proto = net.model({ name: 'toy', doc: 'toy', input: { name: 'x', dtype: 'float32', shape: ['N', 1] }, output: { name: 'y', shape: ['N', 1] } });
  const nodes = [
    { name: 'e', inputs: [], output: 'embed.identity' },
    { name: 'A', inputs: ['a.in.identity'], output: 'a.out.mul' },
    { name: 'B', inputs: ['b.in.identity'], output: 'b.out.mul' },
    { name: 'O', inputs: ['o.in.identity'] },
  ];
  return { model: await Model.load(encodeModel(proto)), nodes };
}

const col = (v: number[]) => Tensor.float32(v, [v.length, 1]);
const meanY = (o: Outputs) => Array.from(o.y.data as Float32Array).reduce((s, v) => s + v, 0) / o.y.size;
const toyRun = { clean: { x: col([1, 1]) }, corrupted: { x: col([0, 0]) }, metric: meanY };

test('patching on a hand-computed residual toy: exact effects', async () => {
  const { model, nodes } = await toy();
  const ap = await activationPatching(model, { ...toyRun, sites: ['embed.identity', 'a.out.mul', 'b.out.mul'] });
  assert.deepEqual([ap.clean, ap.corrupted], [12, 0]);
  // A patched: e 1, A 0, B 1, y 2 → (2 − 12)/(0 − 12); B patched: y 3; e patched: y 0.
  [1, 10 / 12, 0.75].forEach((v, i) => close(ap.effects[i].effect, v, 1e-6, ap.effects[i].site));
  for (const c of ap.checks) assert.ok(c.passed, `${c.name}: ${c.detail}`);
  // Default sites: every value with a batch axis, in graph order (the Constant 2 is no site).
  const all = await activationPatching(model, toyRun);
  assert.deepEqual(all.effects.map((e) => e.site), ['x', 'embed.identity', 'a.in.identity', 'a.out.mul', 's1.add', 'b.in.identity', 'b.out.mul', 's2.sum', 'o.in.identity', 'o.identity']);
  [1, 1, 10 / 12, 10 / 12, 0.75, 0.75, 0.75, 1, 1, 1].forEach((v, i) => close(all.effects[i].effect, v, 1e-6, all.effects[i].site));
  // Captures one site at a time (maxElements 1): the same map.
  const small = await activationPatching(model, { ...toyRun, maxElements: 1 });
  assert.deepEqual(small.effects, all.effects);

  // Direct path A → output (B frozen at 9): y = 1 + 0 + 9 = 10; A → B's input: B = 1, y = 1 + 2 + 1 = 4.
  const direct = await pathPatching(model, { ...toyRun, sender: 'a.out.mul', receiver: 'o.in.identity', nodes });
  assert.deepEqual(direct.frozen, ['b.out.mul']);
  close(direct.effect, 1 / 6, 1e-6, 'A → O');
  close(direct.total, 10 / 12, 1e-6, 'A total');
  const viaB = await pathPatching(model, { ...toyRun, sender: 'a.out.mul', receiver: 'b.in.identity', nodes });
  close(viaB.effect, 2 / 3, 1e-6, 'A → B');

  // y = 3e + 9e²: dy/de = 21, dy/dA = 1 + 2·3 = 7, dy/dB = 1; seed 1/2 per row (mean).
  const at = await attributionPatching(model, { ...toyRun, seed: col([0.5, 0.5]), sites: ['embed.identity', 'a.out.mul', 'b.out.mul'] });
  [21 / 12, 14 / 12, 0.75].forEach((v, i) => close(at.effects[i].effect, v, 1e-5, at.effects[i].site));
  assert.ok(at.checks.find((c) => c.name === 'seed-matches-metric')?.passed);
  // First order is exact where y is linear in the site (B), and off by the curvature elsewhere: compare with real patching.
  assert.deepEqual(at.actual?.map((e) => Math.round(e.effect * 1200) / 1200), [1, 10 / 12, 0.75].map((v) => Math.round(v * 1200) / 1200));

  // ACDC, threshold 0.1: only e → O drops the score by less (1/12); the circuit keeps 5 of 6 edges at 11/12.
  const circuit = await discoverCircuit(model, { ...toyRun, threshold: 0.1, nodes, randomCircuits: 3 });
  assert.equal(circuit.total, 6);
  assert.deepEqual(circuit.edges.filter((e) => !e.kept).map((e) => `${e.sender}->${e.receiver}`), ['e->O']);
  close(circuit.faithfulness, 11 / 12, 1e-6, 'faithfulness');
  const drop = (s: string, r: string) => circuit.edges.find((e) => e.sender === s && e.receiver === r)?.drop ?? NaN;
  close(drop('B', 'O'), 0.75, 1e-6, 'B→O');
  close(drop('A', 'O'), 1 / 6, 1e-6, 'A→O');
  close(drop('A', 'B'), 2 / 3, 1e-6, 'A→B');
  close(drop('e', 'B'), 5 / 12, 1e-6, 'e→B');
  close(drop('e', 'A'), 10 / 12, 1e-6, 'e→A');
  assert.deepEqual(circuit.checks.find((c) => c.name === 'edges-complete')?.value, [1, 0]);
});

test('bad input: unknown site, mismatched shapes, NaN metric, missing freeze', async () => {
  const { model, nodes } = await toy();
  await assert.rejects(activationPatching(model, { ...toyRun, sites: ['a.out.mull'] }), /unknown site 'a.out.mull'.*a\.out\.mul/s);
  await assert.rejects(activationPatching(model, { ...toyRun, corrupted: { x: col([0, 0, 0]) } }), /clean and corrupted 'x' differ/);
  await assert.rejects(activationPatching(model, { ...toyRun, metric: () => NaN }), /metric returned NaN on the clean run/);
  await assert.rejects(activationPatching(model, { ...toyRun, corrupted: toyRun.clean }), /same metric/);
  await assert.rejects(pathPatching(model, { ...toyRun, sender: 'a.out.mul', receiver: 'o.in.identity' }), /give `freeze`/);
  await assert.rejects(pathPatching(model, { ...toyRun, sender: 'b.out.mul', receiver: 'a.in.identity', nodes }), /does not come after/);
  await assert.rejects(discoverCircuit(model, { ...toyRun, threshold: -1, nodes }), /threshold must be/);
  await assert.rejects(attributionPatching(model, { ...toyRun, seed: col([1]), sites: ['a.out.mul'] }), /seed/);
});

test('induction data: the second copy repeats the segment; the corrupted twin keeps it after disjoint tokens', () => {
  const clean = inductionDataset({ size: 50, half: HALF, vocab: SPEC.vocab, seed: 3 });
  const corrupt = inductionDataset({ size: 50, half: HALF, vocab: SPEC.vocab, seed: 3, corrupted: true });
  assert.deepEqual(clean.positions, [15, 16, 17, 18]);
  const periods = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const L = clean.period(i);
    periods.add(L);
    const s = [...clean.get(i).x.data, clean.get(i).y.data[2 * HALF - 2]].map(Number); // the 2·half tokens
    const c = [...corrupt.get(i).x.data, corrupt.get(i).y.data[2 * HALF - 2]].map(Number);
    assert.equal(new Set(s.slice(0, 2 * HALF - L)).size, 2 * HALF - L, 'prefix and segment are distinct tokens');
    assert.deepEqual(s.slice(2 * HALF - L), s.slice(2 * HALF - 2 * L, 2 * HALF - L));
    assert.deepEqual(c.slice(2 * HALF - L), s.slice(2 * HALF - L));
    assert.ok(c.slice(0, 2 * HALF - L).every((t) => !s.slice(0, 2 * HALF - L).includes(t)));
  }
  assert.deepEqual([...periods].sort((a, b) => a - b), [5, 6, 7, 8, 9, 10]);
  assert.throws(() => inductionDataset({ size: 4, half: HALF, vocab: 20, seed: 1, corrupted: true }), /vocab 20 is too small: 30 distinct tokens needed/);
});

// The induction model: trained once, shared by the tests below.
// Relative position biases, no position embedding: with absolute positions the model can find the repeat by position
// (a duplicate-token head passing the earlier occurrence's position to a positional layer-1 head) instead of induction.
const SPEC = { vocab: 32, context: 19, dModel: 48, heads: 3, dHead: 16, layers: 2, positions: 'relative', seed: 1 } as const;
const HALF = 10;
let trained: Promise<{ model: Model; accuracy: number; seconds: number }> | undefined;
function inductionModel() {
  trained ??= (async () => {
    const t0 = performance.now();
    const trainer = await Trainer.create(attnOnly(SPEC), { optimizer: { kind: 'adam', lr: 0.008 } });
    await trainer.fit(inductionDataset({ size: 2048, half: HALF, vocab: SPEC.vocab, seed: 1 }), { epochs: 16, batchSize: 32, seed: 1 });
    const model = await Model.load(encodeModel(trainer.exportModel()));
    await trainer.dispose();
    const { x, y } = prompts(false);
    const accuracy = secondHalfAccuracy((await model.run({ tokens: x })).outputs, y);
    return { model, accuracy, seconds: (performance.now() - t0) / 1000 };
  })();
  return trained;
}

const PROMPTS = 64;
const promptSet = (corrupted: boolean) => inductionDataset({ size: PROMPTS, half: HALF, vocab: SPEC.vocab, seed: 7, corrupted });
const prompts = (corrupted: boolean) => promptSet(corrupted).gather(Array.from({ length: PROMPTS }, (_, i) => i));

/** Top-1 accuracy on every target of the second copy (t ≥ T + 1 − L for the example's segment length L). */
function secondHalfAccuracy(outputs: Outputs, y: Tensor): number {
  const l = outputs.logits.data as Float32Array;
  const [B, T] = y.shape;
  const V = SPEC.vocab;
  const ds = promptSet(false);
  let hits = 0;
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let t = T + 1 - ds.period(b); t < T; t++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (l[(b * T + t) * V + v] > l[(b * T + t) * V + best]) best = v;
      hits += best === Number(y.data[b * T + t]) ? 1 : 0;
      n++;
    }
  }
  return hits / n;
}

const heads = (l: number) => Array.from({ length: SPEC.heads }, (_, h) => `blocks.${l}.head.${h}`);
const pair = () => {
  const clean = prompts(false);
  const corrupt = prompts(true);
  const { metric, seed } = tokenLogProb(clean.y, promptSet(false).positions);
  return { clean, corrupt, metric, seed, run: { clean: { tokens: clean.x }, corrupted: { tokens: corrupt.x }, metric } };
};

/** Mean attention of each layer-0 head on the previous token (t − 1), over every position t ≥ 1. */
async function previousTokenMass(model: Model, x: Tensor): Promise<number[]> {
  const patterns = await model.run({ tokens: x }, { capture: heads(0).map((h) => `${h}.pattern.softmax`) });
  const [B, T] = x.shape;
  return heads(0).map((h) => {
    const p = patterns.captures[`${h}.pattern.softmax`].data as Float32Array;
    let s = 0;
    for (let b = 0; b < B; b++) for (let t = 1; t < T; t++) s += p[(b * T + t) * T + t - 1];
    return s / (B * (T - 1));
  });
}

const argmax = (v: readonly number[]) => v.indexOf(Math.max(...v));

test('induction: patching finds the induction head and a previous-token head', async () => {
  const { model, accuracy, seconds } = await inductionModel();
  console.log(`induction model: second-half accuracy ${accuracy.toFixed(3)}, trained in ${seconds.toFixed(1)} s`);
  assert.ok(accuracy > 0.95, `second-half accuracy ${accuracy}`);
  const { clean, run } = pair();
  const sites = [...heads(0), ...heads(1)].map((h) => `${h}.out.matmul`);
  const ap = await activationPatching(model, { ...run, sites });
  for (const c of ap.checks) assert.ok(c.passed, `${c.name}: ${c.detail}`);
  console.log('head patching effects', ap.effects.map((e) => `${e.site.slice(7, 13)} ${e.effect.toFixed(3)}`).join(', '));
  const effects = ap.effects.map((e) => e.effect);
  const induction = argmax(effects.slice(SPEC.heads));
  assert.ok(effects[SPEC.heads + induction] > 0.5, `largest layer-1 effect ${effects[SPEC.heads + induction]}`);

  // Zero-ablating that head destroys second-half accuracy; ablating any other layer-1 head does not.
  const accuracyWithout = async (site: string) => secondHalfAccuracy((await model.run({ tokens: clean.x }, { interventions: [{ kind: 'zero', site }] })).outputs, clean.y);
  const after = await Promise.all(heads(1).map((h) => accuracyWithout(`${h}.out.matmul`)));
  console.log(`accuracy ${accuracy.toFixed(3)} → with one layer-1 head zeroed: ${after.map((a) => a.toFixed(3)).join(', ')}`);
  assert.ok(after[induction] < 0.3, `accuracy without blocks.1.head.${induction}: ${after[induction]}`);
  after.forEach((a, h) => h === induction || assert.ok(a > 0.9, `accuracy without blocks.1.head.${h}: ${a}`));

  // The layer-0 head that matters most attends to the previous token.
  const mass = await previousTokenMass(model, clean.x);
  console.log('layer-0 attention mass on t−1', mass.map((m) => m.toFixed(3)).join(', '));
  const prev = argmax(effects.slice(0, SPEC.heads));
  assert.equal(argmax(mass), prev);
  assert.ok(mass[prev] > 0.5, `previous-token mass ${mass}`);

  // Path patching: the previous-token head reaches the induction head's keys directly (K-composition); the others do not.
  const nodes = attnOnlyNodes(SPEC);
  const keys = `blocks.1.head.${induction}.k_in.identity`;
  const paths = [];
  for (const h of heads(0)) paths.push((await pathPatching(model, { ...run, sender: `${h}.out.matmul`, receiver: keys, nodes })).effect);
  console.log(`path patching layer-0 heads → ${keys}: ${paths.map((p) => p.toFixed(3)).join(', ')}`);
  assert.ok(paths[prev] > 0.5, `path effect ${paths[prev]}`);
  paths.forEach((p, h) => h === prev || assert.ok(Math.abs(p) < 0.1, `path effect of blocks.0.head.${h}: ${p}`));
});

test('induction: circuit discovery keeps the induction mechanism in a fraction of the edges', async () => {
  const { model } = await inductionModel();
  const { clean, run } = pair();
  const r = await discoverCircuit(model, { ...run, threshold: 0.02, nodes: attnOnlyNodes(SPEC), seed: 1 });
  console.log(`circuit: ${r.kept}/${r.total} edges, nodes ${r.nodes.join(' ')}, faithfulness ${r.faithfulness.toFixed(3)}, random ${r.randomFaithfulness.toFixed(3)}, ${(r.ms / 1000).toFixed(1)} s`);
  const kept = r.edges.filter((e) => e.kept).map((e) => `${e.sender}->${e.site}`);
  console.log('kept edges', kept.join(' '));
  for (const c of r.checks) assert.ok(c.passed, `${c.name}: ${c.detail}`);
  assert.ok(r.faithfulness >= 0.8, `faithfulness ${r.faithfulness}`);
  assert.ok(r.size < 0.25, `circuit size ${r.size}`);
  assert.ok(r.randomFaithfulness < 0.5, `random circuits ${r.randomFaithfulness}`);
  // It holds the heads that patching and attention patterns single out, wired by K-composition.
  const prev = argmax(await previousTokenMass(model, clean.x));
  const ind = r.edges.filter((e) => e.kept && e.receiver === 'logits' && e.sender.startsWith('1.')).map((e) => e.sender);
  assert.equal(ind.length, 1, `layer-1 heads writing to the logits: ${ind}`);
  assert.ok(r.nodes.includes(`0.${prev}`), `circuit nodes ${r.nodes}`);
  const h = ind[0].split('.')[1];
  assert.ok(kept.includes(`0.${prev}->blocks.1.head.${h}.k_in.identity`), `kept ${kept}`);
});

test('induction: attribution patching tracks real patching', async () => {
  const { model } = await inductionModel();
  const { run, seed } = pair();
  const sites = [...heads(0), ...heads(1)].map((h) => `${h}.out.matmul`);
  const r = await attributionPatching(model, { ...run, seed, sites, axis: 1, minCorrelation: 0.9 });
  const get = (n: string) => r.checks.find((c) => c.name === n)!.value as number;
  console.log(`attribution vs activation patching over ${r.effects.length} head×position patches: Pearson ${get('pearson').toFixed(3)}, Spearman ${get('spearman').toFixed(3)}`);
  for (const c of r.checks) assert.ok(c.passed !== false, `${c.name}: ${c.detail}`);
  assert.ok(get('spearman') > 0.7);
});

test('per-head patching of a PyTorch-exported GPT (fused heads: axis 1 of softmax·V) agrees with the engine', async () => {
  const { path, input } = torchFixture('gpt');
  const model = await Model.load(path);
  const clean = input as Tensor<'int64'>;
  const [B, T] = clean.shape;
  const vocab = model.outputs[0].shape?.[2] as number;
  // Corrupted: the first half of every sequence replaced (token + 1 mod vocab); targets: the clean next tokens.
  const corrupt = new Tensor('int64', clean.data.map((v, i) => ((i % T) < T / 2 ? (v + 1n) % BigInt(vocab) : v)), clean.shape);
  const y = new Tensor('int64', clean.data.map((v, i) => ((i % T) < T - 1 ? clean.data[i + 1] : v)), clean.shape);
  const positions = Array.from({ length: T / 2 - 1 }, (_, i) => T / 2 + i);
  const { metric, seed } = tokenLogProb(y, positions);
  const sites = ['blocks.0.attn.matmul_1', 'blocks.1.attn.matmul_1']; // [N, H, T, Dh]
  const run = { clean: { tokens: clean }, corrupted: { tokens: corrupt }, metric, sites, axis: 1 };
  const ap = await activationPatching(model, run);
  assert.equal(ap.effects.length, 8);
  for (const e of ap.effects) {
    const { outputs } = await model.run({ tokens: clean }, { interventions: [{ kind: 'patch', site: e.site, from: { tokens: corrupt }, axis: 1, units: [e.unit!] }] });
    close(e.metric, metric(outputs), 1e-5, `${e.site} head ${e.unit}`);
  }
  // This small random-weight GPT is close to linear in each head's value: the first-order estimate nearly matches.
  const at = await attributionPatching(model, { ...run, seed, minCorrelation: 0.95 });
  const r = at.checks.find((c) => c.name === 'pearson')!.value as number;
  console.log(`torch gpt, ${B} sequences: head effects ${ap.effects.map((e) => e.effect.toFixed(3)).join(', ')}; attribution patching Pearson ${r.toFixed(3)} (estimates ${at.effects.map((e) => e.effect.toFixed(3)).join(", ")})`);
  for (const c of at.checks) assert.ok(c.passed !== false, `${c.name}: ${c.detail}`);
});

test('registry: four circuit methods, semi-local, Räuker IV circuits', () => {
  assert.deepEqual(Object.keys(CIRCUIT_METHODS), ['activation-patching', 'path-patching', 'attribution-patching', 'circuit-discovery']);
  for (const m of Object.values(CIRCUIT_METHODS)) {
    assert.equal(m.info.taxonomy.zhang.scope, 'semi-local');
    assert.equal(m.info.taxonomy.rauker?.section, 'IV: circuit analysis');
  }
});
