/**
 * Concept vectors against ground truth: the t distribution against closed forms and t-table critical values, the CAV
 * of two Gaussians against their known separating direction, and TCAV / ACE on a CNN trained here on images whose
 * class is decided by a planted pattern (a bright block) while a second planted pattern (stripes) is independent of
 * the label: the block concept must be significant for its class, the stripes concept not, and ACE must recover the
 * two patterns as separate clusters.
 */
import assert from 'node:assert/strict';
import { before, after, test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { cnn } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { bonferroni, incompleteBeta, studentTCdf, studentTTwoSided, tTest } from '../../../src/methods/representations/stats.js';
import { cav, CONCEPT_METHODS, conceptAttribution, fitCav, tcav, type Activations } from '../../../src/methods/representations/tcav.js';
import { ace } from '../../../src/methods/representations/ace.js';
import { seeded } from '../../helpers.js';

const near = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);

test('Student t: closed forms for df 1 and 2, t-table critical values, the pooled t-test, Bonferroni', () => {
  for (const t of [-3, -0.7, 0, 0.4, 1, 2.5, 10]) {
    near(studentTCdf(t, 1), 0.5 + Math.atan(t) / Math.PI, 1e-12, `Cauchy CDF at ${t}`);
    near(studentTCdf(t, 2), 0.5 + t / (2 * Math.sqrt(2 + t * t)), 1e-12, `t(2) CDF at ${t}`);
  }
  // Two-sided critical values from the t-table: p = 0.05 at 2.228 (df 10), 2.086 (df 20), 12.706 (df 1); p = 0.01 at 3.169 (df 10).
  near(studentTTwoSided(2.228, 10), 0.05, 2e-4, 't 2.228, df 10');
  near(studentTTwoSided(2.086, 20), 0.05, 2e-4, 't 2.086, df 20');
  near(studentTTwoSided(12.706, 1), 0.05, 2e-5, 't 12.706, df 1');
  near(studentTTwoSided(3.169, 10), 0.01, 5e-5, 't 3.169, df 10');
  near(studentTTwoSided(1.96, 1e6), 0.05, 2e-4, 'large df → normal');
  near(incompleteBeta(0.3, 1, 1), 0.3, 1e-14, 'I_x(1, 1) = x');
  near(incompleteBeta(0.3, 2, 3), 1 - 0.7 ** 4 - 4 * 0.3 * 0.7 ** 3, 1e-13, 'I_x(2, 3) by the binomial sum');
  // a = 1…5, b = 3…7: means 3 and 5, pooled variance 2.5, t = −2 at df 8; scipy.stats.ttest_ind gives p = 0.080516.
  const r = tTest([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]);
  assert.deepEqual([r.t, r.df], [-2, 8]);
  near(r.p, 0.080516, 1e-6, 'ttest_ind p');
  assert.equal(tTest([0.5, 0.5], [0.5, 0.5]).p, 1);
  assert.equal(tTest([1, 1], [0, 0]).p, 0);
  assert.equal(bonferroni(0.02, 3), 0.06);
  assert.equal(bonferroni(0.5, 3), 1);
  assert.throws(() => tTest([1], [2, 3]), /at least 2 values, got 1 and 2/);
  assert.throws(() => tTest([1, NaN], [2, 3]), /value 1 \(NaN\) is not finite/);
  assert.throws(() => bonferroni(0.1, 0), /number of tests must be a positive integer, got 0/);
  assert.throws(() => studentTCdf(1, 0), /degrees of freedom must be a finite number > 0, got 0/);
});

/** n points N(centre + shift·u, σ²I) in d dimensions. */
function gaussians(n: number, d: number, centre: number[], u: number[], shift: number, sigma: number, rand: () => number): Activations {
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = centre[j] + shift * u[j] + sigma * gauss();
  return { data, n, d };
}

