/**
 * β-VAE on the dSprites-like factor grid: the KL and reconstruction terms of the step graph against their closed forms
 * on the host for one batch (same weights, same ε); then β = 4 against the plain VAE (β = 1) on two seeds — the
 * reconstruction/KL trade-off, MIG and DCI of the latent means against the known factors — and latent traversals.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { decodePng } from '../../../src/data/png.js';
import { factorDataset } from '../../../src/data/datasets/factors.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { betaVae, compareBetaVae, EPSILON_INPUT, klPerDimension, latentTraversal, reconstructionLoss, VAE_METHODS, type VaeComparison } from '../../../src/methods/active/vae.js';

const data = factorDataset();
const settings = { latent: 6, hidden: 128, epochs: 3, batchSize: 64, lr: 3e-3 } as const;
let runs: Promise<VaeComparison[]> | undefined;
const compared = () => (runs ??= (async () => [await compareBetaVae(data, { ...settings, beta: 4, seed: 1 }), await compareBetaVae(data, { ...settings, beta: 4, seed: 2 })])());
const f3 = (v: number) => v.toFixed(3);
const line = (c: VaeComparison) =>
  `β=4 vs β=1: recon ${f3(c.regularized.reconstruction)} vs ${f3(c.twin.reconstruction)}; KL ${f3(c.regularized.kl)} vs ${f3(c.twin.kl)}; MIG ${f3(c.regularized.mig.score)} vs ${f3(c.twin.mig.score)}; DCI D ${f3(c.regularized.dci.disentanglement)} vs ${f3(c.twin.dci.disentanglement)}, C ${f3(c.regularized.dci.completeness)} vs ${f3(c.twin.dci.completeness)}, I ${f3(c.regularized.dci.informativeness)} vs ${f3(c.twin.dci.informativeness)}`;

async function stepAgainstHost(likelihood: 'bernoulli' | 'gaussian', beta: number) {
  const vae = betaVae([1, 28, 28], 5, beta, { hidden: 32, seed: 3, likelihood });
  const trainer = await Trainer.create(vae.model, { optimizer: { kind: 'adam', lr: 1e-3 }, head: 'none', terms: vae.terms });
  const batch = data.gather(Int32Array.from([0, 17, 301, 999, 2048, 4000, 4607, 1234]));
  const extra = vae.extra({ ...batch, indices: new Int32Array(8) });
  const eps = extra[EPSILON_INPUT].data as Float32Array;
  // Host side, with the weights before the step.
  const trained = trainer.exportModel();
  const codes = (await (await Model.load(encodeModel(trained))).run({ x: batch.x })).outputs.codes.data as Float32Array; // [8, 10]
  const z = new Float32Array(8 * 5);
  let kl = 0;
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 5; j++) {
      const [mu, lv] = [codes[i * 10 + j], codes[i * 10 + 5 + j]];
      kl += klPerDimension(mu, lv) / 8;
      z[i * 5 + j] = mu + Math.exp(lv / 2) * eps[i * 5 + j];
    }
  }
  const out = (await (await Model.load(encodeModel(vae.decoderModel(trained)))).run({ z: Tensor.float32(z, [8, 5]) })).outputs.recon.data as Float32Array;
  let recon = 0;
  for (let i = 0; i < 8; i++) recon += reconstructionLoss(batch.x.data.subarray(i * 784, (i + 1) * 784) as Float32Array, out.subarray(i * 784, (i + 1) * 784), likelihood) / 8;
  const r = await trainer.step(batch, extra);
  assert.ok(kl > 0 && Math.abs(r.terms.kl - beta * kl) < 1e-4 * Math.max(1, beta * kl), `${likelihood}: graph β·KL ${r.terms.kl} vs host ${beta * kl}`);
  assert.ok(Math.abs(r.terms.reconstruction - recon) < 1e-3 * recon, `${likelihood}: graph reconstruction ${r.terms.reconstruction} vs host ${recon}`);
  assert.ok(Math.abs(r.objective - (recon + beta * kl)) < 1e-3 * r.objective);
  await trainer.dispose();
  return { vae, batch, eps };
}

test('the step graph computes KL and reconstruction as their closed forms on the host, for the same weights and ε', async () => {
  const beta = 4;
  await stepAgainstHost('gaussian', 2.5);
  const { vae, batch, eps } = await stepAgainstHost('bernoulli', beta);
  // The closed form itself: KL(N(μ, σ²) ‖ N(0, 1)) by numerical integration at one point.
  const [mu, lv] = [0.7, -0.4];
  const s = Math.exp(lv / 2);
  let integral = 0;
  for (let t = -12; t <= 12; t += 1e-3) {
    const q = Math.exp(-0.5 * ((t - mu) / s) ** 2) / (s * Math.sqrt(2 * Math.PI));
    if (q > 0) integral += q * (Math.log(q) + 0.5 * t * t + 0.5 * Math.log(2 * Math.PI)) * 1e-3;
  }
  assert.ok(Math.abs(integral - klPerDimension(mu, lv)) < 1e-5, `KL by integration ${integral} vs closed form ${klPerDimension(mu, lv)}`);
  // ε is a seeded stream: the same seed replays it, and it is standard normal.
  const again = betaVae([1, 28, 28], 5, beta, { hidden: 32, seed: 3 }).extra({ ...batch, indices: new Int32Array(8) });
  assert.deepEqual(Array.from(again[EPSILON_INPUT].data as Float32Array), Array.from(eps));
  const many = Array.from({ length: 50 }, () => Array.from(vae.extra({ ...batch, indices: new Int32Array(8) })[EPSILON_INPUT].data as Float32Array)).flat();
  const m = many.reduce((a, b) => a + b, 0) / many.length;
  const v = many.reduce((a, b) => a + (b - m) ** 2, 0) / many.length;
  assert.ok(Math.abs(m) < 0.1 && Math.abs(v - 1) < 0.1, `ε mean ${m}, variance ${v}`);
});

test('β = 4 against the plain VAE on two seeds: less KL for more reconstruction loss; MIG and DCI as measured', async () => {
  const all = await compared();
  for (const c of all) {
    const msg = line(c);
    console.log(msg);
    // The trade-off β > 1 buys: KL at most 70% of the plain VAE's, reconstruction loss higher.
    assert.ok(c.regularized.kl < 0.7 * c.twin.kl, msg);
    assert.ok(c.regularized.reconstruction > c.twin.reconstruction, msg);
    assert.equal(c.checks.find((k) => k.name === 'KL saved')!.passed, true);
    // Both learned the data: reconstruction far below the untrained loss (784·log 2 ≈ 543 nats).
    assert.ok(c.twin.reconstruction < 100 && c.regularized.reconstruction < 100, msg);
    // The checks carry the measured gaps.
    const gain = c.checks.find((k) => k.name === 'MIG gain')!;
    assert.ok(Math.abs(Number(gain.value) - (c.regularized.mig.score - c.twin.mig.score)) < 1e-12);
    assert.equal(gain.passed, c.regularized.mig.score > c.twin.mig.score);
    // Higgins et al.'s claim (β > 1 disentangles better) does not hold robustly at this scale (4608 images, 3
    // epochs, ~220 steps; the paper trains for hundreds of thousands): MIG rises on one seed and falls on the other,
    // and neither model is disentangled (MIG well below 0.15 for both). What holds on both seeds after 3 epochs is
    // the opposite of the claim for DCI completeness: β = 4 spreads each factor over more latents (lower by > 0.03).
    // (Measured outside the suite after 12 epochs: DCI disentanglement higher for β = 4 on both seeds, 0.465 vs
    // 0.305 and 0.294 vs 0.268; MIG still seed-dependent, 0.082 vs 0.018 and 0.035 vs 0.056.)
    assert.ok(c.regularized.mig.score < 0.15 && c.twin.mig.score < 0.15, msg);
    assert.ok(c.regularized.dci.completeness < c.twin.dci.completeness - 0.03, msg);
  }
  const migGains = all.map((c) => c.regularized.mig.score - c.twin.mig.score);
  assert.ok(Math.min(...migGains) < 0 && Math.max(...migGains) > 0, `MIG gains ${migGains.map(f3).join(', ')}: the sign depends on the seed`);
});

test('latent traversals: the latent dimensions carrying more KL move the decoded image more', async () => {
  const [c] = await compared();
  const base = c.regularized.means.subarray(0, 6);
  const t = await latentTraversal(c.regularized, base, [1, 28, 28], { range: 3, steps: 7 });
  assert.deepEqual(t.images.shape, [42, 1, 28, 28]);
  const png = decodePng(t.png);
  assert.deepEqual(png.shape, [1, 1, 6 * 57 + 1, 7 * 57 + 1]);
  const kl = c.regularized.klPerDimension;
  console.log(`per-dimension KL ${kl.map(f3).join(' ')}; traversal change ${t.change.map(f3).join(' ')}`);
  const top = kl.indexOf(Math.max(...kl));
  const bottom = kl.indexOf(Math.min(...kl));
  assert.ok(t.change[top] > t.change[bottom], `most informative dimension ${top} changes ${t.change[top]}, least ${bottom} ${t.change[bottom]}`);
  await assert.rejects(latentTraversal(c.regularized, [0, 0], [1, 28, 28]), /base code has 2 values/);
});

test('β-VAE: bad arguments are named, and the registry entry is the comparison', async () => {
  assert.throws(() => betaVae([1, 28, 28], 0, 4), /latent size/);
  assert.throws(() => betaVae([1, 28, 28], 4, -1), /β must be/);
  assert.throws(() => betaVae([1, 0, 28], 4, 1), /input shape/);
  assert.throws(() => betaVae([784], 4, 1, { likelihood: 'poisson' as never }), /likelihood/);
  await assert.rejects(compareBetaVae(data, { ...settings, beta: 1, seed: 1 }), /β must exceed 1/);
  const [c] = await compared();
  assert.throws(() => betaVae([1, 28, 28], 6, 4, { hidden: 64 }).decoderModel(c.regularized.proto), /weight 'dec.fc1.weight' has shape \[128, 6\]/);
  assert.equal(VAE_METHODS['beta-vae'].info.taxonomy.rauker?.section, 'V: disentanglement');
});
