import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeNpy, parseNpy, readNpy, writeNpy } from '../../src/data/npy.js';
import { DType, DataTypeMap, Tensor } from '../../src/runtime/tensor.js';

// Compiled to build/test/data/, so the repository root is three levels up.
const FIXTURES = fileURLToPath(new URL('../../../test/data/fixtures/npy/', import.meta.url));
const fixture = (name: string) => join(FIXTURES, `${name}.npy`);
const bytesOf = async (name: string) => new Uint8Array(await readFile(fixture(name)));

/** The formulas of make_npy.py, over the flat index i of a (2, 3) array. */
const FORMULAS = {
  f4: { dtype: 'float32', at: (i: number) => Math.fround(i / 3 - 0.5) },
  f8: { dtype: 'float64', at: (i: number) => i / 7 - 0.3 },
  f2: { dtype: 'float16', at: (i: number) => [0, 1, -2, 0.5, 65504, 2 ** -24][i] },
  i8: { dtype: 'int64', at: (i: number) => (BigInt(i) - 3n) * 3n ** 38n },
  i4: { dtype: 'int32', at: (i: number) => (i - 3) * 100_000 },
  i2: { dtype: 'int16', at: (i: number) => (i - 3) * 1000 },
  i1: { dtype: 'int8', at: (i: number) => ((i * 37) % 256) - 128 },
  u1: { dtype: 'uint8', at: (i: number) => i * 50 },
  u2: { dtype: 'uint16', at: (i: number) => i * 13000 },
  u4: { dtype: 'uint32', at: (i: number) => i * 800_000_000 },
  u8: { dtype: 'uint64', at: (i: number) => 2n ** 64n - 1n - BigInt(i) },
  b1: { dtype: 'bool', at: (i: number) => (i % 3 === 0 ? 1 : 0) },
} satisfies Record<string, { dtype: DType; at: (i: number) => number | bigint }>;
type Code = keyof typeof FORMULAS;
const CODES = Object.keys(FORMULAS) as Code[];

const expected = (code: Code): (number | bigint)[] => [0, 1, 2, 3, 4, 5].map((i) => FORMULAS[code].at(i));

/** Values as numbers or bigints, float16 decoded from its bits, so they compare with the formulas. */
function values(t: Tensor): (number | bigint)[] {
  if (t.dtype === 'float16') return Array.from(t.data as Uint16Array, halfToFloat);
  return Array.from(t.data as ArrayLike<number | bigint>);
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  return exp === 0 ? sign * frac * 2 ** -24 : sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The formula's tensor, built without the parser. */
function build(code: Code): Tensor {
  const { dtype, at } = FORMULAS[code];
  const t = Tensor.zeros(dtype, [2, 3]);
  const data = t.data as DataTypeMap[Exclude<DType, 'string'>];
  for (let i = 0; i < 6; i++) {
    const v = at(i);
    if (dtype === 'float16') (data as Uint16Array)[i] = [0, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001][i];
    else data[i] = v;
  }
  return t;
}

/** A format 1.0 file with a hand-written header dict, independent of encodeNpy. */
function npyWith(dict: string, data: Uint8Array, version = 1): Uint8Array {
  const lenBytes = version === 1 ? 2 : 4;
  const header = dict.padEnd(Math.ceil((8 + lenBytes + dict.length + 1) / 64) * 64 - 9 - lenBytes) + '\n';
  const out = new Uint8Array(8 + lenBytes + header.length + data.length);
  out.set([0x93, ...new TextEncoder().encode('NUMPY'), version, 0]);
  if (lenBytes === 2) new DataView(out.buffer).setUint16(8, header.length, true);
  else new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), 8 + lenBytes);
  out.set(data, 8 + lenBytes + header.length);
  return out;
}

for (const code of CODES) {
  test(`readNpy reads numpy's ${code} array value by value`, async () => {
    const t = await readNpy(fixture(code));
    assert.equal(t.dtype, FORMULAS[code].dtype);
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(values(t), expected(code));
  });

  test(`encodeNpy writes the ${code} array byte for byte as numpy does`, async () => {
    assert.deepEqual(encodeNpy(build(code)), await bytesOf(code));
  });
}

