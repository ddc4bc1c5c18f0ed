/**
 * LRP rules for linear layers (Bach et al. 2015, "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by
 * Layer-Wise Relevance Propagation"; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview"), as
 * modified gradients. Relevance is everywhere a value times its modified gradient, R = v ⊙ g, so ReLU, max-pooling
 * (winner takes all), average pooling, sums and reshapes keep their exact gradients, and a linear layer with output
 * relevance R_j = y_j·g_j hands its input the modified gradient
 *
 *   g_i = Σ_j ρ(w_ij) · R_j / (z_j + ε·sign z_j),   z_j = Σ_i x′_i·ρ(w_ij) (+ ρ(b_j)),
 *
 * so that x_i·g_i is the rule's R_i. Input-layer rules (zᴮ, flat, w²) do not scale with x; they emit the relevance
 * R_i itself and may stand only at the input layers (path.ts), where the method reads relevance, not x ⊙ g.
 *
 * @example
 * const rule = makeRule({ rule: 'gamma', gamma: 0.25 }); // LRP-γ on a layer with non-negative inputs
 */
import type { Tensor } from '../../../runtime/tensor.js';
import type { Layer } from './layer.js';

/** A rule by name, or with its parameters. */
export type RuleSpec =
  | RuleName
  | { readonly rule: 'zero' }
  | { readonly rule: 'epsilon'; readonly epsilon?: number }
  | { readonly rule: 'gamma'; readonly gamma?: number }
  | { readonly rule: 'alpha-beta'; readonly alpha?: number; readonly beta?: number }
  | { readonly rule: 'zplus' }
  | { readonly rule: 'zbox'; readonly low?: Bound; readonly high?: Bound }
  | { readonly rule: 'flat' }
  | { readonly rule: 'w-square' };

/**
 * A bound of zᴮ: a number, a tensor broadcastable to the layer's input (per channel: [1, C, 1, 1]), or 'example':
 * the least (greatest) value of each example's input, computed in the graph.
 */
export type Bound = number | Tensor | 'example';

export interface LrpRule {
  /** 'any': emits the modified gradient g (R = x ⊙ g); 'input': emits the relevance R itself, at input layers only. */
  readonly kind: 'any' | 'input';
  readonly emit: (l: Layer) => string;
}

/** Defaults: ε as zennit's Epsilon, γ as Montavon et al. 2019 (§10.2), α1β0, and the denominator stabiliser. */
export const LRP_DEFAULTS = { epsilon: 1e-6, gamma: 0.25, alpha: 1, beta: 0, stabilizer: 1e-9 } as const;

const finite = (v: number | undefined, fallback: number, what: string, min = 0): number => {
  const x = v ?? fallback;
  if (!Number.isFinite(x) || x < min) throw new Error(`LRP: ${what} must be a finite number ≥ ${min}, got ${String(v)}`);
  return x;
};

/** ε-rule: z = y (the layer's own output, bias included); ε = 0 is LRP-0 (still stabilised against z = 0). */
const epsilon = (eps: number): LrpRule => ({
  kind: 'any',
  emit: (l) => l.backward(l.w, l.share(l.relevance, l.y, Math.max(eps, LRP_DEFAULTS.stabilizer))),
});

/** γ-rule: ρ(w) = w + γ·w⁺, ρ(b) = b + γ·b⁺; meant for layers whose inputs are non-negative (after ReLU). */
const gamma = (g: number): LrpRule => ({
  kind: 'any',
  emit: (l) => {
    const lift = (v: string) => l.e.op1('Add', [v, l.e.op1('Mul', [l.pos(v), l.scalar(g)])]);
    const w = lift(l.w);
    const z = l.forward(l.x, w, l.b && lift(l.b));
    return l.backward(w, l.share(l.relevance, z, LRP_DEFAULTS.stabilizer));
  },
});

/**
 * α-β rule (Bach et al. 2015 without biases, as Montavon et al. 2019 write it): positive contributions x·w get
 * α·R, negative ones −β·R. For signed inputs (x·w)⁺ = x⁺w⁺ + x⁻w⁻, so g = A where x ≥ 0 and B where x < 0.
 */
const alphaBeta = (alpha: number, beta: number): LrpRule => ({
  kind: 'any',
  emit: (l) => {
    const e = l.e;
    const [xp, xn, wp, wn] = [l.pos(l.x), l.neg(l.x), l.pos(l.w), l.neg(l.w)];
    const r = l.relevance;
    const stab = LRP_DEFAULTS.stabilizer;
    const scaled = (s: string, k: number) => (k === 1 ? s : e.op1('Mul', [s, l.scalar(k)]));
    const sp = scaled(l.share(r, e.op1('Add', [l.forward(xp, wp), l.forward(xn, wn)]), stab), alpha);
    let A = l.backward(wp, sp);
    let B = l.backward(wn, sp);
    if (beta > 0) {
      const sn = scaled(l.share(r, e.op1('Add', [l.forward(xp, wn), l.forward(xn, wp)]), stab), beta);
      A = e.op1('Sub', [A, l.backward(wn, sn)]);
      B = e.op1('Sub', [B, l.backward(wp, sn)]);
    }
    return e.op1('Where', [e.op1('Less', [l.x, l.scalar(0)]), B, A]);
  },
});

