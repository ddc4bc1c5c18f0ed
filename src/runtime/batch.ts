/**
 * Internal batching: a batch too large for the memory budget is split along axis 0 into calls of at most
 * `rowsPerCall` rows, and each fetched output is joined back. Feeds not named in `batched` go whole to every call.
 */
import { concatRows, sliceRows, type Tensor } from './tensor.js';
import type { RuntimeSession } from './runtime.js';

export interface BatchPlan {
  /** Names of the feeds whose axis 0 is the batch. */
  readonly batched: ReadonlySet<string>;
  readonly rowsPerCall: number;
  /** Called after each call with the rows done so far. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Stops between calls when aborted. */
  readonly signal?: AbortSignal;
}

export function batchRows(feeds: Readonly<Record<string, Tensor>>, batched: ReadonlySet<string>): number {
  let rows: number | undefined;
  for (const name of batched) {
    const t = feeds[name];
    if (!t) continue;
    if (t.rank === 0) throw new Error(`input '${name}' is a scalar; it has no batch axis to split`);
    if (rows !== undefined && t.shape[0] !== rows) {
      throw new Error(`batched inputs disagree on the batch size: '${name}' has ${t.shape[0]} rows, another input ${rows}`);
    }
    rows = t.shape[0];
  }
  return rows ?? 0;
}

export async function runBatched(
  session: RuntimeSession,
  feeds: Readonly<Record<string, Tensor>>,
  fetches: readonly string[],
  plan: BatchPlan,
): Promise<Record<string, Tensor>> {
  const rows = batchRows(feeds, plan.batched);
  const step = Math.max(1, Math.floor(plan.rowsPerCall));
  if (rows <= step) {
    const out = await session.run(feeds, fetches);
    plan.onProgress?.(rows, rows);
    return out;
  }
  const parts: Record<string, Tensor[]> = Object.fromEntries(fetches.map((f) => [f, []]));
  for (let start = 0; start < rows; start += step) {
    plan.signal?.throwIfAborted();
    const end = Math.min(rows, start + step);
    const chunk: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) chunk[k] = plan.batched.has(k) ? sliceRows(v, start, end) : v;
    const out = await session.run(chunk, fetches);
    for (const f of fetches) {
      const t = out[f];
      if (t.rank === 0 || t.shape[0] !== end - start) {
        throw new Error(
          `cannot split the batch: '${f}' has shape [${t.shape.join(', ')}] for ${end - start} input rows, so its axis 0 is not the batch; ` +
            'raise the memory budget (maxBatchBytes) to run the batch whole',
        );
      }
      parts[f].push(t);
    }
    plan.onProgress?.(end, rows);
  }
  return Object.fromEntries(fetches.map((f) => [f, concatRows(parts[f])]));
}
