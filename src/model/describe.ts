/**
 * Site dtypes and shapes by running the model: ONNX files rarely declare intermediate shapes, and ONNX Runtime
 * knows them exactly. Symbolic input dims are probed at two sizes; a site dim that follows an input symbol in both
 * probes is shown by that symbol's name (`[N, 32, 28, 28]`), any other varying dim as null.
 */
import type { ValueInfo } from '../onnx/graph.js';
import type { Dim } from '../onnx/proto.js';
import { Tensor } from '../runtime/tensor.js';
import type { Site } from './sites.js';

const FIRST = [2, 3, 5, 7, 11, 13];
const SECOND = [4, 6, 10, 14, 22, 26];

type ProbeRun = (feeds: Record<string, Tensor>) => Promise<ReadonlyMap<string, { dtype: Tensor['dtype']; shape: readonly number[] }>>;

/** Symbols of the inputs in order of first appearance (unnamed dynamic dims get `?k`). */
function symbolsOf(inputs: readonly ValueInfo[]): string[] {
  const out: string[] = [];
  for (const inp of inputs) (inp.shape ?? []).forEach((d, i) => {
    const s = typeof d === 'number' ? undefined : d ?? `${inp.name}?${i}`;
    if (s !== undefined && !out.includes(s)) out.push(s);
  });
  return out;
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
  const a = new Map(symbols.map((s, i) => [s, FIRST[i % FIRST.length]]));
  const first = await run(zerosFor(inputs, a, given));
  if (symbols.length === 0) {
    return sites.map((s) => {
      const l = first.get(s.value);
      return l ? { ...s, dtype: l.dtype, shape: l.shape } : s;
    });
  }
  const b = new Map(symbols.map((s, i) => [s, SECOND[i % SECOND.length]]));
  const second = await run(zerosFor(inputs, b, given));
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
            const sym = symbols.find((x) => a.get(x) === d && b.get(x) === l2.shape[i]);
            return sym ?? null;
          });
    return { ...s, dtype: l1.dtype, shape };
  });
}
