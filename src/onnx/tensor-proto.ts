/** Conversion between ONNX TensorProto (initializers, Constant values, test data) and glassbox Tensors. */
import { Tensor, sizeOf, type DType, type DataTypeMap } from '../runtime/tensor.js';
import { DataLocation, makeTensorProto, type TensorProto } from './proto.js';

/** ONNX TensorProto.DataType codes of the dtypes glassbox holds. */
export const ONNX_DTYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
} as const satisfies Record<DType, number>;

const ONNX_NAMES: Record<number, string> = {
  0: 'undefined', 14: 'complex64', 15: 'complex128', 16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz',
  19: 'float8e5m2', 20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4', 23: 'float4e2m1',
};

const BY_CODE = new Map<number, DType>(Object.entries(ONNX_DTYPE).map(([k, v]) => [v, k as DType]));

/** The glassbox dtype of an ONNX element type code, or undefined if glassbox cannot hold it. */
export function dtypeOfOnnx(code: number): DType | undefined {
  return BY_CODE.get(code);
}

/** A readable name of an ONNX element type code, also for the ones glassbox cannot hold. */
export function onnxTypeName(code: number): string {
  return BY_CODE.get(code) ?? ONNX_NAMES[code] ?? `type ${code}`;
}

function littleEndianView(raw: Uint8Array, dtype: DType, n: number): DataTypeMap[DType] {
  // Copy into a fresh, aligned buffer: raw_data is a view into the model file (a Node Buffer, whose slice() would
  // share the file's memory), rarely aligned to the element size.
  const buf = new Uint8Array(raw).buffer;
  switch (dtype) {
    case 'float32': return new Float32Array(buf, 0, n);
    case 'float64': return new Float64Array(buf, 0, n);
    case 'float16': case 'uint16': return new Uint16Array(buf, 0, n);
    case 'int8': return new Int8Array(buf, 0, n);
    case 'int16': return new Int16Array(buf, 0, n);
    case 'int32': return new Int32Array(buf, 0, n);
    case 'int64': return new BigInt64Array(buf, 0, n);
    case 'uint8': case 'bool': return new Uint8Array(buf, 0, n);
    case 'uint32': return new Uint32Array(buf, 0, n);
    case 'uint64': return new BigUint64Array(buf, 0, n);
    case 'string': throw new Error('string tensors have no raw_data form');
  }
}

/** Reads a TensorProto's values (raw_data or the typed repeated fields). External data must be inlined first. */
export function tensorFromProto(tp: TensorProto): Tensor {
  const what = tp.name ? `tensor '${tp.name}'` : 'tensor';
  const dtype = dtypeOfOnnx(tp.dataType);
  if (!dtype) throw new Error(`${what}: element type ${onnxTypeName(tp.dataType)} is not supported`);
  if (tp.dataLocation === DataLocation.EXTERNAL) {
    const loc = tp.externalData.find((e) => e.key === 'location')?.value ?? '?';
    throw new Error(`${what}: data is stored in an external file '${loc}'; load the model from its path so the file can be read`);
  }
  const shape = tp.dims.map(Number);
  const n = sizeOf(shape);
  if (dtype === 'string') {
    const dec = new TextDecoder();
    return new Tensor('string', tp.stringData.map((s) => dec.decode(s)), shape);
  }
  if (tp.rawData.length > 0) {
    const need = n * (dtype === 'float64' || dtype === 'int64' || dtype === 'uint64' ? 8 : dtype === 'float32' || dtype === 'int32' || dtype === 'uint32' ? 4 : dtype === 'float16' || dtype === 'int16' || dtype === 'uint16' ? 2 : 1);
    if (tp.rawData.length !== need) {
      throw new Error(`${what}: raw_data has ${tp.rawData.length} bytes, shape [${shape.join(', ')}] of ${dtype} needs ${need}`);
    }
    return new Tensor<DType>(dtype, littleEndianView(tp.rawData, dtype, n) as never, shape);
  }
  const out = Tensor.zeros(dtype, shape);
  const src: ArrayLike<number | bigint> =
    dtype === 'float32' ? tp.floatData
    : dtype === 'float64' ? tp.doubleData
    : dtype === 'int64' ? tp.int64Data
    : dtype === 'uint32' || dtype === 'uint64' ? tp.uint64Data
    : tp.int32Data; // int8/16/32, uint8/16, bool and float16 bits all live in int32_data
  if (src.length !== n) {
    throw new Error(`${what}: holds ${src.length} values, shape [${shape.join(', ')}] needs ${n}`);
  }
  const dst = out.data as unknown as { [i: number]: number | bigint };
  const big = dtype === 'int64' || dtype === 'uint64';
  for (let i = 0; i < n; i++) dst[i] = big ? BigInt(src[i]) : Number(src[i]);
  return out;
}

/** A TensorProto holding `t` as little-endian raw_data (strings in string_data). */
export function tensorToProto(t: Tensor, name = ''): TensorProto {
  const dims = t.shape.map((d) => BigInt(d));
  if (t.dtype === 'string') {
    const enc = new TextEncoder();
    return makeTensorProto({ name, dims, dataType: ONNX_DTYPE.string, stringData: (t.data as string[]).map((s) => enc.encode(s)) });
  }
  const view = t.data as Exclude<DataTypeMap[DType], string[]>;
  const rawData = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
  return makeTensorProto({ name, dims, dataType: ONNX_DTYPE[t.dtype], rawData });
}
