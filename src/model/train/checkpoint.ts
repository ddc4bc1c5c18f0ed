/**
 * Checkpoints: one ONNX file that is the model with its current weights (it runs like any model) plus the
 * optimiser's state as extra initializers `optimizer/<slot>/<weight>` and a metadata entry `glassbox.train` (JSON:
 * optimiser config and step count, epoch and batch counters, seed, batch size, history). Resuming from it continues
 * bit-identically to a run that was never interrupted. Files are written atomically (a temporary file renamed over
 * the old one), so a run stopped at any moment leaves the previous checkpoint whole.
 */
import { decodeModel, encodeModel, type ModelProto, type TensorProto } from '../../onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { fullConfig, Optimizer, slotsOf, type FullConfig } from './optim.js';
import { Trainer, type TrainerOptions, type TrainState } from './trainer.js';

export const TRAIN_META_KEY = 'glassbox.train';
const FORMAT = 'glassbox-train/1';
const SLOT_PREFIX = 'optimizer/';

/** What a checkpoint holds besides the model's weights. */
export interface TrainMeta {
  readonly format: typeof FORMAT;
  readonly optimizer: FullConfig;
  readonly steps: number;
  readonly weights: readonly string[];
  readonly state: TrainState;
  /** Anything the caller keeps with the run (the CLI: its recipe and options). */
  readonly extra: Readonly<Record<string, unknown>>;
}

type Entry = ModelProto['metadataProps'][number];

/** A metadata_props entry (proto.ts offers no constructor for StringStringEntryProto; a full literal encodes the same). */
export function metadataEntry(key: string, value: string): Entry {
  return { $typeName: 'onnx.StringStringEntryProto', key, value } as Entry;
}

/** The model with `entries` set in its metadata_props (replacing entries of the same keys). */
export function withMetadata(model: ModelProto, entries: Readonly<Record<string, string>>): ModelProto {
  const kept = model.metadataProps.filter((e) => !(e.key in entries));
  return { ...model, metadataProps: [...kept, ...Object.entries(entries).map(([k, v]) => metadataEntry(k, v))] };
}

/** The checkpoint of a trainer as ONNX bytes. */
export function encodeCheckpoint(trainer: Trainer, extra: Readonly<Record<string, unknown>> = {}): Uint8Array {
  const model = trainer.exportModel();
  const taken = new Set(model.graph!.initializer.map((t) => t.name));
  const slots = [...trainer.optimizer.state].flatMap(([slot, byWeight]) =>
    [...byWeight].map(([w, data]) => {
      const name = `${SLOT_PREFIX}${slot}/${w}`;
      if (taken.has(name)) throw new Error(`checkpoint: the model already has an initializer named '${name}'`);
      return tensorToProto(new Tensor('float32', data, trainer.weights.get(w)!.shape), name);
    }),
  );
  const meta: TrainMeta = { format: FORMAT, optimizer: trainer.optimizer.config, steps: trainer.optimizer.steps, weights: trainer.weightNames, state: trainer.state, extra };
  const graph = { ...model.graph!, initializer: [...model.graph!.initializer, ...slots] };
  return encodeModel(withMetadata({ ...model, graph }, { [TRAIN_META_KEY]: JSON.stringify(meta) }));
}

export interface Checkpoint {
  /** The plain model with the checkpoint's weights (optimiser state and training metadata removed). */
  readonly model: ModelProto;
  readonly meta: TrainMeta;
  /** Optimiser state by slot, then weight. */
  readonly slots: ReadonlyMap<string, ReadonlyMap<string, Float32Array>>;
}

export function decodeCheckpoint(bytes: Uint8Array, source = 'checkpoint'): Checkpoint {
  const model = decodeModel(bytes, source);
  const entry = model.metadataProps.find((e) => e.key === TRAIN_META_KEY);
  if (!entry) throw new Error(`${source}: not a glassbox training checkpoint (no '${TRAIN_META_KEY}' metadata)`);
  let meta: TrainMeta;
  try {
    meta = JSON.parse(entry.value) as TrainMeta;
  } catch (e) {
    throw new Error(`${source}: bad '${TRAIN_META_KEY}' metadata: ${(e as Error).message}`);
  }
  if (meta.format !== FORMAT) throw new Error(`${source}: checkpoint format '${String(meta.format)}', expected '${FORMAT}'`);
  const config = fullConfig(meta.optimizer);
  const slots = new Map<string, Map<string, Float32Array>>(slotsOf(config).map((s) => [s, new Map()]));
  const initializer: TensorProto[] = [];
  for (const t of model.graph!.initializer) {
    if (!t.name.startsWith(SLOT_PREFIX)) {
      initializer.push(t);
      continue;
    }
    const rest = t.name.slice(SLOT_PREFIX.length);
    const slot = rest.slice(0, rest.indexOf('/'));
    const weight = rest.slice(slot.length + 1);
    if (!slots.has(slot)) throw new Error(`${source}: optimiser state '${t.name}' does not belong to ${config.kind}`);
    slots.get(slot)!.set(weight, tensorFromProto(t).data as Float32Array);
  }
  for (const [slot, byWeight] of slots) {
    for (const w of meta.weights) if (!byWeight.has(w)) throw new Error(`${source}: optimiser state ${slot} of '${w}' is missing`);
  }
  const plain = { ...model, graph: { ...model.graph!, initializer }, metadataProps: model.metadataProps.filter((e) => e.key !== TRAIN_META_KEY) };
  return { model: plain, meta: { ...meta, optimizer: config }, slots };
}

/** A trainer that continues the checkpoint's run (same weights, optimiser state, counters and history). */
export async function resumeTrainer(ckpt: Checkpoint, options: Omit<TrainerOptions, 'optimizer' | 'weights'> = {}): Promise<Trainer> {
  const dims = new Map(ckpt.model.graph!.initializer.map((t) => [t.name, t.dims.reduce((a, b) => a * Number(b), 1)]));
  const sizes = new Map(ckpt.meta.weights.map((w) => [w, dims.get(w) ?? 0]));
  const optimizer = new Optimizer(ckpt.meta.optimizer, sizes);
  optimizer.steps = ckpt.meta.steps;
  for (const [slot, byWeight] of optimizer.state) for (const [w, buf] of byWeight) buf.set(ckpt.slots.get(slot)!.get(w)!);
  const state = structuredClone(ckpt.meta.state) as TrainState;
  return Trainer.restore(ckpt.model, ckpt.meta.weights, optimizer, state, options);
}

/** Writes a file so that readers see the old or the new content, never a part: a temporary file, synced, renamed. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const fs = await import('node:fs/promises');
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, path);
}

export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const fs = await import('node:fs/promises');
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path}: no checkpoint there (nothing to resume)` : `${path}: ${(e as Error).message}`);
  }
  return decodeCheckpoint(bytes, path);
}
