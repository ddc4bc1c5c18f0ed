/**
 * Optimisers on the host, over the weights' Float32Arrays, with PyTorch's update rules (torch.optim.SGD, Adam,
 * AdamW, single-tensor form). State is kept in float32 as PyTorch keeps it; each element's update is computed in
 * float64 and rounded once per stored value, so results agree with PyTorch to float32 rounding, not bit for bit.
 *
 * - SGD: d = g + λp; with momentum μ: b = d on the first step, else μb + (1 − τ)d; d = b (or d + μb with Nesterov);
 *   p ← p − lr·d.
 * - Adam (Kingma & Ba 2015): g ← g + λp (L2 penalty); m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
 *   p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
 * - AdamW (Loshchilov & Hutter 2019): decoupled decay p ← p(1 − lr·λ) first, then Adam's update without the penalty.
 */

export type OptimizerConfig =
  | { readonly kind: 'sgd'; readonly lr: number; readonly momentum?: number; readonly dampening?: number; readonly nesterov?: boolean; readonly weightDecay?: number }
  | { readonly kind: 'adam' | 'adamw'; readonly lr: number; readonly betas?: readonly [number, number]; readonly eps?: number; readonly weightDecay?: number };

/** A config with every default filled in (PyTorch's: momentum 0, betas (0.9, 0.999), eps 1e-8, decay 0 / 0.01 for AdamW). */
export type FullConfig =
  | { kind: 'sgd'; lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number }
  | { kind: 'adam' | 'adamw'; lr: number; betas: [number, number]; eps: number; weightDecay: number };

export function fullConfig(c: OptimizerConfig): FullConfig {
  const full: FullConfig = c.kind === 'sgd'
    ? { kind: 'sgd', lr: c.lr, momentum: c.momentum ?? 0, dampening: c.dampening ?? 0, nesterov: c.nesterov ?? false, weightDecay: c.weightDecay ?? 0 }
    : { kind: c.kind, lr: c.lr, betas: [c.betas?.[0] ?? 0.9, c.betas?.[1] ?? 0.999], eps: c.eps ?? 1e-8, weightDecay: c.weightDecay ?? (c.kind === 'adamw' ? 0.01 : 0) };
  const bad = (what: string, v: number) => new Error(`optimizer ${c.kind}: ${what} must be ${what === 'lr' ? 'positive' : 'in range'}, got ${v}`);
  if (!(full.lr > 0) || !Number.isFinite(full.lr)) throw bad('lr', full.lr);
  if (!(full.weightDecay >= 0)) throw bad('weightDecay', full.weightDecay);
  if (full.kind === 'sgd') {
    if (!(full.momentum >= 0)) throw bad('momentum', full.momentum);
    if (full.nesterov && (full.momentum <= 0 || full.dampening !== 0)) throw new Error('optimizer sgd: Nesterov momentum needs momentum > 0 and dampening 0');
  } else {
    for (const b of full.betas) if (!(b >= 0 && b < 1)) throw bad('betas', b);
  }
  return full;
}

/** The names of an optimiser's per-weight state buffers. */
export function slotsOf(c: FullConfig): readonly string[] {
  return c.kind === 'sgd' ? (c.momentum > 0 ? ['momentum'] : []) : ['exp_avg', 'exp_avg_sq'];
}

export class Optimizer {
  readonly config: FullConfig;
  /** Steps taken (PyTorch's `step` state; bias correction and the first momentum step read it). */
  steps = 0;
  /** The learning rate of the next step: `config.lr` unless a schedule changed it (PyTorch's `group['lr']`). */
  lr: number;
  /** State buffers by slot, then by weight name. */
  readonly state: ReadonlyMap<string, ReadonlyMap<string, Float32Array>>;

  constructor(config: OptimizerConfig, sizes: ReadonlyMap<string, number>) {
    this.config = fullConfig(config);
    this.lr = this.config.lr;
    this.state = new Map(slotsOf(this.config).map((slot) => [slot, new Map([...sizes].map(([w, n]) => [w, new Float32Array(n)]))]));
  }

  /** One update of every weight in place from its gradient. */
  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): void {
    this.steps++;
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g || g.length !== p.length) throw new Error(`optimizer: gradient of '${name}' has ${g?.length ?? 'no'} values, the weight ${p.length}`);
      if (this.config.kind === 'sgd') this.sgd(this.config, name, p, g);
      else this.adam(this.config, name, p, g);
    }
  }

  private slot(slot: string, name: string): Float32Array {
    return this.state.get(slot)!.get(name)!;
  }

  private sgd(c: Extract<FullConfig, { kind: 'sgd' }>, name: string, p: Float32Array, g: Float32Array): void {
    const { momentum: mu, dampening, nesterov, weightDecay: wd } = c;
    const lr = this.lr;
    const buf = mu > 0 ? this.slot('momentum', name) : undefined;
    const first = this.steps === 1;
    for (let i = 0; i < p.length; i++) {
      let d = wd === 0 ? g[i] : Math.fround(g[i] + wd * p[i]);
      if (buf) {
        buf[i] = first ? d : mu * buf[i] + (1 - dampening) * d;
        d = nesterov ? Math.fround(d + mu * buf[i]) : buf[i];
      }
      p[i] = p[i] - lr * d;
    }
  }

  private adam(c: Extract<FullConfig, { kind: 'adam' | 'adamw' }>, name: string, p: Float32Array, g: Float32Array): void {
    const { eps, weightDecay: wd } = c;
    const lr = this.lr;
    const [b1, b2] = c.betas;
    const m = this.slot('exp_avg', name);
    const v = this.slot('exp_avg_sq', name);
    const stepSize = lr / (1 - b1 ** this.steps);
    const bc2Sqrt = Math.sqrt(1 - b2 ** this.steps);
    const decay = c.kind === 'adamw' ? Math.fround(1 - lr * wd) : 1; // PyTorch multiplies by it as a float32 scalar
    const l2 = c.kind === 'adam' ? wd : 0;
    for (let i = 0; i < p.length; i++) {
      if (decay !== 1) p[i] *= decay;
      const gi = l2 === 0 ? g[i] : Math.fround(g[i] + l2 * p[i]);
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      p[i] = p[i] - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  }
}
