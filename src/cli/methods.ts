/**
 * `glassbox methods [--json]`: every method with its coordinates in the two taxonomies: local attribution methods
 * (run by `glassbox explain`), global ones (over a dataset or many explanations), the hidden-semantics methods
 * (weights, neurons, subnetworks), the representation methods, explanations by example, rules, the active
 * (training-time) methods, and the evaluation methods that test explanations.
 */
import { METRICS } from '../evaluate/index.js';
import { sanityMetrics } from '../evaluate/sanity/index.js';
import { globalMethods } from '../methods/attribution/global/index.js';
import { EXAMPLE_EXPLANATION_METHODS } from '../methods/examples/index.js';
import { HIDDEN_METHODS } from '../methods/hidden.js';
import { REPRESENTATION_METHODS } from '../methods/representations/index.js';
import { RULE_METHODS } from '../methods/rules/index.js';
import { ACTIVE_METHODS } from '../methods/active/index.js';
import { ATTRIBUTION_METHODS } from '../methods/registry.js';
import type { MethodInfo } from '../methods/taxonomy.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { table, toJson } from './format.js';

const listed = (t: Record<string, { info: MethodInfo }>) => Object.entries(t).map(([name, e]) => ({ name, ...e.info }));

export async function methods(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('methods', argv, { json: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError(`methods takes no arguments, got ${positionals.join(' ')}`, 'methods');
  const attribution = listed(ATTRIBUTION_METHODS);
  const global = listed(globalMethods);
  const hidden = listed(HIDDEN_METHODS);
  const representations = listed(REPRESENTATION_METHODS);
  const examples = listed(EXAMPLE_EXPLANATION_METHODS);
  const rules = listed(RULE_METHODS);
  const active = listed(ACTIVE_METHODS);
  const evaluation = [
    ...Object.entries(METRICS).map(([name, m]) => ({ name, title: m.title, reference: m.reference, measures: m.measures, higherIsBetter: m.higherIsBetter })),
    ...Object.entries(sanityMetrics).map(([name, m]) => ({ name, title: m.title, reference: m.reference, measures: m.measures })),
  ];
  if (values.json) {
    console.log(toJson({ attribution, global, hidden, representations, examples, rules, active, evaluation }));
    return;
  }
  const rows = [...attribution, ...global, ...hidden, ...representations, ...examples, ...rules, ...active].map((m) => {
    const z = m.taxonomy.zhang;
    const r = m.taxonomy.rauker;
    const flags = [m.complete ? 'complete' : '', m.stochastic ? 'seeded' : ''].filter(Boolean).join(', ');
    return [m.name, m.title, `${z.engagement} · ${z.format} · ${z.scope}`, r ? `${r.part} · ${r.when} · ${r.section}` : '—', flags];
  });
  console.log(`${rows.length} methods. Zhang et al. 2021: engagement · format · scope; Räuker et al. 2023: part · when · section.`);
  console.log(table([['method', 'title', 'Zhang et al.', 'Räuker et al.', ''], ...rows]));
  console.log(`\n${evaluation.length} evaluation methods (they test explanations):`);
  console.log(table([['metric', 'title', 'reference'], ...evaluation.map((e) => [e.name, e.title, e.reference])]));
}
