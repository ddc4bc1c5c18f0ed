/**
 * Representation similarity against closed forms and planted structure: CKA's invariances (orthogonal maps, isotropic
 * scaling) and its non-invariance to general linear maps, the two linear-CKA forms agreeing, unbiased HSIC against its
 * U-statistic definition, CCA recovering planted canonical correlations, RSA against a hand computation, Procrustes
 * distance 0 for rotated copies; then Kornblith et al.'s sanity test on CNNs and model stitching (least squares, then
 * the task-loss fine-tune) on MLPs trained on MNIST.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import type { Dataset } from '../../../src/data/datasets/dataset.js';
import { cnn, mlp } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { canonicalCorrelations, centreColumns, crossProduct } from '../../../src/methods/representations/cca.js';
import { layerSimilarity, minibatchCka, MEASURES, similarity, SIMILARITY_METHODS, unbiasedHsic, type Measure } from '../../../src/methods/representations/similarity.js';
import { stitch, stitchedModel } from '../../../src/methods/representations/stitching.js';

function gaussian(rand: () => number, n: number, p: number): Float64Array {
  return Float64Array.from({ length: n * p }, () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
}

function mul(a: ArrayLike<number>, b: ArrayLike<number>, r: number, k: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let l = 0; l < k; l++) for (let j = 0; j < c; j++) out[i * c + j] += a[i * k + l] * b[l * c + j];
  return out;
}

/** A random orthogonal p × p matrix (Gram–Schmidt on a Gaussian one). */
function orthogonal(rand: () => number, p: number): Float64Array {
  const q = gaussian(rand, p, p);
  for (let j = 0; j < p; j++) {
    for (let k = 0; k < j; k++) {
      let d = 0;
      for (let i = 0; i < p; i++) d += q[i * p + j] * q[i * p + k];
      for (let i = 0; i < p; i++) q[i * p + j] -= d * q[i * p + k];
    }
    let s = 0;
    for (let i = 0; i < p; i++) s += q[i * p + j] ** 2;
    for (let i = 0; i < p; i++) q[i * p + j] /= Math.sqrt(s);
  }
  return q;
}

const t32 = (d: ArrayLike<number>, n: number, p: number) => Tensor.float32(d, [n, p]);
const rand = mulberry32(7);
const [n, p] = [300, 16];
const xData = gaussian(rand, n, p);
// Y shares half of X's directions, plus noise: related but not identical.
const yData = mul(xData, gaussian(rand, p, p).map((v, i) => (i % p < 8 ? v : 0)), n, p, p).map((v, i) => v + 0.5 * gaussian(rand, 1, 1)[0] + 0 * i);
const X = t32(xData, n, p);
const Y = t32(yData, n, p);
const score = async (a: Tensor, b: Tensor, m: Measure = 'cka', form?: 'feature' | 'gram') => (await similarity(a, b, m, { permutations: 0, form })).value;

test('linear CKA is invariant to orthogonal maps and isotropic scaling, not to a general invertible map', async () => {
  const q = orthogonal(rand, p);
  const rotated = t32(mul(xData, q, n, p, p).map((v) => 3.7 * v), n, p);
  assert.ok(Math.abs((await score(X, rotated)) - 1) < 1e-4, 'CKA(X, 3.7·XQ) = 1');
  const base = await score(X, Y);
  assert.ok(Math.abs((await score(rotated, Y)) - base) < 1e-4, `CKA(3.7·XQ, Y) = CKA(X, Y) = ${base}`);
  // A diagonal stretch with condition number e⁴ ≈ 55 is invertible but changes CKA (CCA, by contrast, stays at 1).
  const stretch = new Float64Array(p * p).map((_, i) => (i % (p + 1) === 0 ? Math.exp((4 * Math.floor(i / p)) / (p - 1)) : 0));
  const stretched = t32(mul(xData, stretch, n, p, p), n, p);
  const self = await score(X, stretched);
  assert.ok(self < 0.8, `CKA(X, XA) = ${self} is well below 1`);
  assert.ok(Math.abs((await score(stretched, Y)) - base) > 0.03, 'CKA(XA, Y) differs from CKA(X, Y)');
  assert.ok(Math.abs((await score(X, stretched, 'cca')) - 1) < 1e-4, 'CCA(X, XA) = 1');
});

test('the feature-space and Gram forms of linear CKA agree', async () => {
  const f = await score(X, Y, 'cka', 'feature');
  const g = await score(X, Y, 'cka', 'gram');
  assert.ok(f > 0.2 && f < 0.95, `a non-trivial pair (${f})`);
  assert.ok(Math.abs(f - g) < 1e-5, `feature ${f} vs Gram ${g}`);
});

