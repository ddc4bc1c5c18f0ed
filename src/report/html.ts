/**
 * Minimal, dependency-free HTML for reports: escaped text, tables and image cards, in one self-contained page with
 * inline CSS. Images are referenced by relative path (written next to the page), so a page opens from disk.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** A table: the header row, then rows of already-formatted cells (escaped here). */
export function htmlTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cell = (tag: string, v: string | number) => `<${tag}>${escapeHtml(typeof v === 'number' ? formatNumber(v) : v)}</${tag}>`;
  return `<table><thead><tr>${header.map((h) => cell('th', h)).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v) => cell('td', v)).join('')}</tr>`)
    .join('\n')}</tbody></table>`;
}

/** Numbers at four significant digits, integers as they are. */
export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  if (!Number.isFinite(v)) return String(v);
  return v.toPrecision(4);
}

export interface Card {
  readonly title: string;
  /** Lines of text under the title (escaped here). */
  readonly lines: readonly string[];
  /** Relative image paths with captions. */
  readonly images: readonly { readonly src: string; readonly caption: string }[];
}

/** One card per item (a unit of a layer): its title, facts and pictures. */
export function htmlCard(card: Card): string {
  const imgs = card.images
    .map((i) => `<figure><img src="${escapeHtml(i.src)}" alt="${escapeHtml(i.caption)}"><figcaption>${escapeHtml(i.caption)}</figcaption></figure>`)
    .join('');
  return `<section class="card"><h3>${escapeHtml(card.title)}</h3>${card.lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('')}<div class="imgs">${imgs}</div></section>`;
}

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}h3{font-size:14px;margin:0 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f4f4f4}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:10px;width:340px}
.card p{margin:2px 0;font-size:12px}.imgs{display:flex;gap:6px;flex-wrap:wrap}figure{margin:0}
img{image-rendering:pixelated;max-width:320px}figcaption{font-size:11px;color:#666}`;

/** A whole page: title, an intro paragraph, and body HTML (already built from the helpers above). */
export function htmlPage(title: string, intro: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(intro)}</p>
${body}
</body></html>
`;
}
