/**
 * The baseline a classifier (or a language model) must beat: predict every label with the training labels'
 * frequencies, ignoring the input. For next-word prediction this is the unigram model. Its cross-entropy on the test
 * labels is Σ_c q_c·(−log p_c) with p the training frequencies, add-one smoothed so an unseen test label costs a finite
 * amount; its accuracy is the majority class's share of the test labels.
 */
import type { Dataset } from './dataset.js';

export interface PriorBaseline {
  /** Mean cross-entropy per test label, in nats. */
  readonly loss: number;
  /** Accuracy of always predicting the most frequent training label. */
  readonly accuracy: number;
  /** The training frequencies (add-one smoothed), indexed by class. */
  readonly prior: Float64Array;
}

/** Counts the labels of every target (a class label, or every next token of a window). */
export function labelCounts(data: Dataset, classes: number): Float64Array {
  const counts = new Float64Array(classes);
  for (const { y } of data.batches(1024)) {
    const labels = y.data as BigInt64Array;
    for (let i = 0; i < labels.length; i++) {
      const c = Number(labels[i]);
      if (!(c >= 0 && c < classes)) throw new Error(`${data.name}: label ${c} outside [0, ${classes})`);
      counts[c]++;
    }
  }
  return counts;
}

export function priorBaseline(train: Dataset, test: Dataset): PriorBaseline {
  const classes = train.numClasses ?? test.numClasses;
  if (classes === undefined) throw new Error(`priorBaseline: ${train.name} does not say how many classes it has`);
  const trainCounts = labelCounts(train, classes);
  const testCounts = labelCounts(test, classes);
  const total = trainCounts.reduce((a, b) => a + b, 0) + classes;
  const prior = trainCounts.map((c) => (c + 1) / total);
  let majority = 0;
  for (let c = 1; c < classes; c++) if (trainCounts[c] > trainCounts[majority]) majority = c;
  const n = testCounts.reduce((a, b) => a + b, 0);
  if (n === 0) throw new Error(`priorBaseline: ${test.name} has no labels`);
  let loss = 0;
  for (let c = 0; c < classes; c++) if (testCounts[c] > 0) loss -= testCounts[c] * Math.log(prior[c]);
  return { loss: loss / n, accuracy: testCounts[majority] / n, prior };
}