test('the CAV of two Gaussians with shared isotropic covariance is their separating direction, towards the concept', () => {
  const rand = seeded(7);
  const d = 6;
  const u = [0.5, -0.5, 0.5, 0, 0.5, 0]; // unit
  const centre = [3, 1, -2, 0.5, 4, -1];
  const concept = gaussians(200, d, centre, u, 1.5, 0.5, rand);
  const random = gaussians(200, d, centre, u, -1.5, 0.5, rand);
  const c = fitCav(concept, random, { seed: 1 });
  const cos = c.vector.reduce((s, v, j) => s + v * u[j], 0);
  assert.ok(cos > 0.99, `cos(CAV, u) = ${cos}`);
  near(Math.hypot(...c.vector), 1, 1e-12, 'unit norm');
  assert.equal(c.accuracy, 1, 'the sets are 6σ apart: every held-out example is classified right');
  assert.equal(c.checks[0].passed, true);
  const flipped = fitCav(random, concept, { seed: 1 });
  assert.ok(flipped.vector.reduce((s, v, j) => s + v * u[j], 0) < -0.99, 'swapping the sets flips the CAV');
  // Indistinguishable sets: held-out accuracy near chance, and the check says so.
  const same = fitCav(gaussians(100, d, centre, u, 0, 1, rand), gaussians(100, d, centre, u, 0, 1, rand), { seed: 2 });
  assert.ok(same.accuracy < 0.7, `accuracy on identical distributions ${same.accuracy}`);
  assert.equal(same.checks[0].passed, false);
  assert.throws(() => fitCav(concept, gaussians(5, 3, [0, 0, 0], [1, 0, 0], 0, 1, rand)), /concept activations have 6 values per example, random ones 3/);
  assert.throws(() => fitCav(concept, random, { l2: -1 }), /l2 must be a finite number ≥ 0, got -1/);
});

// ---------------------------------------------------------------------------------------------------------------
// A CNN trained on planted patterns

const S = 20;

interface Scene {
  readonly pixels: Float32Array;
  /** 0 background, 1 block, 2 stripes, per pixel. */
  readonly truth: Uint8Array;
}

/** Dark noise with a bright 4 × 4 block (if `block`) and a 6 × 6 patch of horizontal stripes (if `stripes`). */
function scene(rand: () => number, block: boolean, stripes: boolean): Scene {
  const pixels = Float32Array.from({ length: S * S }, () => 0.15 * rand());
  const truth = new Uint8Array(S * S);
  // A place for a size × size patch, at least one pixel clear of a 4 × 4 block at `avoid` (always exists for S = 20).
  const place = (size: number, avoid?: [number, number]) => {
    for (;;) {
      const [y, x] = [Math.floor(rand() * (S - size + 1)), Math.floor(rand() * (S - size + 1))];
      if (!avoid || y + size < avoid[0] || avoid[0] + 5 <= y || x + size < avoid[1] || avoid[1] + 5 <= x) return [y, x] as [number, number];
    }
  };
  let at: [number, number] | undefined;
  if (block) {
    at = place(4);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) [pixels[(at[0] + y) * S + at[1] + x], truth[(at[0] + y) * S + at[1] + x]] = [0.9 + 0.1 * rand(), 1];
  }
  if (stripes) {
    const [y0, x0] = place(6, at);
    for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) [pixels[(y0 + y) * S + x0 + x], truth[(y0 + y) * S + x0 + x]] = [y % 2 === 0 ? 0.6 : 0.2, 2];
  }
  return { pixels, truth };
}

/** Images with labels: class 0 has the block, class 1 not; stripes in half of each class, independent of the label. */
function planted(n: number, seed: number): Dataset<'float32'> & { truths: Uint8Array[] } {
  const rand = seeded(seed);
  const labels = Int32Array.from({ length: n }, () => (rand() < 0.5 ? 0 : 1));
  const scenes = Array.from(labels, (l) => scene(rand, l === 0, rand() < 0.5));
  return { ...images(scenes.map((s) => s.pixels), `planted-${seed}`, labels), truths: scenes.map((s) => s.truth) };
}

function images(pixels: Float32Array[], name: string, labels?: Int32Array): Dataset<'float32'> {
  return dataset({
    name,
    size: pixels.length,
    inputShape: [1, S, S],
    inputDType: 'float32',
    numClasses: 2,
    labels: labels ?? new Int32Array(pixels.length),
    gather: (ix) => {
      const x = new Float32Array(ix.length * S * S);
      ix.forEach((i, b) => x.set(pixels[i], b * S * S));
      return { x: Tensor.float32(x, [ix.length, 1, S, S]), y: Tensor.int64(Array.from(ix, (i) => (labels ? labels[i] : 0))) };
    },
  });
}

const conceptSet = (n: number, seed: number, block: boolean, stripes: boolean) => {
  const rand = seeded(seed);
  return images(Array.from({ length: n }, () => scene(rand, block, stripes).pixels), `concept-${seed}`);
};

