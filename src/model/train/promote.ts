/**
 * Weights promoted from initializers to graph inputs: the training graph reads its weights from feeds, so each step
 * passes the current values as tensors and the graph is never re-serialised while it trains.
 */
import type { Graph } from '../../onnx/graph.js';
import { makeValueInfo } from '../../onnx/proto.js';
import { unknownNameError } from '../../util/nearest.js';

/** A new graph in which the named initializers are graph inputs of the same name, element type and shape. */
export function promoteInitializers(g: Graph, names: readonly string[]): Graph {
  const wanted = new Set(names);
  for (const n of wanted) if (!g.initializers.has(n)) throw unknownNameError('initializer', n, [...g.initializers.keys()]);
  const promoted = g.proto.initializer.filter((t) => wanted.has(t.name));
  return g.withGraph({
    initializer: g.proto.initializer.filter((t) => !wanted.has(t.name)),
    // Older exporters also list initializers as inputs; those entries are replaced by the typed ones.
    input: [...g.proto.input.filter((v) => !wanted.has(v.name)), ...promoted.map((t) => makeValueInfo(t.name, t.dataType, t.dims.map(Number)))],
  });
}