for (const code of ['f4', 'f8', 'i8', 'u2', 'f2'] as const) {
  test(`big-endian ${code} parses to native values and re-encodes as numpy's little-endian file`, async () => {
    const t = parseNpy(await bytesOf(`be_${code}`));
    assert.equal(t.dtype, FORMULAS[code].dtype);
    assert.deepEqual(values(t), expected(code));
    assert.deepEqual(encodeNpy(t), await bytesOf(code));
  });
}

test('fortran_order arrays are transposed to C order', async () => {
  const t = parseNpy(await bytesOf('f4_234_fortran'));
  assert.deepEqual(t.shape, [2, 3, 4]);
  assert.deepEqual(t.toArray(), Array.from({ length: 24 }, (_, i) => i * 0.5));
  assert.deepEqual(encodeNpy(t), await bytesOf('f4_234'));

  const be = parseNpy(await bytesOf('be_i4_234_fortran'));
  assert.equal(be.dtype, 'int32');
  assert.deepEqual(be.toArray(), Array.from({ length: 24 }, (_, i) => Math.trunc(i * 0.5)));
});

test('scalars, empty arrays and vectors keep their shapes', async () => {
  const scalar = await readNpy(fixture('scalar_f8'));
  assert.deepEqual(scalar.shape, []);
  assert.deepEqual(scalar.toArray(), [3.25]);
  const empty = await readNpy(fixture('empty_f4'));
  assert.deepEqual(empty.shape, [0, 3]);
  assert.equal(empty.size, 0);
  const vector = await readNpy(fixture('vector_i4'));
  assert.deepEqual(vector.shape, [5]);
  assert.deepEqual(vector.toArray(), [0, -7, -14, -21, -28]);
  for (const name of ['scalar_f8', 'empty_f4', 'vector_i4', 'f4_234']) {
    assert.deepEqual(encodeNpy(await readNpy(fixture(name))), await bytesOf(name), name);
  }
});

test('format 2.0 and 3.0 headers parse like 1.0', async () => {
  for (const name of ['v2_f4', 'v3_f4']) {
    const bytes = await bytesOf(name);
    assert.equal(bytes[6], name === 'v2_f4' ? 2 : 3);
    assert.deepEqual(parseNpy(bytes).toArray(), expected('f4'));
  }
});

test('encodeNpy pads every header so the data starts at a multiple of 64', () => {
  for (const shape of [[], [1], [7, 1], [12345678, 0], [1, 2, 3, 4, 5, 6, 7, 8]]) {
    const bytes = encodeNpy(Tensor.zeros('float32', shape));
    const headerLen = new DataView(bytes.buffer).getUint16(8, true);
    assert.equal((10 + headerLen) % 64, 0, `shape [${shape}]`);
    assert.equal(bytes[10 + headerLen - 1], 0x0a);
    assert.deepEqual(parseNpy(bytes).shape, shape);
  }
});

test('encodeNpy falls back to format 2.0 when the header outgrows 64 KiB', () => {
  const shape = new Array<number>(30_000).fill(1);
  const bytes = encodeNpy(new Tensor('float32', new Float32Array([2.5]), shape));
  assert.equal(bytes[6], 2);
  const headerLen = new DataView(bytes.buffer).getUint32(8, true);
  assert.ok(headerLen > 0xffff);
  assert.equal((12 + headerLen) % 64, 0);
  const back = parseNpy(bytes);
  assert.equal(back.rank, 30_000);
  assert.deepEqual(back.toArray(), [2.5]);
});

