/**
 * Host-side probe models on Float32Array feature matrices (rows × features, row-major): softmax regression and a
 * one-hidden-layer ReLU MLP trained by minibatch Adam (Kingma & Ba 2015) on the mean cross-entropy plus an L2
 * penalty, and ridge regression (Hoerl & Kennard 1970) in closed form, primal (XᵀX + λI)⁻¹XᵀY when features ≤ rows,
 * dual Xᵀ(XXᵀ + λI)⁻¹Y otherwise. Features are standardised with the training rows' mean and standard deviation
 * inside each fit; the returned weights act on raw features.
 *
 * Where: softmax and MLP probes train by default as an ONNX graph with the project's Trainer (engine 'onnx'); a host
 * loop (engine 'host') does the same in plain TypeScript. bench/probe.ts on 10,000 × 512 features, 10 classes, 2
 * threads, two runs on a shared 2-core machine: Trainer 74k–89k examples/s, host 36k–43k, PyTorch 1.13 12k–27k
 * (bench/results/probe.json).
 *
 * @example
 * const m = fitSoftmax(x, labels, { rows: 1000, features: 64, classes: 10 }, { epochs: 20, seed: 1 });
 * const yhat = m.predict(x, 1000); // class per row
 */
import { dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32, permutation } from '../../data/datasets/random.js';
import { mlp } from '../../model/builders/mlp.js';
import { Trainer } from '../../model/train/trainer.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';

export interface Shape {
  readonly rows: number;
  readonly features: number;
  /** Classes (classification) or target columns (ridge). */
  readonly classes: number;
}

export interface TrainOptions {
  readonly epochs?: number;
  readonly lr?: number;
  /** L2 penalty on the weights (default 1e-4 for softmax and MLP, 1 for ridge, on standardised features). */
  readonly l2?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  /** Hidden width of the MLP probe (default 64). */
  readonly hidden?: number;
  /**
   * Where softmax and MLP probes train (default 'onnx'): as an ONNX graph (builders' mlp) by the project's Trainer,
   * Adam with weightDecay = l2, or by the host loop below. bench/probe.ts measured the ONNX path about 2× faster.
   */
  readonly engine?: 'onnx' | 'host';
}

/** A fitted probe: raw scores (logits, or predicted targets for ridge) per row, and the argmax class. */
export interface FittedProbe {
  /** [rows, classes] scores for raw features [rows, features]. */
  scores(x: Float32Array, rows: number): Float32Array;
  predict(x: Float32Array, rows: number): Int32Array;
  /** Linear probes: weights [features, classes] and bias [classes] on raw features. */
  readonly weights?: Float64Array;
  readonly bias?: Float64Array;
}

/** Per-feature mean and 1/std of the rows (std floored, so a constant feature maps to 0). */
export function standardizer(x: Float32Array, rows: number, d: number): { mean: Float64Array; inv: Float64Array } {
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let i = 0; i < rows; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= Math.max(1, rows);
  for (let i = 0; i < rows; i++) for (let j = 0; j < d; j++) sq[j] += (x[i * d + j] - mean[j]) ** 2;
  const inv = Float64Array.from(sq, (s) => {
    const sd = Math.sqrt(s / Math.max(1, rows));
    return sd > 1e-6 ? 1 / sd : 0;
  });
  return { mean, inv };
}

function standardized(x: Float32Array, rows: number, d: number, s: { mean: Float64Array; inv: Float64Array }): Float32Array {
  const out = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) for (let j = 0; j < d; j++) out[i * d + j] = (x[i * d + j] - s.mean[j]) * s.inv[j];
  return out;
}

function argmaxRows(scores: Float32Array, rows: number, k: number): Int32Array {
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (scores[i * k + c] > scores[i * k + best]) best = c;
    out[i] = best;
  }
  return out;
}

function checkShape(what: string, x: Float32Array, s: Shape): void {
  if (x.length !== s.rows * s.features) throw new Error(`${what}: ${x.length} feature values are not ${s.rows} rows × ${s.features} features`);
  if (!(s.rows > 0 && s.features > 0 && s.classes > 0)) throw new Error(`${what}: needs rows, features and classes > 0, got ${s.rows}, ${s.features}, ${s.classes}`);
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new Error(`${what}: feature ${i % s.features} of row ${Math.floor(i / s.features)} is ${x[i]}`);
}