test('unbiased HSIC equals its U-statistic definition over distinct index tuples (Song et al. 2012)', () => {
  const m = 8;
  const r = mulberry32(3);
  const sym = () => {
    const a = gaussian(r, m, m);
    return a.map((_, ij) => a[ij] + a[(ij % m) * m + Math.floor(ij / m)]);
  };
  const k = sym();
  const l = sym();
  // E[k_ij l_ij] + E[k_ij l_qr] − 2 E[k_ij l_iq], each mean over pairwise-distinct indices.
  let [t1, c1, t2, c2, t3, c3] = [0, 0, 0, 0, 0, 0];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (j === i) continue;
      t1 += k[i * m + j] * l[i * m + j];
      c1++;
      for (let q = 0; q < m; q++) {
        if (q === i || q === j) continue;
        t3 += k[i * m + j] * l[i * m + q];
        c3++;
        for (let s = 0; s < m; s++) {
          if (s === i || s === j || s === q) continue;
          t2 += k[i * m + j] * l[q * m + s];
          c2++;
        }
      }
    }
  }
  const brute = t1 / c1 + t2 / c2 - (2 * t3) / c3;
  const fast = unbiasedHsic(k, l, m);
  assert.ok(Math.abs(fast - brute) < 1e-9 * Math.max(1, Math.abs(brute)), `fast ${fast} vs brute ${brute}`);
  assert.throws(() => unbiasedHsic(k, l, 3), /n ≥ 4/);
});

test('minibatch CKA over batches agrees with full-batch linear CKA', async () => {
  const batches = [0, 1, 2].map((b) => [t32(xData.subarray(b * 100 * p, (b + 1) * 100 * p), 100, p), t32(yData.subarray(b * 100 * p, (b + 1) * 100 * p), 100, p)] as const);
  const mb = await minibatchCka(batches);
  const full = await score(X, Y);
  assert.ok(Math.abs(mb.value - full) < 0.05, `minibatch ${mb.value} vs full ${full}`);
  assert.ok(mb.baseline.mean < 0.1 && mb.checks[0].passed, `shuffled within batches: ${mb.baseline.mean}`);
});

test('CCA recovers planted canonical correlations 0.9, 0.6, 0.3 (and 0 for the rest); SVCCA at 100% variance is CCA', async () => {
  const r = mulberry32(11);
  const m = 6000;
  const rhos = [0.9, 0.6, 0.3];
  const z = gaussian(r, m, 3);
  const e = gaussian(r, m, 3);
  const noise = gaussian(r, m, 4);
  const x = new Float64Array(m * 5);
  const y = new Float64Array(m * 5);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < 3; j++) {
      x[i * 5 + j] = z[i * 3 + j];
      y[i * 5 + j] = rhos[j] * z[i * 3 + j] + Math.sqrt(1 - rhos[j] ** 2) * e[i * 3 + j];
    }
    [x[i * 5 + 3], x[i * 5 + 4], y[i * 5 + 3], y[i * 5 + 4]] = [noise[i * 4], noise[i * 4 + 1], noise[i * 4 + 2], noise[i * 4 + 3]];
  }
  // Mix each side by a random invertible map: canonical correlations do not change.
  const xs = t32(mul(x, gaussian(r, 5, 5), m, 5, 5), m, 5);
  const ys = t32(mul(y, gaussian(r, 5, 5), m, 5, 5), m, 5);
  const [xc, yc] = [centreColumns(xs), centreColumns(ys)];
  const cc = canonicalCorrelations({ p: 5, q: 5, xx: await crossProduct(xc, xc), yy: await crossProduct(yc, yc), xy: await crossProduct(xc, yc) });
  const want = [0.9, 0.6, 0.3, 0, 0];
  cc.rho.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 0.04, `ρ${i + 1} = ${v}, planted ${want[i]}`));
  const cca = await similarity(xs, ys, 'cca', { permutations: 5 });
  assert.ok(Math.abs(cca.value - 0.36) < 0.03, `mean CCA ${cca.value} vs 0.36`);
  assert.ok(cca.checks[0].passed && cca.baseline.bound < 0.05, `baseline ${cca.baseline.bound}`);
  assert.ok(Math.abs((await similarity(xs, ys, 'svcca', { permutations: 0, variance: 1 })).value - cca.value) < 1e-6);
  // PWCCA weights the variates by how much of X they account for; it stays within [min ρ, max ρ].
  assert.ok(cc.pwcca >= cc.rho[4] - 1e-9 && cc.pwcca <= cc.rho[0] + 1e-9);
});

