/**
 * The graph IR: a decoded ModelProto plus the indexes glassbox needs (who produces and who consumes each value,
 * what is known of its dtype and shape). The ModelProto stays the source of truth, so a model that is decoded and
 * written back without rewrites is byte-for-byte the file it came from; rewrites (rewrite.ts) build a new Graph.
 */
import type { DType } from '../runtime/tensor.js';
import { decodeModel, encodeModel, tensorTypeOf, getAttr, type Dim, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { dtypeOfOnnx } from './tensor-proto.js';

/** Where a value comes from. */
export type ValueKind = 'input' | 'initializer' | 'constant' | 'node';

/** What the graph says of one named value; `elemType` is the ONNX code, `dtype` glassbox's name for it. */
export interface ValueInfo {
  readonly name: string;
  readonly kind: ValueKind;
  readonly elemType?: number;
  readonly dtype?: DType;
  readonly shape?: readonly Dim[];
  /** Index into `graph.nodes` of the producing node (kinds 'node' and 'constant'). */
  readonly producer?: number;
}

export class Graph {
  readonly model: ModelProto;
  readonly values: ReadonlyMap<string, ValueInfo>;
  /** For each value name, the indexes of the nodes that read it (top-level nodes only). */
  readonly consumers: ReadonlyMap<string, readonly number[]>;
  readonly initializers: ReadonlyMap<string, TensorProto>;
  readonly opset: ReadonlyMap<string, number>;

  constructor(model: ModelProto) {
    if (!model.graph) throw new Error('Graph: model has no graph');
    this.model = model;
    const g = model.graph;
    this.initializers = new Map(g.initializer.map((t) => [t.name, t]));
    this.opset = new Map(model.opsetImport.map((o) => [o.domain === 'ai.onnx' ? '' : o.domain, Number(o.version)]));

    const declared = new Map<string, { elemType?: number; shape?: Dim[] }>();
    for (const vi of [...g.input, ...g.valueInfo, ...g.output]) {
      const t = tensorTypeOf(vi.type);
      if (t) declared.set(vi.name, t);
    }
    const values = new Map<string, ValueInfo>();
    const info = (name: string, kind: ValueKind, producer?: number, fallback?: { elemType?: number; shape?: Dim[] }): ValueInfo => {
      const d = declared.get(name) ?? fallback;
      return { name, kind, producer, elemType: d?.elemType, dtype: d?.elemType === undefined ? undefined : dtypeOfOnnx(d.elemType), shape: d?.shape };
    };
    for (const t of g.initializer) values.set(t.name, info(t.name, 'initializer', undefined, { elemType: t.dataType, shape: t.dims.map(Number) }));
    for (const vi of g.input) if (!values.has(vi.name)) values.set(vi.name, info(vi.name, 'input'));
    const consumers = new Map<string, number[]>();
    g.node.forEach((n, i) => {
      for (const name of n.input) {
        if (name === '') continue;
        let list = consumers.get(name);
        if (!list) consumers.set(name, (list = []));
        list.push(i);
      }
      const constant = n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx');
      const t = constant ? getAttr(n, 'value')?.t : undefined;
      for (const name of n.output) {
        if (name === '') continue;
        values.set(name, info(name, constant ? 'constant' : 'node', i, t ? { elemType: t.dataType, shape: t.dims.map(Number) } : undefined));
      }
    });
    this.values = values;
    this.consumers = consumers;
  }

  static decode(bytes: Uint8Array, source?: string): Graph {
    return new Graph(decodeModel(bytes, source));
  }

  encode(): Uint8Array {
    return encodeModel(this.model);
  }

  get proto(): GraphProto {
    return this.model.graph as GraphProto;
  }

  get nodes(): readonly NodeProto[] {
    return this.proto.node;
  }

  /** The graph inputs a caller must feed (initializers listed as inputs, as older exporters do, are left out). */
  get inputs(): ValueInfo[] {
    return this.proto.input.filter((vi) => !this.initializers.has(vi.name)).map((vi) => this.values.get(vi.name) as ValueInfo);
  }

  get outputs(): ValueInfo[] {
    return this.proto.output.map((vi) => this.values.get(vi.name) ?? { name: vi.name, kind: 'input' as const });
  }

  producerOf(name: string): NodeProto | undefined {
    const i = this.values.get(name)?.producer;
    return i === undefined ? undefined : this.nodes[i];
  }

  /** Histogram of op types, `domain::Op` for ops outside the default domain. */
  opHistogram(): Map<string, number> {
    const h = new Map<string, number>();
    for (const n of this.nodes) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType;
      h.set(key, (h.get(key) ?? 0) + 1);
    }
    return h;
  }

  /** A new Graph over a changed GraphProto; everything else in the model is shared with this one. */
  withGraph(changes: Partial<Omit<GraphProto, '$typeName'>>): Graph {
    return new Graph({ ...this.model, graph: { ...this.proto, ...changes } });
  }

  /** Checks that every value read is defined somewhere; names what is missing (truncated or hand-broken files). */
  validate(source = 'model'): void {
    const defined = new Set<string>([...this.initializers.keys(), ...this.proto.input.map((v) => v.name), ...this.values.keys()]);
    this.nodes.forEach((n, i) => {
      for (const name of n.input) {
        if (name !== '' && !defined.has(name)) {
          const label = n.name ? `'${n.name}'` : `#${i}`;
          throw new Error(`${source}: node ${label} (${n.opType}) reads '${name}', which no node, input or initializer defines`);
        }
      }
    });
    for (const o of this.proto.output) {
      if (!defined.has(o.name)) throw new Error(`${source}: graph output '${o.name}' is never computed`);
    }
  }
}
