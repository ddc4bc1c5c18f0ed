/**
 * `glassbox neurons MODEL --data NAME --site SITE --out DIR`: what the units of a site do, one HTML page per site.
 * For every unit: its top dataset examples (one streaming scan), its network-dissection label with IoU against a
 * random-direction baseline, an input synthesised to excite it, and the effect of ablating it on loss and accuracy.
 * Writes DIR/<site>.html, DIR/<site>.json (every number and check) and the pictures under DIR/<site>/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist, loadMnist, Model, type Dataset } from '../index.js';
import { triggeredCopy, triggerMask, withTrigger } from '../data/datasets/backdoor.js';
import { classRegionConcepts, conceptDataset, withConcepts, packMask, type ConceptDataset } from '../data/datasets/concepts.js';
import { ablateUnits, type AblationResult } from '../methods/neurons/ablation.js';
import { dissect, type Dissection } from '../methods/neurons/dissection.js';
import { scanExamples, type ExampleScan } from '../methods/neurons/examples.js';
import { synthesize, type Synthesis } from '../methods/neurons/synthesis.js';
import { formatNumber, htmlCard, htmlPage, htmlTable } from '../report/html.js';
import { imageGrid } from '../report/grid.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { statusLine, type StatusLine } from './status.js';
import { toJson } from './format.js';
import { BACKDOOR } from './recipes.js';

/** The data a page is built from: images to scan, concepts to dissect with, labelled images to ablate on. */
interface NeuronData {
  readonly scan: Dataset<'float32'>;
  readonly concepts: ConceptDataset;
  readonly labelled?: Dataset<'float32'>;
  readonly about: string;
}

const DATASETS: Record<string, (limit: number) => Promise<NeuronData>> = {
  mnist: async (limit) => imageData(await loadMnist('test'), limit, 'MNIST test images; concepts: digit classes and regions of the ink'),
  'fashion-mnist': async (limit) => imageData(await loadFashionMnist('test'), limit, 'Fashion-MNIST test images; concepts: classes and regions'),
  'mnist-triggered': async (limit) => {
    // MNIST test images, every other one carrying the mnist-backdoor recipe's trigger; the trigger is a concept.
    const test = (await loadMnist('test')).slice(0, limit);
    const half = withTrigger(test, { ...BACKDOOR, fraction: 0.5 });
    const base = classRegionConcepts(half);
    const patch = packMask(triggerMask(half.trigger, 28, 28));
    const empty = new Uint8Array(patch.length);
    const concepts = withConcepts(half, [...base.conceptNames, 'trigger'], (i) => [...base.masks(i), half.poisoned[i] ? patch : empty]);
    // Ablation on fully triggered images with their true labels: removing a trigger detector raises accuracy.
    return { scan: half, concepts, labelled: triggeredCopy(test, half.trigger), about: 'MNIST test images, half with the backdoor trigger (a concept); ablation on triggered images with true labels' };
  },
  concepts: async (limit) => {
    const c = conceptDataset({ size: limit, height: 28, width: 28, channels: 1, seed: 1 });
    return { scan: c, concepts: c, about: 'procedural concept images (shapes, textures, strokes) with pixel masks' };
  },
};

function imageData(test: Dataset<'float32'>, limit: number, about: string): NeuronData {
  const data = test.slice(0, limit);
  return { scan: data, concepts: classRegionConcepts(data), labelled: data, about };
}

function positive(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`bad ${flag} '${text}': expected a positive integer`, 'neurons');
  return Number(text);
}

