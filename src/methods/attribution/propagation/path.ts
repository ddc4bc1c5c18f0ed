/**
 * The part of a graph a propagation method walks: the nodes between the value attributed to and the explained
 * output (as the gradient builder finds them), and the input layers — the linear nodes the attributed value reaches
 * through reshape-like ops only, where LRP's input-layer rules (zᴮ, flat, w²) apply.
 */
import type { Graph } from '../../../onnx/graph.js';
import type { NodeProto } from '../../../onnx/proto.js';

/** Ops that only move values around: relevance and gradients pass through them unchanged. */
export const ROUTING_OPS = new Set(['Identity', 'Dropout', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose']);

/** The layers LRP's rules apply to. */
export const LINEAR_OPS = new Set(['Gemm', 'MatMul', 'Conv']);

/** How error messages and rule maps name a node: its name, or its first output where it has none. */
export const nodeKey = (n: NodeProto): string => n.name || n.output[0];

export const opKey = (n: NodeProto): string => (n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType);

/** Nodes on a path from `wrt` to `of`, in graph order (integer-valued side branches such as Shape are kept out). */
export function pathNodes(g: Graph, wrt: string, of: string): NodeProto[] {
  const floats = (v: string) => {
    const t = g.values.get(v)?.dtype;
    return t === undefined || t === 'float32' || t === 'float64' || t === 'float16';
  };
  const reach = new Set([wrt]);
  const forward: NodeProto[] = [];
  for (const n of g.nodes) {
    if (!n.input.some((x) => reach.has(x) && floats(x))) continue;
    forward.push(n);
    for (const o of n.output) if (o && floats(o)) reach.add(o);
  }
  const needed = new Set([of]);
  const path: NodeProto[] = [];
  for (let k = forward.length - 1; k >= 0; k--) {
    const n = forward[k];
    if (!n.output.some((o) => needed.has(o))) continue;
    path.push(n);
    for (const x of n.input) if (x && reach.has(x)) needed.add(x);
  }
  return path.reverse();
}

/**
 * The input layers: linear nodes of `path` fed by `wrt` through routing ops only. Throws naming the op when the
 * attributed value reaches anything else first (an input-layer rule would then have no layer to stand on).
 */
export function inputLayers(path: readonly NodeProto[], wrt: string): Set<string> {
  const routed = new Set([wrt]);
  const first = new Set<string>();
  for (const n of path) {
    if (!n.input.some((x) => routed.has(x))) continue;
    if (ROUTING_OPS.has(n.opType)) {
      for (const o of n.output) if (o) routed.add(o);
    } else if (LINEAR_OPS.has(n.opType) && routed.has(n.input[0])) {
      first.add(nodeKey(n));
    } else {
      throw new Error(
        `LRP: '${wrt}' reaches ${n.opType} '${nodeKey(n)}' before any linear layer (Gemm, MatMul or Conv, as its first operand); ` +
          `the input layer's rule needs the input to feed such a layer through reshapes at most: attribute to a later site with { wrt }`,
      );
    }
  }
  return first;
}