function checkLabels(what: string, y: ArrayLike<number>, s: Shape): void {
  if (y.length !== s.rows) throw new Error(`${what}: ${y.length} labels for ${s.rows} rows`);
  for (let i = 0; i < y.length; i++) {
    if (!(Number.isInteger(y[i]) && y[i] >= 0 && y[i] < s.classes)) throw new Error(`${what}: label ${y[i]} of row ${i} is not a class in [0, ${s.classes})`);
  }
}

function positive(what: string, name: string, v: number, integer: boolean): number {
  if (!(Number.isFinite(v) && v > 0 && (!integer || Number.isInteger(v)))) throw new Error(`${what}: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  return v;
}

/** Adam over a list of parameter arrays with their gradient arrays. */
function adam(params: Float32Array[], lr: number): (grads: Float64Array[]) => void {
  const m = params.map((p) => new Float32Array(p.length));
  const v = params.map((p) => new Float32Array(p.length));
  let t = 0;
  return (grads) => {
    t++;
    const c1 = 1 - 0.9 ** t;
    const c2 = 1 - 0.999 ** t;
    params.forEach((p, q) => {
      const g = grads[q];
      const mq = m[q];
      const vq = v[q];
      for (let i = 0; i < p.length; i++) {
        mq[i] = 0.9 * mq[i] + 0.1 * g[i];
        vq[i] = 0.999 * vq[i] + 0.001 * g[i] * g[i];
        p[i] -= (lr * mq[i]) / c1 / (Math.sqrt(vq[i] / c2) + 1e-8);
      }
    });
  };
}

/** Rows' outputs = x Wᵀ + b for x [rows, d] and W [k, d] (each output's weights contiguous, so the inner loop is a dot product). */
function affine(x: Float32Array, rows: number, d: number, w: Float32Array, b: Float32Array, k: number, out = new Float32Array(rows * k)): Float32Array {
  for (let i = 0; i < rows; i++) {
    const xo = i * d;
    for (let c = 0; c < k; c++) {
      const wo = c * d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let j = 0;
      for (; j + 3 < d; j += 4) {
        s0 += x[xo + j] * w[wo + j];
        s1 += x[xo + j + 1] * w[wo + j + 1];
        s2 += x[xo + j + 2] * w[wo + j + 2];
        s3 += x[xo + j + 3] * w[wo + j + 3];
      }
      for (; j < d; j++) s0 += x[xo + j] * w[wo + j];
      out[i * k + c] = b[c] + s0 + s1 + s2 + s3;
    }
  }
  return out;
}

/** Turns logits into (softmax − one-hot) / rows in place; returns the summed cross-entropy. */
function softmaxGrad(logits: Float32Array, y: ArrayLike<number>, rows: number, k: number, scale: number): number {
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    const o = i * k;
    let max = -Infinity;
    for (let c = 0; c < k; c++) max = Math.max(max, logits[o + c]);
    let z = 0;
    for (let c = 0; c < k; c++) z += (logits[o + c] = Math.exp(logits[o + c] - max));
    loss -= Math.log(Math.max(1e-30, logits[o + y[i]] / z));
    for (let c = 0; c < k; c++) logits[o + c] = (logits[o + c] / z - (c === y[i] ? 1 : 0)) * scale;
  }
  return loss;
}

/** gW += gᵀ x (x [rows, d], g [rows, k], gW [k, d]); gb += Σ rows of g. */
function accumulate(x: Float32Array, rows: number, d: number, g: Float32Array, k: number, gw: Float64Array, gb: Float64Array): void {
  for (let i = 0; i < rows; i++) {
    const xo = i * d;
    for (let c = 0; c < k; c++) {
      const gv = g[i * k + c];
      gb[c] += gv;
      if (gv === 0) continue;
      const wo = c * d;
      let j = 0;
      for (; j + 3 < d; j += 4) {
        gw[wo + j] += gv * x[xo + j];
        gw[wo + j + 1] += gv * x[xo + j + 1];
        gw[wo + j + 2] += gv * x[xo + j + 2];
        gw[wo + j + 3] += gv * x[xo + j + 3];
      }
      for (; j < d; j++) gw[wo + j] += gv * x[xo + j];
    }
  }
}

/** Rows of x (standardised) at the given indices, packed. */
function gatherRows(x: Float32Array, d: number, ix: Int32Array, from: number, to: number, out: Float32Array): Float32Array {
  for (let r = from; r < to; r++) out.set(x.subarray(ix[r] * d, ix[r] * d + d), (r - from) * d);
  return out;
}

/** Softmax (multinomial logistic) regression by minibatch Adam. */
export function fitSoftmax(x: Float32Array, y: ArrayLike<number>, s: Shape, o: TrainOptions = {}): Promise<FittedProbe> {
  return fitNet('softmax probe', x, y, s, { ...o, hidden: 0 });
}

/** One-hidden-layer ReLU MLP (width `hidden`, default 64) by minibatch Adam. */
export function fitMlp(x: Float32Array, y: ArrayLike<number>, s: Shape, o: TrainOptions = {}): Promise<FittedProbe> {
  return fitNet('mlp probe', x, y, s, { ...o, hidden: positive('mlp probe', 'hidden', o.hidden ?? 64, true) });
}

async function fitNet(what: string, xRaw: Float32Array, y: ArrayLike<number>, s: Shape, o: TrainOptions & { hidden: number }): Promise<FittedProbe> {
  checkShape(what, xRaw, s);
  checkLabels(what, y, s);
  const epochs = positive(what, 'epochs', o.epochs ?? 30, true);
  const lr = positive(what, 'lr', o.lr ?? 1e-2, false);
  const batch = positive(what, 'batchSize', o.batchSize ?? 256, true);
  const l2 = o.l2 ?? 1e-4;
  if (!(l2 >= 0)) throw new Error(`${what}: l2 must be ≥ 0, got ${l2}`);
  const engine = o.engine ?? 'onnx';
  if (engine !== 'onnx' && engine !== 'host') throw new Error(`${what}: engine must be 'onnx' or 'host', got '${String(engine)}'`);
  const { rows, features: d, classes: k } = s;
  const h = o.hidden;
  const std = standardizer(xRaw, rows, d);
  const x = standardized(xRaw, rows, d, std);
  const trained = engine === 'onnx' ? await trainOnnx(x, y, s, h, { epochs, lr, l2, batch, seed: o.seed ?? 0 }) : undefined;
  const rand = mulberry32(o.seed ?? 0);
  const init = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (2 * rand() - 1) * Math.sqrt(1 / fanIn));
  // Stored output-major: softmax W1 [k, d]; MLP W1 [h, d], W2 [k, h].
  const w1 = trained?.w1 ?? (h > 0 ? init(d * h, d / 2) : new Float32Array(d * k));
  const b1 = trained?.b1 ?? new Float32Array(h > 0 ? h : k);
  const w2 = trained?.w2 ?? (h > 0 ? init(h * k, h) : new Float32Array(0));
  const b2 = trained?.b2 ?? new Float32Array(h > 0 ? k : 0);
  const params = h > 0 ? [w1, b1, w2, b2] : [w1, b1];
  const grads = params.map((p) => new Float64Array(p.length));
  const step = adam(params, lr);
  const xb = new Float32Array(batch * d);
  const yb = new Int32Array(batch);
  const hid = new Float32Array(batch * Math.max(h, 1));
  const gh = new Float32Array(batch * Math.max(h, 1));
  const logits = new Float32Array(batch * k);
  for (let e = 0; e < (trained ? 0 : epochs); e++) {
    const order = permutation(rows, mixSeed(o.seed ?? 0, e));
    for (let from = 0; from < rows; from += batch) {
      const n = Math.min(batch, rows - from);
      gatherRows(x, d, order, from, from + n, xb);
      for (let r = 0; r < n; r++) yb[r] = y[order[from + r]];
      for (const g of grads) g.fill(0);
      if (h === 0) {
        affine(xb, n, d, w1, b1, k, logits);
        softmaxGrad(logits, yb, n, k, 1 / n);
        accumulate(xb, n, d, logits, k, grads[0], grads[1]);
      } else {
        affine(xb, n, d, w1, b1, h, hid);
        for (let i = 0; i < n * h; i++) if (hid[i] < 0) hid[i] = 0;
        affine(hid, n, h, w2, b2, k, logits);
        softmaxGrad(logits, yb, n, k, 1 / n);
        accumulate(hid, n, h, logits, k, grads[2], grads[3]);
        // dL/dhidden = g W2ᵀ, masked by the ReLU.
        for (let i = 0; i < n; i++) {
          for (let u = 0; u < h; u++) {
            let sum = 0;
            if (hid[i * h + u] > 0) for (let c = 0; c < k; c++) sum += logits[i * k + c] * w2[c * h + u];
            gh[i * h + u] = sum;
          }
        }
        accumulate(xb, n, d, gh, h, grads[0], grads[1]);
        for (let i = 0; i < w2.length; i++) grads[2][i] += l2 * w2[i];
      }
      for (let i = 0; i < w1.length; i++) grads[0][i] += l2 * w1[i];
      step(grads);
    }
  }
  const scores = (xr: Float32Array, n: number): Float32Array => {
    if (xr.length !== n * d) throw new Error(`${what}: ${xr.length} feature values are not ${n} rows × ${d} features`);
    const xs = standardized(xr, n, d, std);
    if (h === 0) return affine(xs, n, d, w1, b1, k);
    const hh = affine(xs, n, d, w1, b1, h);
    for (let i = 0; i < hh.length; i++) if (hh[i] < 0) hh[i] = 0;
    return affine(hh, n, h, w2, b2, k);
  };
  // Public weights are [d, k] (feature-major).
  const linear = h === 0 ? rawWeights(Float64Array.from({ length: d * k }, (_, q) => w1[(q % k) * d + Math.floor(q / k)]), b1, std, d, k) : undefined;
  return { scores, predict: (xr, n) => argmaxRows(scores(xr, n), n, k), ...linear };
}

/**
 * The same network as an ONNX graph (mlp builder: Gemm with W [out, in], the host loop's layout) trained by Trainer
 * on standardised rows; returns its weights.
 */
async function trainOnnx(x: Float32Array, y: ArrayLike<number>, s: Shape, h: number, o: { epochs: number; lr: number; l2: number; batch: number; seed: number }) {
  const { rows, features: d, classes: k } = s;
  const labels = Int32Array.from({ length: rows }, (_, i) => y[i]);
  const ds = dataset({
    name: 'probe features', size: rows, inputShape: [d], inputDType: 'float32', labels, numClasses: k,
    gather: (ix) => {
      const out = new Float32Array(ix.length * d); // [B, d]
      ix.forEach((r, i) => out.set(x.subarray(r * d, r * d + d), i * d));
      return { x: Tensor.float32(out, [ix.length, d]), y: new Tensor('int64', BigInt64Array.from(ix, (i) => BigInt(labels[i])), [ix.length]) };
    },
  });
  const t = await Trainer.create(mlp({ inputs: [d], hidden: h > 0 ? [h] : [], classes: k, seed: o.seed }), { optimizer: { kind: 'adam', lr: o.lr, weightDecay: o.l2 } });
  try {
    await t.fit(ds, { epochs: o.epochs, batchSize: o.batch, seed: o.seed });
    const inits = new Map(t.exportModel().graph!.initializer.map((p) => [p.name, p]));
    const get = (name: string) => {
      const p = inits.get(name);
      if (!p) throw new Error(`probe: the trained graph has no weight '${name}'`);
      return Float32Array.from(tensorFromProto(p).data as Float32Array);
    };
    return h > 0 ? { w1: get('fc1.weight'), b1: get('fc1.bias'), w2: get('fc2.weight'), b2: get('fc2.bias') } : { w1: get('fc1.weight'), b1: get('fc1.bias') };
  } finally {
    await t.dispose();
  }
}

/** Weights on standardised features → weights and bias on raw features. */
function rawWeights(w: ArrayLike<number>, b: ArrayLike<number>, s: { mean: Float64Array; inv: Float64Array }, d: number, k: number) {
  const weights = new Float64Array(d * k);
  const bias = Float64Array.from({ length: k }, (_, c) => b[c]);
  for (let j = 0; j < d; j++) {
    for (let c = 0; c < k; c++) {
      weights[j * k + c] = w[j * k + c] * s.inv[j];
      bias[c] -= weights[j * k + c] * s.mean[j];
    }
  }
  return { weights, bias };
}

/** Solves A X = B in place for symmetric positive definite A [n, n] and B [n, m] (Cholesky). */
function choleskySolve(a: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  for (let j = 0; j < n; j++) {
    let diag = a[j * n + j];
    for (let p = 0; p < j; p++) diag -= a[j * n + p] ** 2;
    if (!(diag > 0)) throw new Error(`ridge probe: the regularised Gram matrix is not positive definite at ${j} (use l2 > 0)`);
    const l = Math.sqrt(diag);
    a[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let p = 0; p < j; p++) s -= a[i * n + p] * a[j * n + p];
      a[i * n + j] = s / l;
    }
  }
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = b[i * m + c];
      for (let p = 0; p < i; p++) s -= a[i * n + p] * b[p * m + c];
      b[i * m + c] = s / a[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = b[i * m + c];
      for (let p = i + 1; p < n; p++) s -= a[p * n + i] * b[p * m + c];
      b[i * m + c] = s / a[i * n + i];
    }
  }
  return b;
}

/**
 * Ridge regression of targets Y [rows, classes] (one column per target; for classification, one-hot labels) on
 * standardised features with a free intercept: minimises ‖Y − XW − 1b‖² + l2‖W‖².
 */
export function fitRidge(xRaw: Float32Array, targets: Float64Array, s: Shape, o: TrainOptions = {}): FittedProbe {
  const what = 'ridge probe';
  checkShape(what, xRaw, s);
  if (targets.length !== s.rows * s.classes) throw new Error(`${what}: ${targets.length} target values are not ${s.rows} rows × ${s.classes} columns`);
  const l2 = o.l2 ?? 1;
  if (!(l2 >= 0)) throw new Error(`${what}: l2 must be ≥ 0, got ${l2}`);
  const { rows: n, features: d, classes: k } = s;
  const std = standardizer(xRaw, n, d);
  const x = standardized(xRaw, n, d, std);
  const ym = new Float64Array(k);
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) ym[c] += targets[i * k + c] / n;
  const yc = Float64Array.from(targets, (v, i) => v - ym[i % k]);
  let w: Float64Array;
  if (d <= n) {
    const a = new Float64Array(d * d);
    const b = new Float64Array(d * k);
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < d; p++) {
        const xp = x[i * d + p];
        if (xp === 0) continue;
        for (let q = 0; q <= p; q++) a[p * d + q] += xp * x[i * d + q];
        for (let c = 0; c < k; c++) b[p * k + c] += xp * yc[i * k + c];
      }
    }
    for (let p = 0; p < d; p++) {
      for (let q = 0; q < p; q++) a[q * d + p] = a[p * d + q];
      a[p * d + p] += l2;
    }
    w = choleskySolve(a, d, b, k);
  } else {
    // Dual: W = Xᵀ (XXᵀ + λI)⁻¹ Y, an n × n system.
    if (!(l2 > 0)) throw new Error(`${what}: more features (${d}) than rows (${n}) needs l2 > 0`);
    const g = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let sum = 0;
        for (let p = 0; p < d; p++) sum += x[i * d + p] * x[j * d + p];
        g[i * n + j] = g[j * n + i] = sum;
      }
      g[i * n + i] += l2;
    }
    const alpha = choleskySolve(g, n, Float64Array.from(yc), k);
    w = new Float64Array(d * k);
    for (let i = 0; i < n; i++) for (let p = 0; p < d; p++) for (let c = 0; c < k; c++) w[p * k + c] += x[i * d + p] * alpha[i * k + c];
  }
  const { weights, bias } = rawWeights(w, ym, std, d, k);
  const scores = (xr: Float32Array, rows: number): Float32Array => {
    if (xr.length !== rows * d) throw new Error(`${what}: ${xr.length} feature values are not ${rows} rows × ${d} features`);
    const out = new Float32Array(rows * k);
    for (let i = 0; i < rows; i++) {
      for (let c = 0; c < k; c++) {
        let sum = bias[c];
        for (let p = 0; p < d; p++) sum += xr[i * d + p] * weights[p * k + c];
        out[i * k + c] = sum;
      }
    }
    return out;
  };
  return { scores, predict: (xr, rows) => argmaxRows(scores(xr, rows), rows, k), weights, bias };
}

/** Accuracy of predicted classes against labels. */
export function accuracy(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  let hit = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) hit++;
  return y.length === 0 ? NaN : hit / y.length;
}

/** Coefficient of determination of predictions [rows, k] against targets, pooled over columns, with `mean` the reference. */
export function rSquared(pred: ArrayLike<number>, y: ArrayLike<number>, mean: ArrayLike<number>): number {
  const k = mean.length;
  let res = 0;
  let tot = 0;
  for (let i = 0; i < y.length; i++) {
    res += (y[i] - pred[i]) ** 2;
    tot += (y[i] - mean[i % k]) ** 2;
  }
  return tot === 0 ? NaN : 1 - res / tot;
}
