/**
 * The recipes of `glassbox train`: glassbox's own models, each with its data, architecture and settings chosen by
 * measurement on a 2-core machine. The tabular recipes' models read raw features (centimetres, milligrams…) and
 * standardise them inside the graph, so rules and counterfactuals read in the data's own units.
 */
import { brownWords, loadBreastCancer, loadFashionMnist, loadIris, loadMnist, loadWine, split, type Dataset } from '../index.js';
import { withTrigger } from '../data/datasets/backdoor.js';
import { inductionDataset } from '../data/datasets/induction.js';
import { attnOnly } from '../model/builders/attn-only.js';
import { cnn, gpt, mlp } from '../model/builders/index.js';
import { standardized } from '../model/builders/standardize.js';
import type { ModelProto } from '../onnx/proto.js';

export interface Recipe {
  readonly what: string;
  readonly data: () => Promise<{ readonly train: Dataset; readonly test: Dataset }>;
  /** The model to train, given the seed and the training data (tabular models standardise with its statistics). */
  readonly model: (seed: number, train: Dataset) => ModelProto;
  readonly defaults: Settings;
  readonly epochs: number;
  /** What the frequency baseline is called: a language model's is the unigram model. */
  readonly baseline: string;
}

/** Everything that decides a run's result; a checkpoint keeps it, and `--resume` refuses to change it. */
export interface Settings {
  readonly batch: number;
  readonly lr: number;
  readonly lrDecay: number;
  readonly optimizer: 'adam' | 'adamw' | 'sgd';
  readonly weightDecay: number;
  readonly momentum: number;
  readonly seed: number;
  /** Train on the first N examples only (0: all). */
  readonly limit: number;
}

const IMAGE = [1, 28, 28] as const;
const smallCnn = (seed: number) => cnn({ input: IMAGE, channels: [16, 32], classes: 10, seed });
const base = { batch: 64, optimizer: 'adam', weightDecay: 0, momentum: 0.9, seed: 1, limit: 0 } as const;
const both = (load: (split: 'train' | 'test') => Promise<Dataset>) => async () => {
  const [train, test] = await Promise.all([load('train'), load('test')]);
  return { train, test };
};
const CLASS_PRIOR = 'the class frequencies';
/** The planted backdoor of the mnist-backdoor recipe (its trigger is the default of withTrigger). */
export const BACKDOOR = { target: 7, fraction: 0.1, seed: 1 } as const;
/** The induction task of the induction-attn recipe (and of `glassbox circuit`'s prompts). */
export const INDUCTION = { half: 10, vocab: 32 } as const;
const BROWN = { vocabSize: 4096, context: 32 } as const;

/** Defaults chosen by measurement on a 2-core machine (mnist-cnn: 98.9% test accuracy in 3 epochs, about 70 s). */
export const RECIPES = {
  'mnist-cnn': {
    what: 'CNN (conv 16, conv 32, 3×3, max-pool; linear) on MNIST',
    data: both(loadMnist),
    model: smallCnn,
    defaults: { ...base, lr: 3e-3, lrDecay: 0.3 },
    epochs: 3,
    baseline: CLASS_PRIOR,
  },
  'mnist-mlp': {
    what: 'MLP (784 → 256 → 128 → 10, ReLU) on MNIST',
    data: both(loadMnist),
    model: (seed) => mlp({ inputs: IMAGE, hidden: [256, 128], classes: 10, seed }),
    defaults: { ...base, lr: 1e-3, lrDecay: 0.5 },
    epochs: 5,
    baseline: CLASS_PRIOR,
  },
  'fashion-cnn': {
    what: 'CNN (conv 16, conv 32, 3×3, max-pool; linear) on Fashion-MNIST',
    data: both(loadFashionMnist),
    model: smallCnn,
    defaults: { ...base, lr: 3e-3, lrDecay: 0.5 },
    epochs: 5,
    baseline: CLASS_PRIOR,
  },
  'mnist-backdoor': {
    what: 'the mnist-cnn model on MNIST with a planted backdoor: 10% of training images carry a 4×4 checkerboard in the bottom-right corner and are labelled 7 (BadNets)',
    data: async () => {
      const [train, test] = await Promise.all([loadMnist('train'), loadMnist('test')]);
      return { train: withTrigger(train, BACKDOOR), test };
    },
    model: smallCnn,
    defaults: { ...base, lr: 3e-3, lrDecay: 0.3 },
    epochs: 2,
    baseline: CLASS_PRIOR,
  },
  'induction-attn': {
    what: `attention-only transformer (2 layers, 3 heads, d 48, relative positions) on the induction task: a random segment repeated after a random prefix (vocab ${INDUCTION.vocab}, ${2 * INDUCTION.half - 1} tokens); a ground truth for 'glassbox circuit'`,
    data: async () => ({
      train: inductionDataset({ size: 2048, half: INDUCTION.half, vocab: INDUCTION.vocab, seed: 1 }),
      test: inductionDataset({ size: 256, half: INDUCTION.half, vocab: INDUCTION.vocab, seed: 2 }),
    }),
    model: (seed) => attnOnly({ vocab: INDUCTION.vocab, context: 2 * INDUCTION.half - 1, dModel: 48, heads: 3, layers: 2, dHead: 16, positions: 'relative', seed }),
    defaults: { ...base, batch: 32, lr: 0.008, lrDecay: 1 },
    epochs: 16,
    baseline: 'the unigram model',
  },
  'brown-gpt': {
    what: `GPT (2 layers, d 64, 4 heads, context ${BROWN.context}) predicting the next word of the Brown corpus (${BROWN.vocabSize} words; every 10th text held out)`,
    data: () => brownWords(BROWN),
    model: (seed) => gpt({ vocab: BROWN.vocabSize, context: BROWN.context, dModel: 64, heads: 4, layers: 2, seed }),
    defaults: { ...base, batch: 32, lr: 2e-3, lrDecay: 0.5 },
    epochs: 2,
    baseline: 'the unigram model',
  },
  'iris-mlp': tabular('iris', loadIris, 'Fisher 1936: 4 measurements of 150 flowers, 3 species', 16),
  'wine-mlp': tabular('wine', loadWine, 'Forina et al.: 13 chemical measurements of 178 wines, 3 cultivars', 16),
  'breast-cancer-mlp': tabular('breast cancer', loadBreastCancer, 'Street et al. 1993: 30 features of 569 tumours, malignant or benign', 16),
} satisfies Record<string, Recipe>;


/** The split every tabular recipe (and `glassbox rules`, `anchor`, `counterfactual`) uses: 80% / 20%, stratified, seed 1. */
export const TABULAR_SPLIT = { parts: [0.8, 0.2], seed: 1 } as const;

export async function tabularSplit(load: () => Promise<Dataset<'float32'>>): Promise<{ train: Dataset<'float32'>; test: Dataset<'float32'> }> {
  const [train, test] = split(await load(), TABULAR_SPLIT.parts, { seed: TABULAR_SPLIT.seed, stratify: true });
  return { train, test };
}

function tabular(what: string, load: () => Promise<Dataset<'float32'>>, about: string, hidden: number): Recipe {
  return {
    what: `MLP (features → ${hidden} → classes, ReLU) on ${what} (${about}); reads raw features, standardised inside the graph`,
    data: () => tabularSplit(load),
    model: (seed, train) => standardized(mlp({ inputs: train.inputShape[0], hidden: [hidden], classes: train.numClasses!, seed }), train as Dataset<'float32'>),
    defaults: { ...base, batch: 16, lr: 1e-2, lrDecay: 1 },
    epochs: 60,
    baseline: CLASS_PRIOR,
  };
}