test('RSA equals a hand computation of RDMs (1 − Pearson) compared by Spearman', async () => {
  // Random values (no ties among RDM entries, so float32 rounding cannot reorder ranks).
  const r = mulberry32(5);
  const a = Array.from({ length: 7 }, () => Array.from({ length: 5 }, () => r()));
  const b = Array.from({ length: 7 }, () => Array.from({ length: 4 }, () => r()));
  const corr = (u: number[], v: number[]) => {
    const mu = u.reduce((s, t) => s + t, 0) / u.length;
    const mv = v.reduce((s, t) => s + t, 0) / v.length;
    const num = u.reduce((s, t, i) => s + (t - mu) * (v[i] - mv), 0);
    return num / Math.sqrt(u.reduce((s, t) => s + (t - mu) ** 2, 0) * v.reduce((s, t) => s + (t - mv) ** 2, 0));
  };
  const tri = (rows: number[][]) => rows.flatMap((u, i) => rows.slice(i + 1).map((v) => 1 - corr(u, v)));
  const rank = (u: number[]) => u.map((v) => u.filter((w) => w < v).length + (u.filter((w) => w === v).length + 1) / 2);
  const hand = corr(rank(tri(a)), rank(tri(b)));
  const got = await score(t32(a.flat(), 7, 5), t32(b.flat(), 7, 4), 'rsa');
  assert.ok(Math.abs(got - hand) < 1e-5, `rsa ${got} vs hand ${hand}`);
  // An affine map of the features per example leaves every RDM entry, hence RSA = 1.
  assert.ok(Math.abs((await score(t32(a.flat(), 7, 5), t32(a.flat().map((v) => 2 * v + 1), 7, 5), 'rsa')) - 1) < 1e-6);
});

test('Procrustes distance is 0 for a rotated, scaled copy and large for unrelated data', async () => {
  const rotated = t32(mul(xData, orthogonal(rand, p), n, p, p).map((v) => 5 * v), n, p);
  assert.ok((await score(X, rotated, 'procrustes')) < 1e-4);
  const unrelated = await similarity(X, t32(gaussian(rand, n, p), n, p), 'procrustes', { permutations: 10 });
  assert.ok(unrelated.value > 0.5, `${unrelated.value}`);
  assert.ok(Math.abs(unrelated.value - unrelated.baseline.mean) < 0.1, `unrelated data scores like shuffled rows: ${unrelated.value} vs ${unrelated.baseline.mean}`);
  const related = await similarity(X, Y, 'procrustes', { permutations: 10 });
  assert.ok(related.checks[0].passed && related.value < related.baseline.bound - 0.1, `related pair ${related.value} vs bound ${related.baseline.bound}`);
});

test('bad inputs fail with a message naming the problem', async () => {
  const bad = t32(xData.map((v, i) => (i === 5 ? NaN : v)), n, p);
  await assert.rejects(similarity(bad, Y, 'cka'), /X: value 5 .* NaN/);
  await assert.rejects(similarity(X, t32(yData.subarray(0, 10 * p), 10, p), 'cka'), /X has 300 rows and Y 10/);
  await assert.rejects(similarity(X, Y, 'nope' as Measure), /unknown similarity measure 'nope'/);
  await assert.rejects(similarity(X, Y, 'cka-rbf', { bandwidth: 0 }), /bandwidth must be > 0/);
  const wide = t32(new Float32Array(20 * 1100).map((_, i) => Math.sin(i)), 20, 1100);
  await assert.rejects(similarity(wide, wide, 'cca'), /1100 features is too many/);
  assert.deepEqual(Object.keys(SIMILARITY_METHODS).filter((k) => ['cka', 'svcca', 'pwcca', 'rsa', 'procrustes', 'model-stitching'].includes(k)).length, 6);
});

// Two MLPs trained from different seeds on MNIST.
let mnist: Dataset<'float32'>;
let models: Model[];
const SITES = ['fc1.relu', 'fc2.relu', 'fc3.relu', 'fc4.relu', 'logits'];
before(async () => {
  const train = (await loadMnist('train')).slice(0, 10000);
  mnist = (await loadMnist('test')).slice(0, 1200);
  models = [];
  for (const seed of [1, 2]) {
    const t = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [64, 64, 64, 64], classes: 10, seed }), { optimizer: { kind: 'adam', lr: 2e-3 } });
    await t.fit(train, { epochs: 3, batchSize: 64, seed });
    models.push(await Model.load(encodeModel(t.exportModel())));
  }
});

