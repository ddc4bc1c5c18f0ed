/**
 * ONNX's backend node tests (Debian's libonnx-testdata): for every model ONNX Runtime itself runs to the reference
 * outputs, glassbox's decode → encode → run reproduces those outputs, bit-identical to ONNX Runtime on the original
 * file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { Graph } from '../../src/onnx/graph.js';
import { nodeRuntime } from '../../src/runtime/node.js';
import { Tensor, isDType, type DType, type DataTypeMap } from '../../src/runtime/tensor.js';
import { bitMismatch, mismatch } from './compare.js';
import { ORT_KNOWN_MISSES } from './ort-known-misses.js';
import { NODE_TESTS_DIR, listNodeTests, loadNodeTest, type NodeTest, type Skip } from './node-tests.js';

/**
 * Node tests ONNX Runtime ran to the reference when this test was written (onnxruntime-node 1.30.0, Debian's
 * libonnx-testdata 1.12.0-2: 859 of 932). Fewer than FLOOR means a regression stopped some silently.
 */
const MEASURED = 859;
const FLOOR = MEASURED - 9;

const ORT_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'disabled',
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  logSeverityLevel: 4, // fatal only: the refusals tallied here would otherwise print to stderr
};

/** Tally keys for ONNX Runtime's refusals, by what its message says; the first that matches names the reason. */
const ORT_REASONS = [
  [/is not a registered function\/op/, 'op not registered'],
  [/Could not find an implementation/, 'no kernel for these types'],
  [/Exception during initialization/, 'kernel rejects its attributes or environment'],
] as const satisfies readonly (readonly [RegExp, string])[];

function ortReason(stage: 'load' | 'run', e: unknown): Omit<Skip, 'name'> {
  const message = String((e as Error)?.message ?? e).split('\n')[0];
  const why = ORT_REASONS.find(([re]) => re.test(message))?.[1] ?? 'other';
  return { reason: `ORT cannot ${stage}: ${why}`, detail: message };
}

/** ONNX Runtime's outputs for each data set, run straight from the original bytes, or why it cannot run them. */
async function runOriginal(t: NodeTest): Promise<Record<string, Tensor>[] | Omit<Skip, 'name'>> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(t.model, ORT_OPTIONS);
  } catch (e) {
    return ortReason('load', e);
  }
  try {
    const results: Record<string, Tensor>[] = [];
    for (const set of t.sets) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(set.feeds)) feeds[k] = new ort.Tensor(v.dtype, v.data as ort.Tensor.DataType, [...v.shape]);
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run(feeds);
      } catch (e) {
        return ortReason('run', e);
      }
      const result: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(out)) {
        if (!isDType(v.type)) return { reason: `dtype not held: ${v.type}`, detail: `ORT output '${k}' is ${v.type}` };
        result[k] = new Tensor(v.type as DType, v.data as DataTypeMap[DType], v.dims);
      }
      results.push(result);
    }
    return results;
  } finally {
    await session.release();
  }
}

/** Byte equality. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Where `outputs[k]` (one per data set) miss the reference outputs; each names the output, data set and worst element. */
function referenceMisses(t: NodeTest, outputs: readonly Record<string, Tensor>[]): string[] {
  const misses: string[] = [];
  for (const [k, set] of t.sets.entries()) {
    for (const { name, tensor } of set.expected) {
      const got = outputs[k][name];
      const why = got ? mismatch(got, tensor) : 'not returned';
      if (why) misses.push(`output '${name}' of ${set.name}: ${why}`);
    }
  }
  return misses;
}

interface Reproduction {
  /** The re-encoded model is byte-for-byte model.onnx. */
  readonly identical: boolean;
  /** glassbox's outputs, one record per data set. */
  readonly outputs: Record<string, Tensor>[];
}

/** Decode → encode → run through glassbox's runtime. */
async function reproduce(t: NodeTest): Promise<Reproduction> {
  const encoded = Graph.decode(t.model, t.name).encode();
  const session = await nodeRuntime.createSession(encoded, { optimization: 'disabled', threads: 1 });
  try {
    const outputs: Record<string, Tensor>[] = [];
    for (const set of t.sets) outputs.push(await session.run(set.feeds));
    return { identical: sameBytes(encoded, t.model), outputs };
  } finally {
    await session.release();
  }
}

/**
 * Where glassbox's outputs are not bit-for-bit ONNX Runtime's on the original file. Unseeded random ops (Bernoulli,
 * training Dropout) agree too: ONNX Runtime seeds them from one value per process, not per session.
 */
