/**
 * `glassbox train RECIPE`: trains one of glassbox's own models on a dataset available here, printing a progress line
 * and each epoch's test accuracy, and writes DIR/RECIPE.onnx (a plain inference model) and DIR/RECIPE.ckpt.onnx (the
 * checkpoint `--resume` continues from, bit-identically). Ctrl-C stops between steps and saves the checkpoint there.
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Model, priorBaseline } from '../index.js';
import { testAccuracy } from '../methods/active/twin.js';
import { encodeModel } from '../onnx/proto.js';
import {
  encodeCheckpoint,
  progressPrinter,
  readCheckpoint,
  resumeTrainer,
  Trainer,
  withMetadata,
  writeFileAtomic,
  type Checkpoint,
  type EpochRecord,
  type OptimizerConfig,
} from '../model/train/index.js';
import { parseCommand } from './args.js';
import { UsageError } from './errors.js';
import { RECIPES, type Recipe, type Settings } from './recipes.js';
import { activeRegularizer, activeSettings, activeSuffix, type ActiveSettings } from './train-active.js';

type RecipeName = keyof typeof RECIPES;
const isRecipe = (s: string): s is RecipeName => Object.hasOwn(RECIPES, s);

function positiveNumber(flag: string, text: string | undefined, integer: boolean, allowZero = false): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < 0 || (v === 0 && !allowZero)) {
    throw new UsageError(`bad ${flag} '${text}': expected a ${integer ? '' : 'number, '}${allowZero ? 'non-negative' : 'positive'}${integer ? ' integer' : ''}`, 'train');
  }
  return v;
}

export async function train(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand('train', argv, {
    epochs: { type: 'string' },
    batch: { type: 'string' },
    lr: { type: 'string' },
    'lr-decay': { type: 'string' },
    optimizer: { type: 'string' },
    'weight-decay': { type: 'string' },
    momentum: { type: 'string' },
    seed: { type: 'string' },
    limit: { type: 'string' },
    threads: { type: 'string' },
    'checkpoint-every': { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean' },
    regularize: { type: 'string' },
    strength: { type: 'string' },
    site: { type: 'string' },
    modules: { type: 'string' },
    prototypes: { type: 'string' },
    concepts: { type: 'string' },
    adversarial: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? `train needs a RECIPE (${Object.keys(RECIPES).join(', ')})` : `train takes one RECIPE, got ${positionals.length}`, 'train');
  const name = positionals[0];
  if (!isRecipe(name)) throw new UsageError(`unknown recipe '${name}' (known: ${Object.keys(RECIPES).join(', ')})`, 'train');
  const recipe: Recipe = RECIPES[name];
  const optimizer = values.optimizer;
  if (optimizer !== undefined && optimizer !== 'adam' && optimizer !== 'adamw' && optimizer !== 'sgd') throw new UsageError(`bad --optimizer '${optimizer}': expected adam, adamw or sgd`, 'train');
  const given: Partial<Settings> = Object.fromEntries(Object.entries({
    batch: positiveNumber('--batch', values.batch, true),
    lr: positiveNumber('--lr', values.lr, false),
    lrDecay: positiveNumber('--lr-decay', values['lr-decay'], false),
    optimizer,
    weightDecay: positiveNumber('--weight-decay', values['weight-decay'], false, true),
    momentum: positiveNumber('--momentum', values.momentum, false, true),
    seed: positiveNumber('--seed', values.seed, true, true),
    limit: positiveNumber('--limit', values.limit, true, true),
  }).filter(([, v]) => v !== undefined));
  if (given.lrDecay !== undefined && given.lrDecay > 1) throw new UsageError(`bad --lr-decay ${given.lrDecay}: expected a factor in (0, 1]`, 'train');
  const epochsGiven = positiveNumber('--epochs', values.epochs, true, true);
  const threads = positiveNumber('--threads', values.threads, true);
  const every = positiveNumber('--checkpoint-every', values['checkpoint-every'], true, true) ?? 500;
  const active = activeSettings(values);
  const dir = values.out ?? '.';
  const file = `${name}${active ? activeSuffix(active) : ''}`;
  const modelPath = join(dir, `${file}.onnx`);
  const ckptPath = join(dir, `${file}.ckpt.onnx`);
  const session = threads === undefined ? {} : { threads };

  let ckpt: Checkpoint | undefined;
  let settings: Settings;
  let epochs: number;
  if (values.resume) {
    ckpt = await readCheckpoint(ckptPath);
    const extra = ckpt.meta.extra as { recipe?: string; settings?: Settings; epochs?: number; active?: ActiveSettings };
    if (extra.recipe !== name || !extra.settings) throw new Error(`${ckptPath}: a checkpoint of '${extra.recipe ?? 'another run'}', not of ${name}`);
    if (JSON.stringify(extra.active ?? null) !== JSON.stringify(active ?? null)) {
      throw new Error(`--resume continues the checkpoint's run, trained with ${JSON.stringify(extra.active ?? 'no training-time method')}; give the same options (got ${JSON.stringify(active ?? 'none')})`);
    }
    settings = extra.settings;
    for (const [k, v] of Object.entries(given)) {
      if (settings[k as keyof Settings] !== v) throw new Error(`--resume continues the checkpoint's run, which has ${k} ${settings[k as keyof Settings]}; drop the option or start afresh (got ${v})`);
    }
    epochs = epochsGiven ?? extra.epochs ?? recipe.epochs;
  } else {
    settings = { ...recipe.defaults, ...given };
    epochs = epochsGiven ?? recipe.epochs;
  }
  const { train: trainSet, test: testSet } = await recipe.data();
  const data = settings.limit > 0 ? trainSet.slice(0, settings.limit) : trainSet;
  const model = recipe.model(settings.seed, data);
  const { reg, about } = active ? await activeRegularizer(active, model, data, settings.seed) : { reg: undefined, about: '' };
  const terms = { terms: reg?.terms, hostTerms: reg?.hostTerms };
  const trainer = ckpt
    ? await resumeTrainer(ckpt, { session, ...terms })
    : await Trainer.create(reg?.model ?? model, { optimizer: optimizerConfig(settings), session, weights: reg?.weights, ...terms });
  const baseline = priorBaseline(data, testSet);
  const weights = [...trainer.weights.values()].reduce((n, t) => n + t.size, 0);
  const done = trainer.state.epoch;
  console.log(`${values.resume ? 'resuming' : 'training'} ${name}: ${recipe.what}, ${weights.toLocaleString('en-US')} weights`);
  console.log(`  ${data.size} training examples, ${testSet.size} test; ${settingsText(settings)}; ${epochs} ${epochs === 1 ? 'epoch' : 'epochs'}${done > 0 || trainer.state.batch > 0 ? ` (${done} done${trainer.state.batch ? ` and ${trainer.state.batch} steps of the next` : ''})` : ''}`);
  if (about) console.log(`  ${about}; writes ${modelPath}`);
  console.log(`  baseline, ${recipe.baseline}: test loss ${baseline.loss.toFixed(4)}, accuracy ${(100 * baseline.accuracy).toFixed(2)}%`);
  if (done >= epochs) {
    console.log(`nothing to do: the checkpoint has finished ${done} of ${epochs} epochs (pass --epochs to train longer)`);
    await trainer.dispose();
    return;
  }

  await mkdir(dir, { recursive: true });
  const save = async () => {
    const last = trainer.state.history.at(-1);
    const extra = { recipe: name, settings, epochs, ...(active ? { active } : {}) };
    await writeFileAtomic(ckptPath, encodeCheckpoint(trainer, extra));
    const summary = {
      recipe: name,
      epochs: trainer.state.epoch,
      steps: trainer.optimizer.steps,
      seed: settings.seed,
      testAccuracy: last?.test?.accuracy ?? null,
      testLoss: last?.test?.loss ?? null,
      baselineLoss: baseline.loss,
    };
    const trained = reg?.finish ? reg.finish(trainer.exportModel()) : trainer.exportModel();
    await writeFileAtomic(modelPath, encodeModel(withMetadata(trained, { 'glassbox.trained': JSON.stringify({ ...summary, ...(active ? { active } : {}) }) })));
  };
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const progress = progressPrinter(process.stderr);
  const started = performance.now();
  try {
    const result = await trainer.fit(data, {
      epochs,
      batchSize: settings.batch,
      seed: settings.seed,
      lrDecay: settings.lrDecay,
      test: testSet,
      extra: reg?.extra,
      transform: reg?.transform,
      signal: controller.signal,
      onProgress: progress.update,
      onEpoch: (r) => {
        progress.clear();
        console.log(epochText(r, epochs));
      },
      checkpoint: { save, everySteps: every },
    });
    progress.clear();
    const total = (performance.now() - started) / 1000;
    if (result.stopped) {
      console.log(`stopped at epoch ${trainer.state.epoch + 1}, step ${trainer.state.batch}; checkpoint in ${ckptPath}`);
      console.log(`continue with: glassbox train ${argv.filter((a) => a !== '--resume').join(' ')} --resume`);
      process.exitCode = 130;
      return;
    }
    if (reg && 'push' in reg && reg.push) {
      // ProtoPNet: project every prototype onto its nearest training patch of its class, then test again.
      const pushed = await reg.push(trainer.exportModel(), data);
      await writeFileAtomic(modelPath, encodeModel(withMetadata(pushed.model, { 'glassbox.trained': JSON.stringify({ recipe: name, active, pushed: true }) })));
      console.log(`push: ${pushed.check.detail} (${pushed.check.passed === false ? 'failed' : 'passed'})`);
      const after = await testAccuracy(await Model.load(encodeModel(pushed.model)), testSet);
      console.log(`after the push: test accuracy ${(100 * after.accuracy).toFixed(2)}%`);
    }
    const last = result.history.at(-1);
    const acc = last?.test ? `test accuracy ${(100 * last.test.accuracy).toFixed(2)}%, loss ${last.test.loss.toFixed(4)} (baseline ${baseline.loss.toFixed(4)}); ` : '';
    console.log(`${acc}wrote ${modelPath} and the checkpoint ${ckptPath}; ${total.toFixed(1)} s in all`);
  } finally {
    process.removeListener('SIGINT', onSigint);
    await trainer.dispose();
  }
}

function optimizerConfig(s: Settings): OptimizerConfig {
  return s.optimizer === 'sgd'
    ? { kind: 'sgd', lr: s.lr, momentum: s.momentum, weightDecay: s.weightDecay }
    : { kind: s.optimizer, lr: s.lr, weightDecay: s.weightDecay };
}

function settingsText(s: Settings): string {
  const decay = s.lrDecay === 1 ? '' : ` (×${s.lrDecay} per epoch)`;
  const extra = [s.optimizer === 'sgd' ? `momentum ${s.momentum}` : '', s.weightDecay ? `weight decay ${s.weightDecay}` : ''].filter(Boolean).join(', ');
  return `${s.optimizer} lr ${s.lr}${decay}${extra ? `, ${extra}` : ''}, batch ${s.batch}, seed ${s.seed}`;
}

function epochText(r: EpochRecord, epochs: number): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const test = r.test ? `  test loss ${r.test.loss.toFixed(4)} acc ${pct(r.test.accuracy)}` : '';
  const terms = r.terms ? Object.entries(r.terms).map(([k, v]) => `  ${k} ${v.toPrecision(4)}`).join('') : '';
  return `epoch ${r.epoch}/${epochs}  train loss ${r.trainLoss.toFixed(4)} acc ${pct(r.trainAccuracy)}${terms}${test}  ${r.seconds.toFixed(1)} s (${Math.round(r.examplesPerSecond)} ex/s), eval ${r.evalSeconds.toFixed(1)} s`;
}
