/**
 * Pure rewrites of a Graph: each returns a new Graph and leaves its argument untouched. Captures (add outputs),
 * interventions (interpose ops between a value and its readers) and cuts (feed a value from outside) are built on these.
 */
import { Graph } from './graph.js';
import type { DType } from '../runtime/tensor.js';
import { makeValueInfo, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';
import { ONNX_DTYPE } from './tensor-proto.js';

/** A name not yet used in the graph, derived from `base`. */
export function freshName(g: Graph, base: string, taken: ReadonlySet<string> = new Set()): string {
  const used = (n: string) => g.values.has(n) || taken.has(n);
  if (!used(base)) return base;
  for (let i = 1; ; i++) if (!used(`${base}_${i}`)) return `${base}_${i}`;
}

function requireValue(g: Graph, name: string, what: string): void {
  if (!g.values.has(name)) throw new Error(`${what}: the graph has no value '${name}'`);
}

function valueInfoFor(g: Graph, name: string): ValueInfoProto {
  const v = g.values.get(name);
  // Only the element type is declared: declared shapes can be stale after rewrites, and ONNX Runtime infers them.
  return makeValueInfo(name, v?.elemType);
}

/** Makes the given values graph outputs too (those that already are stay as they are). */
export function addOutputs(g: Graph, names: readonly string[]): Graph {
  const present = new Set(g.proto.output.map((o) => o.name));
  const extra: ValueInfoProto[] = [];
  for (const name of names) {
    requireValue(g, name, 'addOutputs');
    if (!present.has(name)) {
      present.add(name);
      extra.push(valueInfoFor(g, name));
    }
  }
  return extra.length === 0 ? g : g.withGraph({ output: [...g.proto.output, ...extra] });
}

/** Keeps only the listed graph outputs, in the given order. */
export function selectOutputs(g: Graph, names: readonly string[]): Graph {
  const byName = new Map(g.proto.output.map((o) => [o.name, o]));
  return g.withGraph({ output: names.map((n) => byName.get(n) ?? valueInfoFor(g, n)) });
}

/** Orders nodes so each comes after the producers of its inputs (stable: the original order where it is free). */
export function topoSort(nodes: readonly NodeProto[]): NodeProto[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.output.forEach((o) => o && producer.set(o, i)));
  const state = new Uint8Array(nodes.length); // 0 new, 1 on stack, 2 placed
  const out: NodeProto[] = [];
  for (let root = 0; root < nodes.length; root++) {
    if (state[root]) continue;
    // Iterative DFS: deep graphs (thousands of nodes in a chain) would overflow a recursive one.
    const stack: [number, number][] = [[root, 0]];
    state[root] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const node = nodes[top[0]];
      if (top[1] < node.input.length) {
        const p = producer.get(node.input[top[1]++]);
        if (p !== undefined && state[p] === 0) {
          state[p] = 1;
          stack.push([p, 0]);
        } else if (p !== undefined && state[p] === 1 && p !== top[0]) {
          throw new Error(`topoSort: cycle through node '${nodes[p].name || nodes[p].opType}'`);
        }
      } else {
        state[top[0]] = 2;
        out.push(node);
        stack.pop();
      }
    }
  }
  return out;
}

/** Adds nodes (and initializers they need), keeping the node list topologically sorted. */
export function insertNodes(g: Graph, nodes: readonly NodeProto[], initializers: readonly TensorProto[] = []): Graph {
  return g.withGraph({
    node: topoSort([...g.nodes, ...nodes]),
    initializer: initializers.length ? [...g.proto.initializer, ...initializers] : g.proto.initializer,
  });
}

/** Adds graph inputs fed by the caller. */
export function addInputs(g: Graph, inputs: readonly ValueInfoProto[]): Graph {
  for (const vi of inputs) if (g.values.has(vi.name)) throw new Error(`addInputs: '${vi.name}' already exists`);
  return g.withGraph({ input: [...g.proto.input, ...inputs] });
}

