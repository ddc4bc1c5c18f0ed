/** `glassbox inspect MODEL`: what a model file holds, as aligned tables or one JSON object. */
import { stat } from 'node:fs/promises';
import { Model } from '../index.js';
import type { Dim } from '../onnx/proto.js';
import { unknownNameError } from '../util/nearest.js';
import { parseCommand, parseShape, splitPair } from './args.js';
import { UsageError } from './errors.js';
import { bytesText, shapeText, table, toJson } from './format.js';

interface Tensorish {
  readonly name: string;
  readonly dtype: string | null;
  readonly shape: readonly Dim[] | null;
}

/** Everything `inspect` prints; the `--json` form is exactly this object. */
export interface Description {
  readonly file: string;
  readonly bytes: number;
  readonly producer: { readonly name: string; readonly version: string };
  readonly irVersion: bigint;
  /** Opset version by domain ('ai.onnx' for the default domain). */
  readonly opsets: Record<string, number>;
  readonly inputs: readonly Tensorish[];
  readonly outputs: readonly Tensorish[];
  /** Node count by op type, most frequent first. */
  readonly ops: Record<string, number>;
  readonly sites: readonly (Tensorish & { readonly value: string; readonly op: string })[];
  /** Why the probe run failed; site shapes are then only what the file declares. */
  readonly probeError: string | null;
  /** What the reader should know about the shapes shown. */
  readonly notes: readonly string[];
}

/**
 * Symbolic input dims are probed at small sizes (describe.ts), so a site dim that a symbolic spatial dim shrinks to 1
 * in both probes shows as a fixed 1. Batch-like dims (axis 0) do not shrink that way; any other symbolic dim may.
 */
function shapeNotes(model: Model, given: ReadonlySet<string>): string[] {
  const notes: string[] = [];
  if (model.probeError !== undefined) {
    notes.push(`the probe run failed (${model.probeError}), so site shapes are only what the file declares; ` +
      `give concrete input shapes with --input-shape NAME=1x3x224x224`);
  } else {
    const free = model.inputs.filter((i) => !given.has(i.name) && (i.shape ?? []).some((d, k) => k > 0 && typeof d !== 'number'));
    if (free.length > 0) {
      const example = free.map((i) => `--input-shape ${i.name}=DIMS (declared ${shapeText(i.shape)})`).join(', ');
      notes.push(`${free.map((i) => i.name).join(', ')} ${free.length > 1 ? 'have' : 'has'} symbolic dims beyond the batch, probed at small sizes; ` +
        `a fixed dim in a site shape may still depend on them. For exact shapes give ${example}`);
    }
  }
  return notes;
}

export function describe(model: Model, file: string, bytes: number, given: ReadonlySet<string> = new Set()): Description {
  const m = model.graph.model;
  const ops = [...model.graph.opHistogram()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return {
    file,
    bytes,
    producer: { name: m.producerName, version: m.producerVersion },
    irVersion: m.irVersion,
    opsets: Object.fromEntries([...model.graph.opset].map(([d, v]) => [d === '' ? 'ai.onnx' : d, v])),
    inputs: model.inputs.map((v) => ({ name: v.name, dtype: v.dtype ?? null, shape: v.shape ?? null })),
    outputs: model.outputs.map((v) => ({ name: v.name, dtype: v.dtype ?? null, shape: v.shape ?? null })),
    ops: Object.fromEntries(ops),
    sites: model.sites.map((s) => ({ name: s.name, value: s.value, op: s.op, dtype: s.dtype ?? null, shape: s.shape ?? null })),
    probeError: model.probeError ?? null,
    notes: shapeNotes(model, given),
  };
}

export function formatDescription(d: Description): string {
  const io = (vs: readonly Tensorish[]) => table(vs.map((v) => [v.name, v.dtype ?? '?', shapeText(v.shape ?? undefined)]));
  const nodes = Object.values(d.ops).reduce((a, b) => a + b, 0);
  const producer = [d.producer.name, d.producer.version].filter(Boolean).join(' ') || '(not recorded)';
  const head = table([
    ['file', `${d.file} (${bytesText(d.bytes)})`],
    ['producer', producer],
    ['IR version', String(d.irVersion)],
    ['opsets', Object.entries(d.opsets).map(([k, v]) => `${k} ${v}`).join(', ')],
  ], '');
  const sites = table([
    ['site', 'value', 'op', 'dtype', 'shape'],
    ...d.sites.map((s) => [s.name, s.value === s.name ? '' : s.value, s.op, s.dtype ?? '?', shapeText(s.shape ?? undefined)]),
  ]);
  const parts = [
    head,
    `\ninputs\n${io(d.inputs)}`,
    `\noutputs\n${io(d.outputs)}`,
    `\nops (${nodes} nodes)\n${table(Object.entries(d.ops))}`,
    `\nsites (${d.sites.length})\n${sites}`,
  ];
  for (const n of d.notes) parts.push(`\nnote: ${n}`);
  return parts.join('\n');
}

export async function inspect(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('inspect', argv, {
    json: { type: 'boolean' },
    'input-shape': { type: 'string', multiple: true },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'inspect needs a MODEL file' : `inspect takes one MODEL, got ${positionals.length}`, 'inspect');
  const file = positionals[0];
  const inputShapes: Record<string, number[]> = {};
  for (const text of values['input-shape'] ?? []) {
    const [name, dims] = splitPair('--input-shape', text, 'NAME=DIMS, e.g. x=1x3x224x224', 'last');
    inputShapes[name] = parseShape('--input-shape', name, dims);
  }
  const given = Object.keys(inputShapes).length > 0;
  const model = await Model.load(file, given ? { inputShapes } : {});
  try {
    const names = model.inputs.map((i) => i.name);
    for (const k of Object.keys(inputShapes)) if (!names.includes(k)) throw unknownNameError('input', k, names);
    const d = describe(model, file, (await stat(file)).size, new Set(Object.keys(inputShapes)));
    console.log(values.json ? toJson(d) : formatDescription(d));
  } finally {
    await model.dispose();
  }
}
