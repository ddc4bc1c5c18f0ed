/**
 * Site dtypes and shapes by running the model: ONNX files rarely declare intermediate shapes, and ONNX Runtime
 * knows them exactly. Symbolic input dims are probed at two sizes; a site dim that follows an input symbol in both
 * probes is shown by that symbol's name (`[N, 32, 28, 28]`), any other varying dim as null. Batch dims (axis 0) are
 * probed small; other dims at 64 and 128 so that a CNN's downsampling leaves them apart (at small sizes both would
 * shrink to 1 and pass for fixed), falling back to small sizes where a model caps them (a context length).
 */
import type { ValueInfo } from '../onnx/graph.js';
import type { Dim } from '../onnx/proto.js';
import { Tensor } from '../runtime/tensor.js';
import type { Site } from './sites.js';

/** Probe sizes: [first, second] for batch dims, for other dims, and for other dims when large ones fail. */
const BATCH = [2, 3] as const;
const WIDE = [64, 128] as const;
const NARROW = [5, 7] as const;

type ProbeRun = (feeds: Record<string, Tensor>) => Promise<ReadonlyMap<string, { dtype: Tensor['dtype']; shape: readonly number[] }>>;

/** Symbols of the inputs in order of first appearance (unnamed dynamic dims get `?k`), and which are batch dims. */
function symbolsOf(inputs: readonly ValueInfo[]): { names: string[]; batch: Set<string> } {
  const names: string[] = [];
  const batch = new Set<string>();
  for (const inp of inputs) (inp.shape ?? []).forEach((d, i) => {
    const s = typeof d === 'number' ? undefined : d ?? `${inp.name}?${i}`;
    if (s === undefined) return;
    if (!names.includes(s)) names.push(s);
    if (i === 0) batch.add(s);
  });
  return { names, batch };
}

/** Distinct sizes per symbol for probe `which` (0 or 1), so a varying site dim can be traced to one symbol. */
function sizes(symbols: { names: string[]; batch: Set<string> }, which: 0 | 1, other: readonly [number, number]): Map<string, number> {
  let nb = 0;
  let no = 0;
  return new Map(symbols.names.map((s) => [s, symbols.batch.has(s) ? BATCH[which] + 2 * nb++ : other[which] + 2 * no++]));
}

function zerosFor(inputs: readonly ValueInfo[], sizes: ReadonlyMap<string, number>, given: Readonly<Record<string, readonly number[]>>): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const inp of inputs) {
    if (!inp.dtype) throw new Error(`input '${inp.name}' declares no element type`);
    const shape = given[inp.name] ?? (inp.shape ?? []).map((d, i) => (typeof d === 'number' ? d : sizes.get(d ?? `${inp.name}?${i}`) ?? 1));
    feeds[inp.name] = Tensor.zeros(inp.dtype, shape);
  }
  return feeds;
}

/** Sites with dtype and shape from probe runs; throws what the runtime said if a probe cannot run. */
export async function describeSites(
  sites: readonly Site[],
  inputs: readonly ValueInfo[],
  run: ProbeRun,
  given: Readonly<Record<string, readonly number[]>> = {},
): Promise<Site[]> {
  const symbols = symbolsOf(inputs.filter((i) => !given[i.name]));
  const probeAt = async (other: readonly [number, number]) => {
    const a = sizes(symbols, 0, other);
    const b = sizes(symbols, 1, other);
    const first = await run(zerosFor(inputs, a, given));
    const second = symbols.names.length === 0 ? first : await run(zerosFor(inputs, b, given));
    return { a, b, first, second };
  };
  const nonBatch = symbols.names.some((s) => !symbols.batch.has(s));
  const { a, b, first, second } = nonBatch ? await probeAt(WIDE).catch(() => probeAt(NARROW)) : await probeAt(NARROW);
  if (symbols.names.length === 0) {
    return sites.map((s) => {
      const l = first.get(s.value);
      return l ? { ...s, dtype: l.dtype, shape: l.shape } : s;
    });
  }
  return sites.map((s) => {
    const l1 = first.get(s.value);
    const l2 = second.get(s.value);
    if (!l1 || !l2) return s;
    if (s.op === 'Input' && s.shape) return { ...s, dtype: l1.dtype };
    const shape: Dim[] =
      l1.shape.length !== l2.shape.length
        ? l1.shape.map(() => null)
        : l1.shape.map((d, i) => {
            if (d === l2.shape[i]) return d;
            const sym = symbols.names.find((x) => a.get(x) === d && b.get(x) === l2.shape[i]);
            return sym ?? null;
          });
    return { ...s, dtype: l1.dtype, shape };
  });
}
