/**
 * A layered graph as SVG, for circuits: nodes in columns by layer (inputs left, outputs right), edges as lines whose
 * width follows their weight. Deterministic layout, no dependencies.
 */
import { escapeHtml } from './html.js';

export interface GraphNode {
  readonly id: string;
  /** Column, left to right. */
  readonly layer: number;
  readonly label?: string;
}

export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  /** Drawn width ∝ |weight| (default 1). */
  readonly weight?: number;
}

const COL = 170;
const ROW = 46;
const MARGIN = 30;
const BOX = { w: 120, h: 26 };

export function graphSvg(nodes: readonly GraphNode[], edges: readonly GraphEdge[], title = 'circuit'): string {
  const ids = new Set(nodes.map((n) => n.id));
  for (const e of edges) {
    if (!ids.has(e.from) || !ids.has(e.to)) throw new Error(`graphSvg: edge ${e.from} → ${e.to} names a node that is not in the graph`);
  }
  const layers = [...new Set(nodes.map((n) => n.layer))].sort((a, b) => a - b);
  const pos = new Map<string, { x: number; y: number }>();
  let rows = 1;
  layers.forEach((layer, col) => {
    const inLayer = nodes.filter((n) => n.layer === layer);
    rows = Math.max(rows, inLayer.length);
    inLayer.forEach((n, r) => pos.set(n.id, { x: MARGIN + col * COL, y: MARGIN + 20 + r * ROW }));
  });
  const width = MARGIN * 2 + Math.max(0, layers.length - 1) * COL + BOX.w;
  const height = MARGIN * 2 + 20 + rows * ROW;
  const maxW = Math.max(1e-12, ...edges.map((e) => Math.abs(e.weight ?? 1)));
  const lines = edges.map((e) => {
    const a = pos.get(e.from)!;
    const b = pos.get(e.to)!;
    const w = 0.5 + 3.5 * (Math.abs(e.weight ?? 1) / maxW);
    return `<line x1="${a.x + BOX.w}" y1="${a.y + BOX.h / 2}" x2="${b.x}" y2="${b.y + BOX.h / 2}" stroke="#4a6fa5" stroke-opacity="0.7" stroke-width="${w.toFixed(2)}"/>`;
  });
  const boxes = nodes.map((n) => {
    const p = pos.get(n.id)!;
    return `<g><rect x="${p.x}" y="${p.y}" width="${BOX.w}" height="${BOX.h}" rx="4" fill="#f4f6fb" stroke="#334"/>` +
      `<text x="${p.x + BOX.w / 2}" y="${p.y + 17}" text-anchor="middle" font-size="12" font-family="sans-serif">${escapeHtml(n.label ?? n.id)}</text></g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
<title>${escapeHtml(title)}</title>
<text x="${MARGIN}" y="${MARGIN}" font-size="14" font-family="sans-serif">${escapeHtml(title)}</text>
${lines.join('\n')}
${boxes.join('\n')}
</svg>
`;
}
