/**
 * Critical data routing paths (Wang, Su, Zhang, Hu, Chen, Zhu 2018, "Interpret Neural Networks by Identifying
 * Critical Data Routing Paths", CVPR): for one input, non-negative control gates λ — one per channel of each chosen
 * site, multiplying its output — learnt by distillation: min CE(p, q(λ)) + γ‖λ‖₁, where p is the original network's
 * softmax output and q(λ) the gated network's, λ initialised at 1 and projected onto λ ≥ 0 after each step of SGD with
 * momentum. The critical path is the channels with λ > threshold.
 *
 * The gates are graph inputs (a Mul after each site, one gate row per example), so one model.grad call learns the
 * paths of a whole batch at once; each example's gates only touch its own row. Evidence: the prediction with only the
 * critical channels kept (the rest zeroed) against the same number of random channels kept per site, and the
 * paper's observation that paths of inputs of one class are more alike (cosine of the gate vectors) than across classes.
 *
 * @example
 * const r = await cdrp(model, x, { sites: ['c1.relu', 'c2.relu'], gamma: 0.05, steps: 100 });
 * r.gates['c2.relu']; r.agreement; r.checks;
 */
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import { defaultUnitAxis } from '../../model/interventions.js';
import { Model } from '../../model/model.js';
import type { Graph } from '../../onnx/graph.js';
import { makeNode, makeValueInfo } from '../../onnx/proto.js';
import { addInputs, freshName, interpose } from '../../onnx/rewrite.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { sliceRows, Tensor } from '../../runtime/tensor.js';
import { argmaxRows, logSumExp } from '../../util/softmax.js';
import type { Check } from '../attribution/explanation.js';
import { attackSetup } from '../representations/adversarial.js';
import { passive, type Taxonomy } from '../taxonomy.js';

export interface CdrpOptions {
  /** Sites whose channels are gated (aliases or raw names); the channel axis is the default unit axis (1, or last for rank 3). */
  readonly sites: readonly string[];
  /** Weight of ‖λ‖₁ (default 0.05). */
  readonly gamma?: number;
  /** SGD steps (default 100), learning rate (default 0.1) and momentum (default 0.9). */
  readonly steps?: number;
  readonly lr?: number;
  readonly momentum?: number;
  /** A channel is on the critical path when λ > threshold (default 0). */
  readonly threshold?: number;
  /** Random channel sets drawn per example for the baseline (default 5), and their seed (default 0). */
  readonly randomDraws?: number;
  readonly seed?: number;
  /** Fraction of examples whose critical path alone must keep the prediction for the check to pass (default 0.9). */
  readonly minAgreement?: number;
  /** The float input (default: the model's only float32 input) and the logits output (default: the first). */
  readonly input?: string;
  readonly output?: string;
}

export interface GatedSite {
  readonly name: string;
  readonly axis: number;
  readonly channels: number;
}

