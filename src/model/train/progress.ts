/** The training progress line: one line on a terminal, rewritten in place with \r, throttled. */

export interface Progress {
  /** 1-based epoch in progress, and the total. */
  readonly epoch: number;
  readonly epochs: number;
  /** Batches of this epoch done, of how many. */
  readonly batch: number;
  readonly batches: number;
  /** Running means over this epoch: loss per label and accuracy (NaN without a classifier head). */
  readonly loss: number;
  readonly accuracy: number;
  /** Training examples per second over this epoch. */
  readonly examplesPerSecond: number;
}

/** `epoch 1/3  step 412/938  loss 0.1432  acc 95.70%  3120 ex/s` */
export function progressLine(p: Progress): string {
  const width = String(p.batches).length;
  return [
    `epoch ${p.epoch}/${p.epochs}`,
    `step ${String(p.batch).padStart(width)}/${p.batches}`,
    `loss ${p.loss.toFixed(4)}`,
    ...(Number.isNaN(p.accuracy) ? [] : [`acc ${(100 * p.accuracy).toFixed(2)}%`]),
    `${Math.round(p.examplesPerSecond)} ex/s`,
  ].join('  ');
}

/** Writes progress lines to a stream (stderr): overwritten in place on a terminal, not at all elsewhere. */
export function progressPrinter(stream: { write(s: string): unknown; isTTY?: boolean }, minIntervalMs = 100): { update(p: Progress): void; clear(): void } {
  let last = 0;
  let shown = false;
  return {
    update(p) {
      if (!stream.isTTY) return;
      const now = Date.now();
      if (now - last < minIntervalMs && p.batch !== p.batches) return;
      last = now;
      shown = true;
      stream.write(`\r${progressLine(p)}\x1b[K`);
    },
    clear() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
