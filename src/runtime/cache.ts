/**
 * Sessions keyed by graph variant. Compiling a session costs far more than a run, and methods ask for the same
 * variants again and again (the same captures over many batches), so each variant is compiled once and kept,
 * least recently used first out when the cache is full. An evicted session is released only once no run of it is
 * in flight, so concurrent runs over many variants never touch a released session.
 */
import type { Runtime, RuntimeSession, SessionOptions } from './runtime.js';

/** A session that counts its runs in flight and defers its release until they are done. */
class Tracked implements RuntimeSession {
  private running = 0;
  private evicted = false;

  constructor(private readonly inner: RuntimeSession) {}

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  async run(...args: Parameters<RuntimeSession['run']>): ReturnType<RuntimeSession['run']> {
    this.running++;
    try {
      return await this.inner.run(...args);
    } finally {
      if (--this.running === 0 && this.evicted) await this.inner.release();
    }
  }

  async release(): Promise<void> {
    this.evicted = true;
    if (this.running === 0) await this.inner.release();
  }
}

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
    const made = this.runtime.createSession(build(), { ...this.options, ...options }).then((s) => new Tracked(s));
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
