/**
 * What every attribution method stands on: the value attributed to (a float input, or any site, whose graph is then
 * cut there so the site becomes an input), the target score, and two batched primitives over many variants of the
 * examples — their scores, and their scores with gradients. Methods describe variants (IG path points, noisy copies,
 * occluded copies…) as rows owned by an example; the primitives build them chunk by chunk within the memory budget,
 * repeat each owner's other inputs, and run them in large runtime calls.
 *
 * @example
 * const a = await Attributor.create(model, { x }, { target: 3 });
 * const scores = await a.scores(a.n, (start, end) => ({ rows: a.x.data.slice(start * a.rowSize, end * a.rowSize), owner: range(start, end) }));
 */
import { cutEdge } from '../../onnx/rewrite.js';
import type { RuleTable } from '../../autodiff/types.js';
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { resolveTarget, type ResolvedTarget, type Target } from './target.js';
import type { Attribution, Check } from './explanation.js';
import { passiveAttribution, type Taxonomy } from '../taxonomy.js';

export interface AttributionOptions {
  /** What to explain (default: the predicted class). */
  readonly target?: Target;
  /** A float input or a site (alias or value name) to attribute to (default: the model's only float input). */
  readonly wrt?: string;
  /** Memory budget of one runtime call in bytes (default 256 MiB): bounds n_steps × batch expansion. */
  readonly maxBatchBytes?: number;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/** Rows [start, end) of a variant set: row data (rows × rowSize) and the example each row belongs to. */
export type RowMaker = (start: number, end: number) => { readonly rows: Float32Array; readonly owner: Int32Array };

const DEFAULT_BUDGET = 256 * 2 ** 20;
const cuts = new WeakMap<Model, Map<string, Promise<Model>>>();

/** The model with `value` turned into an input (its producer cut off); cached per model and value. */
function cutModel(model: Model, value: string): Promise<Model> {
  let byValue = cuts.get(model);
  if (!byValue) cuts.set(model, (byValue = new Map()));
  let m = byValue.get(value);
  if (!m) {
    const ModelClass = model.constructor as typeof Model;
    m = ModelClass.load(cutEdge(model.graph, value, model.site(value).dtype).encode(), { runtime: model.runtime, probe: false });
    byValue.set(value, m);
  }
  return m;
}

/** Rows of t [N, ...] picked by owner: [owner.length, ...]. */
export function gatherRows<D extends Tensor['dtype']>(t: Tensor<D>, owner: Int32Array): Tensor<D> {
  const row = t.size / t.shape[0];
  const out = Tensor.zeros(t.dtype, [owner.length, ...t.shape.slice(1)]);
  const src = t.data as Float32Array;
  const dst = out.data as unknown as Float32Array;
  for (let i = 0; i < owner.length; i++) dst.set(src.subarray(owner[i] * row, (owner[i] + 1) * row), i * row);
  return out;
}

/** What is attributed to: the name given (default: the only float input), its value name, and whether it is an input. */
function resolveWrt(model: Model, options: AttributionOptions): { wrtName: string; site: string; isInput: boolean } {
  let wrtName = options.wrt;
  if (wrtName === undefined) {
    const floatInputs = model.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
    if (floatInputs.length !== 1) {
      const kinds = model.inputs.map((i) => `${i.name} (${i.dtype})`).join(', ');
      throw new Error(`attribution: the model has no single float32 input to attribute to (inputs: ${kinds}); name an input or a site with { wrt }`);
    }
    wrtName = floatInputs[0];
  }
  const site = model.site(wrtName); // throws with the nearest names for an unknown one
  if (site.dtype !== undefined && site.dtype !== 'float32') throw new Error(`attribution: '${wrtName}' is ${site.dtype}; only float32 values have gradients (attribute to a float site, e.g. an embedding)`);
  return { wrtName, site: site.value, isInput: model.inputs.some((i) => i.name === site.value) };
}

export class Attributor {
  /** Examples in the batch. */
  readonly n: number;
  /** Shape of one example's value at `wrt`, and its size. */
  readonly rowShape: readonly number[];
  readonly rowSize: number;

  private constructor(
    /** The model the primitives run: the given one, or it cut at the site attributed to. */
    readonly runModel: Model,
    /** The user's name of what is attributed to, and its value name in `runModel`. */
    readonly wrtName: string,
    readonly wrt: string,
    /** The examples' value at `wrt`, float32 [N, ...]. */
    readonly x: Tensor<'float32'>,
    /** The other inputs of `runModel`, for the N examples. */
    private readonly others: Readonly<Record<string, Tensor>>,
    readonly target: ResolvedTarget,
    /** f(x) per example. */
    readonly scores0: Float32Array,
    readonly options: AttributionOptions,
  ) {
    this.n = x.shape[0];
    this.rowShape = x.shape.slice(1);
    this.rowSize = this.n === 0 ? 0 : x.size / this.n;
  }

