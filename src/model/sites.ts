/**
 * Sites: every intermediate value of a model that can be read or changed, each with one readable alias derived
 * from the graph's own names (PyTorch's `/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1.conv`). Names are data:
 * a site is found by its alias or its raw value name, nothing else is parsed.
 */
import type { Graph } from '../onnx/graph.js';
import type { Dim } from '../onnx/proto.js';
import type { DType } from '../runtime/tensor.js';
import { unknownNameError } from '../util/nearest.js';

export interface Site {
  /** The readable alias, unique within the model. */
  readonly name: string;
  /** The value's name in the ONNX graph. */
  readonly value: string;
  /** The producing op type, or 'Input' for a graph input. */
  readonly op: string;
  /** The producing node's name ('' when the node has none or the site is an input). */
  readonly node: string;
  readonly dtype?: DType;
  /** Shape as declared in the graph or resolved by a probe run; strings are symbolic (batch-like) dims. */
  readonly shape?: readonly Dim[];
}

/** `/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1.conv`: path segments joined by dots, a segment repeating its parent's prefix collapsed. */
export function aliasFromNodeName(nodeName: string): string | undefined {
  if (!nodeName.startsWith('/')) return undefined;
  const parts = nodeName.slice(1).split('/').filter(Boolean);
  if (parts.length === 0) return undefined;
  const kept: string[] = [];
  for (const p of parts) {
    const prev = kept[kept.length - 1];
    if (prev !== undefined && p.startsWith(`${prev}.`)) kept[kept.length - 1] = p;
    else kept.push(p);
  }
  kept[kept.length - 1] = kept[kept.length - 1].toLowerCase();
  return kept.join('.');
}

/** All sites of a graph in node order: graph inputs first, then every non-constant node output. */
export function listSites(g: Graph): Site[] {
  const sites: Site[] = [];
  const taken = new Set<string>();
  const valueNames = new Set(g.values.keys());
  const unique = (want: string | undefined, value: string): string => {
    // An alias may not shadow another value's raw name, or lookups by raw name would become ambiguous.
    for (const c of [want, value]) if (c && !taken.has(c) && (c === value || !valueNames.has(c))) return c;
    for (let i = 2; ; i++) if (!taken.has(`${value}~${i}`)) return `${value}~${i}`;
  };
  const push = (s: Omit<Site, 'name'>, want: string | undefined) => {
    const name = unique(want, s.value);
    taken.add(name);
    sites.push({ name, ...s });
  };
  for (const v of g.inputs) push({ value: v.name, op: 'Input', node: '', dtype: v.dtype, shape: v.shape }, v.name);
  for (const n of g.nodes) {
    if (n.opType === 'Constant') continue;
    const base = aliasFromNodeName(n.name);
    const outs = n.output.filter((o) => o !== '');
    n.output.forEach((o, k) => {
      if (o === '') return;
      const v = g.values.get(o);
      const want = base === undefined ? undefined : outs.length > 1 && k > 0 ? `${base}.out${k}` : base;
      push({ value: o, op: n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType, node: n.name, dtype: v?.dtype, shape: v?.shape }, want);
    });
  }
  return sites;
}

/** Lookup by alias or raw value name. */
export class SiteIndex {
  private readonly byName = new Map<string, Site>();

  constructor(readonly sites: readonly Site[]) {
    for (const s of sites) this.byName.set(s.value, s);
    for (const s of sites) this.byName.set(s.name, s);
  }

  get(name: string): Site {
    const s = this.byName.get(name);
    if (!s) throw unknownNameError('site', name, this.sites.map((x) => x.name));
    return s;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }
}
