/**
 * NumPy `.npy` files to and from glassbox tensors, so reference arrays from PyTorch/NumPy can be read and written
 * without a Python bridge. Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 *
 * Parsing and encoding work on bytes only; `readNpy`/`writeNpy` import `node:fs/promises` lazily so that a browser
 * bundle can use the rest.
 *
 * @example
 * const t = await readNpy('activations.npy'); // Tensor<'float32'>[2×3]
 * await writeNpy('out.npy', t);
 */

import { DType, Tensor, sizeOf } from '../runtime/tensor.js';

type NumericDType = Exclude<DType, 'string'>;
type NumericData = Exclude<Tensor['data'], string[]>;

/** The type codes of `descr` (after the byte-order character) that map onto a tensor dtype. */
const CODES = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
  b1: 'bool',
} as const satisfies Record<string, NumericDType>;

/** NumPy type kinds glassbox has no tensor for, to say what an unsupported descr is. */
const UNSUPPORTED_KINDS: Record<string, string> = {
  c: 'complex numbers',
  O: 'Python objects',
  U: 'unicode strings',
  S: 'byte strings',
  a: 'byte strings',
  V: 'raw or structured records',
  M: 'datetimes',
  m: 'timedeltas',
  f: 'a float width other than 2, 4 or 8 bytes',
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ALIGN = 64;
/** numpy leaves room for the growing axis to reach this many digits (format.py GROWTH_AXIS_MAX_DIGITS). */
const GROWTH_AXIS_MAX_DIGITS = 21;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Parses the bytes of a `.npy` file (format 1.0, 2.0 or 3.0) into a C-order tensor in native byte order. */
export function parseNpy(bytes: Uint8Array): Tensor {
  return parse(bytes, 'parseNpy');
}

/** Encodes a tensor as numpy would save it: format 1.0 (2.0 for huge headers), little-endian, C order. */
export function encodeNpy(t: Tensor): Uint8Array {
  const code = (Object.keys(CODES) as (keyof typeof CODES)[]).find((k) => CODES[k] === t.dtype);
  if (code === undefined) throw new Error(`encodeNpy: ${t.dtype} tensors have no .npy dtype here`);
  const descr = (code[1] === '1' ? '|' : '<') + code;
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  if (t.shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(t.shape[0]).length));

  let version = 1;
  let lenBytes = 2;
  let total = paddedLength(dict.length, lenBytes);
  if (total - 8 - lenBytes > 0xffff) {
    version = 2;
    lenBytes = 4;
    total = paddedLength(dict.length, lenBytes);
  }
  const headerLen = total - 8 - lenBytes;
  const data = t.data as NumericData;
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (lenBytes === 2) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  const headerStart = 8 + lenBytes;
  for (let i = 0; i < dict.length; i++) out[headerStart + i] = dict.charCodeAt(i);
  out.fill(0x20, headerStart + dict.length, total - 1);
  out[total - 1] = 0x0a; // '\n'
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  if (!LITTLE_ENDIAN_HOST) byteSwap(out.subarray(total), data.BYTES_PER_ELEMENT);
  return out;
}

/** Reads a `.npy` file; errors name the path. */
export async function readNpy(path: string): Promise<Tensor> {
  const { readFile } = await import('node:fs/promises');
  const buf = await readFile(path);
  return parse(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), `readNpy ${path}`);
}

/** Writes a tensor as a `.npy` file that `np.load` reads back unchanged. */
export async function writeNpy(path: string, t: Tensor): Promise<void> {
  const bytes = encodeNpy(t);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, bytes);
}

/** numpy's `_wrap_header`: the whole preamble (magic, length, dict, spaces, '\n') ends on a 64-byte boundary. */
function paddedLength(dictLength: number, lenBytes: number): number {
  const unpadded = 8 + lenBytes + dictLength + 1;
  return unpadded + (ALIGN - (unpadded % ALIGN));
}

function fail(where: string, msg: string): never {
  throw new Error(`${where}: ${msg}`);
}