export async function neurons(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('neurons', argv, {
    data: { type: 'string' },
    site: { type: 'string', multiple: true },
    out: { type: 'string' },
    k: { type: 'string' },
    limit: { type: 'string' },
    units: { type: 'string' },
    steps: { type: 'string' },
    seed: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'neurons needs a MODEL file' : `neurons takes one MODEL, got ${positionals.length}`, 'neurons');
  if (!values.out) throw new UsageError('neurons needs --out DIR', 'neurons');
  if (!values.site?.length) throw new UsageError('neurons needs --site SITE (glassbox inspect MODEL lists the sites)', 'neurons');
  const name = values.data ?? 'mnist';
  const load = DATASETS[name];
  if (!load) throw new UsageError(`unknown --data '${name}' (known: ${Object.keys(DATASETS).join(', ')})`, 'neurons');
  const k = positive('--k', values.k, 9);
  const limit = positive('--limit', values.limit, 2000);
  const maxUnits = positive('--units', values.units, 16);
  const steps = positive('--steps', values.steps, 128);
  const seed = values.seed === undefined ? 0 : positive('--seed', values.seed, 0);

  const model = await Model.load(positionals[0]);
  try {
    for (const site of values.site) model.site(site); // unknown sites fail here, naming the close ones
    const data = await load(limit);
    await mkdir(values.out, { recursive: true });
    const progress = statusLine();
    for (const site of values.site) {
      const page = await sitePage(model, site, data, { k, maxUnits, steps, seed, out: values.out, progress });
      console.log(`${site}: ${page.units} units, ${page.labelled} labelled by dissection; wrote ${page.path}`);
    }
  } finally {
    await model.dispose();
  }
}

interface PageOptions {
  readonly k: number;
  readonly maxUnits: number;
  readonly steps: number;
  readonly seed: number;
  readonly out: string;
  readonly progress: StatusLine;
}

async function sitePage(model: Model, site: string, data: NeuronData, o: PageOptions): Promise<{ units: number; labelled: number; path: string }> {
  const file = site.replace(/[^A-Za-z0-9._-]/g, '_');
  const dir = join(o.out, file);
  await mkdir(dir, { recursive: true });
  const say = (what: string) => (p: { done: number; total: number }) => o.progress.update(`${site}: ${what} ${p.done}/${p.total}`);

  const scan: ExampleScan = await scanExamples(model, data.scan, { sites: [site], k: o.k, onProgress: say('dataset examples') });
  const layout = scan.sites[0];
  const isMap = layout.rank === 4;
  const dissection: Dissection | undefined = isMap ? await dissect(model, site, data.concepts, { seed: o.seed }) : undefined;
  const ablation: AblationResult | undefined = data.labelled
    ? await ablateUnits(model, data.labelled, { site, onProgress: (done, total) => say('ablation')({ done, total }) })
    : undefined;
  const shown = Math.min(layout.units, o.maxUnits);
  const syntheses: Synthesis[] = [];
  for (let u = 0; u < shown; u++) {
    say('synthesis')({ done: u, total: shown });
    const objective = isMap ? { kind: 'channel' as const, site, channel: u } : { kind: 'unit' as const, site, unit: u };
    syntheses.push(await synthesize(model, objective, { steps: o.steps, seed: o.seed, reference: data.scan.slice(0, 256) }));
  }
  o.progress.clear();

  const cards = [];
  for (let u = 0; u < shown; u++) {
    const top = scan.top(site, u);
    await writeFile(join(dir, `unit-${u}-top.png`), imageGrid(data.scan.gather(top.map((e) => e.index)).x, { columns: Math.min(top.length, 9), scale: 2 }));
    await writeFile(join(dir, `unit-${u}-synth.png`), imageGrid(syntheses[u].images, { scale: 3 }));
    const lab = dissection?.units[u];
    const eff = ablation?.groups[u];
    cards.push(htmlCard({
      title: `unit ${u}`,
      lines: [
        `top activation ${formatNumber(top[0]?.value ?? NaN)} (example ${top[0]?.index ?? '—'}${top[0]?.coords.length ? ` at ${top[0].coords.join(',')}` : ''})`,
        lab ? `dissection: ${lab.label ?? `unlabelled (best ${lab.concept})`}, IoU ${formatNumber(lab.iou)} vs random ${formatNumber(lab.randomIoU)}${lab.beatsRandom ? ' ✓' : ''}` : 'dissection: needs a [N, C, H, W] site',
        eff ? `ablation (zero): Δaccuracy ${formatNumber(eff.deltaAccuracy)}, Δloss ${formatNumber(eff.deltaLoss)}` : 'ablation: needs labelled data',
        `synthesis: activation ${formatNumber(syntheses[u].activation[0])}; ${syntheses[u].checks.map((c) => `${c.name} ${c.passed === undefined ? '' : c.passed ? 'passed' : 'failed'}`).join(', ')}`,
      ],
      images: [
        { src: `${file}/unit-${u}-top.png`, caption: `top ${top.length} examples` },
        { src: `${file}/unit-${u}-synth.png`, caption: 'synthesised' },
      ],
    }));
  }
  const checks = [...scan.checks, ...(dissection?.checks ?? []), ...(ablation?.checks ?? [])];
  const labelled = dissection ? dissection.units.filter((l) => l.label !== null).length : 0;
  const summary = htmlTable(['check', 'value', 'passed', 'detail'], checks.map((c) => [c.name, Array.isArray(c.value) ? `${c.value.length} values` : formatNumber(c.value as number), c.passed === undefined ? '—' : c.passed ? 'yes' : 'no', c.detail]));
  const intro = `${layout.units} units at ${site}; data: ${data.about}. ${dissection ? `Dissection labelled ${labelled} of ${layout.units} units (random directions: ${formatNumber(100 * dissection.randomLabelledFraction)}%). ` : ''}` +
    `Showing ${shown} units.`;
  const html = htmlPage(`glassbox neurons: ${site}`, intro, `<h2>Checks</h2>${summary}<h2>Units</h2><div class="cards">${cards.join('\n')}</div>`);
  const path = join(o.out, `${file}.html`);
  await writeFile(path, html);
  await writeFile(join(o.out, `${file}.json`), toJson({
    site, layout, data: data.about,
    units: Array.from({ length: layout.units }, (_, u) => ({
      unit: u,
      top: scan.top(site, u),
      dissection: dissection?.units[u],
      ablation: ablation?.groups[u],
      synthesis: u < shown ? { activation: syntheses[u].activation, checks: syntheses[u].checks } : undefined,
    })),
    checks,
  }));
  return { units: layout.units, labelled, path };
}
