/**
 * Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An
 * Overview") as one modified-gradient run: linear layers get the rule their composite picks (lrp-rules.ts,
 * composites.ts), ReLU, pooling, sums and reshapes keep their exact gradients (relevance = value ⊙ modified gradient
 * passes through them as LRP-0 does: ReLU and max-pool hand all of it on, a sum splits it by contribution), and the
 * input layers hand back relevance itself. Conv+BatchNormalization pairs are folded first (fold-bn.ts). An op with
 * no LRP meaning on the path (Sigmoid, Softmax, a product of two activations) is an error naming it, before any run.
 *
 * @example
 * const r = await lrp(model, { x }, { target: 3, composite: 'epsilon-plus', low: 0, high: 1 });
 * r.checks[0]; // conservation: Σ R − f(x) per example (exact for LRP-0/ε on bias-free ReLU networks)
 */
import { defaultRules } from '../../../autodiff/rules/index.js';
import type { RuleTable, VjpRule } from '../../../autodiff/types.js';
import type { Model } from '../../../model/model.js';
import { Tensor } from '../../../runtime/tensor.js';
import { Attributor, attributionResult, type AttributionOptions } from '../attributor.js';
import { completenessCheck, type Attribution } from '../explanation.js';
import type { Inputs } from '../gradient.js';
import { planRules, type CompositeName, type CompositeSettings, type RulePlan } from './composites.js';
import { foldedModel } from './fold-bn.js';
import { Layer } from './layer.js';
import type { RuleSpec } from './lrp-rules.js';
import { inputLayers, nodeKey, opKey, pathNodes } from './path.js';

/** Ops whose exact gradient is their LRP-0 rule (relevance = value ⊙ gradient is passed on or split by contribution). */
const PASS_THROUGH = [
  'Identity', 'Dropout', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose', 'Relu', 'LeakyRelu', 'MaxPool', 'GlobalMaxPool', 'AveragePool', 'GlobalAveragePool',
  'Concat', 'Split', 'Slice', 'Pad', 'Add', 'Sub', 'Sum', 'BatchNormalization',
] as const satisfies readonly (keyof typeof defaultRules)[];

/** Scaling by a constant passes relevance unchanged; a product of two activations has no LRP rule. */
const byConstant = (rule: VjpRule): VjpRule => (a) => {
  if (a.wants[0] && a.wants[1]) throw new Error(`LRP: ${a.node.opType} '${nodeKey(a.node)}' combines two values that depend on the input; LRP has no rule for it`);
  return rule(a);
};

function lrpTable(plan: RulePlan, inputs: ReadonlySet<string>): RuleTable {
  const table: Record<string, VjpRule> = {};
  for (const op of PASS_THROUGH) table[op] = defaultRules[op];
  table.Mul = byConstant(defaultRules.Mul);
  table.Div = byConstant(defaultRules.Div);
  const linear: VjpRule = (a) => {
    const key = nodeKey(a.node);
    const rule = plan.rules.get(key);
    if (!rule) throw new Error(`LRP: no rule was planned for ${a.node.opType} '${key}'`);
    const l = new Layer(a);
    const out = rule.emit(l);
    // Input layers return relevance; a rule that emits a modified gradient is multiplied by its input there.
    return [inputs.has(key) && rule.kind === 'any' ? a.emit.op1('Mul', [l.x, out]) : out];
  };
  table.Gemm = linear;
  table.MatMul = linear;
  table.Conv = linear;
  return table;
}

export interface LrpOptions extends AttributionOptions, CompositeSettings {
  /** Which rule each layer gets (default 'epsilon'). */
  readonly composite?: CompositeName;
  /** Rules by node name or op type, over the composite's choice. */
  readonly rules?: Readonly<Record<string, RuleSpec>>;
  /** Fold Conv+BatchNormalization before propagating (default true). */
  readonly foldBatchNorm?: boolean;
}

/** Relevance of every input value for the target score; the method name records the composite. */
export async function lrp(model: Model, inputs: Inputs, options: LrpOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const m = options.foldBatchNorm === false ? model : await foldedModel(model);
  const a = await Attributor.create(m, inputs, options);
  const path = pathNodes(a.runModel.graph, a.wrt, a.target.output);
  const known = new Set([...PASS_THROUGH, 'Mul', 'Div', 'Gemm', 'MatMul', 'Conv']);
  const unknown = path.filter((n) => !known.has(opKey(n)));
  if (unknown.length) {
    const ops = [...new Set(unknown.map(opKey))].join(', ');
    throw new Error(`LRP: no rule for ${ops} (first: ${unknown[0].opType} '${nodeKey(unknown[0])}') on the path from ${a.wrtName} to ${a.target.output}; explain a value before it (a target on the logits, or { wrt } past it)`);
  }
  const first = inputLayers(path, a.wrt);
  if (first.size === 0) throw new Error(`LRP: no linear layer (Gemm, MatMul, Conv) on the path from ${a.wrtName} to ${a.target.output}`);
  const composite = options.composite ?? 'epsilon';
  const plan = planRules(path, first, composite, options, options.rules);
  const table = lrpTable(plan, first);
  const relevance = new Float32Array(a.x.size);
  await a.gradients(a.n, a.identity, (start, grads) => relevance.set(grads, start * a.rowSize), { table, name: `lrp:${JSON.stringify(plan.describe)}` });
  const check = completenessCheck(new Tensor('float32', relevance, a.x.shape), a.scores0, new Float32Array(a.n));
  const conservation = {
    ...check,
    name: 'conservation',
    passed: undefined,
    detail: `Σ R − f(x) per example; exact only for LRP-0/ε (small ε) on bias-free networks, so a measurement (${check.detail.split('; ')[1]})`,
  };
  const params = { composite, rules: plan.describe, foldBatchNorm: m !== model };
  return attributionResult(a, { method: `lrp-${composite}`, attributions: relevance, started, checks: [conservation], params });
}