/** A bound as a tensor of the layer input's shape. */
function bound(l: Layer, b: Bound, which: 'low' | 'high'): string {
  const e = l.e;
  if (b === 'example') return e.op1('Expand', [l.extreme(which === 'low' ? 'ReduceMin' : 'ReduceMax', l.x), e.op1('Shape', [l.x])]);
  if (typeof b === 'number') return e.op1('Expand', [l.scalar(finite(b, 0, `zbox ${which}`, -Infinity)), e.op1('Shape', [l.x])]);
  if (b.dtype !== 'float32') throw new Error(`LRP: zbox ${which} must be a float32 tensor, got ${b.dtype}`);
  return e.op1('Expand', [e.constant(b), e.op1('Shape', [l.x])]);
}

/** zᴮ (Montavon et al. 2017, DTD): inputs bounded by l ≤ x ≤ h; R_i = Σ_j (x_i w_ij − l_i w⁺_ij − h_i w⁻_ij)/z_j · R_j. */
const zbox = (low: Bound, high: Bound): LrpRule => ({
  kind: 'input',
  emit: (l) => {
    const e = l.e;
    const [lo, hi, wp, wn] = [bound(l, low, 'low'), bound(l, high, 'high'), l.pos(l.w), l.neg(l.w)];
    const z = e.op1('Sub', [e.op1('Sub', [l.forward(l.x, l.w), l.forward(lo, wp)]), l.forward(hi, wn)]);
    const s = l.share(l.relevance, z, LRP_DEFAULTS.stabilizer);
    const terms = [e.op1('Mul', [l.x, l.backward(l.w, s)]), e.op1('Mul', [lo, l.backward(wp, s)]), e.op1('Mul', [hi, l.backward(wn, s)])];
    return e.op1('Sub', [e.op1('Sub', [terms[0], terms[1]]), terms[2]]);
  },
});

/** ρ-weighted redistribution that ignores x: flat (ρ(w) = 1, Lapuschkin et al. 2019) and w² (Montavon et al. 2017). */
const inputFree = (rho: (l: Layer) => string): LrpRule => ({
  kind: 'input',
  emit: (l) => {
    const w = rho(l);
    const z = l.forward(l.fill(l.x, 1), w);
    return l.backward(w, l.share(l.relevance, z, LRP_DEFAULTS.stabilizer));
  },
});

export type RuleName = 'zero' | 'epsilon' | 'gamma' | 'alpha-beta' | 'zplus' | 'zbox' | 'flat' | 'w-square';

type Params = Exclude<RuleSpec, RuleName>;
type ParamsOf<N extends RuleName> = Extract<Params, { rule: N }>;

/** Every rule by name, with what it reads of its parameters. */
export const LRP_RULES: { readonly [N in RuleName]: (p: ParamsOf<N>) => LrpRule } = {
  zero: () => epsilon(0),
  epsilon: (p) => epsilon(finite(p.epsilon, LRP_DEFAULTS.epsilon, 'epsilon')),
  gamma: (p) => gamma(finite(p.gamma, LRP_DEFAULTS.gamma, 'gamma')),
  'alpha-beta': (p) => {
    const alpha = finite(p.alpha, LRP_DEFAULTS.alpha, 'alpha', 1);
    const beta = finite(p.beta, p.alpha === undefined ? LRP_DEFAULTS.beta : alpha - 1, 'beta');
    if (Math.abs(alpha - beta - 1) > 1e-9) throw new Error(`LRP: alpha-beta needs α − β = 1 to conserve relevance, got α = ${alpha}, β = ${beta}`);
    return alphaBeta(alpha, beta);
  },
  zplus: () => alphaBeta(1, 0),
  zbox: (p) => zbox(p.low ?? 'example', p.high ?? 'example'),
  flat: () => inputFree((l) => l.fill(l.w, 1)),
  'w-square': () => inputFree((l) => l.e.op1('Mul', [l.w, l.w])),
};

/** The rule a spec names; throws naming an unknown rule. */
export function makeRule(spec: RuleSpec): LrpRule {
  const p = (typeof spec === 'string' ? { rule: spec } : spec) as Params;
  const make = LRP_RULES[p.rule] as ((p: Params) => LrpRule) | undefined;
  if (!make) throw new Error(`LRP: unknown rule '${String(p.rule)}' (rules: ${Object.keys(LRP_RULES).join(', ')})`);
  return make(p);
}

/** A stable text of a spec for the compiled-graph cache key (tensor bounds by identity). */
export function describeSpec(spec: RuleSpec): string {
  if (typeof spec === 'string') return spec;
  return JSON.stringify(spec, (_k, v: unknown) => (v && typeof v === 'object' && 'dtype' in v ? `tensor#${tensorId(v as Tensor)}` : v));
}

const ids = new WeakMap<Tensor, number>();
let nextId = 0;
function tensorId(t: Tensor): number {
  let id = ids.get(t);
  if (id === undefined) ids.set(t, (id = nextId++));
  return id;
}
