/**
 * Output comparisons for the conformance tests: ONNX's own closeness rule against the reference outputs, and
 * bit-identity between two runs of ONNX Runtime.
 */
import type { Tensor } from '../../src/runtime/tensor.js';

/** ONNX's backend-test defaults (onnx/backend/test/case/test_case.py), used with numpy's assert_allclose. */
export const TOLERANCE = { rtol: 1e-3, atol: 1e-7 } as const;

const FLOAT = new Set(['float32', 'float64', 'float16']);

/** IEEE 754 half (raw bits, as glassbox stores float16) to a number. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function numbers(t: Tensor): ArrayLike<number> {
  return t.dtype === 'float16' ? Array.from(t.data as Uint16Array, halfToFloat) : (t.data as ArrayLike<number>);
}

function sameShape(a: Tensor, b: Tensor): string | undefined {
  if (a.dtype !== b.dtype) return `dtype ${a.dtype}, want ${b.dtype}`;
  if (a.shape.join(',') !== b.shape.join(',')) return `shape [${a.shape.join(', ')}], want [${b.shape.join(', ')}]`;
  return undefined;
}

/**
 * Why `actual` misses `expected`, naming the worst element, or undefined when it matches: for floats
 * |a − b| ≤ atol + rtol·|b| with NaN equal to NaN and infinities equal only to themselves; exact for the rest.
 */
export function mismatch(actual: Tensor, expected: Tensor, tol: { rtol: number; atol: number } = TOLERANCE): string | undefined {
  const bad = sameShape(actual, expected);
  if (bad) return bad;
  if (!FLOAT.has(expected.dtype)) {
    const a = actual.data as ArrayLike<unknown>;
    const b = expected.data as ArrayLike<unknown>;
    let count = 0;
    let first = -1;
    for (let i = 0; i < b.length; i++) {
      if (a[i] !== b[i]) {
        count++;
        if (first < 0) first = i;
      }
    }
    return count === 0 ? undefined : `${count} of ${b.length} differ; first at ${first}: got ${String(a[first])}, want ${String(b[first])}`;
  }
  const a = numbers(actual);
  const b = numbers(expected);
  let count = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  for (let i = 0; i < b.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    const allowed = tol.atol + tol.rtol * Math.abs(y);
    const diff = Math.abs(x - y);
    if (diff <= allowed) continue;
    count++;
    // NaN against a number, or an infinity against anything else, is the worst kind of miss.
    const excess = Number.isNaN(diff) || !Number.isFinite(diff) ? Infinity : diff - allowed;
    if (excess > worstExcess || worst < 0) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (count === 0) return undefined;
  const allowed = tol.atol + tol.rtol * Math.abs(b[worst]);
  return `${count} of ${b.length} out of tolerance; worst at ${worst}: got ${a[worst]}, want ${b[worst]} (|diff| ${Math.abs(a[worst] - b[worst])}, allowed ${allowed})`;
}

/** Why `a` is not bit-for-bit `b` (same dtype, shape and bytes; strings equal), or undefined. */
export function bitMismatch(a: Tensor, b: Tensor): string | undefined {
  const bad = sameShape(a, b);
  if (bad) return bad;
  if (b.dtype === 'string') return mismatch(a, b);
  const bytes = (t: Tensor) => {
    const v = t.data as Exclude<Tensor['data'], string[]>;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  };
  const x = bytes(a);
  const y = bytes(b);
  const width = y.length / Math.max(1, b.size);
  for (let i = 0; i < y.length; i++) {
    if (x[i] !== y[i]) {
      const at = Math.floor(i / width);
      return `not bit-identical; first at ${at}: ${String(a.data[at])} vs ${String(b.data[at])}`;
    }
  }
  return undefined;
}
