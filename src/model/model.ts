/**
 * Model: an ONNX graph with its sites, run in ONNX Runtime with any values captured and any values changed.
 * Captures and interventions are arguments of one run; they compile into a cached graph variant and leave the
 * model itself unchanged.
 *
 * @example
 * const model = await Model.load('cnn.onnx');
 * const { outputs, captures } = await model.run({ x }, {
 *   capture: ['c2.conv'],
 *   interventions: [{ site: 'relu1', kind: 'zero', units: [3] }],
 * });
 */
import { Graph, type ValueInfo } from '../onnx/graph.js';
import { addOutputs } from '../onnx/rewrite.js';
import { batchRows, runBatched } from '../runtime/batch.js';
import { SessionCache } from '../runtime/cache.js';
import { defaultRuntime } from '../runtime/default.js';
import type { Runtime, SessionOptions } from '../runtime/runtime.js';
import { bytesPerElement, sizeOf, sliceRows, Tensor } from '../runtime/tensor.js';
import { compileInterventions, resolveIntervention, variantKey, type Intervention, type Resolved, type SiteLayout } from './interventions.js';
import { listSites, SiteIndex, type Site } from './sites.js';
import { validateFeeds } from './validate.js';
import { unknownNameError } from '../util/nearest.js';
import { readModelFile } from './source.js';
import { batchMeans } from './batch-mean.js';
import { describeSites } from './describe.js';
import { withPredictedSeed } from './predicted-seed.js';
import { buildGradGraph } from '../autodiff/grad.js';
import { defaultRules } from '../autodiff/rules/index.js';
import { onesLike, runGradBatched, type CallOptions, type GradOptions, type GradResult } from './gradient.js';

export type { CallOptions, GradOptions, GradResult } from './gradient.js';

export interface LoadOptions extends SessionOptions {
  readonly runtime?: Runtime;
  /** Memory budget of one runtime call in bytes; larger batches are split (default 512 MiB). */
  readonly maxBatchBytes?: number;
  /** Input shapes for the load-time probe that gives every site its dtype and shape (default: symbolic dims probed). */
  readonly inputShapes?: Readonly<Record<string, readonly number[]>>;
  /** Skip the load-time probe (sites then carry only what the file declares). */
  readonly probe?: boolean;
}

export interface RunOptions extends CallOptions {
  /** Sites to read (aliases or raw value names). */
  readonly capture?: readonly string[];
  /** Changes applied in order. */
  readonly interventions?: readonly Intervention[];
}

export interface RunResult {
  /** The model's outputs by name. */
  readonly outputs: Record<string, Tensor>;
  /** Captured sites by the name they were asked for. */
  readonly captures: Record<string, Tensor>;
}

/** What a probe run learnt for inputs of one shape: every site's concrete layout. */
interface Probe {
  readonly rows: number;
  readonly layouts: ReadonlyMap<string, SiteLayout>;
  /** Bytes of all site values per batch row: the memory one row costs in a run, at most. */
  readonly bytesPerRow: number;
}

const DEFAULT_BUDGET = 512 * 2 ** 20;

export class Model {
  private index: SiteIndex;
  /** Why the load-time probe failed, if it did (sites then carry only what the file declares). */
  probeError?: string;
  private readonly cache: SessionCache;
  private readonly probes = new Map<string, Promise<Probe>>();
  /** Seed and gradient output names of each compiled gradient graph. */
  private readonly gradNames = new Map<string, { seed: string; grads: Readonly<Record<string, string>> }>();

  private constructor(
    readonly graph: Graph,
    readonly runtime: Runtime,
    private readonly options: LoadOptions,
    readonly source: string,
  ) {
    this.index = new SiteIndex(listSites(graph));
    this.cache = new SessionCache(runtime, options);
  }

  /** Loads an .onnx file (a path, in Node) or its bytes; checks the graph before anything runs. */
  static async load(source: string | Uint8Array, options: LoadOptions = {}): Promise<Model> {
    const label = typeof source === 'string' ? source : 'model bytes';
    const model = typeof source === 'string' ? await readModelFile(source) : Graph.decode(source, label).model;
    const graph = new Graph(model);
    graph.validate(label);
    const runtime = options.runtime ?? (await defaultRuntime());
    const m = new Model(graph, runtime, options, label);
    await m.cache.get('plain', () => graph.encode()).catch((e: Error) => {
      throw new Error(`${label}: ${e.message}`);
    });
    const names = m.inputs.map((i) => i.name);
    for (const k of Object.keys(options.inputShapes ?? {})) if (!names.includes(k)) throw unknownNameError('input', k, names);
    if (options.probe !== false) {
      try {
        m.index = new SiteIndex(await describeSites(m.sites, m.inputs, (feeds) => m.runProbe(feeds, 1).then((p) => p.layouts), options.inputShapes));
      } catch (e) {
        if (options.inputShapes) throw new Error(`${label}: probe run with the given input shapes failed: ${(e as Error).message}`);
        m.probeError = (e as Error).message;
      }
    }
    return m;
  }

