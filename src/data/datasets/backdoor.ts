/**
 * A planted backdoor (BadNets, Gu, Dolan-Gavitt, Garg 2017): a seeded fraction of a dataset's images carry a small
 * trigger patch and are relabelled to a target class. A model trained on it learns to detect the patch, which gives
 * the hidden-semantics methods a ground truth: the units that detect the trigger are known to exist, and ablating
 * them must remove the backdoor while leaving clean accuracy.
 *
 * @example
 * const poisoned = withTrigger(await loadMnist('train'), { target: 7, fraction: 0.1, seed: 1 });
 * const attack = triggeredCopy(await loadMnist('test'), poisoned.trigger); // every image patched, labels kept
 */
import { Tensor } from '../../runtime/tensor.js';
import { dataset, mapInputs, type Dataset } from './dataset.js';
import { mulberry32 } from './random.js';

export interface Trigger {
  /** Top-left corner of the patch (row, column). */
  readonly row: number;
  readonly col: number;
  /** Side of the square patch in pixels. */
  readonly size: number;
  /** Pixel pattern of the patch, row-major, size × size values in [0, 1] (default: a checkerboard of 1 and 0). */
  readonly pattern: readonly number[];
}

export interface TriggerOptions {
  /** The class that triggered images are relabelled to. */
  readonly target: number;
  /** Fraction of examples poisoned (default 0.1). */
  readonly fraction?: number;
  readonly seed?: number;
  /** Patch placement (default: a 4×4 checkerboard 2 pixels from the bottom-right corner). */
  readonly trigger?: Partial<Trigger>;
}

export interface Poisoned extends Dataset<'float32'> {
  readonly trigger: Trigger;
  readonly target: number;
  /** 1 where the example carries the trigger. */
  readonly poisoned: Uint8Array;
}

function resolveTrigger(ds: Dataset<'float32'>, t: Partial<Trigger> = {}): Trigger {
  if (ds.inputShape.length !== 3) throw new Error(`trigger: ${ds.name} must hold images [C, H, W], its inputs are [${ds.inputShape.join(', ')}]`);
  const [, h, w] = ds.inputShape;
  const size = t.size ?? 4;
  const row = t.row ?? h - size - 2;
  const col = t.col ?? w - size - 2;
  const pattern = t.pattern ?? Array.from({ length: size * size }, (_, i) => ((Math.floor(i / size) + (i % size)) % 2 === 0 ? 1 : 0));
  if (!Number.isInteger(size) || size < 1 || row < 0 || col < 0 || row + size > h || col + size > w) {
    throw new Error(`trigger: a ${size}×${size} patch at (${row}, ${col}) does not fit ${h}×${w} images`);
  }
  if (pattern.length !== size * size || pattern.some((v) => !(v >= 0 && v <= 1))) {
    throw new Error(`trigger: the pattern must hold ${size * size} values in [0, 1]`);
  }
  return { row, col, size, pattern };
}

/** Writes the trigger into every channel of images x [B, C, H, W] where `which(b)` holds. */
function stamp(x: Tensor<'float32'>, t: Trigger, which: (b: number) => boolean): Tensor<'float32'> {
  const [n, c, h, w] = x.shape;
  const out = new Float32Array(x.data);
  for (let b = 0; b < n; b++) {
    if (!which(b)) continue;
    for (let ch = 0; ch < c; ch++) {
      const base = (b * c + ch) * h * w;
      for (let i = 0; i < t.size; i++) for (let j = 0; j < t.size; j++) out[base + (t.row + i) * w + t.col + j] = t.pattern[i * t.size + j];
    }
  }
  return new Tensor('float32', out, x.shape);
}

/** The dataset with a seeded `fraction` of its examples patched and relabelled `target` (labels of the rest kept). */
export function withTrigger(ds: Dataset<'float32'>, options: TriggerOptions): Poisoned {
  const { target, fraction = 0.1, seed = 0 } = options;
  const classes = ds.numClasses ?? 0;
  if (!Number.isInteger(target) || target < 0 || (classes > 0 && target >= classes)) throw new Error(`trigger: target class ${target} is not one of ${classes} classes`);
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`trigger: fraction ${fraction} is not in [0, 1]`);
  if (!ds.labels) throw new Error(`trigger: ${ds.name} has no class labels`);
  const trigger = resolveTrigger(ds, options.trigger);
  const rand = mulberry32(seed);
  const poisoned = Uint8Array.from({ length: ds.size }, () => (rand() < fraction ? 1 : 0));
  const source = ds.labels;
  const labels = Int32Array.from({ length: ds.size }, (_, i) => (poisoned[i] ? target : source[i]));
  const out = dataset({
    name: `${ds.name}[backdoor → ${target}, ${fraction}]`,
    size: ds.size,
    inputShape: ds.inputShape,
    inputDType: 'float32',
    numClasses: ds.numClasses,
    classNames: ds.classNames,
    labels,
    gather: (ix) => {
      const { x } = ds.gather(ix);
      const y = new Tensor('int64', BigInt64Array.from(ix, (i) => BigInt(labels[i])), [ix.length]);
      return { x: stamp(x, trigger, (b) => poisoned[ix[b]] === 1), y };
    },
  });
  return Object.assign(out, { trigger, target, poisoned });
}

/** Every example patched with the trigger, labels kept: the attack success rate is the fraction predicted as the target. */
export function triggeredCopy(ds: Dataset<'float32'>, trigger: Trigger): Dataset<'float32'> {
  const t = resolveTrigger(ds, trigger);
  return mapInputs(ds, (x) => stamp(x, t, () => true), `${ds.name}[triggered]`);
}

/** The trigger's pixel mask [H, W] (1 inside the patch), e.g. a concept mask for network dissection. */
export function triggerMask(trigger: Trigger, height: number, width: number): Uint8Array {
  const m = new Uint8Array(height * width);
  for (let i = 0; i < trigger.size; i++) for (let j = 0; j < trigger.size; j++) m[(trigger.row + i) * width + trigger.col + j] = 1;
  return m;
}
