/**
 * Reading ONNX's backend node tests (`onnx/backend/test/data/node/<test>/`, as Debian's libonnx-testdata installs
 * them): a model.onnx and test_data_set_<k>/ folders of input_<i>.pb and output_<i>.pb, each a serialized proto of
 * the type the model declares for that input or output.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeModel, decodeTensorProto, tensorTypeOf, type ValueInfoProto } from '../../src/onnx/proto.js';
import { dtypeOfOnnx, onnxTypeName, tensorFromProto } from '../../src/onnx/tensor-proto.js';
import type { Tensor } from '../../src/runtime/tensor.js';

/** Where Debian's libonnx-testdata puts the node tests. */
export const NODE_TESTS_DIR = '/usr/share/libonnx-testdata/data/node';

export interface DataSet {
  /** 'test_data_set_0', … */
  readonly name: string;
  readonly feeds: Readonly<Record<string, Tensor>>;
  /** Reference outputs, in graph-output order. */
  readonly expected: readonly { readonly name: string; readonly tensor: Tensor }[];
}

export interface NodeTest {
  /** The test folder's name, e.g. 'test_abs'. */
  readonly name: string;
  /** The model.onnx bytes as read from disk. */
  readonly model: Uint8Array;
  readonly sets: readonly DataSet[];
}

/** A test that cannot be run as tensors in, tensors out; `reason` is the tally key, `detail` says more. */
export interface Skip {
  readonly name: string;
  readonly reason: string;
  readonly detail: string;
}

/** The test folder names, sorted. */
export async function listNodeTests(root = NODE_TESTS_DIR): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** Why a declared input or output is no glassbox tensor, or undefined when it is one. */
function notATensor(vi: ValueInfoProto): Omit<Skip, 'name'> | undefined {
  const t = tensorTypeOf(vi.type);
  if (!t) {
    const kind = vi.type?.value.case ?? 'untyped value';
    return { reason: 'not a tensor test', detail: `'${vi.name}' is a ${kind}` };
  }
  if (!dtypeOfOnnx(t.elemType)) {
    return { reason: `dtype not held: ${onnxTypeName(t.elemType)}`, detail: `'${vi.name}' is ${onnxTypeName(t.elemType)}` };
  }
  return undefined;
}

async function readTensor(path: string): Promise<{ protoName: string; tensor: Tensor }> {
  const tp = decodeTensorProto(new Uint8Array(await readFile(path)), path);
  return { protoName: tp.name, tensor: tensorFromProto(tp) };
}

/** Files `<prefix><i>.pb` of a data set folder, in index order. */
function numbered(files: readonly string[], prefix: string): string[] {
  const re = new RegExp(`^${prefix}(\\d+)\\.pb$`);
  return files
    .map((f) => ({ f, m: re.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => Number(a.m[1]) - Number(b.m[1]))
    .map((x) => x.f);
}

/** A TensorProto's own name when it names one of `names`, else the name at its position. */
function nameFor(protoName: string, names: readonly string[], i: number, what: string): string {
  if (protoName && names.includes(protoName)) return protoName;
  if (i >= names.length) throw new Error(`${what} ${i} has no matching graph ${what} (the graph has ${names.length})`);
  return names[i];
}

/** Loads one test folder, or says why it is no tensor test glassbox can hold. */
export async function loadNodeTest(name: string, root = NODE_TESTS_DIR): Promise<NodeTest | Skip> {
  const dir = join(root, name);
  const model = new Uint8Array(await readFile(join(dir, 'model.onnx')));
  const graph = decodeModel(model, `${name}/model.onnx`).graph;
  if (!graph) throw new Error(`${name}: model has no graph`);
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const inputs = graph.input.filter((vi) => !initializers.has(vi.name));
  for (const vi of [...inputs, ...graph.output]) {
    const why = notATensor(vi);
    if (why) return { name, ...why };
  }
  const inputNames = inputs.map((vi) => vi.name);
  const outputNames = graph.output.map((vi) => vi.name);

  const setDirs = (await readdir(dir)).filter((d) => /^test_data_set_\d+$/.test(d)).sort();
  if (setDirs.length === 0) return { name, reason: 'no test data', detail: 'no test_data_set_* folder' };
  const sets: DataSet[] = [];
  for (const setDir of setDirs) {
    const files = await readdir(join(dir, setDir));
    const feeds: Record<string, Tensor> = {};
    for (const [i, f] of numbered(files, 'input_').entries()) {
      const { protoName, tensor } = await readTensor(join(dir, setDir, f));
      feeds[nameFor(protoName, inputNames, i, 'input')] = tensor;
    }
    const expected: { name: string; tensor: Tensor }[] = [];
    for (const [i, f] of numbered(files, 'output_').entries()) {
      const { protoName, tensor } = await readTensor(join(dir, setDir, f));
      expected.push({ name: nameFor(protoName, outputNames, i, 'output'), tensor });
    }
    sets.push({ name: setDir, feeds, expected });
  }
  return { name, model, sets };
}