let model: Model;
let test0: Dataset<'float32'>;
const SITE = 'c1.maxpool';
before(async () => {
  const t = await Trainer.create(cnn({ input: [1, S, S], channels: [8], classes: 2, seed: 3 }), { optimizer: { kind: 'adam', lr: 1e-2 } });
  await t.fit(planted(800, 1), { epochs: 15, batchSize: 32, seed: 1 });
  model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  test0 = planted(200, 2);
});
after(async () => {
  await model?.dispose();
});

async function accuracy(ds: Dataset<'float32'>): Promise<number> {
  const { x, y } = ds.gather(Array.from({ length: ds.size }, (_, i) => i));
  const out = (await model.run({ [model.inputs[0].name]: x })).outputs[model.outputs[0].name].data as Float32Array;
  let right = 0;
  for (let i = 0; i < ds.size; i++) if ((out[2 * i + 1] > out[2 * i] ? 1 : 0) === Number(y.data[i])) right++;
  return right / ds.size;
}

/** Random counter-sets: random images without the block (noise, stripes in half of them). */
const randomSets = (k: number) => Array.from({ length: k }, (_, i) => {
  const rand = seeded(100 + i);
  return images(Array.from({ length: 40 }, () => scene(rand, false, rand() < 0.5).pixels), `random-${i}`);
});
const randomLike = (n: number, seed: number) => {
  const rand = seeded(seed);
  return images(Array.from({ length: n }, () => scene(rand, false, rand() < 0.5).pixels), `random-like-${seed}`);
};
const classZero = () => test0.subset(Array.from({ length: test0.size }, (_, i) => i).filter((i) => test0.labels![i] === 0));

test('TCAV on a CNN trained on planted blocks: the block concept is significant for its class, a label-free concept is not', async () => {
  const acc = await accuracy(test0);
  assert.ok(acc >= 0.95, `the CNN learns the block rule: held-out accuracy ${acc}`);
  const block = await cav(model, SITE, conceptSet(40, 50, true, false), randomSets(1)[0], { seed: 1 });
  assert.ok(block.accuracy >= 0.75, `block CAV held-out accuracy ${block.accuracy}`);

  const table = await conceptAttribution(model, {
    site: SITE,
    concepts: { block: conceptSet(40, 50, true, false), stripes: conceptSet(40, 51, false, true), random: randomLike(40, 52) },
    randoms: randomSets(10),
    target: 0,
    inputs: classZero(),
    seed: 1,
  });
  const [b, s, r] = table.rows;
  assert.deepEqual(table.rows.map((row) => row.concept), ['block', 'stripes', 'random']);
  assert.ok(b.significant && b.pCorrected < 0.05, `block: corrected p ${b.pCorrected}`);
  assert.ok(b.mean > 0.9, `block TCAV score ${b.mean}`);
  near(b.pCorrected, Math.min(1, 3 * b.p), 1e-15, 'Bonferroni over the three concepts');
  // A concept drawn from the random sets' own distribution is irrelevant to the labels by construction.
  assert.ok(!r.significant && r.pCorrected >= 0.05, `random-like concept: corrected p ${r.pCorrected}`);
  // Stripes are independent of the label; their CAV is weak (half the random images hold stripes) and the mean
  // directional derivative (the magnitude version) is well below the block's.
  assert.ok(b.magnitude > 2 * s.magnitude, `magnitudes: block ${b.magnitude}, stripes ${s.magnitude}`);
  assert.equal(b.scores.length, 10);
  assert.equal(b.randomScores.length, 10);
  near(b.p, tTest(b.scores, b.randomScores).p, 0, 'the reported p is the t-test of the reported scores');
  assert.equal(b.checks.find((c) => c.name === 'cav held-out accuracy')?.passed, true);
  assert.equal(r.checks.find((c) => c.name === 'cav held-out accuracy')?.passed, false, 'a random-like concept has no CAV');
  // For the other class, the block concept points the other way.
  const other = await tcav(model, { site: SITE, concept: conceptSet(40, 50, true, false), randoms: randomSets(10), target: 1, inputs: classZero(), seed: 1 });
  assert.ok(other.mean < 0.1 && other.significant, `block for class 1: ${other.mean}, p ${other.pCorrected}`);
});

