/**
 * `glassbox circuit MODEL --out DIR`: the circuit behind a transformer's behaviour on clean vs corrupted prompts.
 * Activation patching of every head, path patching between the heads that matter, and ACDC-style edge pruning
 * (Conmy et al. 2023) over the residual graph of an attention-only model (`glassbox train induction-attn`), with the
 * circuit's faithfulness against random circuits of its size. Writes DIR/circuit.json and DIR/circuit.svg.
 *
 * Prompts: the induction task by default (a random segment repeated after a random prefix, vs the same second copy
 * after other tokens), or token files (--clean, --corrupted: .npy int64 [N, T]) with the target positions to score.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Model, readNpy, Tensor } from '../index.js';
import { inductionDataset } from '../data/datasets/induction.js';
import { nodesFromSites } from '../model/builders/attn-only.js';
import { discoverCircuit } from '../methods/subnetworks/circuit.js';
import { pathPatching } from '../methods/subnetworks/heads.js';
import { activationPatching, tokenLogProb } from '../methods/subnetworks/patching.js';
import { graphSvg } from '../report/graph-svg.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { toJson } from './format.js';

function number(flag: string, text: string | undefined, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isFinite(v) || v < 0 || (integer && (!Number.isInteger(v) || v < 1))) {
    throw new UsageError(`bad ${flag} '${text}': expected a ${integer ? 'positive integer' : 'non-negative number'}`, 'circuit');
  }
  return v;
}

/** Clean and corrupted token batches and the positions whose next-token log-probability is the metric. */
async function prompts(model: Model, values: { clean?: string; corrupted?: string; positions?: string; prompts?: string; seed?: string }) {
  if (values.clean || values.corrupted) {
    if (!values.clean || !values.corrupted || !values.positions) throw new UsageError('token files need --clean, --corrupted and --positions together', 'circuit');
    const [clean, corrupted] = await Promise.all([readNpy(values.clean), readNpy(values.corrupted)]);
    if (clean.dtype !== 'int64' || clean.rank !== 2) throw new Error(`--clean ${values.clean}: expected int64 tokens [N, T], got ${clean}`);
    if (corrupted.dtype !== clean.dtype || corrupted.shape.join() !== clean.shape.join()) throw new Error(`--corrupted ${values.corrupted}: ${corrupted} does not match the clean tokens ${clean}`);
    const positions = values.positions.split(',').map((p) => number('--positions', p.trim(), 0, false));
    // Targets: the clean prompt's next token at each scored position.
    const [n, t] = clean.shape;
    for (const p of positions) if (!Number.isInteger(p) || p >= t - 1) throw new UsageError(`bad --positions: ${p} has no next token in prompts of ${t}`, 'circuit');
    const y = new BigInt64Array(n * t);
    for (let i = 0; i < n; i++) for (let j = 0; j + 1 < t; j++) y[i * t + j] = (clean.data as BigInt64Array)[i * t + j + 1];
    return { clean, corrupted, y: new Tensor('int64', y, [n, t]), positions, about: `token files ${values.clean} vs ${values.corrupted}` };
  }
  const logits = model.outputs[0]?.shape;
  const vocab = logits?.[2];
  const context = model.inputs[0]?.shape?.[1];
  if (typeof vocab !== 'number') throw new Error('the model\'s first output must be logits [N, T, V] with a known vocabulary');
  const half = typeof context === 'number' ? Math.floor((context + 1) / 2) : 10;
  const n = number('--prompts', values.prompts, 64, true);
  const seed = number('--seed', values.seed, 7, false);
  const clean = inductionDataset({ size: n, half, vocab, seed });
  const corrupt = inductionDataset({ size: n, half, vocab, seed, corrupted: true });
  const ix = Array.from({ length: n }, (_, i) => i);
  const c = clean.gather(ix);
  return { clean: c.x, corrupted: corrupt.gather(ix).x, y: c.y, positions: [...clean.positions], about: `${n} induction prompts of ${2 * half - 1} tokens` };
}

export async function circuit(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('circuit', argv, {
    clean: { type: 'string' },
    corrupted: { type: 'string' },
    positions: { type: 'string' },
    prompts: { type: 'string' },
    seed: { type: 'string' },
    threshold: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'circuit needs a MODEL file' : `circuit takes one MODEL, got ${positionals.length}`, 'circuit');
  if (!values.out) throw new UsageError('circuit needs --out DIR', 'circuit');
  const threshold = number('--threshold', values.threshold, 0.02, false);
  const model = await Model.load(positionals[0]);
  try {
    const nodes = nodesFromSites(model.sites.map((s) => s.name));
    const p = await prompts(model, values);
    const input = model.inputs[0].name;
    const { metric } = tokenLogProb(p.y, p.positions);
    const run = { clean: { [input]: p.clean }, corrupted: { [input]: p.corrupted }, metric };
    const heads = nodes.filter((n) => n.output && n.name !== 'embed');
    const patching = await activationPatching(model, { ...run, sites: heads.map((h) => h.output!) });
    const found = await discoverCircuit(model, { ...run, threshold, nodes, seed: 1 });
    // Path patching along the circuit's head-to-head edges: how much of each effect goes that way directly.
    const paths = [];
    for (const e of found.edges.filter((x) => x.kept && x.sender !== 'embed' && x.receiver !== 'logits')) {
      const sender = nodes.find((n) => n.name === e.sender)!.output!;
      const r = await pathPatching(model, { ...run, sender, receiver: e.site, nodes });
      paths.push({ sender: e.sender, receiver: e.site, effect: r.effect, checks: r.checks });
    }
    await mkdir(values.out, { recursive: true });
    const layerOf = (name: string) => (name === 'embed' ? 0 : name === 'logits' ? Number.MAX_SAFE_INTEGER : Number(name.split('.')[0]) + 1);
    const shown = nodes.filter((n) => found.nodes.includes(n.name));
    const svg = graphSvg(
      shown.map((n) => ({ id: n.name, layer: layerOf(n.name), label: n.name === 'embed' || n.name === 'logits' ? n.name : `head ${n.name}` })),
      found.edges.filter((e) => e.kept).map((e) => ({ from: e.sender, to: e.receiver, weight: e.drop ?? 1 })),
      `circuit: ${found.kept}/${found.total} edges, faithfulness ${found.faithfulness.toFixed(3)} (random ${found.randomFaithfulness.toFixed(3)})`,
    );
    await writeFile(join(values.out, 'circuit.svg'), svg);
    await writeFile(join(values.out, 'circuit.json'), toJson({
      model: positionals[0], prompts: p.about, positions: p.positions, threshold,
      circuit: found,
      headPatching: patching.effects.map((e) => ({ head: heads.find((h) => h.output === e.site)?.name, effect: e.effect })),
      pathPatching: paths,
      checks: [...found.checks, ...patching.checks],
    }));
    console.log(`circuit: ${found.kept} of ${found.total} edges, nodes ${found.nodes.join(' ')}; faithfulness ${found.faithfulness.toFixed(3)} vs ${found.randomFaithfulness.toFixed(3)} for random circuits of that size`);
    for (const c of found.checks) console.log(`check ${c.name}: ${c.passed === undefined ? 'measured' : c.passed ? 'passed' : 'failed'} (${c.detail})`);
    console.log(`wrote ${join(values.out, 'circuit.json')} and circuit.svg`);
  } finally {
    await model.dispose();
  }
}