/**
 * Puts ops between a value and everything that reads it: `build(source)` returns nodes that read `source` (the
 * original value, under a new name) and write `name`, so consumers and graph outputs see the new value unchanged.
 * For a graph input the input keeps its name and its top-level readers are redirected instead.
 */
export function interpose(g: Graph, name: string, build: (source: string) => { nodes: NodeProto[]; initializers?: TensorProto[] }): Graph {
  requireValue(g, name, 'interpose');
  const v = g.values.get(name)!;
  if (v.kind === 'input' || v.kind === 'initializer') {
    const redirected = freshName(g, `${name}__glassbox`);
    const readers = new Set(g.consumers.get(name) ?? []);
    const node = g.nodes.map((n, i) => (readers.has(i) ? { ...n, input: n.input.map((x) => (x === name ? redirected : x)) } : n));
    const built = build(name);
    const renamed = built.nodes.map((n) => ({ ...n, output: n.output.map((x) => (x === name ? redirected : x)) }));
    const outputs = g.proto.output.map((o) => (o.name === name ? { ...o, name: redirected } : o));
    return g.withGraph({ node: topoSort([...node, ...renamed]), output: outputs, initializer: [...g.proto.initializer, ...(built.initializers ?? [])] });
  }
  const source = freshName(g, `${name}__pre`);
  const p = v.producer!;
  const node = g.nodes.map((n, i) => (i === p ? { ...n, output: n.output.map((x) => (x === name ? source : x)) } : n));
  const built = build(source);
  return g.withGraph({ node: topoSort([...node, ...built.nodes]), initializer: [...g.proto.initializer, ...(built.initializers ?? [])] });
}

/**
 * Cuts the edge into `name`: its readers take a new graph input of the same name, fed by the caller. A graph
 * input needs an element type: the graph's own, or `dtype` when the file declares none (ONNX Runtime's probe knows it).
 */
export function cutEdge(g: Graph, name: string, dtype?: DType): Graph {
  requireValue(g, name, 'cutEdge');
  const v = g.values.get(name)!;
  if (v.kind === 'input') return g;
  const elemType = v.elemType ?? (dtype === undefined ? undefined : ONNX_DTYPE[dtype]);
  if (elemType === undefined) throw new Error(`cutEdge: the graph declares no element type for '${name}'; pass its dtype`);
  const info = makeValueInfo(name, elemType);
  if (v.kind === 'initializer') {
    return g.withGraph({ initializer: g.proto.initializer.filter((t) => t.name !== name), input: [...g.proto.input.filter((i) => i.name !== name), info] });
  }
  const dead = freshName(g, `${name}__cut`);
  const p = v.producer!;
  const node = g.nodes.map((n, i) => (i === p ? { ...n, output: n.output.map((x) => (x === name ? dead : x)) } : n));
  return prune(g.withGraph({ node, input: [...g.proto.input, info] }));
}

/** Drops nodes, graph inputs and initializers that no graph output depends on (subgraph reads count). */
export function prune(g: Graph): Graph {
  const needed = new Set(g.proto.output.map((o) => o.name));
  const keep = new Array<boolean>(g.nodes.length).fill(false);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.output.some((o) => needed.has(o))) continue;
    keep[i] = true;
    for (const x of n.input) needed.add(x);
    // Subgraphs read outer values by name without listing them as inputs; keep every name they mention.
    for (const a of n.attribute) for (const sub of [a.g, ...a.graphs]) if (sub) collectNames(sub, needed);
  }
  const input = g.proto.input.filter((v) => needed.has(v.name));
  const initializer = g.proto.initializer.filter((t) => needed.has(t.name));
  if (keep.every(Boolean) && input.length === g.proto.input.length && initializer.length === g.proto.initializer.length) return g;
  return g.withGraph({ node: g.nodes.filter((_, i) => keep[i]), input, initializer });
}

function collectNames(sub: NonNullable<NodeProto['attribute'][number]['g']>, into: Set<string>): void {
  for (const n of sub.node) {
    for (const x of n.input) into.add(x);
    for (const a of n.attribute) for (const s of [a.g, ...a.graphs]) if (s) collectNames(s, into);
  }
}
