/**
 * Maximum flow on a small directed graph with real capacities (Dinic 1970: BFS level graph, then blocking flows by
 * DFS), for attention flow (Abnar & Zuidema 2020), where the graph is the layered attention graph of one sequence.
 *
 * @example
 * const g = new FlowGraph(4);
 * g.addEdge(0, 1, 3); g.addEdge(1, 3, 2); g.addEdge(0, 2, 1); g.addEdge(2, 3, 4);
 * g.maxFlow(0, 3); // 3
 */
export class FlowGraph {
  private readonly to: number[] = [];
  private readonly cap: number[] = [];
  private readonly adj: number[][];

  constructor(readonly nodes: number) {
    if (!Number.isInteger(nodes) || nodes <= 0) throw new Error(`FlowGraph: node count must be a positive integer, got ${nodes}`);
    this.adj = Array.from({ length: nodes }, () => []);
  }

  /** A directed edge u → v with capacity c ≥ 0 (and its residual twin v → u of capacity 0). */
  addEdge(u: number, v: number, c: number): void {
    for (const x of [u, v]) if (!Number.isInteger(x) || x < 0 || x >= this.nodes) throw new Error(`FlowGraph: node ${x} is outside [0, ${this.nodes})`);
    if (!Number.isFinite(c) || c < 0) throw new Error(`FlowGraph: capacity of edge ${u} → ${v} must be finite and ≥ 0, got ${c}`);
    this.adj[u].push(this.to.length);
    this.to.push(v);
    this.cap.push(c);
    this.adj[v].push(this.to.length);
    this.to.push(u);
    this.cap.push(0);
  }

  /** The value of a maximum s → t flow. Consumes the capacities (build a new graph for another pair). */
  maxFlow(s: number, t: number, eps = 1e-12): number {
    if (s === t) throw new Error(`FlowGraph.maxFlow: source and sink are the same node ${s}`);
    let total = 0;
    const level = new Int32Array(this.nodes);
    const it = new Int32Array(this.nodes);
    const bfs = (): boolean => {
      level.fill(-1);
      level[s] = 0;
      const queue = [s];
      for (let q = 0; q < queue.length; q++) {
        const u = queue[q];
        for (const e of this.adj[u]) {
          if (this.cap[e] > eps && level[this.to[e]] < 0) {
            level[this.to[e]] = level[u] + 1;
            queue.push(this.to[e]);
          }
        }
      }
      return level[t] >= 0;
    };
    const dfs = (u: number, f: number): number => {
      if (u === t) return f;
      for (; it[u] < this.adj[u].length; it[u]++) {
        const e = this.adj[u][it[u]];
        const v = this.to[e];
        if (this.cap[e] <= eps || level[v] !== level[u] + 1) continue;
        const d = dfs(v, Math.min(f, this.cap[e]));
        if (d > eps) {
          this.cap[e] -= d;
          this.cap[e ^ 1] += d;
          return d;
        }
      }
      return 0;
    };
    while (bfs()) {
      it.fill(0);
      for (let f = dfs(s, Infinity); f > eps; f = dfs(s, Infinity)) total += f;
    }
    return total;
  }
}
