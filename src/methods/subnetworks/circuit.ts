/**
 * Automatic circuit discovery in the spirit of ACDC (Conmy, Mavor-Parker, Lynch, Heimersheim & Garriga-Alonso 2023,
 * "Towards Automated Circuit Discovery for Mechanistic Interpretability"). Nodes are the residual graph's embedding,
 * heads / MLP blocks and logits (`heads.ts`); edges are sender → receiver-input connections through the residual
 * stream. Receivers are visited from the output backwards, and each incoming edge (senders latest first) is
 * tentatively ablated — the sender's contribution to that receiver's private input replaced by its value on the
 * corrupted inputs — and stays ablated if the metric, as the recovered fraction of the clean−corrupted gap
 * score = (m − m_corrupted) / (m_clean − m_corrupted), drops by less than `threshold`. A node none of whose outgoing
 * edges survive cannot reach the output, so its incoming edges are removed without a run (ACDC's pruning of dead nodes).
 *
 * Faithfulness is the score with every edge outside the circuit ablated; the baseline is the mean score of random
 * edge sets of the same size.
 *
 * @example
 * const r = await discoverCircuit(model, { clean, corrupted, metric, threshold: 0.02, nodes: attnOnlyNodes(spec) });
 * r.nodes; r.edges.filter((e) => e.kept); r.faithfulness;
 */
import type { Model } from '../../model/model.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { RAUKER, passiveHidden, type MethodInfo } from '../taxonomy.js';
import type { Check } from '../attribution/explanation.js';
import { activationPatching, attributionPatching, captureRun, checkPair, evalMetric, metricGap, type Inputs, type Metric } from './patching.js';
import { edgeId, edgeModel, pathPatching, residualEdges, type Edge, type ResidualNode } from './heads.js';

export interface CircuitOptions {
  readonly clean: Inputs;
  readonly corrupted: Inputs;
  readonly metric: Metric;
  /** An edge stays ablated when the score drops by less than this (a fraction of the clean−corrupted gap). */
  readonly threshold: number;
  readonly nodes: readonly ResidualNode[];
  /** Random circuits of the circuit's size for the baseline (default 5). */
  readonly randomCircuits?: number;
  readonly seed?: number;
  /** The faithfulness the 'faithfulness' check asks for (default 0.8). */
  readonly minFaithfulness?: number;
}

export interface CircuitEdge extends Edge {
  readonly kept: boolean;
  /** Score drop when this edge was tried (absent for edges of dead nodes, removed without a run). */
  readonly drop?: number;
}

