/**
 * `glassbox neurons` end to end on a backdoored MNIST CNN trained by `glassbox train mnist-backdoor`: the page and
 * JSON hold what the library computes (top examples re-run to the recorded activations, the top-example pictures are
 * those images), dissection names the trigger, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin } from './spawn.js';
import { Model, readPng } from '../../src/index.js';
import { withTrigger } from '../../src/data/datasets/backdoor.js';
import { loadMnist } from '../../src/data/datasets/images.js';
import { gridOrigin } from '../../src/report/grid.js';
import { BACKDOOR } from '../../src/cli/recipes.js';

const glassbox = glassboxWithin(300_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-neurons-'));
  const r = glassbox('train', 'mnist-backdoor', '--limit', '12000', '--epochs', '1', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'mnist-backdoor.onnx');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface UnitJson {
  unit: number;
  top: { index: number; value: number; coords: number[] }[];
  dissection: { label: string | null; iou: number; beatsRandom: boolean | null };
  ablation: { deltaAccuracy: number; deltaLoss: number };
}

test('neurons writes a page per site whose top examples, pictures and labels are the library\'s', async () => {
  const out = join(dir, 'page');
  const r = glassbox('neurons', modelPath, '--data', 'mnist-triggered', '--site', 'c2.relu', '--limit', '400', '--units', '3', '--steps', '16', '--k', '4', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /c2\.relu: 32 units, \d+ labelled by dissection/);
  const html = await readFile(join(out, 'c2.relu.html'), 'utf8');
  for (let u = 0; u < 3; u++) assert.match(html, new RegExp(`<h3>unit ${u}</h3>`));
  const json = JSON.parse(await readFile(join(out, 'c2.relu.json'), 'utf8')) as { units: UnitJson[]; checks: { name: string; passed?: boolean }[] };
  assert.equal(json.units.length, 32);

  // The recorded top example of a unit, re-run: its activation map's max is the recorded value, at the recorded place.
  const data = withTrigger((await loadMnist('test')).slice(0, 400), { ...BACKDOOR, fraction: 0.5 });
  const model = await Model.load(modelPath);
  try {
    for (const u of [0, 1, 2]) {
      const best = json.units[u].top[0];
      const cap = (await model.run({ x: data.gather([best.index]).x }, { capture: ['c2.relu'] })).captures['c2.relu'];
      const [, , h, w] = cap.shape;
      const plane = (cap.data as Float32Array).subarray(u * h * w, (u + 1) * h * w);
      const max = Math.max(...plane);
      assert.ok(Math.abs(max - best.value) <= 1e-5 * Math.max(1, Math.abs(max)), `unit ${u}: recorded ${best.value}, re-run ${max}`);
      if (max > 0) assert.equal(plane[best.coords[0] * w + best.coords[1]], max);
    }
    // The top-examples picture holds those images (grid of 4, scale 2, pad 1): compare a pixel of each.
    const png = await readPng(join(out, 'c2.relu', 'unit-0-top.png'));
    const top = json.units[0].top;
    const x = data.gather(top.map((t) => t.index)).x;
    for (let i = 0; i < top.length; i++) {
      const [oy, ox] = gridOrigin(i, 28, 28, { columns: 4, pad: 1, scale: 2, count: top.length });
      for (const [py, px] of [[14, 14], [25, 25], [5, 20]]) {
        const want = x.data[i * 784 + py * 28 + px];
        const got = png.data[(oy + 2 * py) * png.shape[png.shape.length - 1] + ox + 2 * px];
        assert.ok(Math.abs(got - want) <= 1 / 255 + 1e-6, `image ${i} pixel (${py}, ${px}): ${got} vs ${want}`);
      }
    }
  } finally {
    await model.dispose();
  }
  // The backdoor is in the data as a concept: some unit is labelled with it, above the random baseline.
  assert.ok(json.units.some((u) => u.dissection.label === 'trigger' && u.dissection.beatsRandom), 'no unit labelled trigger');
  assert.ok(json.checks.some((c) => c.name === 'no-op ablation' && c.passed === true));
});

test('neurons refuses unknown data, unknown sites and a missing --out with a clear message', () => {
  const cases: [string[], number, RegExp][] = [
    [['neurons', modelPath, '--data', 'cifar', '--site', 'c2.relu', '--out', dir], 2, /unknown --data 'cifar' \(known: mnist, fashion-mnist, mnist-triggered, concepts\)/],
    [['neurons', modelPath, '--site', 'c2.rel', '--out', dir], 1, /c2\.rel.*c2\.relu/],
    [['neurons', modelPath, '--site', 'c2.relu'], 2, /neurons needs --out DIR/],
    [['neurons', modelPath, '--site', 'c2.relu', '--k', '0', '--out', dir], 2, /bad --k '0'/],
  ];
  for (const [args, code, message] of cases) {
    const r = glassbox(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