  static async create(model: Model, inputs: Readonly<Record<string, Tensor>>, options: AttributionOptions = {}): Promise<Attributor> {
    const { wrtName, site, isInput } = resolveWrt(model, options);
    // A custom seed may weigh any site (a neuron, a channel): it is captured like an output.
    const t = options.target;
    const named = typeof t === 'object' && t !== null && !Array.isArray(t) && 'seed' in t && t.output !== undefined ? model.site(t.output).value : undefined;
    const scoreSite = named !== undefined && !model.outputs.some((o) => o.name === named) ? named : undefined;
    const capture = [...(isInput ? [] : [site]), ...(scoreSite ? [scoreSite] : [])];
    const base = await model.run(inputs, { capture, signal: options.signal });
    const x = isInput ? inputs[site] : base.captures[site];
    const outputs = scoreSite ? { ...base.outputs, [scoreSite]: base.captures[scoreSite] } : base.outputs;
    const target = named !== undefined ? { output: named, seed: (t as { seed: Tensor }).seed } : options.target;
    return Attributor.assemble(model, inputs, wrtName, site, isInput, x, outputs, target, options);
  }

  /**
   * An attributor and the gradient at the examples themselves, in one forward + backward run where it can be: for
   * the predicted class (the default target) the class is found inside the gradient graph; other targets take a
   * forward run first. `rules` replaces the VJP rules (guided backprop…).
   */
  static async withGradient(
    model: Model,
    inputs: Readonly<Record<string, Tensor>>,
    options: AttributionOptions = {},
    rules?: { readonly table: RuleTable; readonly name: string },
  ): Promise<{ readonly a: Attributor; readonly grads: Float32Array }> {
    const t = options.target;
    const output = model.outputs[0];
    const rank = output.shape?.length;
    if ((t === undefined || t === 'predicted') && (rank === 2 || rank === 3) && output.dtype === 'float32') {
      const { wrtName, site, isInput } = resolveWrt(model, options);
      const r = await model.grad(inputs, {
        of: output.name,
        wrt: [site],
        seed: 'predicted',
        capture: isInput ? [] : [site],
        rules: rules?.table,
        rulesName: rules?.name,
        maxBatchBytes: options.maxBatchBytes,
        signal: options.signal,
        optimization: 'all',
      });
      const a = await Attributor.assemble(model, inputs, wrtName, site, isInput, isInput ? inputs[site] : r.captures[site], r.outputs, 'predicted', options);
      return { a, grads: r.grads[site].data as Float32Array };
    }
    const a = await Attributor.create(model, inputs, options);
    const grads = new Float32Array(a.x.size);
    await a.gradients(a.n, a.identity, (start, g) => grads.set(g, start * a.rowSize), rules);
    return { a, grads };
  }

  private static async assemble(
    model: Model,
    inputs: Readonly<Record<string, Tensor>>,
    wrtName: string,
    site: string,
    isInput: boolean,
    x: Tensor | undefined,
    outputs: Readonly<Record<string, Tensor>>,
    target: Target | undefined,
    options: AttributionOptions,
  ): Promise<Attributor> {
    if (!x || x.dtype !== 'float32') throw new Error(`attribution: '${wrtName}' must be float32, got ${x?.dtype ?? 'nothing'}`);
    if (x.rank < 1) throw new Error(`attribution: '${wrtName}' has no batch axis`);
    const resolved = resolveTarget(target, outputs, model.outputs[0].name, x.shape[0]);
    const runModel = isInput ? model : await cutModel(model, site);
    const others: Record<string, Tensor> = {};
    for (const inp of runModel.inputs) {
      if (inp.name === site) continue;
      const given = inputs[inp.name];
      if (!given) throw new Error(`attribution: input '${inp.name}' is needed`);
      others[inp.name] = given;
    }
    const scores0 = rowScores(outputs[resolved.output] as Tensor<'float32'>, resolved.seed);
    return new Attributor(runModel, wrtName, site, x as Tensor<'float32'>, others, resolved, scores0, options);
  }

  /** Rows per runtime call and per generated chunk, from the memory budget (about 16 bytes per value of a row). */
  get rowsPerChunk(): number {
    const budget = this.options.maxBatchBytes ?? DEFAULT_BUDGET;
    return Math.max(1, Math.floor(budget / Math.max(1, 16 * this.rowSize)));
  }

