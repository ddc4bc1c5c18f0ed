/**
 * The status line of long commands: `label: stage 412/938` on stderr, rewritten in place and throttled on a
 * terminal, silent elsewhere (logs and pipes get only the command's results).
 */
export interface StatusLine {
  /** Any text after the label. */
  update(text: string): void;
  /** `stage done/total`, the shape the methods' onProgress callbacks report. */
  stage(p: { readonly stage: string; readonly done: number; readonly total: number }): void;
  clear(): void;
}

export function statusLine(label = '', stream: { write(s: string): unknown; isTTY?: boolean } = process.stderr, minIntervalMs = 100): StatusLine {
  let last = 0;
  let shown = false;
  const prefix = label ? `${label} ` : '';
  return {
    update(text) {
      if (!stream.isTTY) return;
      const now = Date.now();
      if (now - last < minIntervalMs) return;
      last = now;
      shown = true;
      stream.write(`\r${prefix}${text}\x1b[K`);
    },
    stage(p) {
      this.update(`${p.stage} ${p.done}/${p.total}`);
    },
    clear() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
