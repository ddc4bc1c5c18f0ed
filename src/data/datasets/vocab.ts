/**
 * Vocabularies: a fixed map between tokens (words, or characters) and ids. Building is deterministic: specials first,
 * then tokens by descending count, ties in order of first appearance.
 *
 * @example
 * const words = Vocabulary.build(brown.words({ lowercase: true }), { minCount: 5 });
 * const ids = words.encode(brown.words({ lowercase: true })); // Int32Array, rare words → <unk>
 * const chars = Vocabulary.build(text); // a string iterates by character (code point)
 * chars.decode(chars.encode('the')).join(''); // 'the'
 */

export interface VocabularyOptions {
  /** Leave out tokens seen fewer times (default 1). */
  readonly minCount?: number;
  /** At most this many ids in all, specials included. */
  readonly maxSize?: number;
  /** Reserved tokens, given the first ids (default ['<unk>']; [] for a closed vocabulary such as characters). */
  readonly specials?: readonly string[];
  /** The token that unknown tokens map to (default '<unk>' when it is among the specials; else unknown is an error). */
  readonly unknown?: string;
}

export class Vocabulary {
  /** Token of each id. */
  readonly tokens: readonly string[];
  /** Id that unknown tokens map to, if any. */
  readonly unknownId: number | undefined;
  private readonly ids: Map<string, number>;

  constructor(tokens: readonly string[], unknown?: string) {
    this.tokens = Object.freeze([...tokens]);
    this.ids = new Map(this.tokens.map((t, i) => [t, i]));
    if (this.ids.size !== this.tokens.length) throw new Error('Vocabulary: tokens must be distinct');
    this.unknownId = unknown === undefined ? undefined : this.ids.get(unknown);
    if (unknown !== undefined && this.unknownId === undefined) {
      throw new Error(`Vocabulary: the unknown token ${JSON.stringify(unknown)} is not in the vocabulary`);
    }
  }

  /** Counts tokens (a string counts its characters) and keeps the frequent ones. */
  static build(tokens: Iterable<string>, options: VocabularyOptions = {}): Vocabulary {
    const isText = typeof tokens === 'string';
    const { minCount = 1, maxSize = Infinity } = options;
    const specials = options.specials ?? (isText ? [] : ['<unk>']);
    const unknown = options.unknown ?? (specials.includes('<unk>') ? '<unk>' : undefined);
    const counts = new Map<string, number>();
    for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    const reserved = new Set(specials);
    const kept = [...counts].filter(([t, c]) => c >= minCount && !reserved.has(t));
    kept.sort((a, b) => b[1] - a[1]); // stable: ties stay in first-seen order
    const all = [...specials, ...kept.map(([t]) => t)].slice(0, maxSize);
    return new Vocabulary(all, unknown);
  }

  get size(): number {
    return this.tokens.length;
  }

  has(token: string): boolean {
    return this.ids.has(token);
  }

  /** Id of a token; an unknown one maps to the unknown id, or throws when there is none. */
  id(token: string): number {
    const id = this.ids.get(token) ?? this.unknownId;
    if (id === undefined) throw new Error(`Vocabulary: unknown token ${JSON.stringify(token)} and no unknown id`);
    return id;
  }

  /** Ids of a token sequence (a string is encoded character by character). */
  encode(tokens: Iterable<string>): Int32Array {
    if (typeof tokens !== 'string' && !Array.isArray(tokens)) tokens = [...tokens];
    const out = new Int32Array((tokens as string | string[]).length); // ≥ the count (a string may hold surrogate pairs)
    let n = 0;
    for (const t of tokens) out[n++] = this.id(t);
    return n === out.length ? out : out.slice(0, n);
  }

  decode(ids: ArrayLike<number | bigint>): string[] {
    return Array.from(ids, (id) => {
      const t = this.tokens[Number(id)];
      if (t === undefined) throw new Error(`Vocabulary: id ${id} out of range [0, ${this.size})`);
      return t;
    });
  }
}
