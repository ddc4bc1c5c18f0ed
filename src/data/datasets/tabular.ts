/**
 * scikit-learn's small tabular classification datasets: iris, wine and breast cancer (Wisconsin diagnostic).
 * The CSVs in `tabular/` are scikit-learn's own data files, byte for byte (see tabular/SOURCE.md), so results
 * line up with `sklearn.datasets.load_*`: same rows, same order, same feature and class names.
 *
 * Features are float32 [B, F], labels int64 [B]. Standardise with training statistics through
 * `split(ds, [0.8, 0.2], { standardize: true })` or `standardize(ds, featureStats(train))`.
 *
 * @example
 * const iris = await loadIris(); // 150 examples, 4 features, 3 classes
 */

import { access, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../../runtime/tensor.js';
import { Dataset, dataset } from './dataset.js';

export interface TabularSpec {
  readonly name: string;
  readonly file: string;
  readonly featureNames: readonly string[];
}

/** The ten measurements of a cell nucleus in the breast cancer data (each as mean, error and worst). */
const CELL_FEATURES = [
  'radius', 'texture', 'perimeter', 'area', 'smoothness', 'compactness', 'concavity', 'concave points', 'symmetry',
  'fractal dimension',
];

/** Feature names as `sklearn.datasets.load_*` gives them (scikit-learn 1.2.1, sklearn/datasets/_base.py). */
export const TABULAR = {
  iris: {
    name: 'iris',
    file: 'iris.csv',
    featureNames: ['sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)'],
  },
  wine: {
    name: 'wine',
    file: 'wine_data.csv',
    featureNames: [
      'alcohol', 'malic_acid', 'ash', 'alcalinity_of_ash', 'magnesium', 'total_phenols', 'flavanoids',
      'nonflavanoid_phenols', 'proanthocyanins', 'color_intensity', 'hue', 'od280/od315_of_diluted_wines', 'proline',
    ],
  },
  breastCancer: {
    name: 'breast-cancer',
    file: 'breast_cancer.csv',
    featureNames: [
      ...CELL_FEATURES.map((f) => `mean ${f}`),
      ...CELL_FEATURES.map((f) => `${f} error`),
      ...CELL_FEATURES.map((f) => `worst ${f}`),
    ],
  },
} as const satisfies Record<string, TabularSpec>;

/** Iris (Fisher 1936): 150 flowers, 4 measurements, classes setosa / versicolor / virginica (50 each). */
export const loadIris = (): Promise<Dataset<'float32'>> => loadTabular(TABULAR.iris);
/** Wine (Forina et al., UCI): 178 wines, 13 chemical measurements, 3 cultivars (59 / 71 / 48). */
export const loadWine = (): Promise<Dataset<'float32'>> => loadTabular(TABULAR.wine);
/** Breast cancer Wisconsin diagnostic (Street, Wolberg, Mangasarian 1993): 569 tumours, 30 features, malignant (0) / benign (1). */
export const loadBreastCancer = (): Promise<Dataset<'float32'>> => loadTabular(TABULAR.breastCancer);

/** Loads one of the bundled CSVs. */
export async function loadTabular(spec: TabularSpec): Promise<Dataset<'float32'>> {
  const path = await locate(spec.file);
  return parseSklearnCsv(await readFile(path, 'utf8'), spec.name, spec.featureNames);
}

/**
 * Parses scikit-learn's CSV layout: a header `n_samples,n_features,class names...`, then one row per example of
 * n_features numbers and an integer class. Works on text, so it also runs where there is no file system.
 */
export function parseSklearnCsv(text: string, name: string, featureNames?: readonly string[]): Dataset<'float32'> {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error(`${name}: empty CSV`);
  const header = lines[0].split(',').map((s) => s.trim());
  const n = Number(header[0]);
  const f = Number(header[1]);
  const classNames = header.slice(2);
  if (!Number.isInteger(n) || !Number.isInteger(f) || n < 0 || f < 1 || classNames.length === 0) {
    throw new Error(`${name}: header ${JSON.stringify(lines[0])} is not "n_samples,n_features,class names..."`);
  }
  if (lines.length - 1 !== n) throw new Error(`${name}: header says ${n} rows, the file has ${lines.length - 1}`);
  if (featureNames && featureNames.length !== f) {
    throw new Error(`${name}: ${featureNames.length} feature names for ${f} features`);
  }
  const features = new Float32Array(n * f); // [N, F]
  const labels = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const cells = lines[r + 1].split(',');
    if (cells.length !== f + 1) throw new Error(`${name}: row ${r + 1} has ${cells.length} cells, expected ${f + 1}`);
    for (let c = 0; c < f; c++) {
      const v = Number(cells[c]);
      if (cells[c].trim() === '' || !Number.isFinite(v)) throw new Error(`${name}: row ${r + 1} column ${c + 1} is not a number: ${cells[c]}`);
      features[r * f + c] = v;
    }
    const label = Number(cells[f]);
    if (!Number.isInteger(label) || label < 0 || label >= classNames.length) {
      throw new Error(`${name}: row ${r + 1} has class ${cells[f]}, not one of 0..${classNames.length - 1}`);
    }
    labels[r] = label;
  }
  return dataset({
    name,
    size: n,
    inputShape: [f],
    inputDType: 'float32',
    numClasses: classNames.length,
    classNames,
    featureNames: featureNames ?? Array.from({ length: f }, (_, i) => `feature ${i}`),
    labels,
    gather: (ix) => {
      const x = new Float32Array(ix.length * f);
      const y = new BigInt64Array(ix.length);
      for (let b = 0; b < ix.length; b++) {
        x.set(features.subarray(ix[b] * f, (ix[b] + 1) * f), b * f);
        y[b] = BigInt(labels[ix[b]]);
      }
      return { x: new Tensor('float32', x, [ix.length, f]), y: new Tensor('int64', y, [ix.length]) };
    },
  });
}

/**
 * The CSVs are not compiled, so they stay in the source tree: beside this module when it runs from source, or at
 * src/data/datasets/tabular/ when it runs from build/src/data/datasets/.
 */
async function locate(file: string): Promise<string> {
  const candidates = [`./tabular/${file}`, `../../../../src/data/datasets/tabular/${file}`].map((p) =>
    fileURLToPath(new URL(p, import.meta.url)),
  );
  for (const path of candidates) {
    try {
      await access(path);
      return path;
    } catch {
      // try the next place
    }
  }
  throw new Error(`tabular dataset ${file} not found; looked in ${candidates.join(' and ')}`);
}
