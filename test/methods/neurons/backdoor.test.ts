/**
 * Ground truth for the hidden-semantics methods: a CNN trained on MNIST with a planted backdoor (BadNets: 10% of the
 * training images carry a 4×4 checkerboard and are labelled 7). Some units must detect the patch; dissection with the
 * trigger as a concept must name them, and ablating the units it names must remove the backdoor (triggered images get
 * their true labels back) far more than ablating as many random units, at little cost on clean images.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import '../../../src/index.js';
import { triggeredCopy, triggerMask, withTrigger, type Poisoned } from '../../../src/data/datasets/backdoor.js';
import { classRegionConcepts, packMask, withConcepts } from '../../../src/data/datasets/concepts.js';
import type { Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { ablateUnits } from '../../../src/methods/neurons/ablation.js';
import { dissect } from '../../../src/methods/neurons/dissection.js';
import { cnn } from '../../../src/model/builders/index.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';

let model: Model;
let poisoned: Poisoned;
let clean: Dataset<'float32'>;
let triggered: Dataset<'float32'>;

async function accuracy(m: Model, ds: Dataset<'float32'>, skipLabel?: number): Promise<number> {
  let ok = 0;
  let n = 0;
  for (const b of ds.batches(500)) {
    const logits = (await m.run({ x: b.x })).outputs.logits;
    for (let i = 0; i < b.x.shape[0]; i++) {
      const label = Number(b.y.data[i]);
      if (label === skipLabel) continue;
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits.data[i * 10 + c] > logits.data[i * 10 + best]) best = c;
      n++;
      if (best === label) ok++;
    }
  }
  return ok / n;
}

before(async () => {
  const [train, test] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  poisoned = withTrigger(train.slice(0, 10000), { target: 7, fraction: 0.1, seed: 1 });
  const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(poisoned, { epochs: 2, batchSize: 64, seed: 1 });
  model = await Model.load(encodeModel(t.exportModel()));
  clean = test.slice(0, 1000);
  triggered = triggeredCopy(clean, poisoned.trigger);
});

test('backdoor: the trained CNN classifies clean digits and obeys the trigger', async () => {
  const accClean = await accuracy(model, clean);
  // Attack success: triggered images of classes other than 7 predicted as 7 = 1 − accuracy with true labels there.
  const accTriggered = await accuracy(model, triggered, 7);
  assert.ok(accClean > 0.85, `clean accuracy ${accClean}`);
  assert.ok(accTriggered < 0.1, `triggered images keep their labels ${accTriggered} of the time: the backdoor was not learnt`);
});

test('backdoor: dissection names trigger detectors, and ablation names the same units', async () => {
  // Concepts: the digits' classes and regions, plus the trigger patch on the images that carry it (half of them).
  const half = withTrigger(clean, { target: 7, fraction: 0.5, seed: 2, trigger: poisoned.trigger });
  const base = classRegionConcepts(half);
  const patch = packMask(triggerMask(poisoned.trigger, 28, 28));
  const empty = new Uint8Array(patch.length);
  const concepts = withConcepts(half, [...base.conceptNames, 'trigger'], (i) => [...base.masks(i), half.poisoned[i] ? patch : empty]);
  const d = await dissect(model, 'c2.relu', concepts, { seed: 1 });
  const detectors = d.units.filter((u) => u.label === 'trigger' && u.beatsRandom).map((u) => u.unit);
  assert.ok(detectors.length >= 1, `no unit labelled 'trigger' above the random baseline: ${d.units.map((u) => `${u.unit}:${u.concept}@${u.iou.toFixed(3)}`).join(' ')}`);
  assert.ok(detectors.length <= 8, `half the layer labelled trigger (${detectors.join(',')}): the label does not single units out`);

  // The same number of other units, 16 seeded draws.
  const rand = mulberry32(3);
  const others = d.units.map((u) => u.unit).filter((u) => !detectors.includes(u));
  const randomGroups = Array.from({ length: 16 }, () => {
    const pool = [...others];
    return Array.from({ length: detectors.length }, () => pool.splice(Math.floor(rand() * pool.length), 1)[0]);
  });
  const onTriggered = await ablateUnits(model, triggered, { site: 'c2.relu', groups: [detectors, ...randomGroups], replace: 'zero', randomGroups: 0 });
  const onClean = await ablateUnits(model, clean, { site: 'c2.relu', groups: [detectors], replace: 'zero', randomGroups: 0 });
  const [g, ...r] = onTriggered.groups;
  const randomMean = r.reduce((s, x) => s + x.deltaLoss, 0) / r.length;
  // The backdoor is redundant (BadNets survive single-unit pruning, Liu et al. 2018), so accuracy barely moves; the loss
  // of triggered images under their true labels shows it: ablating the detectors lowers it far more than random units.
  assert.ok(g.deltaLoss < -1, `ablating units ${detectors.join(',')} changed the triggered loss by only ${g.deltaLoss}`);
  assert.ok(g.deltaLoss < 2 * randomMean - 0.5, `detectors Δloss ${g.deltaLoss} vs random units ${randomMean}`);
  assert.ok(Math.abs(onClean.groups[0].deltaLoss) < 0.1, `ablating the detectors changes the clean loss by ${onClean.groups[0].deltaLoss}`);

  // And ablation names them without dissection: the units whose single ablation lowers the triggered loss most.
  const single = await ablateUnits(model, triggered, { site: 'c2.relu', replace: 'zero', randomGroups: 0 });
  const ranked = single.groups.map((x, u) => ({ u, d: x.deltaLoss })).sort((p, q) => p.d - q.d);
  const top = ranked.slice(0, Math.max(4, detectors.length)).map((x) => x.u);
  assert.ok(detectors.some((u) => top.includes(u)), `ablation's strongest units ${top.join(',')} miss dissection's detectors ${detectors.join(',')}`);
  console.log(`backdoor: dissection ${detectors.join(',')}; group Δloss ${g.deltaLoss.toFixed(3)} vs random ${randomMean.toFixed(3)}; clean Δloss ${onClean.groups[0].deltaLoss.toFixed(4)}; ablation's top units ${top.join(',')}`);
});

test('withTrigger stamps the patch and relabels exactly the poisoned examples; triggeredCopy keeps labels', () => {
  const base = clean.slice(0, 200);
  const p = withTrigger(base, { target: 7, fraction: 0.25, seed: 5 });
  const n = p.poisoned.reduce((s, v) => s + v, 0);
  assert.ok(n > 30 && n < 70, `${n} of 200 poisoned at fraction 0.25`);
  const { x, y } = p.gather(Array.from({ length: 200 }, (_, i) => i));
  const orig = base.gather(Array.from({ length: 200 }, (_, i) => i));
  const t = p.trigger;
  assert.deepEqual([t.row, t.col, t.size], [22, 22, 4]);
  for (let i = 0; i < 200; i++) {
    assert.equal(Number(y.data[i]), p.poisoned[i] ? 7 : Number(orig.y.data[i]));
    for (let r = 0; r < 28; r++) {
      for (let c = 0; c < 28; c++) {
        const inPatch = r >= t.row && r < t.row + t.size && c >= t.col && c < t.col + t.size;
        const want = p.poisoned[i] && inPatch ? t.pattern[(r - t.row) * t.size + c - t.col] : orig.x.data[i * 784 + r * 28 + c];
        if (x.data[i * 784 + r * 28 + c] !== want) assert.fail(`example ${i} pixel (${r}, ${c})`);
      }
    }
  }
  const all = triggeredCopy(base, t).gather([0, 1]);
  assert.deepEqual(Array.from(all.y.data, Number), Array.from(orig.y.data.slice(0, 2), Number));
  assert.equal(all.x.data[22 * 28 + 22], 1);
  assert.throws(() => withTrigger(base, { target: 12 }), /target class 12/);
  assert.throws(() => withTrigger(base, { target: 1, trigger: { row: 26 } }), /does not fit/);
});
