/**
 * `glassbox circuit` end to end on the model of `glassbox train induction-attn`: the circuit it writes is the induction
 * circuit (a previous-token head feeding an induction head's keys), faithful and small, its JSON agrees with the
 * library, and bad requests fail with a clear message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { glassboxWithin, ROOT } from './spawn.js';
import { Model } from '../../src/index.js';
import { nodesFromSites } from '../../src/model/builders/attn-only.js';

const glassbox = glassboxWithin(300_000);

let dir: string;
let modelPath: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-circuit-'));
  const r = glassbox('train', 'induction-attn', '--out', dir);
  assert.equal(r.code, 0, r.stderr);
  modelPath = join(dir, 'induction-attn.onnx');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface CircuitJson {
  circuit: { nodes: string[]; edges: { sender: string; receiver: string; site: string; kept: boolean }[]; kept: number; total: number; faithfulness: number; randomFaithfulness: number };
  headPatching: { head: string; effect: number }[];
  pathPatching: { sender: string; receiver: string; effect: number }[];
}

test('circuit writes the induction circuit: a previous-token head feeding an induction head, faithful and small', async () => {
  const out = join(dir, 'c');
  const r = glassbox('circuit', modelPath, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /check faithfulness: passed/);
  const json = JSON.parse(await readFile(join(out, 'circuit.json'), 'utf8')) as CircuitJson;
  const c = json.circuit;
  assert.ok(c.faithfulness >= 0.8, `faithfulness ${c.faithfulness}`);
  assert.ok(c.randomFaithfulness < 0.5, `random circuits ${c.randomFaithfulness}`);
  assert.ok(c.kept / c.total < 0.25, `${c.kept} of ${c.total} edges kept`);
  // One layer-1 head writes to the logits (the induction head); a layer-0 head feeds its key input.
  const toLogits = c.edges.filter((e) => e.kept && e.receiver === 'logits').map((e) => e.sender);
  assert.equal(toLogits.length, 1, `heads into the logits: ${toLogits.join(' ')}`);
  const induction = toLogits[0];
  assert.match(induction, /^1\.\d$/);
  const feeders = c.edges.filter((e) => e.kept && e.receiver === induction && /^0\.\d$/.test(e.sender) && e.site.endsWith('k_in.identity'));
  assert.equal(feeders.length, 1, 'one layer-0 head feeds the induction head\'s keys');
  // Head patching and path patching agree with the circuit: those two heads carry the effect.
  const effect = (h: string) => json.headPatching.find((x) => x.head === h)!.effect;
  for (const h of json.headPatching) if (h.head !== induction && h.head !== feeders[0].sender) assert.ok(Math.abs(h.effect) < 0.1, `head ${h.head} effect ${h.effect}`);
  assert.ok(effect(induction) > 0.5 && effect(feeders[0].sender) > 0.3);
  assert.ok(json.pathPatching.some((p) => p.sender === feeders[0].sender && p.effect > 0.3));
  const svg = await readFile(join(out, 'circuit.svg'), 'utf8');
  assert.match(svg, new RegExp(`head ${induction.replace('.', '\\.')}`));

  // The attention pattern of the feeding head looks one token back: the previous-token head.
  const model = await Model.load(modelPath);
  try {
    const tokens = (await import('../../src/data/datasets/induction.js')).inductionDataset({ size: 16, half: 10, vocab: 32, seed: 9 }).gather(Array.from({ length: 16 }, (_, i) => i)).x;
    const site = `blocks.0.head.${feeders[0].sender.split('.')[1]}.pattern.softmax`;
    const p = (await model.run({ tokens }, { capture: [site] })).captures[site];
    const T = p.shape[p.rank - 1];
    let prev = 0;
    for (let b = 0; b < 16; b++) for (let t = 1; t < T; t++) prev += Number(p.data[(b * T + t) * T + t - 1]);
    assert.ok(prev / (16 * (T - 1)) > 0.5, `attention on t − 1: ${prev / (16 * (T - 1))}`);
  } finally {
    await model.dispose();
  }
});

test('circuit refuses models without per-head sites, half-given token files and a missing --out', () => {
  const cases: [string[], number, RegExp][] = [
    [['circuit', join(ROOT, 'fixtures/torch/gpt.onnx'), '--out', dir], 1, /needs an attention-only model with per-head sites/],
    [['circuit', modelPath, '--clean', 'a.npy', '--out', dir], 2, /token files need --clean, --corrupted and --positions together/],
    [['circuit', modelPath], 2, /circuit needs --out DIR/],
    [['circuit', modelPath, '--threshold=-1', '--out', dir], 2, /bad --threshold '-1'/],
  ];
  for (const [args, code, message] of cases) {
    const r = glassbox(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  assert.throws(() => nodesFromSites(['x', 'logits']), /per-head sites/);
});
