/**
 * Sessions keyed by graph variant. Compiling a session costs far more than a run, and methods ask for the same
 * variants again and again (the same captures over many batches), so each variant is compiled once and kept,
 * least recently used first out when the cache is full.
 */
import type { Runtime, RuntimeSession, SessionOptions } from './runtime.js';

export class SessionCache {
  private readonly entries = new Map<string, Promise<RuntimeSession>>();
  compiled = 0;

  constructor(
    private readonly runtime: Runtime,
    private readonly options: SessionOptions,
    private readonly capacity = 16,
  ) {}

  /** The session for `key`, compiling `build()` the first time the key is seen (with `options` over the cache's own). */
  get(key: string, build: () => Uint8Array, options?: SessionOptions): Promise<RuntimeSession> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const made = this.runtime.createSession(build(), { ...this.options, ...options });
    made.catch(() => this.entries.delete(key));
    this.entries.set(key, made);
    this.compiled++;
    while (this.entries.size > this.capacity) {
      const [oldest, session] = this.entries.entries().next().value as [string, Promise<RuntimeSession>];
      this.entries.delete(oldest);
      session.then((s) => s.release()).catch(() => undefined);
    }
    return made;
  }

  get size(): number {
    return this.entries.size;
  }

  async clear(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((p) => p.then((s) => s.release()).catch(() => undefined)));
  }
}
