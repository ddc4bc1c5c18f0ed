/**
 * How fast integrated gradients on the exported CNN could possibly be on this machine (issue: attribution). Every
 * IG step row needs the c2 convolution (32 → 64 channels, 3×3, 26×26 → 24×24) forward and its transpose backward:
 * 2 × 10.6 M multiply-adds, 95% of the network's arithmetic. This times, in ONNX Runtime with the project's own
 * thread count and optimisation level, a large GEMM (the machine's practical peak) and that convolution alone on 128 rows, and sets the
 * time the two convolutions need for the bench's IG case (64 images × 50 steps) against half of PyTorch's IG time
 * from the last `npm run bench:attribution`.
 *
 *   npm run bench:roofline -- [--rounds 7]
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/index.js';
import { attr, encodeModel } from '../src/onnx/proto.js';
import { Model } from '../src/model/model.js';
import { Net } from '../src/model/builders/net.js';
import { uniform } from '../src/model/builders/init.js';
import { Tensor } from '../src/runtime/tensor.js';
import { median, ROOT, runBench, timeInterleaved, writeResults } from './common.js';

const ROWS = 128;
const GEMM = 2048;
/** The bench's IG case: 64 images, 50 Gauss–Legendre steps. */
const IG_ROWS = 64 * 50;

async function oneOp(build: (net: Net) => string, input: { name: string; shape: number[] }, outShape: number[]): Promise<Model> {
  const net = new Net(1);
  const y = build(net);
  const proto = net.model({ name: 'op', doc: 'one op', input: { name: input.name, dtype: 'float32', shape: input.shape }, output: { name: y, shape: outShape } });
  return Model.load(encodeModel(proto), { threads: 2, optimization: 'all' });
}

const filled = (shape: number[]) => Tensor.float32(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37)), shape);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, runs: { type: 'string', default: '10' } } });
  const rounds = Number(values.rounds);
  const runs = Number(values.runs);
  const gemm = await oneOp((net) => net.op('', 'MatMul', ['a', net.param('b', uniform(net.rand, [GEMM, GEMM], 1))], [], ['y']), { name: 'a', shape: [GEMM, GEMM] }, [GEMM, GEMM]);
  const conv = await oneOp(
    // Reduced to one number, so that copying 19 MB of output back to JavaScript is not timed as convolution.
    (net) => net.op('', 'ReduceMax', [net.op('', 'Conv', ['x', net.param('w', uniform(net.rand, [64, 32, 3, 3], 0.1))], [attr('kernel_shape', { ints: [3, 3] })])], [attr('keepdims', { int: 0 })], ['y']),
    { name: 'x', shape: [ROWS, 32, 26, 26] }, [],
  );
  const cnn = await Model.load(join(ROOT, 'fixtures', 'torch', 'cnn.onnx'), { threads: 2, optimization: 'all' });
  const a = { a: filled([GEMM, GEMM]) };
  const x = { x: filled([ROWS, 32, 26, 26]) };
  const images = { x: filled([ROWS, 1, 28, 28]) };
  const per: { gemm: number[]; conv: number[]; forward: number[] } = { gemm: [], conv: [], forward: [] };
  for (let r = 0; r < rounds; r++) {
    const t = await timeInterleaved({ gemm: () => gemm.run(a), conv: () => conv.run(x), forward: () => cnn.run(images) }, runs, 2);
    per.gemm.push(t.gemm);
    per.conv.push(t.conv);
    per.forward.push(t.forward);
    process.stderr.write(`bench: round ${r + 1}/${rounds}\r`);
  }
  process.stderr.write('\n');
  await gemm.dispose();
  await conv.dispose();
  await cnn.dispose();
  const gemmMs = median(per.gemm);
  const convMs = median(per.conv);
  const forwardMs = median(per.forward);
  const peak = (2 * GEMM ** 3) / gemmMs / 1e6;
  const convFlop = 2 * ROWS * 24 * 24 * 64 * 32 * 9;
  const convRate = convFlop / convMs / 1e6;
  // Forward and input-gradient convolutions of c2 for every IG row, at the measured conv rate and at GEMM peak.
  const floorMs = (2 * IG_ROWS / ROWS) * convMs;
  const peakFloorMs = (2 * IG_ROWS * (convFlop / ROWS)) / peak / 1e6;
  console.log(`GEMM ${GEMM}³: ${gemmMs.toFixed(1)} ms, ${peak.toFixed(0)} GFLOP/s (2 threads)`);
  console.log(`c2 conv (+ a max over its output), ${ROWS} rows: ${convMs.toFixed(1)} ms, ${convRate.toFixed(0)} GFLOP/s (${(100 * convRate / peak).toFixed(0)}% of GEMM peak)`);
  // A floor no exact implementation in ONNX Runtime goes under: the model's forward pass plus c2's backward conv.
  const passFloorMs = (IG_ROWS / ROWS) * (forwardMs + convMs);
  console.log(`IG, ${IG_ROWS} rows: the c2 convolutions alone take ${floorMs.toFixed(0)} ms (${peakFloorMs.toFixed(0)} ms at GEMM peak)`);
  console.log(`CNN forward, ${ROWS} rows: ${forwardMs.toFixed(1)} ms; forward + c2's backward conv for ${IG_ROWS} rows: ${passFloorMs.toFixed(0)} ms`);
  const attribution = join(ROOT, 'bench', 'results', 'attribution.json');
  let torchIg: number | undefined;
  if (existsSync(attribution)) {
    const saved = JSON.parse(readFileSync(attribution, 'utf8')) as { results: { model: string; method: string; ms: { pytorch: number } }[] };
    torchIg = saved.results.find((r) => r.model === 'cnn' && r.method === 'integrated-gradients')?.ms.pytorch;
  }
  if (torchIg !== undefined) {
    console.log(`half of PyTorch's IG time (bench/results/attribution.json): ${(torchIg / 2).toFixed(0)} ms; ` +
      `left for everything else at the measured conv rate: ${(torchIg / 2 - floorMs).toFixed(0)} ms; ` +
      `forward + one conv against it: ${(passFloorMs / (torchIg / 2)).toFixed(2)}×`);
  }
  writeResults('roofline', { rounds, runs, ms: { gemm: gemmMs, conv: convMs, forward: forwardMs }, igForwardPlusConvFloorMs: passFloorMs, gflops: { gemmPeak: peak, conv: convRate }, igConvFloorMs: floorMs, igConvFloorAtPeakMs: peakFloorMs, torchIgMs: torchIg, perRound: per });
}

runBench(main);