  /** Scores f of `total` variant rows. */
  async scores(total: number, make: RowMaker): Promise<Float32Array> {
    const out = new Float32Array(total);
    await this.chunks(total, make, async (start, rows, owner) => {
      const isOutput = this.runModel.outputs.some((o) => o.name === this.target.output);
      const r = await this.runModel.run(this.feeds(rows, owner), { capture: isOutput ? [] : [this.target.output], maxBatchBytes: this.options.maxBatchBytes, signal: this.options.signal });
      const out1 = isOutput ? r.outputs[this.target.output] : r.captures[this.target.output];
      out.set(rowScores(out1 as Tensor<'float32'>, gatherRows(this.target.seed, owner) as Tensor<'float32'>), start);
    });
    return out;
  }

  /** Scores and gradients ∂f/∂(wrt) of `total` variant rows, handed to `consume` chunk by chunk (rows × rowSize). */
  async gradients(
    total: number,
    make: RowMaker,
    consume: (start: number, grads: Float32Array, scores: Float32Array, owner: Int32Array) => void,
    rules?: { readonly table: RuleTable; readonly name: string },
  ): Promise<void> {
    await this.chunks(total, make, async (start, rows, owner) => {
      const seed = gatherRows(this.target.seed, owner);
      const r = await this.runModel.grad(this.feeds(rows, owner), {
        of: this.target.output,
        wrt: [this.wrt],
        seed,
        rules: rules?.table,
        rulesName: rules?.name,
        maxBatchBytes: this.options.maxBatchBytes,
        signal: this.options.signal,
        optimization: 'all',
      });
      // The scores of a site target are not among the outputs: leave them NaN rather than run a second pass.
      const of = r.outputs[this.target.output] as Tensor<'float32'> | undefined;
      const scores = of ? rowScores(of, seed as Tensor<'float32'>) : new Float32Array(owner.length).fill(NaN);
      consume(start, r.grads[this.wrt].data as Float32Array, scores, owner);
    });
  }

  /** The examples themselves as rows (one per example). */
  readonly identity: RowMaker = (start, end) => ({
    rows: this.x.data.slice(start * this.rowSize, end * this.rowSize),
    owner: Int32Array.from({ length: end - start }, (_, i) => start + i),
  });

  /** Feeds of `runModel` for variant rows: the rows at `wrt`, each owner's other inputs repeated. */
  feeds(rows: Float32Array, owner: Int32Array): Record<string, Tensor> {
    const feeds: Record<string, Tensor> = { [this.wrt]: new Tensor('float32', rows, [owner.length, ...this.rowShape]) };
    for (const [k, v] of Object.entries(this.others)) feeds[k] = v.rank > 0 && v.shape[0] === this.n ? gatherRows(v, owner) : v;
    return feeds;
  }

  private async chunks(total: number, make: RowMaker, run: (start: number, rows: Float32Array, owner: Int32Array) => Promise<void>): Promise<void> {
    const step = this.rowsPerChunk;
    for (let start = 0; start < total; start += step) {
      this.options.signal?.throwIfAborted();
      const end = Math.min(total, start + step);
      const { rows, owner } = make(start, end);
      if (rows.length !== (end - start) * this.rowSize || owner.length !== end - start) {
        throw new Error(`attribution: a chunk of rows [${start}, ${end}) must hold ${(end - start) * this.rowSize} values and ${end - start} owners`);
      }
      await run(start, rows, owner);
      this.options.onProgress?.(end, total);
    }
  }
}

/** Σ out ⊙ seed per row. */
export function rowScores(out: Tensor<'float32'>, seed: Tensor<'float32'>): Float32Array {
  const n = out.shape[0];
  const row = out.size / n;
  const s = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = 0; j < row; j++) acc += out.data[i * row + j] * seed.data[i * row + j];
    s[i] = acc;
  }
  return s;
}

/** A method's result from its attributor: what was explained (target, scores) comes from `a`. */
export function attributionResult(
  a: Attributor,
  parts: {
    readonly method: string;
    /** Values of `a.x`'s shape, or a tensor of another shape (a site's, a map's). */
    readonly attributions: Float32Array | Tensor<'float32'>;
    readonly started: number;
    readonly checks?: Check[];
    readonly params?: Record<string, unknown>;
    readonly extra?: Attribution['extra'];
    /** Default: passive, attribution, local. */
    readonly taxonomy?: Taxonomy;
    readonly wrt?: string;
  },
): Attribution {
  return {
    method: parts.method,
    taxonomy: parts.taxonomy ?? passiveAttribution('local'),
    wrt: parts.wrt ?? a.wrtName,
    attributions: parts.attributions instanceof Tensor ? parts.attributions : new Tensor('float32', parts.attributions, a.x.shape),
    output: a.target.output,
    targets: a.target.classes,
    scores: a.scores0,
    checks: parts.checks ?? [],
    params: parts.params ?? {},
    ...(parts.extra ? { extra: parts.extra } : {}),
    ms: performance.now() - parts.started,
  };
}
