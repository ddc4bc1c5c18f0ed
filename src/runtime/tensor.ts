/**
 * The one tensor type of glassbox: a dtype, a shape and a flat row-major typed array.
 * It is independent of any ONNX Runtime package; the runtime layer converts at its edge.
 */

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool'
  | 'string';

/** The storage of each dtype (float16 as raw IEEE half bits, bool as 0/1 bytes). */
export interface DataTypeMap {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array;
  bool: Uint8Array;
  string: string[];
}

export type TensorData = DataTypeMap[DType];

type Ctor = { new (n: number): TensorData; BYTES_PER_ELEMENT?: number };

const STORAGE = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
  string: Array as unknown as Ctor,
} satisfies Record<DType, Ctor>;

export const DTYPES = Object.keys(STORAGE) as DType[];

/** Bytes per element (strings counted as 8, a rough pointer size, for memory budgets). */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'string' ? 8 : (STORAGE[dtype] as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
}

export function isDType(s: string): s is DType {
  return (DTYPES as string[]).includes(s);
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DataTypeMap[D];

  constructor(dtype: D, data: DataTypeMap[D], shape: readonly number[]) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`Tensor: bad dimension ${d} in shape [${shape.join(', ')}]`);
    }
    const expected = sizeOf(shape);
    if (data.length !== expected) {
      throw new Error(`Tensor: ${dtype} data has ${data.length} elements but shape [${shape.join(', ')}] needs ${expected}`);
    }
    const want = STORAGE[dtype];
    if (dtype !== 'string' && !(data instanceof (want as unknown as typeof Float32Array))) {
      throw new Error(`Tensor: ${dtype} data must be a ${want.name}, got ${data.constructor.name}`);
    }
    this.dtype = dtype;
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A new tensor of zeros (empty strings, false). */
  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    const n = sizeOf(shape);
    const data = dtype === 'string' ? new Array<string>(n).fill('') : new STORAGE[dtype](n);
    return new Tensor(dtype, data as DataTypeMap[D], shape);
  }

  static float32(data: ArrayLike<number>, shape?: readonly number[]): Tensor<'float32'> {
    return new Tensor('float32', Float32Array.from(data), shape ?? [data.length]);
  }

  static float64(data: ArrayLike<number>, shape?: readonly number[]): Tensor<'float64'> {
    return new Tensor('float64', Float64Array.from(data), shape ?? [data.length]);
  }

  static int64(data: ArrayLike<number | bigint>, shape?: readonly number[]): Tensor<'int64'> {
    const out = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = BigInt(data[i]);
    return new Tensor('int64', out, shape ?? [data.length]);
  }

  static bool(data: ArrayLike<boolean | number>, shape?: readonly number[]): Tensor<'bool'> {
    const out = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = data[i] ? 1 : 0;
    return new Tensor('bool', out, shape ?? [data.length]);
  }

  /** The same data under another shape of the same size. */
  reshape(shape: readonly number[]): Tensor<D> {
    return new Tensor(this.dtype, this.data, shape);
  }

  /** Element i as a JS number (int64 and uint64 converted, which may round above 2^53). */
  at(i: number): number {
    const v = this.data[i];
    if (typeof v === 'string') throw new Error('Tensor.at: string tensor');
    return Number(v);
  }

  /** Plain numbers, for small tensors and tests. */
  toArray(): number[] {
    if (this.dtype === 'string') throw new Error('Tensor.toArray: string tensor');
    return Array.from(this.data as ArrayLike<number | bigint>, Number);
  }

  toString(): string {
    return `Tensor<${this.dtype}>[${this.shape.join('×')}]`;
  }
}

/** Rows [start, end) along axis 0, sharing no storage with the source. */
export function sliceRows<D extends DType>(t: Tensor<D>, start: number, end: number): Tensor<D> {
  if (t.rank === 0) throw new Error('sliceRows: scalar tensor has no batch axis');
  const row = sizeOf(t.shape.slice(1));
  const data = t.data.slice(start * row, end * row) as DataTypeMap[D];
  return new Tensor(t.dtype, data, [end - start, ...t.shape.slice(1)]);
}

/** Joins tensors along axis 0; all must share dtype and trailing shape. */
export function concatRows<D extends DType>(parts: readonly Tensor<D>[]): Tensor<D> {
  if (parts.length === 0) throw new Error('concatRows: nothing to join');
  if (parts.length === 1) return parts[0];
  const first = parts[0];
  const tail = first.shape.slice(1).join(',');
  let rows = 0;
  for (const p of parts) {
    if (p.dtype !== first.dtype || p.shape.slice(1).join(',') !== tail) {
      throw new Error(`concatRows: cannot join ${first} and ${p}`);
    }
    rows += p.shape[0];
  }
  const out = Tensor.zeros(first.dtype, [rows, ...first.shape.slice(1)]);
  let offset = 0;
  for (const p of parts) {
    if (first.dtype === 'string') {
      const dst = out.data as string[];
      (p.data as string[]).forEach((s, i) => (dst[offset + i] = s));
    } else {
      (out.data as Float32Array).set(p.data as Float32Array, offset);
    }
    offset += p.size;
  }
  return out;
}