// Kornblith et al.'s sanity test on two small CNNs (3 conv blocks, 2 hidden dense layers) trained from seeds 1 and 2.
const CNN_SITES = ['c1.relu', 'c2.relu', 'c3.relu', 'fc1.relu', 'fc2.relu'];
async function trainCnns(): Promise<Model[]> {
  const train = (await loadMnist('train')).slice(0, 8000);
  const out: Model[] = [];
  for (const seed of [1, 2]) {
    const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [6, 12, 12], hidden: [48, 48], classes: 10, seed }), { optimizer: { kind: 'adam', lr: 2e-3 } });
    await t.fit(train, { epochs: 1, batchSize: 64, seed });
    out.push(await Model.load(encodeModel(t.exportModel())));
  }
  return out;
}

test("Kornblith et al.'s sanity test: each layer of one seed's CNN is most similar to the same layer of the other", async () => {
  const cnns = await trainCnns();
  const data = mnist.slice(0, 500);
  const found: Partial<Record<Measure, number>> = {};
  // The kernel measures take the conv maps whole (4704, 2352 and 588 features for 500 images: Gram matrices); the
  // CCA family and Procrustes need n well above p, so they get channel means (12 to 48 features).
  for (const measure of MEASURES) {
    const pooling = ['cka', 'cka-rbf', 'rsa'].includes(measure) ? 'flatten' : 'mean';
    const r = await layerSimilarity(cnns[0], cnns[1], data, { sitesA: CNN_SITES, measure, permutations: 0, limit: 500, pooling });
    found[measure] = r.checks.find((c) => c.name === 'same-layer identification')!.value as number;
  }
  console.log('same-layer identification', found);
  // Kornblith et al. 2019 (Table 2, 10-layer CNNs on CIFAR-10, logits excluded): linear and RBF CKA 99%, CCA 1–11%.
  // Measured here: linear CKA, RBF CKA and RSA 1.0 (5 of 5), Procrustes 1.0, CCA and PWCCA 0.2, SVCCA 0.4. With
  // 4-hidden-layer MLPs the same count gave CKA 0.75 and CCA 0.25 (deep layers of an MLP on MNIST all carry the class
  // structure), and with the logits included CCA matched every layer to them (mean ρ over their 10 dimensions).
  assert.ok(found.cka! >= 0.8, `linear CKA identifies ${found.cka}`);
  assert.ok(found['cka-rbf']! >= 0.8, `RBF CKA identifies ${found['cka-rbf']}`);
  assert.ok(found.cca! <= 0.4 && found.pwcca! <= 0.4, `CCA ${found.cca} and PWCCA ${found.pwcca} identify few`);
  assert.ok(found.cka! - Math.max(found.cca!, found.svcca!, found.pwcca!) >= 0.4, 'CKA identifies far more layers than the CCA family');
  // Within one model: CKA matrix symmetric with 1 on the diagonal.
  const seen: string[] = [];
  const onProgress = (p: { stage: string; done: number; total: number }) => void seen.push(`${p.stage} ${p.done}/${p.total}`);
  const self = await layerSimilarity(models[0], models[0], mnist.slice(0, 300), { sitesA: SITES.slice(0, 3), permutations: 2, onProgress, batchSize: 150 });
  // Progress: one capture of the shared model (two batches of 150), then the 9 layer pairs in order.
  assert.deepEqual(seen, ["model A's activations 150/300", "model A's activations 300/300", ...Array.from({ length: 9 }, (_, i) => `cka of layer pairs ${i + 1}/9`)]);
  for (let i = 0; i < 3; i++) {
    assert.ok(Math.abs(self.values[i][i] - 1) < 1e-5);
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(self.values[i][j] - self.values[j][i]) < 1e-5);
  }
  assert.equal(self.checks[0].value, 1, 'every layer pair of a model beats its shuffled baseline');
});

