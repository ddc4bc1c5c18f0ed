/** `glassbox methods [--json]`: every registered method with its coordinates in the two taxonomies. */
import { ATTRIBUTION_METHODS } from '../methods/registry.js';
import type { MethodInfo } from '../methods/taxonomy.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { table, toJson } from './format.js';

export async function methods(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('methods', argv, { json: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError(`methods takes no arguments, got ${positionals.join(' ')}`, 'methods');
  const entries = Object.entries(ATTRIBUTION_METHODS as Record<string, { info: MethodInfo }>).map(([name, e]) => ({ name, ...e.info }));
  if (values.json) {
    console.log(toJson(entries));
    return;
  }
  const rows = entries.map((m) => {
    const z = m.taxonomy.zhang;
    const r = m.taxonomy.rauker;
    const flags = [m.complete ? 'complete' : '', m.stochastic ? 'seeded' : ''].filter(Boolean).join(', ');
    return [m.name, m.title, `${z.engagement} · ${z.format} · ${z.scope}`, r ? `${r.part} · ${r.when} · ${r.section}` : '—', flags];
  });
  console.log(`${entries.length} methods. Zhang et al. 2021: engagement · format · scope; Räuker et al. 2023: part · when · section.`);
  console.log(table([['method', 'title', 'Zhang et al.', 'Räuker et al.', ''], ...rows]));
}
