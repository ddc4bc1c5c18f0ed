/** "Did you mean" support: the known names closest to a misspelt one. */

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Up to `k` names nearest to `query`: names containing it first, then by edit distance less half the shared prefix
 * (so `relu9` finds `relu1.relu` before the shorter but unrelated `x`).
 */
export function nearestNames(query: string, names: Iterable<string>, k = 5): string[] {
  const q = query.toLowerCase();
  const scored = [...new Set(names)].map((n) => {
    const l = n.toLowerCase();
    const contains = l.includes(q) || (l.length > 1 && q.includes(l)) ? 0 : 1;
    return { n, contains, d: editDistance(q, l) - commonPrefix(q, l) / 2 };
  });
  scored.sort((x, y) => x.contains - y.contains || x.d - y.d || x.n.localeCompare(y.n));
  return scored.slice(0, k).map((s) => s.n);
}

/** The standard "unknown X" message with the nearest known names. */
export function unknownNameError(what: string, query: string, names: Iterable<string>): Error {
  const near = nearestNames(query, names);
  return new Error(`unknown ${what} '${query}'${near.length ? `; nearest: ${near.join(', ')}` : ''}`);
}