export interface CircuitResult {
  readonly method: 'circuit-discovery';
  /** Nodes with a kept edge, in node-table order. */
  readonly nodes: readonly string[];
  readonly edges: readonly CircuitEdge[];
  readonly kept: number;
  readonly total: number;
  /** kept / total. */
  readonly size: number;
  readonly faithfulness: number;
  /** Mean faithfulness of random circuits with as many edges. */
  readonly randomFaithfulness: number;
  readonly clean: number;
  readonly corrupted: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

export async function discoverCircuit(model: Model, options: CircuitOptions): Promise<CircuitResult> {
  const t0 = performance.now();
  const { clean, corrupted, metric, threshold, nodes } = options;
  if (!Number.isFinite(threshold) || threshold < 0) throw new Error(`discoverCircuit: threshold must be a finite number ≥ 0, got ${threshold}`);
  const samples = options.randomCircuits ?? 5;
  if (!Number.isInteger(samples) || samples < 0) throw new Error(`discoverCircuit: randomCircuits must be an integer ≥ 0, got ${samples}`);
  checkPair(model, clean, corrupted);
  const edges = residualEdges(model, nodes);
  const outs = [...new Set(nodes.flatMap((n) => (n.output ? [n.output] : [])))];
  const c = await captureRun(model, clean, []);
  const k = await captureRun(model, corrupted, outs);
  const mClean = evalMetric(metric, c.outputs, 'clean');
  const mCorrupt = evalMetric(metric, k.outputs, 'corrupted');
  const gap = metricGap(mClean, mCorrupt);
  const em = await edgeModel(model, nodes, edges, k.values);
  const score = async (ablated: ReadonlySet<string>) => {
    const m = evalMetric(metric, (await em.model.run(em.feeds(clean, ablated))).outputs, `edge-ablated (${ablated.size} edges)`);
    return (m - mCorrupt) / -gap;
  };

  // Receivers from the output backwards (graph order of their input sites), senders latest first.
  const order = new Map(model.sites.map((s, i) => [s.value, i]));
  const at = (site: string) => order.get(model.site(site).value)!;
  const outputOf = new Map(nodes.map((n) => [n.name, n.output]));
  const bySite = [...new Set(edges.map((e) => e.site))].sort((a, b) => at(b) - at(a));
  const ablated = new Set<string>();
  const drops = new Map<string, number>();
  let current = await score(ablated);
  for (const site of bySite) {
    const incoming = edges.filter((e) => e.site === site).sort((a, b) => at(outputOf.get(b.sender)!) - at(outputOf.get(a.sender)!));
    const receiver = incoming[0].receiver;
    const dead = outputOf.get(receiver) !== undefined && edges.filter((e) => e.sender === receiver).every((e) => ablated.has(edgeId(e)));
    for (const e of incoming) {
      const id = edgeId(e);
      if (dead) {
        ablated.add(id);
        continue;
      }
      ablated.add(id);
      const s = await score(ablated);
      drops.set(id, current - s);
      if (current - s < threshold) current = s;
      else ablated.delete(id);
    }
  }

  const kept = edges.filter((e) => !ablated.has(edgeId(e)));
  const faithfulness = await score(ablated);
  const rand = mulberry32(options.seed ?? 0);
  const random: number[] = [];
  for (let i = 0; i < samples; i++) {
    const ids = edges.map(edgeId);
    for (let j = ids.length - 1; j > 0; j--) {
      const r = Math.floor(rand() * (j + 1));
      [ids[j], ids[r]] = [ids[r], ids[j]];
    }
    random.push(await score(new Set(ids.slice(kept.length))));
  }
  const randomFaithfulness = random.length ? random.reduce((a, b) => a + b, 0) / random.length : NaN;
  const none = await score(new Set());
  const all = await score(new Set(edges.map(edgeId)));
  const min = options.minFaithfulness ?? 0.8;
  const used = new Set(kept.flatMap((e) => [e.sender, e.receiver]));
  const checks: Check[] = [
    { name: 'faithfulness', value: faithfulness, passed: faithfulness >= min, detail: `score with every edge outside the circuit ablated (asked ≥ ${min}); 1 = clean, 0 = corrupted` },
    { name: 'random-baseline', value: random, passed: samples > 0 ? faithfulness > randomFaithfulness : undefined, detail: `scores of ${samples} random circuits of ${kept.length} edges (mean ${randomFaithfulness.toFixed(3)})` },
    {
      name: 'edges-complete',
      value: [none, all],
      passed: Math.abs(none - 1) <= 1e-3 && Math.abs(all) <= 1e-3,
      detail: 'score with no edge ablated (must be 1) and with every edge ablated (must be 0: the node outputs sum to the stream)',
    },
  ];
  return {
    method: 'circuit-discovery',
    nodes: nodes.filter((n) => used.has(n.name)).map((n) => n.name),
    edges: edges.map((e) => ({ ...e, kept: !ablated.has(edgeId(e)), ...(drops.has(edgeId(e)) ? { drop: drops.get(edgeId(e)) } : {}) })),
    kept: kept.length,
    total: edges.length,
    size: kept.length / edges.length,
    faithfulness,
    randomFaithfulness,
    clean: mClean,
    corrupted: mCorrupt,
    checks,
    params: { threshold, randomCircuits: samples, seed: options.seed ?? 0 },
    ms: performance.now() - t0,
  };
}

/**
 * Circuit methods explain one behaviour (the clean−corrupted difference of a metric) over a distribution of prompts,
 * not one input and not the whole network's function: 'semi-local' in Zhang et al.'s scope.
 */
export const CIRCUIT_METHODS = {
  'activation-patching': {
    info: { title: 'Activation patching', reference: 'Meng et al. 2022, Locating and Editing Factual Associations in GPT', taxonomy: passiveHidden('semi-local', RAUKER.circuits) },
    run: activationPatching,
  },
  'path-patching': {
    info: { title: 'Path patching', reference: 'Wang et al. 2022, Interpretability in the Wild; Goldowsky-Dill et al. 2023', taxonomy: passiveHidden('semi-local', RAUKER.circuits) },
    run: pathPatching,
  },
  'attribution-patching': {
    info: { title: 'Attribution patching', reference: 'Nanda 2023, Attribution Patching; Syed et al. 2023', taxonomy: passiveHidden('semi-local', RAUKER.circuits) },
    run: attributionPatching,
  },
  'circuit-discovery': {
    info: { title: 'Automatic circuit discovery (ACDC)', reference: 'Conmy et al. 2023, Towards Automated Circuit Discovery', taxonomy: passiveHidden('semi-local', RAUKER.circuits), stochastic: true },
    run: discoverCircuit,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
