/**
 * Next-word prediction on the Brown corpus, split by document: every tenth sample (`ca10`, `ca20`, …, 50 of the
 * 500, from every genre) is held out for testing, the rest train. Words are lower-cased; the vocabulary is the most
 * frequent words of the training documents, the rest map to `<unk>`. Each split is one token stream in corpus order,
 * so window position j of example i is token `windowStart(i) + j` of that split's corpus, and its POS tag is
 * `trainCorpus.tagIds[windowStart(i) + j]` (for probes).
 *
 * @example
 * const brown = await brownWords({ vocabSize: 4096, context: 32 });
 * brown.train.batches(32, { shuffle: true, seed: 1 }); // x, y: int64 [32, 32]
 */
import { loadBrown, type TaggedCorpus } from './brown.js';
import { languageModelDataset, type LanguageModelDataset } from './language-model.js';
import { Vocabulary } from './vocab.js';

export interface BrownWordsOptions {
  /** Ids in all, `<unk>` included (default 4096). */
  readonly vocabSize?: number;
  /** Window length T (default 32). */
  readonly context?: number;
  /** Hold out documents i ≡ heldOutEvery − 1 (mod heldOutEvery) (default 10). */
  readonly heldOutEvery?: number;
  /** The corpus (default: loadBrown()). */
  readonly corpus?: TaggedCorpus;
}

export interface BrownWords {
  readonly vocabulary: Vocabulary;
  readonly train: LanguageModelDataset;
  readonly test: LanguageModelDataset;
  readonly trainCorpus: TaggedCorpus;
  readonly testCorpus: TaggedCorpus;
}

export async function brownWords(options: BrownWordsOptions = {}): Promise<BrownWords> {
  const { vocabSize = 4096, context = 32, heldOutEvery = 10 } = options;
  if (!Number.isInteger(heldOutEvery) || heldOutEvery < 2) throw new Error(`brownWords: heldOutEvery must be an integer ≥ 2, got ${heldOutEvery}`);
  if (!Number.isInteger(vocabSize) || vocabSize < 2) throw new Error(`brownWords: vocabSize must be an integer ≥ 2, got ${vocabSize}`);
  const corpus = options.corpus ?? (await loadBrown());
  const held = (_: unknown, i: number) => i % heldOutEvery === heldOutEvery - 1;
  const trainCorpus = corpus.documentsWhere((d, i) => !held(d, i), `${corpus.name}[train]`);
  const testCorpus = corpus.documentsWhere(held, `${corpus.name}[test]`);
  const trainWords = trainCorpus.words({ lowercase: true });
  const vocabulary = Vocabulary.build(trainWords, { maxSize: vocabSize });
  const stream = (ids: Int32Array, name: string) => languageModelDataset(ids, { context, vocabulary, name });
  return {
    vocabulary,
    train: stream(vocabulary.encode(trainWords), 'brown-words[train]'),
    test: stream(vocabulary.encode(testCorpus.words({ lowercase: true })), 'brown-words[test]'),
    trainCorpus,
    testCorpus,
  };
}
