/**
 * IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"):
 * a magic number of two zero bytes, a type code and the number of dimensions, then each dimension as a big-endian
 * uint32, then the data in row-major order, big-endian. Gzipped files (`*.gz`) are inflated first.
 *
 * @example
 * const images = await readIdx('train-images-idx3-ubyte'); // Tensor<'uint8'>[60000×28×28]
 */

import { Tensor, sizeOf } from '../../runtime/tensor.js';

/** IDX type codes and the tensor dtype each becomes. */
const TYPES = {
  0x08: { dtype: 'uint8', bytes: 1 },
  0x09: { dtype: 'int8', bytes: 1 },
  0x0b: { dtype: 'int16', bytes: 2 },
  0x0c: { dtype: 'int32', bytes: 4 },
  0x0d: { dtype: 'float32', bytes: 4 },
  0x0e: { dtype: 'float64', bytes: 8 },
} as const;
type IdxDType = (typeof TYPES)[keyof typeof TYPES]['dtype'];

const GZIP = [0x1f, 0x8b];

/**
 * Parses the bytes of an IDX file. A uint8 result views `bytes` without copying (MNIST's 47 MB stay one buffer);
 * wider types are copied into native byte order.
 */
export function parseIdx(bytes: Uint8Array, where = 'parseIdx'): Tensor<IdxDType> {
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  if (bytes.length >= 2 && bytes[0] === GZIP[0] && bytes[1] === GZIP[1]) fail('gzip data: inflate it first (readIdx does)');
  if (bytes.length < 4) fail(`truncated: ${bytes.length} bytes, too short for the 4-byte magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    fail(`not an IDX file (bad magic 0x${magic}: the first two bytes must be zero)`);
  }
  const code = bytes[2];
  const type = (TYPES as Record<number, (typeof TYPES)[keyof typeof TYPES]>)[code];
  if (type === undefined) {
    const known = Object.keys(TYPES).map((k) => `0x${Number(k).toString(16).padStart(2, '0')}`);
    fail(`unknown IDX type code 0x${code.toString(16).padStart(2, '0')} (known: ${known.join(', ')})`);
  }
  const rank = bytes[3];
  if (rank === 0) fail('IDX file with zero dimensions');
  const dataStart = 4 + 4 * rank;
  if (bytes.length < dataStart) fail(`truncated: the header needs ${dataStart} bytes for ${rank} dimensions, file has ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let k = 0; k < rank; k++) shape.push(view.getUint32(4 + 4 * k, false));
  const count = sizeOf(shape);
  const expected = count * type.bytes;
  const available = bytes.length - dataStart;
  if (available < expected) {
    fail(`truncated: dimensions [${shape.join(', ')}] need ${expected} bytes of data, file has ${available}`);
  }
  if (available > expected) fail(`${available - expected} unexpected bytes after the data of [${shape.join(', ')}]`);

  const body = bytes.subarray(dataStart);
  switch (type.dtype) {
    case 'uint8':
      return new Tensor('uint8', body, shape);
    case 'int8':
      return new Tensor('int8', new Int8Array(body.buffer, body.byteOffset, count), shape);
    case 'int16':
      return new Tensor('int16', Int16Array.from({ length: count }, (_, i) => view.getInt16(dataStart + 2 * i)), shape);
    case 'int32':
      return new Tensor('int32', Int32Array.from({ length: count }, (_, i) => view.getInt32(dataStart + 4 * i)), shape);
    case 'float32':
      return new Tensor('float32', Float32Array.from({ length: count }, (_, i) => view.getFloat32(dataStart + 4 * i)), shape);
    case 'float64':
      return new Tensor('float64', Float64Array.from({ length: count }, (_, i) => view.getFloat64(dataStart + 8 * i)), shape);
  }
}

/** Reads an IDX file, gunzipping it when it is gzip data; errors name the path. */
export async function readIdx(path: string): Promise<Tensor<IdxDType>> {
  const { readFile } = await import('node:fs/promises');
  let buf: Uint8Array = await readFile(path);
  if (buf.length >= 2 && buf[0] === GZIP[0] && buf[1] === GZIP[1]) {
    const { gunzip } = await import('node:zlib');
    const { promisify } = await import('node:util');
    try {
      buf = await promisify(gunzip)(buf);
    } catch (e) {
      throw new Error(`readIdx ${path}: bad gzip data: ${(e as Error).message}`);
    }
  }
  return parseIdx(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), `readIdx ${path}`);
}