export interface CdrpResult {
  readonly method: 'cdrp';
  readonly taxonomy: Taxonomy;
  readonly sites: readonly GatedSite[];
  /** The learnt gates per site, [N, channels]. */
  readonly gates: Readonly<Record<string, Tensor<'float32'>>>;
  /** The critical path per site (λ > threshold), [N, channels]. */
  readonly critical: Readonly<Record<string, Tensor<'bool'>>>;
  /** The original prediction of each example. */
  readonly predictions: Int32Array;
  /** Channels kept per example, over all sites, and the fraction of all gates dropped. */
  readonly kept: Int32Array;
  readonly sparsity: number;
  /** How often the prediction survives: soft gates, only the critical channels, as many random channels. */
  readonly agreement: { readonly gated: number; readonly critical: number; readonly random: number };
  /** Mean cosine similarity of the gate vectors of pairs of examples of the same and of different predicted classes. */
  readonly similarity: { readonly sameClass: number; readonly differentClass: number };
  /** Every 10th step: the mean distillation loss and the mean ‖λ‖₁. */
  readonly history: readonly { readonly step: number; readonly loss: number; readonly l1: number }[];
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** The model's graph with each site multiplied by a gate input of shape [N, 1, .., C, .., 1]; returns the input names. */
export function gatedGraph(graph: Graph, sites: readonly { value: string; rank: number; axis: number; channels: number }[]): { graph: Graph; gates: string[] } {
  let g = graph;
  const gates: string[] = [];
  for (const s of sites) {
    const gate = freshName(g, `${s.value}.gate`);
    gates.push(gate);
    const shape = Array.from({ length: s.rank }, (_, i) => (i === 0 ? 'N' : i === s.axis ? s.channels : 1));
    g = addInputs(g, [makeValueInfo(gate, ONNX_DTYPE.float32, shape)]);
    g = interpose(g, s.value, (source) => ({ nodes: [makeNode('Mul', [source, gate], [s.value], { name: `/${s.value}.gate/Mul` })] }));
  }
  return { graph: g, gates };
}

function softmaxRows(logits: Float32Array, classes: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length / classes; i++) {
    const lse = logSumExp(logits, i * classes, classes);
    for (let k = 0; k < classes; k++) out[i * classes + k] = Math.exp(logits[i * classes + k] - lse);
  }
  return out;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let j = 0; j < a.length; j++) {
    ab += a[j] * b[j];
    aa += a[j] * a[j];
    bb += b[j] * b[j];
  }
  return aa === 0 || bb === 0 ? (aa === bb ? 1 : 0) : ab / Math.sqrt(aa * bb);
}

