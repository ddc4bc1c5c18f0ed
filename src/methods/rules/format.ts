/**
 * Rules as people read them and as JSON. A tree's rules are disjoint (`IF … THEN …` each); a decision list reads in
 * order (`IF …`, `ELSE IF …`, `ELSE …`).
 *
 * @example
 * formatRules(extraction);
 * // IF petal width (cm) > 1.75 AND petal length (cm) <= 4.95 THEN virginica  [coverage 0.31, fidelity 0.98]
 */
import type { Check } from '../attribution/explanation.js';
import type { RuleExtraction, RuleStats } from './pedagogical.js';
import type { Condition, RuleList } from './rule-set.js';

/** A threshold with at most 4 significant digits (JSON keeps the exact value). */
export function thresholdText(t: number): string {
  return String(Number(t.toPrecision(4)));
}

export function conditionText(c: Condition, featureNames: readonly string[]): string {
  return `${featureNames[c.feature] ?? `x${c.feature}`} ${c.op} ${thresholdText(c.threshold)}`;
}

const statsText = (s: RuleStats | undefined): string =>
  s ? `  [coverage ${s.coverage.toFixed(2)}, fidelity ${Number.isNaN(s.fidelity) ? '–' : s.fidelity.toFixed(2)}]` : '';

/** One line per rule, with held-out coverage and fidelity where given. */
export function ruleLines(rules: RuleList, featureNames: readonly string[], classNames: readonly string[], stats?: readonly RuleStats[]): string[] {
  const cls = (c: number): string => classNames[c] ?? String(c);
  const lines = rules.rules.map((r, k) => {
    const lead = rules.ordered && k > 0 ? 'ELSE IF' : 'IF';
    const body = r.conditions.length ? r.conditions.map((c) => conditionText(c, featureNames)).join(' AND ') : 'TRUE';
    return `${lead} ${body} THEN ${cls(r.label)}${statsText(stats?.[k])}`;
  });
  if (rules.defaultLabel !== null) {
    lines.push(`${rules.rules.length ? 'ELSE' : 'ALWAYS'} ${cls(rules.defaultLabel)}${statsText(stats?.[rules.rules.length])}`);
  }
  return lines;
}

/** The rules, then fidelity, accuracy, size and the checks. */
export function formatRules(r: RuleExtraction): string {
  const pct = (v: number): string => v.toFixed(3);
  return [
    ...ruleLines(r.rules, r.featureNames, r.classNames, r.ruleStats),
    '',
    `fidelity ${pct(r.fidelity)} (majority baseline ${pct(r.baselines.majority)}, without queries ${pct(r.baselines.noQueries)}); ` +
      `accuracy ${pct(r.accuracy)} (network ${pct(r.networkAccuracy)})`,
    `size: ${r.size.rules} rules, ${r.size.antecedents} antecedents, depth ${r.size.depth}, ${r.size.leaves} leaves; ` +
      `${r.queries.total} network queries (${r.queries.global} global, ${r.queries.nodes} in thin nodes)`,
    ...r.checks.filter((c) => c.passed !== undefined).map(checkLine),
  ].join('\n');
}

const checkLine = (c: Check): string => `check ${c.name}: ${c.passed ? 'passed' : 'FAILED'} (${c.detail})`;

export interface RuleJson {
  readonly if: readonly { readonly feature: string; readonly op: '<=' | '>'; readonly threshold: number }[];
  readonly then: string;
  readonly class: number;
  /** True for the default rule of a decision list. */
  readonly default?: true;
  readonly coverage?: number;
  readonly fidelity?: number | null;
}

/** The rules as data: antecedents as { feature, op, threshold } with feature names. */
export function rulesJson(rules: RuleList, featureNames: readonly string[], classNames: readonly string[], stats?: readonly RuleStats[]): RuleJson[] {
  const withStats = (k: number) => (stats?.[k] ? { coverage: stats[k].coverage, fidelity: Number.isNaN(stats[k].fidelity) ? null : stats[k].fidelity } : {});
  const out: RuleJson[] = rules.rules.map((r, k) => ({
    if: r.conditions.map((c) => ({ feature: featureNames[c.feature] ?? `x${c.feature}`, op: c.op, threshold: c.threshold })),
    then: classNames[r.label] ?? String(r.label),
    class: r.label,
    ...withStats(k),
  }));
  if (rules.defaultLabel !== null) {
    const k = rules.rules.length;
    out.push({ if: [], then: classNames[rules.defaultLabel] ?? String(rules.defaultLabel), class: rules.defaultLabel, default: true, ...withStats(k) });
  }
  return out;
}

/** The whole extraction as a JSON-ready object (no typed arrays, no classes). */
export function extractionJson(r: RuleExtraction): Record<string, unknown> {
  return {
    method: r.method,
    taxonomy: r.taxonomy,
    kind: r.kind,
    ordered: r.rules.ordered,
    features: r.featureNames,
    classes: r.classNames,
    rules: rulesJson(r.rules, r.featureNames, r.classNames, r.ruleStats),
    fidelity: r.fidelity,
    accuracy: r.accuracy,
    networkAccuracy: r.networkAccuracy,
    baselines: r.baselines,
    size: r.size,
    queries: r.queries,
    checks: r.checks,
    params: r.params,
    ms: r.ms,
  };
}
