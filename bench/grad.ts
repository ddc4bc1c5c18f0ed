/**
 * Backward benchmark (issue: autodiff): forward + backward of sum(output) with respect to the input, glassbox's
 * gradient graph in one ONNX Runtime session against PyTorch autograd (weights frozen in both), on the exported
 * CNN (batch 64) and transformer (batch 8 × 32 tokens; token ids have no gradient, so both differentiate with
 * respect to the token embeddings). Rounds alternate the two engines; figures are medians over rounds.
 *
 *   npm run bench:grad -- [--rounds 5] [--runs 20]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { Model } from '../src/model/model.js';
import { inputFor, median, requireTorch, ROOT, timeInterleaved, torchMedian, runBench, writeResults, type Case } from './common.js';

interface GradCase extends Case { wrt: string }
const CASES: GradCase[] = [
  { model: 'cnn', batch: 64, wrt: 'x' },
  { model: 'gpt', batch: 8, seq: 32, wrt: 'tok_emb.gather' },
];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, runs: { type: 'string', default: '20' } } });
  const rounds = Number(values.rounds);
  const runs = Number(values.runs);
  const torch = requireTorch();
  const results = [];
  for (const c of CASES) {
    const model = await Model.load(join(ROOT, 'fixtures', 'torch', `${c.model}.onnx`), { threads: 2 });
    const feeds = inputFor(c);
    const per: Record<string, number[]> = { forward: [], grad: [], torch: [] };
    for (let r = 0; r < rounds; r++) {
      const t = await timeInterleaved({ forward: () => model.run(feeds), grad: () => model.grad(feeds, { wrt: [c.wrt] }) }, runs, 3);
      per.forward.push(t.forward);
      per.grad.push(t.grad);
      per.torch.push(torchMedian(c, runs, ['--backward']));
      process.stderr.write(`bench: ${c.model} round ${r + 1}/${rounds}\r`);
    }
    const m = Object.fromEntries(Object.entries(per).map(([k, v]) => [k, median(v)]));
    results.push({ model: c.model, batch: c.batch, seq: c.seq, wrt: c.wrt, ms: m, torchOverGlassbox: m.torch / m.grad, gradOverForward: m.grad / m.forward, rounds: per });
    await model.dispose();
  }
  process.stderr.write('\n');
  console.log('forward + backward w.r.t. the input (glassbox grad vs PyTorch autograd, weights frozen)');
  console.log('model  batch   glassbox grad  pytorch    torch/glassbox  glassbox grad/forward');
  for (const r of results) {
    const b = r.seq ? `${r.batch}x${r.seq}` : String(r.batch);
    console.log(`${r.model.padEnd(6)} ${b.padEnd(6)} ${r.ms.grad.toFixed(2).padStart(10)} ms ${r.ms.torch.toFixed(2).padStart(7)} ms ${r.torchOverGlassbox.toFixed(2).padStart(12)}x ${r.gradOverForward.toFixed(2).padStart(16)}x`);
  }
  writeResults('grad', { torch, rounds, runs, results });
}

runBench(main);