function ortMisses(t: NodeTest, ours: readonly Record<string, Tensor>[], theirs: readonly Record<string, Tensor>[]): string[] {
  const misses: string[] = [];
  for (const [k, set] of t.sets.entries()) {
    for (const name of Object.keys(theirs[k])) {
      const why = ours[k][name] ? bitMismatch(ours[k][name], theirs[k][name]) : 'not returned';
      if (why) misses.push(`output '${name}' of ${set.name} differs from ONNX Runtime on the original file: ${why}`);
    }
  }
  return misses;
}

/** What one node test came to: `ran` when ONNX Runtime reproduced the reference; failures are glassbox's. */
interface Outcome {
  readonly skip?: Skip;
  readonly ran: boolean;
  readonly failures: readonly string[];
  /** The re-encoded model is byte-for-byte model.onnx (when glassbox got that far). */
  readonly identical?: boolean;
}

async function checkNodeTest(name: string): Promise<Outcome> {
  let loaded: NodeTest | Skip;
  try {
    loaded = await loadNodeTest(name);
  } catch (e) {
    // The model declares tensors of dtypes glassbox holds, so failing to read them is glassbox's fault.
    return { ran: false, failures: [`cannot read the test files: ${(e as Error).message}`] };
  }
  if ('reason' in loaded) return { skip: loaded, ran: false, failures: [] };
  const original = await runOriginal(loaded);
  if (!Array.isArray(original)) return { skip: { name, ...original }, ran: false, failures: [] };

  // Where ONNX Runtime itself misses the reference (random ops, known kernel differences) it cannot run the model,
  // but glassbox must still give exactly what ONNX Runtime gives.
  const ortWrong = referenceMisses(loaded, original);
  const ran = ortWrong.length === 0;
  const known = ORT_KNOWN_MISSES.get(name);
  const skip = ran || !known ? undefined : { name, reason: 'ORT runs but misses the reference', detail: `${known}; ${ortWrong[0]}` };
  const failures: string[] = [];
  if (!ran && !known) {
    failures.push(
      `ONNX Runtime on the original file, fed glassbox's reading of the test data, misses the reference ` +
        `(if ONNX Runtime changed, add the test to ORT_KNOWN_MISSES): ${ortWrong[0]}`,
    );
  }
  let ours: Reproduction;
  try {
    ours = await reproduce(loaded);
  } catch (e) {
    return { skip, ran, failures: [...failures, (e as Error).message] };
  }
  if (ran) failures.push(...referenceMisses(loaded, ours.outputs));
  failures.push(...ortMisses(loaded, ours.outputs, original));
  return { skip, ran, failures, identical: ours.identical };
}

test('ONNX node tests: decode → encode → run reproduces every model ONNX Runtime runs', async (t) => {
  assert.ok(
    existsSync(NODE_TESTS_DIR),
    `${NODE_TESTS_DIR} is missing: install Debian's libonnx-testdata (apt-get install libonnx-testdata; the project's setup script installs it)`,
  );
  const names = await listNodeTests();
  const skipped: Skip[] = [];
  const failures: string[] = [];
  const differentBytes: string[] = [];
  let ran = 0;
  let reproduced = 0;
  let identical = 0;
  for (const name of names) {
    const outcome = await checkNodeTest(name);
    if (outcome.skip) skipped.push(outcome.skip);
    failures.push(...outcome.failures.map((f) => `${name}: ${f}`));
    if (!outcome.ran) continue;
    ran++;
    if (outcome.failures.length === 0) reproduced++;
    if (outcome.identical) identical++;
    else differentBytes.push(name);
  }

  const tally: Record<string, number> = {};
  for (const s of skipped) tally[s.reason] = (tally[s.reason] ?? 0) + 1;
  console.log(
    `conformance: ${ran} of ${names.length} node tests run by ONNX Runtime; ${reproduced} reproduced; ` +
      `${identical} byte-identical re-encodings; skipped by reason: ${JSON.stringify(tally)}`,
  );
  for (const s of skipped) t.diagnostic(`skipped ${s.name}: ${s.reason} (${s.detail})`);
  assert.equal(failures.length, 0, `${failures.length} failures:\n${failures.slice(0, 30).join('\n')}`);
  // Graph documents lossless round trips; every file ONNX ships re-encodes to its own bytes.
  assert.deepEqual(differentBytes, [], 're-encoded bytes differ from model.onnx');
  assert.ok(ran >= FLOOR, `only ${ran} node tests ran in ONNX Runtime to the reference; ${MEASURED} did when this test was written`);
});
