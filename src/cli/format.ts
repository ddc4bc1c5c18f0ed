/** Text and JSON output helpers: aligned tables, shapes, numbers, bigint-safe JSON, shell-quoted paths. */
import type { Dim } from '../onnx/proto.js';

/** `[N, 1, 28, 28]`; unknown dims as `?`, an unknown shape as `?`. */
export function shapeText(shape: readonly Dim[] | readonly number[] | undefined): string {
  if (!shape) return '?';
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/** Rows of cells as left-aligned columns (numbers right-aligned), two spaces apart, trailing blanks trimmed. */
export function table(rows: readonly (readonly (string | number)[])[], indent = '  '): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, String(c).length)));
  return rows
    .map((r) => indent + r.map((c, i) => (typeof c === 'number' ? String(c).padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd())
    .join('\n');
}

/** JSON with bigints as numbers where exact, else as strings (ONNX IR versions and dims are int64). */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) => (typeof v === 'bigint' ? (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v),
    2,
  );
}

/** A number with `digits` decimals, or in exponent form when it is very large or very small. */
export function num(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a >= 1e6 || a < 10 ** -digits) ? x.toExponential(2) : x.toFixed(digits);
}

/** `12.3 kB`-style size. */
export function bytesText(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** A path or word as a POSIX shell would need it written. */
export function shellQuote(s: string): string {
  return /^[\w./=,:@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