test('stitching: itself loses nothing; across seeds little; the task-loss fine-tune closes the least-squares gap', async () => {
  const data = mnist;
  const held = { test: data.slice(600), testLimit: 600 };
  const same = await stitch(models[0], 'fc2.relu', models[0], 'fc2.relu', data.slice(0, 600), { ...held, fineTune: false });
  assert.ok(same.r2 > 0.999, `self-stitch R² ${same.r2}`);
  assert.ok(Math.abs(same.drop) <= 0.005 && same.drop === same.dropLeastSquares && Number.isNaN(same.accuracy.tuned), `self-stitch drop ${same.drop}`);
  const cross = await stitch(models[0], 'fc2.relu', models[1], 'fc2.relu', data.slice(0, 600), held);
  assert.ok(cross.accuracy.own > 0.8, `B alone ${cross.accuracy.own}`);
  assert.ok(cross.dropLeastSquares < 0.1 && cross.drop < 0.1, `cross-seed drop ${cross.dropLeastSquares} (least squares), ${cross.drop} (fine-tuned)`);
  assert.ok(cross.accuracy.shuffled < 0.3 && cross.checks[1].passed, `shuffled-pairs stitch ${cross.accuracy.shuffled}`);
  // Across depths (A's first layer into B's third) least squares loses more; training the stitch on B's loss, both
  // models frozen (Bansal et al. 2021), wins it back. Measured: 0.872 → 0.895 with B alone at 0.898.
  const deep = await stitch(models[0], 'fc1.relu', models[1], 'fc3.relu', data.slice(0, 600), { ...held, fineTune: { epochs: 3 } });
  console.log('stitch', { same: same.accuracy, cross: cross.accuracy, deep: deep.accuracy, r2: cross.r2 });
  assert.ok(deep.dropLeastSquares > 0.01, `least-squares gap ${deep.dropLeastSquares}`);
  assert.ok(deep.accuracy.tuned >= deep.accuracy.stitched && deep.checks.find((c) => c.name === 'task-loss fine-tune')!.passed, `fine-tune ${deep.accuracy.stitched} → ${deep.accuracy.tuned}`);
  assert.ok(deep.drop <= 0.5 * deep.dropLeastSquares, `the fine-tune closes at least half the gap: ${deep.dropLeastSquares} → ${deep.drop}`);
  // The trained stitch is the one returned, and feeding it through stitchedModel reproduces the tuned accuracy.
  const tail = stitchedModel(models[1], 'fc3.relu', 'dense', [64], { W: deep.weight, B: deep.bias });
  const tailModel = await Model.load(encodeModel(tail.model));
  const test = data.slice(600);
  const acts = (await models[0].run({ x: test.gather(Array.from({ length: 600 }, (_, i) => i)).x }, { capture: ['fc1.relu'] })).captures['fc1.relu'];
  const logits = (await tailModel.run({ [tailModel.inputs[0].name]: acts })).outputs.logits.data as Float32Array;
  let hits = 0;
  for (let i = 0; i < 600; i++) {
    const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === (test.labels as ArrayLike<number>)[i]) hits++;
  }
  assert.equal(hits / 600, deep.accuracy.tuned, 'the stitched model agrees with the set-intervention evaluation');
  // A 1×1-conv stitch of a conv net to itself reproduces its activation.
  const conv = await Model.load(encodeModel(cnn({ input: [1, 28, 28], channels: [4, 6], classes: 10, seed: 3 })));
  const c = await stitch(conv, 'c1.relu', conv, 'c1.relu', data.slice(0, 60), { test: data.slice(60), testLimit: 60, fineTune: false });
  assert.equal(c.kind, 'conv1x1');
  assert.ok(c.r2 > 0.999 && Math.abs(c.drop) <= 1 / 60, `conv self-stitch R² ${c.r2}, drop ${c.drop}`);
  // Graph surgery: an identity 1×1 conv in front of the layers after 'c1.relu' gives the network's own logits.
  const eye = Tensor.float32(Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)), [4, 4, 1, 1]);
  const convTail = await Model.load(encodeModel(stitchedModel(conv, 'c1.relu', 'conv1x1', [4, 28, 28], { W: eye, B: Tensor.float32(new Float32Array(4), [4]) }).model));
  const x = data.slice(0, 8).gather([0, 1, 2, 3, 4, 5, 6, 7]).x;
  const full = await conv.run({ x }, { capture: ['c1.relu'] });
  const viaTail = (await convTail.run({ [convTail.inputs[0].name]: full.captures['c1.relu'] })).outputs.logits.data as Float32Array;
  (full.outputs.logits.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - viaTail[i]) < 1e-5, `logit ${i}: ${v} vs ${viaTail[i]}`));
  await assert.rejects(stitch(conv, 'c1.relu', models[0], 'fc1.relu', data.slice(0, 20)), /cannot be joined/);
  await assert.rejects(stitch(models[0], 'fc1.relu', models[1], 'fc3.relu', data.slice(0, 20), { fineTune: { epochs: 0 } }), /fineTune.epochs must be a positive integer/);
});