test('ACE on images with two planted patterns recovers them as separate clusters, and the block cluster is significant', async () => {
  const inputs = classZero().slice(0, 40);
  const truths = (test0 as ReturnType<typeof planted>).truths;
  const index = Array.from({ length: test0.size }, (_, i) => i).filter((i) => test0.labels![i] === 0).slice(0, 40);
  const r = await ace(model, { site: SITE, inputs, target: 0, randoms: randomSets(10), clusters: 6, segments: 8, seed: 1 });
  // Each segment's planted label: the majority of its pixels (background, block, stripes).
  const label = r.segments.map((sg) => {
    const counts = [0, 0, 0];
    const plane = r.segmentation[sg.image];
    const truth = truths[index[sg.image]];
    for (let p = 0; p < S * S; p++) if (plane[p] === sg.segment) counts[truth[p]]++;
    return counts.indexOf(Math.max(...counts));
  });
  const byCluster = new Map<number, number[]>();
  r.assignments.forEach((a, i) => byCluster.set(a, [...(byCluster.get(a) ?? []), label[i]]));
  let pure = 0;
  for (const ls of byCluster.values()) pure += Math.max(...[0, 1, 2].map((k) => ls.filter((l) => l === k).length));
  const purity = pure / label.length;
  assert.ok(purity >= 0.9, `cluster purity against the planted labels ${purity}`);
  // Both planted patterns are found: a kept concept whose examples are all block segments, a cluster mostly stripes.
  const kind = (c: (typeof r.concepts)[number]) => {
    const ls = c.examples.map((i) => label[i]);
    return ls.every((l) => l === ls[0]) ? ls[0] : -1;
  };
  const blocks = r.concepts.filter((c) => kind(c) === 1);
  assert.ok(blocks.length >= 1, 'a concept of block segments');
  const majority = (ls: number[]) => [0, 1, 2].reduce((a, k) => (ls.filter((l) => l === k).length > ls.filter((l) => l === a).length ? k : a), 0);
  assert.ok([...byCluster.values()].some((ls) => majority(ls) === 2), `a cluster of stripe segments: ${[...byCluster.values()].map((ls) => ls.join('')).join(' | ')}`);
  for (const c of blocks) assert.ok(c.tcav.significant && c.tcav.mean > 0.9, `block concept #${c.cluster}: score ${c.tcav.mean}, corrected p ${c.tcav.pCorrected}`);
  near(blocks[0].tcav.pCorrected, Math.min(1, r.concepts.length * blocks[0].tcav.p), 1e-15, 'Bonferroni over the kept concepts');
  for (const c of r.concepts) assert.ok(c.examples.every((i) => r.assignments[i] === c.cluster) && c.size >= 5, 'examples come from their cluster');
});

test('bad input: too few random sets, mismatched shapes, unknown site, NaN', async () => {
  const concept = conceptSet(10, 60, true, false);
  const randoms = randomSets(2);
  const base = { site: SITE, concept, randoms, target: 0, inputs: classZero() };
  await assert.rejects(tcav(model, { ...base, randoms: randoms.slice(0, 1) }), /need at least 2 random counter-sets .* got 1/);
  await assert.rejects(tcav(model, { ...base, site: 'c1.maxpoo' }), /c1\.maxpoo/);
  await assert.rejects(tcav(model, { ...base, concept: Tensor.float32(new Float32Array(2 * 8 * 8), [2, 1, 8, 8]) }), /tcav: concept examples: examples \[1, 8, 8\] do not fit input/);
  const nan = new Float32Array(2 * S * S);
  nan[300] = NaN;
  await assert.rejects(tcav(model, { ...base, concept: Tensor.float32(nan, [2, 1, S, S]) }), /tcav: concept examples: value 300 is NaN, not finite/);
  await assert.rejects(tcav(model, { ...base, target: 2 }), /target class must be an integer in \[0, 2\), got 2/);
  await assert.rejects(ace(model, { site: SITE, inputs: classZero(), target: 0, randoms, clusters: 0 }), /ace: clusters must be a positive integer, got 0/);
  assert.deepEqual(Object.keys(CONCEPT_METHODS), ['cav', 'tcav', 'ace']);
  assert.equal(CONCEPT_METHODS.tcav.info.taxonomy.zhang.scope, 'global');
  assert.equal(CONCEPT_METHODS.tcav.info.taxonomy.rauker?.section, 'V: concept vectors');
});
