/**
 * Composites: which LRP rule each linear layer gets, as zennit's composites map layer types to rules (Montavon et
 * al. 2019 §10: "LRP-0 for upper layers, LRP-ε in the middle, LRP-γ for lower layers", and the input layer its own
 * rule). A composite picks by op type and by whether the layer is an input layer; a user map of node names or op
 * types (Gemm, MatMul, Conv) overrides it, node names first.
 *
 * @example
 * await lrp(model, { x }, { composite: 'epsilon-plus', rules: { '/fc3/Gemm': 'zero', Conv: { rule: 'gamma', gamma: 0.1 } } });
 */
import type { NodeProto } from '../../../onnx/proto.js';
import { unknownNameError } from '../../../util/nearest.js';
import { describeSpec, makeRule, type Bound, type LrpRule, type RuleSpec } from './lrp-rules.js';
import { LINEAR_OPS, nodeKey } from './path.js';

/** What a composite knows of a layer when it picks a rule. */
export interface LayerContext {
  readonly opType: string;
  /** The layer is fed by the attributed value through reshapes at most. */
  readonly input: boolean;
}

/** Settings composites read: ε, γ, and zᴮ's bounds (default: each example's own range). */
export interface CompositeSettings {
  readonly epsilon?: number;
  readonly gamma?: number;
  readonly low?: Bound;
  readonly high?: Bound;
}

export interface Composite {
  readonly title: string;
  readonly pick: (layer: LayerContext, s: CompositeSettings) => RuleSpec;
}

const eps = (s: CompositeSettings): RuleSpec => ({ rule: 'epsilon', epsilon: s.epsilon });
const box = (s: CompositeSettings): RuleSpec => ({ rule: 'zbox', low: s.low, high: s.high });
const isConv = (l: LayerContext) => l.opType === 'Conv';

export const COMPOSITES = {
  zero: { title: 'LRP-0 everywhere', pick: () => 'zero' },
  epsilon: { title: 'LRP-ε everywhere', pick: (_l, s) => eps(s) },
  gamma: { title: 'LRP-γ everywhere', pick: (_l, s) => ({ rule: 'gamma', gamma: s.gamma }) },
  'alpha-beta': { title: 'LRP-α1β0 everywhere', pick: () => ({ rule: 'alpha-beta', alpha: 1, beta: 0 }) },
  'alpha2-beta1': { title: 'LRP-α2β1 everywhere', pick: () => ({ rule: 'alpha-beta', alpha: 2, beta: 1 }) },
  zplus: { title: 'LRP-z⁺ everywhere', pick: () => 'zplus' },
  'epsilon-plus': { title: 'zᴮ at the input layer, z⁺ on convolutions, ε on dense layers', pick: (l, s) => (l.input ? box(s) : isConv(l) ? 'zplus' : eps(s)) },
  'epsilon-plus-flat': { title: 'flat at the input layer, z⁺ on convolutions, ε on dense layers', pick: (l, s) => (l.input ? 'flat' : isConv(l) ? 'zplus' : eps(s)) },
  'epsilon-gamma-box': {
    title: 'zᴮ at the input layer, γ on convolutions, ε on dense layers',
    pick: (l, s) => (l.input ? box(s) : isConv(l) ? { rule: 'gamma', gamma: s.gamma } : eps(s)),
  },
} satisfies Record<string, Composite>;

export type CompositeName = keyof typeof COMPOSITES;

/** Each linear layer of the path with its rule: the user's map first (node name, then op type), else the composite. */
export interface RulePlan {
  readonly rules: ReadonlyMap<string, LrpRule>;
  /** A text naming every choice, for the compiled-graph cache key and the record. */
  readonly describe: Readonly<Record<string, string>>;
}

export function planRules(
  path: readonly NodeProto[],
  inputLayers: ReadonlySet<string>,
  composite: CompositeName,
  settings: CompositeSettings,
  overrides: Readonly<Record<string, RuleSpec>> = {},
): RulePlan {
  const c = (COMPOSITES as Record<string, Composite>)[composite];
  if (!c) throw unknownNameError('LRP composite', composite, Object.keys(COMPOSITES));
  const layers = path.filter((n) => LINEAR_OPS.has(n.opType));
  const names = new Set(layers.map(nodeKey));
  for (const k of Object.keys(overrides)) {
    if (!names.has(k) && !LINEAR_OPS.has(k)) throw unknownNameError('LRP layer (a linear node on the path, or Gemm, MatMul, Conv)', k, [...names, ...LINEAR_OPS]);
  }
  const rules = new Map<string, LrpRule>();
  const describe: Record<string, string> = {};
  for (const n of layers) {
    const key = nodeKey(n);
    const input = inputLayers.has(key);
    const spec = overrides[key] ?? overrides[n.opType] ?? c.pick({ opType: n.opType, input }, settings);
    const rule = makeRule(spec);
    if (rule.kind === 'input' && !input) {
      throw new Error(`LRP: rule ${describeSpec(spec)} is an input-layer rule, but ${n.opType} '${key}' is not fed by the attributed value (input layers: ${[...inputLayers].join(', ') || 'none'})`);
    }
    rules.set(key, rule);
    describe[key] = describeSpec(spec);
  }
  return { rules, describe };
}