function parse(bytes: Uint8Array, where: string): Tensor {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) fail(where, 'not a .npy file (bad magic)');
  const major = bytes[6];
  if (major !== 1 && major !== 2 && major !== 3) fail(where, `unsupported .npy format version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) fail(where, `truncated: the file ends inside the header length`);
  const headerLen = lenBytes === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenBytes + headerLen;
  if (bytes.length < dataStart) {
    fail(where, `truncated: header says ${headerLen} bytes of header, file has ${bytes.length - 8 - lenBytes}`);
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(8 + lenBytes, dataStart));
  const shown = JSON.stringify(header.trim());

  let dict: PyValue;
  try {
    dict = new PyLiteral(header).parseAll();
  } catch (e) {
    return fail(where, `bad header ${shown}: ${(e as Error).message}`);
  }
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) {
    return fail(where, `header is not a dict: ${shown}`);
  }
  const { descr, fortran_order: fortran, shape } = dict;
  if (typeof fortran !== 'boolean') fail(where, `header has no boolean 'fortran_order': ${shown}`);
  if (!Array.isArray(shape)) return fail(where, `header has no 'shape' tuple: ${shown}`);
  const dims = shape.map((d) => (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0 ? d : -1));
  if (dims.includes(-1)) fail(where, `header has a bad 'shape': ${shown}`);
  const { dtype, little, itemSize } = parseDescr(descr, where);

  const expected = sizeOf(dims) * itemSize;
  const available = bytes.length - dataStart;
  if (available < expected) fail(where, `truncated: header says ${expected} bytes of data, file has ${available}`);

  const out = Tensor.zeros(dtype, dims);
  const data = out.data as NumericData;
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  raw.set(bytes.subarray(dataStart, dataStart + expected));
  if (little !== LITTLE_ENDIAN_HOST) byteSwap(raw, itemSize);
  if (dtype === 'bool') for (let i = 0; i < raw.length; i++) raw[i] = raw[i] ? 1 : 0;
  return fortran && dims.length > 1 ? fromFortran(out) : out;
}

/** Splits a descr like '<f4' into a dtype, byte order and width, naming anything glassbox cannot hold. */
function parseDescr(
  descr: PyValue | undefined,
  where: string,
): { dtype: NumericDType; little: boolean; itemSize: number } {
  if (typeof descr !== 'string') {
    const shown = JSON.stringify(descr ?? null);
    return fail(where, `unsupported dtype ${shown} (structured arrays have no tensor equivalent)`);
  }
  const m = /^([<>|=])([a-zA-Z])(\d*)$/.exec(descr);
  if (!m) return fail(where, `unsupported dtype '${descr}'`);
  const [, order, kind, width] = m;
  const dtype = (CODES as Record<string, NumericDType>)[kind + width];
  if (dtype === undefined) {
    const what = UNSUPPORTED_KINDS[kind];
    return fail(where, `unsupported dtype '${descr}'${what ? ` (${what})` : ''}`);
  }
  if (order === '|' && width !== '1') {
    fail(where, `unsupported dtype '${descr}' (multi-byte type without a byte order)`);
  }
  return { dtype, little: order === '>' ? false : order === '=' ? LITTLE_ENDIAN_HOST : true, itemSize: Number(width) };
}

function byteSwap(raw: Uint8Array, itemSize: number): void {
  if (itemSize === 1) return;
  for (let i = 0; i < raw.length; i += itemSize) raw.subarray(i, i + itemSize).reverse();
}

/** Reorders column-major data (first axis fastest) into row-major data of the same shape. */
function fromFortran(t: Tensor): Tensor {
  const shape = t.shape;
  const rank = shape.length;
  const fStrides = new Array<number>(rank);
  for (let k = 0, s = 1; k < rank; k++) {
    fStrides[k] = s;
    s *= shape[k];
  }
  const src = t.data as NumericData;
  const dst = Tensor.zeros(t.dtype, shape);
  const out = dst.data as typeof src;
  const index = new Array<number>(rank).fill(0);
  let offset = 0; // Fortran offset of the C-order position i
  for (let i = 0; i < out.length; i++) {
    out[i] = src[offset];
    for (let k = rank - 1; k >= 0; k--) {
      index[k]++;
      offset += fStrides[k];
      if (index[k] < shape[k]) break;
      offset -= fStrides[k] * shape[k];
      index[k] = 0;
    }
  }
  return dst;
}

/** Python atoms of a header; sticky so that long (format 2.0) headers are not re-sliced per token. */
const ATOM = /True|False|None|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?L?/y;

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

/** A reader for the Python literals of a .npy header (dicts, tuples, lists, strings, ints, booleans), never eval. */
class PyLiteral {
  private pos = 0;

  constructor(private readonly src: string) {}

  parseAll(): PyValue {
    const v = this.value();
    this.skip();
    if (this.pos < this.src.length) throw new Error(`unexpected '${this.src[this.pos]}' at ${this.pos}`);
    return v;
  }

  private skip(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos])) this.pos++;
  }

  private value(): PyValue {
    this.skip();
    const c = this.src[this.pos];
    if (c === '{') return this.dict();
    if (c === '(' || c === '[') return this.sequence(c === '(' ? ')' : ']');
    if (c === "'" || c === '"') return this.string(c);
    ATOM.lastIndex = this.pos;
    const m = ATOM.exec(this.src);
    if (!m) throw new Error(c === undefined ? 'unexpected end' : `unexpected '${c}' at ${this.pos}`);
    this.pos += m[0].length;
    if (m[0] === 'True' || m[0] === 'False') return m[0] === 'True';
    if (m[0] === 'None') return null;
    return Number(m[0].replace(/L$/, '')); // Python 2 wrote longs as 3L
  }

  private expect(c: string): void {
    this.skip();
    if (this.src[this.pos] !== c) throw new Error(`expected '${c}' at ${this.pos}`);
    this.pos++;
  }

  /** Items up to `close`, allowing a trailing comma. */
  private items(close: string, item: () => void): void {
    this.pos++;
    for (;;) {
      this.skip();
      if (this.src[this.pos] === close) break;
      item();
      this.skip();
      if (this.src[this.pos] === ',') this.pos++;
      else if (this.src[this.pos] !== close) throw new Error(`expected ',' or '${close}' at ${this.pos}`);
    }
    this.pos++;
  }

  private dict(): PyValue {
    const out: Record<string, PyValue> = {};
    this.items('}', () => {
      const key = this.value();
      if (typeof key !== 'string') throw new Error('dict key is not a string');
      this.expect(':');
      out[key] = this.value();
    });
    return out;
  }

  private sequence(close: string): PyValue[] {
    const out: PyValue[] = [];
    this.items(close, () => out.push(this.value()));
    return out;
  }

  private string(quote: string): string {
    const end = this.src.indexOf(quote, this.pos + 1);
    if (end < 0) throw new Error('unterminated string');
    const s = this.src.slice(this.pos + 1, end);
    this.pos = end + 1;
    return s;
  }
}