/** Learns the critical routing path of each example of x [N, ...] (Wang et al. 2018), with its checks. */
export async function cdrp(model: Model, x: Tensor, options: CdrpOptions): Promise<CdrpResult> {
  const started = performance.now();
  const gamma = options.gamma ?? 0.05;
  const steps = options.steps ?? 100;
  const lr = options.lr ?? 0.1;
  const momentum = options.momentum ?? 0.9;
  const threshold = options.threshold ?? 0;
  const draws = options.randomDraws ?? 5;
  const seed = options.seed ?? 0;
  const minAgreement = options.minAgreement ?? 0.9;
  const finite = (name: string, v: number, ok: boolean, want: string) => {
    if (!Number.isFinite(v) || !ok) throw new Error(`cdrp: ${name} must be ${want}, got ${v}`);
  };
  finite('gamma', gamma, gamma >= 0, 'a finite number ≥ 0');
  finite('lr', lr, lr > 0, 'a finite number > 0');
  finite('momentum', momentum, momentum >= 0 && momentum < 1, 'in [0, 1)');
  finite('threshold', threshold, threshold >= 0, 'a finite number ≥ 0');
  finite('minAgreement', minAgreement, minAgreement >= 0 && minAgreement <= 1, 'in [0, 1]');
  finite('steps', steps, Number.isInteger(steps) && steps >= 1, 'an integer ≥ 1');
  finite('randomDraws', draws, Number.isInteger(draws) && draws >= 1, 'an integer ≥ 1');
  if (!Array.isArray(options.sites) || options.sites.length === 0) throw new Error('cdrp: name at least one site to gate ({ sites: [...] })');
  if (new Set(options.sites).size !== options.sites.length) throw new Error(`cdrp: a site is listed twice in [${options.sites.join(', ')}]`);
  const s = attackSetup(model, x, { ...options, range: null }, 'cdrp');
  const resolved = options.sites.map((name) => model.site(name)); // an unknown name lists the nearest ones
  if (new Set(resolved.map((r) => r.value)).size !== resolved.length) throw new Error(`cdrp: two of [${options.sites.join(', ')}] name the same value`);

  const first = await model.run({ [s.input]: sliceRows(x, 0, 1) }, { capture: [...options.sites] });
  const layout = options.sites.map((name, i) => {
    const t = first.captures[name];
    if (t.dtype !== 'float32') throw new Error(`cdrp: site '${name}' holds ${t.dtype}; only float32 sites can be gated`);
    if (t.rank < 2 || t.shape[0] !== 1) throw new Error(`cdrp: site '${name}' has shape [${t.shape.join(', ')}] for one example; a gated site needs the batch axis first and a channel axis`);
    const axis = defaultUnitAxis(t.rank);
    return { name, value: resolved[i].value, rank: t.rank, axis, channels: t.shape[axis] };
  });
  const { graph, gates: gateInputs } = gatedGraph(model.graph, layout);
  const gated = await Model.load(graph.encode(), { runtime: model.runtime });

  const logits0 = (await model.run({ [s.input]: x })).outputs[s.output];
  const classes = logits0.size / s.n;
  const p = softmaxRows(logits0.data as Float32Array, classes);
  const predictions = argmaxRows(logits0, classes);
  const lambda = layout.map((l) => new Float32Array(s.n * l.channels).fill(1));
  const velocity = layout.map((l) => new Float32Array(s.n * l.channels));
  const feeds = (gs: readonly Float32Array[]): Record<string, Tensor> => {
    const f: Record<string, Tensor> = { [s.input]: x };
    layout.forEach((l, k) => (f[gateInputs[k]] = Tensor.float32(gs[k], [s.n, ...Array.from({ length: l.rank - 1 }, (_, i) => (i + 1 === l.axis ? l.channels : 1))])));
    return f;
  };
  const logitsWith = async (gs: readonly Float32Array[]) => (await gated.run(feeds(gs))).outputs[s.output];
  const history: { step: number; loss: number; l1: number }[] = [];
  try {
    for (let step = 1; step <= steps; step++) {
      const q = softmaxRows((await logitsWith(lambda)).data as Float32Array, classes);
      // ∂CE(p, q)/∂logits = q − p, per row (the loss is a sum over examples, each with its own gates).
      const seedData = new Float32Array(q.length);
      let loss = 0;
      for (let j = 0; j < q.length; j++) {
        seedData[j] = q[j] - p[j];
        if (p[j] > 0) loss -= p[j] * Math.log(Math.max(q[j], 1e-30));
      }
      const { grads } = await gated.grad(feeds(lambda), { of: s.output, wrt: gateInputs, seed: Tensor.float32(seedData, [s.n, classes]) });
      let l1 = 0;
      layout.forEach((_, k) => {
        const g = grads[gateInputs[k]].data as Float32Array;
        const lam = lambda[k];
        const v = velocity[k];
        for (let j = 0; j < lam.length; j++) {
          v[j] = momentum * v[j] + g[j] + gamma; // ∂γ‖λ‖₁/∂λ = γ on λ ≥ 0
          lam[j] = Math.max(0, lam[j] - lr * v[j]);
          l1 += lam[j];
        }
      });
      if (step % 10 === 0 || step === steps) history.push({ step, loss: loss / s.n, l1: l1 / s.n });
    }

    const critical = lambda.map((lam) => Float32Array.from(lam, (v) => (v > threshold ? 1 : 0)));
    const agree = (t: Tensor) => {
      const pred = argmaxRows(t, classes);
      return pred.reduce((a, c, i) => a + (c === predictions[i] ? 1 : 0), 0);
    };
    const rowsAgreeing = (t: Tensor): number[] => Array.from(argmaxRows(t, classes), (c, i) => (c === predictions[i] ? 1 : 0));
    const gatedAgree = agree(await logitsWith(lambda)) / s.n;
    const criticalRows = rowsAgreeing(await logitsWith(critical));
    const rand = mulberry32(mixSeed(seed, 7));
    let randomAgree = 0;
    for (let d = 0; d < draws; d++) {
      // The same number of channels per site and example as the critical path, chosen at random.
      const masks = layout.map((l, k) => {
        const m = new Float32Array(s.n * l.channels);
        for (let i = 0; i < s.n; i++) {
          const want = critical[k].subarray(i * l.channels, (i + 1) * l.channels).reduce((a, b) => a + b, 0);
          const order = Array.from({ length: l.channels }, (_, c) => c);
          for (let c = 0; c < want; c++) {
            const r = c + Math.floor(rand() * (l.channels - c));
            [order[c], order[r]] = [order[r], order[c]];
            m[i * l.channels + order[c]] = 1;
          }
        }
        return m;
      });
      randomAgree += agree(await logitsWith(masks)) / (s.n * draws);
    }
    const criticalAgree = criticalRows.reduce((a, b) => a + b, 0) / s.n;

    const kept = new Int32Array(s.n);
    const total = layout.reduce((a, l) => a + l.channels, 0);
    const paths = Array.from({ length: s.n }, (_, i) => {
      const v = new Float32Array(total);
      let o = 0;
      layout.forEach((l, k) => {
        v.set(lambda[k].subarray(i * l.channels, (i + 1) * l.channels), o);
        for (let c = 0; c < l.channels; c++) kept[i] += critical[k][i * l.channels + c];
        o += l.channels;
      });
      return v;
    });
    const sums = { same: [0, 0], diff: [0, 0] };
    for (let a = 0; a < s.n; a++) {
      for (let b = a + 1; b < s.n; b++) {
        const t = predictions[a] === predictions[b] ? sums.same : sums.diff;
        t[0] += cosine(paths[a], paths[b]);
        t[1]++;
      }
    }
    const similarity = { sameClass: sums.same[1] ? sums.same[0] / sums.same[1] : NaN, differentClass: sums.diff[1] ? sums.diff[0] / sums.diff[1] : NaN };
    const sparsity = 1 - kept.reduce((a, b) => a + b, 0) / (total * s.n);
    const checks: Check[] = [
      {
        name: 'critical path keeps the prediction',
        value: criticalRows,
        passed: criticalAgree >= minAgreement,
        detail: `only the channels with λ > ${threshold} kept, the rest zeroed: the prediction survives for ${(100 * criticalAgree).toFixed(1)}% of the ${s.n} examples (needs ${100 * minAgreement}%)`,
      },
      {
        name: 'critical vs random channels',
        value: criticalAgree - randomAgree,
        passed: sparsity === 0 ? undefined : criticalAgree > randomAgree,
        detail: `prediction kept with the critical channels ${(100 * criticalAgree).toFixed(1)}% vs as many random channels per site ${(100 * randomAgree).toFixed(1)}% (${draws} draws)`,
      },
      { name: 'gated keeps the prediction', value: gatedAgree, detail: 'the learnt soft gates applied: fraction of predictions unchanged' },
      { name: 'sparsity', value: sparsity, detail: `fraction of the ${total} gates per example at or below ${threshold}; channels kept per example ${Array.from(kept).join(',')}` },
      {
        name: 'path similarity by class',
        value: [similarity.sameClass, similarity.differentClass],
        passed: Number.isNaN(similarity.sameClass) || Number.isNaN(similarity.differentClass) ? undefined : similarity.sameClass > similarity.differentClass,
        detail: `mean cosine of the gate vectors: pairs of one predicted class ${similarity.sameClass.toFixed(3)} vs of different classes ${similarity.differentClass.toFixed(3)} (Wang et al.: paths cluster by class)`,
      },
    ];
    const perSite = <T>(make: (k: number) => T) => Object.fromEntries(layout.map((l, k) => [l.name, make(k)]));
    return {
      method: 'cdrp',
      taxonomy: passive('rules', 'local'),
      sites: layout.map(({ name, axis, channels }) => ({ name, axis, channels })),
      gates: perSite((k) => Tensor.float32(lambda[k], [s.n, layout[k].channels])),
      critical: perSite((k) => Tensor.bool(critical[k], [s.n, layout[k].channels])),
      predictions,
      kept,
      sparsity,
      agreement: { gated: gatedAgree, critical: criticalAgree, random: randomAgree },
      similarity,
      history,
      checks,
      params: { sites: options.sites, gamma, steps, lr, momentum, threshold, randomDraws: draws, seed, minAgreement },
      ms: performance.now() - started,
    };
  } finally {
    await gated.dispose();
  }
}