  /** Every intermediate value: inputs first, then node outputs in graph order (Constant nodes are weights, not sites). */
  get sites(): readonly Site[] {
    return this.index.sites;
  }

  get inputs(): ValueInfo[] {
    return this.graph.inputs;
  }

  get outputs(): ValueInfo[] {
    return this.graph.outputs;
  }

  /** Looks a site up by alias or raw value name; an unknown name lists the nearest ones. */
  site(name: string): Site {
    return this.index.get(name);
  }

  /** Sessions compiled so far (each distinct capture/intervention structure compiles once). */
  get compiledVariants(): number {
    return this.cache.compiled;
  }

  /** Every site with its dtype and concrete shape for inputs of the given shapes (a probe run on zeros). */
  async resolveSites(inputShapes: Readonly<Record<string, readonly number[]>> = {}): Promise<Site[]> {
    const feeds: Record<string, Tensor> = {};
    for (const inp of this.inputs) {
      const shape = inputShapes[inp.name] ?? (inp.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
      if (!inp.dtype) throw new Error(`input '${inp.name}' has no declared element type; cannot probe`);
      feeds[inp.name] = Tensor.zeros(inp.dtype, shape);
    }
    const names = this.inputs.map((i) => i.name);
    for (const k of Object.keys(inputShapes)) if (!names.includes(k)) throw unknownNameError('input', k, names);
    const probe = await this.probe(feeds, true);
    return this.sites.map((s) => {
      const l = probe.layouts.get(s.value);
      return l ? { ...s, dtype: l.dtype, shape: l.shape } : s;
    });
  }

  /** Runs the model; captures and interventions apply to this call only. */
  async run(inputs: Readonly<Record<string, Tensor>>, options: RunOptions = {}): Promise<RunResult> {
    validateFeeds(this.inputs, inputs, options.allowNaN);
    const capture = (options.capture ?? []).map((c) => [c, this.site(c)] as const);
    const ivs = options.interventions ?? [];
    for (const iv of ivs) this.site(iv.site);
    const batched = this.batchedInputs();
    const rows = batchRows(inputs, batched);
    const needProbe = ivs.length > 0 || rows > 1;
    // Interventions need the probe's site layouts; a plain run only uses it for the memory budget and runs whole without it.
    const probe = needProbe ? await this.probe(inputs, false).catch((e: Error) => (ivs.length > 0 ? Promise.reject(e) : undefined)) : undefined;
    const budget = options.maxBatchBytes ?? this.options.maxBatchBytes ?? DEFAULT_BUDGET;
    const rowsPerCall = probe && batched.size > 0 ? Math.max(1, Math.floor(budget / Math.max(1, probe.bytesPerRow))) : Infinity;

    let resolved = await this.resolveAll(ivs, inputs, probe, rows);
    const plan = { batched: new Set([...batched]), rowsPerCall, onProgress: options.onProgress, signal: options.signal };
    if (rows > rowsPerCall && resolved.some((r) => r.kind === 'batchMean')) {
      // Split calls would each average over their own rows; compute the whole batch's means first.
      resolved = await batchMeans(resolved, (rs, site) => this.execute(inputs, rs, [site], { ...plan, onProgress: undefined }).then((o) => o[site]));
    }
    const fetchValues = [...new Set([...this.outputs.map((o) => o.name), ...capture.map(([, s]) => s.value)])];
    const out = await this.execute(inputs, resolved, fetchValues, plan);
    const outputs: Record<string, Tensor> = {};
    for (const o of this.outputs) outputs[o.name] = out[o.name];
    const captures: Record<string, Tensor> = {};
    for (const [asked, s] of capture) captures[asked] = out[s.value];
    return { outputs, captures };
  }

  /**
   * Gradients of L = sum(of ⊙ seed) with respect to inputs, sites or weights (initializers and Constant outputs),
   * computed by the backward graph appended to the forward one and run in the same session. `of` defaults to the
   * first output, `seed` to ones (the gradient of the output's sum).
   */
  async grad(inputs: Readonly<Record<string, Tensor>>, options: GradOptions): Promise<GradResult> {
    validateFeeds(this.inputs, inputs, options.allowNaN);
    const of = options.of === undefined ? this.outputs[0].name : this.valueName(options.of);
    const wrt = options.wrt.map((w) => this.valueName(w));
    const batched = this.batchedInputs();
    const rows = batchRows(inputs, batched);
    const probe = await this.probe(inputs, false);
    const info = (v: string) => probe.layouts.get(v) ?? this.graph.values.get(v) ?? {};
    const sig = this.inputs.map((i) => probe.layouts.get(i.name)?.shape.join('x')).join(';');
    const rules = options.rules ?? defaultRules;
    const predicted = options.seed === 'predicted';
    const capture = [...new Set((options.capture ?? []).map((c) => this.site(c).value))];
    // `of` at this batch: the probe's layout with its batch axis scaled to the rows at hand.
    const layout = probe.layouts.get(of);
    if (!layout) throw new Error(`grad: the shape of '${options.of ?? of}' could not be resolved`);
    const variant = `${predicted ? 'predicted' : ''}#${capture.join('\u0000')}#${options.optimization ?? ''}`;
    const key = `grad#${of}#${wrt.join('\u0000')}#${sig}#${rules === defaultRules ? '' : options.rulesName ?? 'custom'}#${variant}`;
    const session = await this.cache.get(key, () => {
      const gg = buildGradGraph(this.graph, { of, wrt, rules, info });
      this.gradNames.set(key, gg);
      let g = predicted ? withPredictedSeed(gg.graph, of, gg.seed, layout.shape.length) : gg.graph;
      if (capture.length) g = addOutputs(g, capture);
      return g.encode();
    }, options.optimization ? { optimization: options.optimization } : this.variantOptions());
    const names = this.gradNames.get(key)!;

    const ofBatched = rows > 0 && layout.shape.length > 0 && layout.shape[0] === probe.rows;
    const ofShape = ofBatched ? [rows, ...layout.shape.slice(1)] : layout.shape;
    const seed = options.seed === 'predicted' ? undefined : options.seed ?? onesLike(layout.dtype, ofShape);
    if (seed && (seed.dtype !== layout.dtype || seed.shape.join() !== ofShape.join())) {
      throw new Error(`grad: the seed must be ${layout.dtype} [${ofShape.join(', ')}] like '${options.of ?? of}', got ${seed.dtype} [${seed.shape.join(', ')}]`);
    }
    if (predicted && !ofBatched) throw new Error(`grad: a predicted-class seed needs '${options.of ?? of}' to have the batch axis`);
    // Weights (initializers, Constant outputs) collect a sum over rows; everything else is per row.
    const isWeight = (v: string) => ['initializer', 'constant'].includes(this.graph.values.get(v)?.kind ?? '');
    const budget = options.maxBatchBytes ?? this.options.maxBatchBytes ?? DEFAULT_BUDGET;
    const out = await runGradBatched({
      session,
      feeds: seed ? { ...inputs, [names.seed]: seed } : inputs,
      batched: new Set([...batched, ...(ofBatched && seed ? [names.seed] : [])]),
      // Forward values, their gradients and the backward temporaries: about three times a forward run's memory.
      rowsPerCall: ofBatched && batched.size > 0 ? budget / Math.max(1, 3 * probe.bytesPerRow) : Infinity,
      fetches: [...new Set([...this.outputs.map((o) => o.name), ...wrt.map((w) => names.grads[w]), ...capture])],
      summed: new Set(wrt.filter(isWeight).map((w) => names.grads[w])),
      onProgress: options.onProgress,
      signal: options.signal,
    });
    const grads: Record<string, Tensor> = {};
    options.wrt.forEach((w, i) => (grads[w] = out[names.grads[wrt[i]]]));
    const outputs: Record<string, Tensor> = {};
    for (const o of this.outputs) outputs[o.name] = out[o.name];
    const captures: Record<string, Tensor> = {};
    for (const c of options.capture ?? []) captures[c] = out[this.site(c).value];
    return { outputs, grads, captures };
  }

  /** A site alias, raw value name, or weight name → the graph's value name. */
  private valueName(name: string): string {
    if (this.index.has(name)) return this.index.get(name).value;
    if (this.graph.values.has(name)) return name;
    throw unknownNameError('site or weight', name, [...this.sites.map((s) => s.name), ...this.graph.initializers.keys()]);
  }

  /** Releases every compiled session. */
  async dispose(): Promise<void> {
    await this.cache.clear();
  }

  /** Runs a graph variant: the given interventions compiled in, the given values fetched, batched to budget. */
  private async execute(
    inputs: Readonly<Record<string, Tensor>>,
    resolved: readonly Resolved[],
    fetches: readonly string[],
    plan: { batched: Set<string>; rowsPerCall: number; onProgress?: (d: number, t: number) => void; signal?: AbortSignal },
  ): Promise<Record<string, Tensor>> {
    const outputs = new Set(this.outputs.map((o) => o.name));
    const plain = resolved.length === 0 && fetches.every((f) => outputs.has(f));
    const key = plain ? 'plain' : `${[...fetches].sort().join('\u0000')}#${variantKey(resolved)}`;
    const compiled = compileInterventions(this.graph, resolved);
    const session = await this.cache.get(key, () => (plain ? this.graph.encode() : addOutputs(compiled.graph, fetches).encode()), plain ? undefined : this.variantOptions());
    const feeds = { ...inputs, ...compiled.feeds };
    const rows = batchRows(inputs, plan.batched);
    // Intervention tensors whose axis 0 is the batch (patched values, full replacements) split with the inputs.
    const batched = new Set(plan.batched);
    for (const [k, t] of Object.entries(compiled.feeds)) if (rows > 1 && t.rank > 0 && t.shape[0] === rows) batched.add(k);
    return runBatched(session, feeds, fetches, { ...plan, batched });
  }

  private async resolveAll(ivs: readonly Intervention[], inputs: Readonly<Record<string, Tensor>>, probe: Probe | undefined, rows: number): Promise<Resolved[]> {
    if (ivs.length === 0) return [];
    // A patch takes its value from a plain run of other inputs; all patched sites come from one such run.
    const patchSites = [...new Set(ivs.filter((iv) => iv.kind === 'patch').map((iv) => iv.site))];
    const sources = new Map<Readonly<Record<string, Tensor>>, Record<string, Tensor>>();
    for (const iv of ivs) {
      if (iv.kind !== 'patch' || sources.has(iv.from)) continue;
      sources.set(iv.from, (await this.run(iv.from, { capture: patchSites })).captures);
    }
    return ivs.map((iv) => {
      const site = this.site(iv.site);
      const layout = probe?.layouts.get(site.value);
      if (!layout) throw new Error(`${iv.kind} on '${iv.site}': the shape of this site could not be resolved by a probe run`);
      const shape = probe && probe.rows !== rows && layout.shape[0] === probe.rows ? [rows, ...layout.shape.slice(1)] : layout.shape;
      return resolveIntervention(iv, site, { dtype: layout.dtype, shape }, iv.kind === 'patch' ? sources.get(iv.from)?.[iv.site] : undefined);
    });
  }

  /**
   * Variants (captures, interventions) compile at most at level 'basic': ONNX Runtime 1.30's extended fusions can
   * crash the process when some values are graph outputs (seen: a Range output in the GPT fixture).
   */
  private variantOptions(): SessionOptions {
    const level = this.options.optimization;
    return level === 'extended' || level === 'all' ? { optimization: 'basic' } : {};
  }

  /** Inputs whose axis 0 is a batch: declared with a symbolic or unknown first dimension. */
  private batchedInputs(): Set<string> {
    return new Set(this.inputs.filter((i) => i.shape && i.shape.length > 0 && typeof i.shape[0] !== 'number').map((i) => i.name));
  }

  /**
   * Runs the capture-all variant once per input signature (on two rows of the batch where it has a batch axis) to
   * learn every site's dtype and shape, and what a batch row costs in memory.
   */
  private probe(inputs: Readonly<Record<string, Tensor>>, exact: boolean): Promise<Probe> {
    const batched = this.batchedInputs();
    const rows = batchRows(inputs, batched);
    const probeRows = exact ? rows : Math.min(rows, 2);
    const sig = Object.entries(inputs).map(([k, t]) => `${k}:${batched.has(k) ? [probeRows, ...t.shape.slice(1)] : t.shape}`).join(';');
    let p = this.probes.get(sig);
    if (!p) {
      const feeds: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(inputs)) feeds[k] = batched.has(k) && probeRows < rows ? sliceRows(t, 0, probeRows) : t;
      p = this.runProbe(feeds, probeRows);
      p.catch(() => this.probes.delete(sig));
      this.probes.set(sig, p);
    }
    return p;
  }

  private async runProbe(feeds: Record<string, Tensor>, rows: number): Promise<Probe> {
    const values = this.sites.map((s) => s.value);
    const session = await this.cache.get('probe', () => addOutputs(this.graph, values).encode(), this.variantOptions());
    const out = await session.run(feeds, values);
    const layouts = new Map<string, SiteLayout>();
    let bytes = 0;
    for (const v of values) {
      const t = out[v];
      if (!t) continue;
      layouts.set(v, { dtype: t.dtype, shape: t.shape });
      bytes += sizeOf(t.shape) * bytesPerElement(t.dtype);
    }
    return { rows, layouts, bytesPerRow: bytes / Math.max(1, rows) };
  }
}