test('hand-written headers: Python 2 longs, native order, double quotes, bool bytes normalised', () => {
  const ints = new Uint8Array(new Int32Array([5, -6]).buffer);
  const py2 = npyWith("{'descr': '<i4', 'fortran_order': False, 'shape': (2L,), }", ints);
  assert.deepEqual(parseNpy(py2).toArray(), [5, -6]);
  const native = npyWith('{"shape": [2], "descr": "=i4", "fortran_order": False}', ints);
  assert.deepEqual(parseNpy(native).toArray(), [5, -6]);
  const boolBytes = new Uint8Array([0, 7, 1]);
  const bools = parseNpy(npyWith("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", boolBytes));
  assert.deepEqual(Array.from(bools.data as Uint8Array), [0, 1, 1]);
});

test('writeNpy and readNpy round-trip through a file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-npy-'));
  try {
    const path = join(dir, 'x.npy');
    const t = Tensor.int64([1, -2, 2 ** 60], [3, 1]);
    await writeNpy(path, t);
    const back = await readNpy(path);
    assert.equal(back.dtype, 'int64');
    assert.deepEqual(back.shape, [3, 1]);
    assert.deepEqual(Array.from(back.data as BigInt64Array), [1n, -2n, 2n ** 60n]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('not a .npy file: bad magic', () => {
  assert.throws(() => parseNpy(new TextEncoder().encode('PK\x03\x04 a zip, not an array')), {
    message: 'parseNpy: not a .npy file (bad magic)',
  });
  assert.throws(() => parseNpy(new Uint8Array(0)), /not a \.npy file \(bad magic\)/);
});

test('truncated files say how many bytes are missing', async () => {
  const bytes = await bytesOf('f4');
  assert.throws(() => parseNpy(bytes.subarray(0, bytes.length - 1)), {
    message: 'parseNpy: truncated: header says 24 bytes of data, file has 23',
  });
  assert.throws(() => parseNpy(bytes.subarray(0, 40)), /truncated: header says 118 bytes of header, file has 30/);
  const v2 = await bytesOf('v2_f4');
  assert.throws(() => parseNpy(v2.subarray(0, 10)), /truncated: the file ends inside the header length/);
});

test('unsupported dtypes are named', async () => {
  const cases = {
    bad_c8: "unsupported dtype '<c8' (complex numbers)",
    bad_object: "unsupported dtype '|O' (Python objects)",
    bad_unicode: "unsupported dtype '<U2' (unicode strings)",
    bad_structured: 'unsupported dtype [["a","<f4"],["b","<i2"]] (structured arrays have no tensor equivalent)',
  };
  for (const [name, message] of Object.entries(cases)) {
    const bytes = await bytesOf(name);
    assert.throws(() => parseNpy(bytes), { message: `parseNpy: ${message}` });
  }
  const f16 = npyWith("{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(16));
  assert.throws(() => parseNpy(f16), /unsupported dtype '<f16' \(a float width other than 2, 4 or 8 bytes\)/);
});

test('readNpy errors name the file', async () => {
  const path = fixture('bad_c8');
  await assert.rejects(readNpy(path), { message: `readNpy ${path}: unsupported dtype '<c8' (complex numbers)` });
  await assert.rejects(readNpy(join(FIXTURES, 'missing.npy')), /ENOENT.*missing\.npy/);
});

test('malformed headers and versions are reported, not crashed on', () => {
  const data = new Uint8Array(4);
  const bad = (dict: string) => () => parseNpy(npyWith(dict, data));
  assert.throws(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)"), /bad header .*expected ',' or '}'/);
  assert.throws(bad("{'descr': '<f4', 'shape': (1,), }"), /no boolean 'fortran_order'/);
  assert.throws(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), /bad 'shape'/);
  assert.throws(bad("{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os'), }"), /bad header/);
  assert.throws(bad("[1, 2]"), /header is not a dict/);
  const v4 = npyWith("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", data);
  v4[6] = 4;
  assert.throws(() => parseNpy(v4), /unsupported \.npy format version 4\.0/);
});

test('encodeNpy refuses string tensors', () => {
  assert.throws(() => encodeNpy(new Tensor('string', ['a'], [1])), /encodeNpy: string tensors have no \.npy dtype/);
});
