/**
 * glassbox in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads the
 * bundle build/browser/glassbox.js from a local http server and runs the PyTorch CNN fixture from its bytes: outputs,
 * a capture and an ablation, checked here against PyTorch and onnxruntime-node. PNG decoding runs there too.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { chromium, type Browser, type Page } from 'playwright-core';
import { readNpy } from '../../src/data/npy.js';
import { decodePng } from '../../src/data/png.js';
import { Model } from '../../src/model/model.js';
import { tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { nodeRuntime } from '../../src/runtime/node.js';

// Compiled to build/test/browser/, so the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const BUNDLE = 'build/browser/glassbox.js';
/** What the server hands out (paths from the repository root); anything else is a 404. */
const SERVED = ['build/browser/', 'fixtures/torch/', 'test/data/fixtures/png/', 'node_modules/onnxruntime-web/dist/'];
const PNGS = ['grey1.png', 'grey16.png', 'la8.png', 'palette4.png', 'rgb8.png'];
const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.map': 'application/json',
  '.wasm': 'application/wasm', // WebAssembly.instantiateStreaming insists on it
  '.png': 'image/png',
};

/** What the page sends back: plain arrays, since values cross the page boundary as JSON. */
interface PageResult {
  runtime: string;
  logits: { shape: number[]; data: number[] };
  relu1: { shape: number[]; data: number[] };
  ablated: { shape: number[]; data: number[] };
  fcBias: number[];
  pathError: string;
  pngs: Record<string, { shape: number[]; data: number[] }>;
  encoded: number[];
  corruptPngError: string;
}

/**
 * Runs in the page (serialised by playwright, so it sees only its argument). The type of the bundle's module is the
 * browser entry's: the bundle is that module.
 */
async function inPage(arg: { origin: string; pngs: string[]; corruptPng: number[] }): Promise<PageResult> {
  const gb = (await import(`${arg.origin}/build/browser/glassbox.js`)) as typeof import('../../src/browser.js');
  const bytes = async (path: string) => {
    const res = await fetch(`${arg.origin}/${path}`);
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
  const plain = (t: InstanceType<typeof gb.Tensor>) => ({ shape: [...t.shape], data: Array.from(t.data as Float32Array) });

  const model = await gb.Model.load(await bytes('fixtures/torch/cnn.onnx'));
  const x = gb.parseNpy(await bytes('fixtures/torch/cnn.input.npy'));
  const run = await model.run({ x }, { capture: ['relu1.relu'] });
  const ablated = await model.run({ x }, { interventions: [{ site: 'c2.conv', kind: 'zero' }] });
  const bias = model.graph.proto.initializer.find((t) => t.name === 'fc.bias');
  if (!bias) throw new Error('cnn.onnx has no fc.bias initializer');
  const pathError = await gb.Model.load('fixtures/torch/cnn.onnx').then(
    () => 'loaded from a path',
    (e: Error) => e.message,
  );

  const pngs: PageResult['pngs'] = {};
  for (const f of arg.pngs) pngs[f] = plain(gb.decodePng(await bytes(`test/data/fixtures/png/${f}`)));
  let corruptPngError = 'decoded';
  try {
    gb.decodePng(new Uint8Array(arg.corruptPng));
  } catch (e) {
    corruptPngError = (e as Error).message;
  }
  const result: PageResult = {
    runtime: model.runtime.name,
    logits: plain(run.outputs.logits),
    relu1: plain(run.captures['relu1.relu']),
    ablated: plain(ablated.outputs.logits),
    fcBias: Array.from(gb.tensorFromProto(bias).data as Float32Array),
    pathError,
    pngs,
    encoded: Array.from(gb.encodePng(gb.sliceRows(x, 0, 1))),
    corruptPngError,
  };
  await model.dispose();
  return result;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Builds the bundle when it is missing or older than the compiled sources or the build script. */
async function ensureBundle(): Promise<void> {
  const built = await stat(join(ROOT, BUNDLE)).then((s) => s.mtimeMs, () => 0);
  const sources = (await readdir(join(ROOT, 'build/src'), { recursive: true })).filter((f) => f.endsWith('.js'));
  const inputs = [...sources.map((f) => join(ROOT, 'build/src', f)), join(ROOT, 'scripts/build-browser.mjs')];
  const newest = Math.max(...(await Promise.all(inputs.map(async (f) => (await stat(f)).mtimeMs))));
  if (built >= newest) return;
  await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/build-browser.mjs')], { cwd: ROOT });
}

async function serve(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname).slice(1);
    requests.push(path);
    if (path === '') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><meta charset="utf-8"><title>glassbox</title>');
      return;
    }
    if (path.includes('..') || !SERVED.some((p) => path.startsWith(p))) {
      res.writeHead(404).end();
      return;
    }
    readFile(join(ROOT, path)).then(
      (body) => res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** rgb8.png with its IDAT bytes replaced by non-zlib data under a correct CRC. */
async function corruptPng(): Promise<Uint8Array> {
  const png = new Uint8Array(await readFile(join(ROOT, 'test/data/fixtures/png/rgb8.png')));
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  for (let pos = 8; pos < png.length; ) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...png.subarray(pos + 4, pos + 8));
    if (type === 'IDAT') {
      png.fill(0xab, pos + 8, pos + 8 + length);
      view.setUint32(pos + 8 + length, crc32(png.subarray(pos + 4, pos + 8 + length)));
      return png;
    }
    pos += 12 + length;
  }
  throw new Error('rgb8.png has no IDAT chunk');
}

let browser: Browser | undefined;
let server: Server | undefined;
let opened: Promise<{ browser: Browser; origin: string }> | undefined;
let result: Promise<PageResult> | undefined;
/** Paths the server was asked for, in order. */
const requests: string[] = [];

/** Starts the server and the browser once (after building the bundle if needed); fails if Chromium is missing. */
function open(): Promise<{ browser: Browser; origin: string }> {
  opened ??= (async () => {
    await access(CHROMIUM).catch(() => {
      throw new Error(`${CHROMIUM} is missing: run the project's setup script (it installs Debian's chromium package)`);
    });
    await ensureBundle();
    const served = await serve();
    server = served.server;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 20_000,
    });
    return { browser, origin: served.origin };
  })();
  return opened;
}

/** Runs `fn` in a fresh page (its own onnxruntime-web instance); a failure carries the page's console. */
async function inNewPage<A, R>(fn: (arg: A) => Promise<R>, arg: (origin: string) => A | Promise<A>): Promise<R> {
  const { browser, origin } = await open();
  const page: Page = await browser.newPage();
  const log: string[] = [];
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  try {
    await page.goto(origin);
    // playwright cannot relate a generic argument to its serialised form; A is plain data here.
    return await page.evaluate(fn as (arg: unknown) => Promise<R>, await arg(origin));
  } catch (e) {
    throw new Error(`${(e as Error).message}\npage log:\n${log.join('\n')}`, { cause: e });
  } finally {
    await page.close();
  }
}

/** The CNN page, run once; most tests read its one result. */
function pageResult(): Promise<PageResult> {
  result ??= inNewPage(inPage, async (origin) => ({ origin, pngs: PNGS, corruptPng: Array.from(await corruptPng()) }));
  return result;
}

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

test('chromium: the CNN from bytes matches PyTorch within 1e-4', { timeout: 60_000 }, async () => {
  const r = await pageResult();
  assert.equal(r.runtime, 'onnxruntime-web');
  const expected = await readNpy(join(ROOT, 'fixtures/torch/cnn.output.npy'));
  assert.deepEqual(r.logits.shape, expected.shape);
  const d = maxAbsDiff(r.logits.data, expected.data as Float32Array);
  assert.ok(d < 1e-4, `max |chromium - torch| = ${d}`);
});

test('chromium: a capture matches onnxruntime-node, and zeroing c2.conv leaves the fc bias', { timeout: 60_000 }, async () => {
  const r = await pageResult();
  const bytes = new Uint8Array(await readFile(join(ROOT, 'fixtures/torch/cnn.onnx')));
  const native = await Model.load(bytes, { runtime: nodeRuntime });
  const x = await readNpy(join(ROOT, 'fixtures/torch/cnn.input.npy'));
  const { captures } = await native.run({ x }, { capture: ['relu1.relu'] });
  await native.dispose();
  const relu1 = captures['relu1.relu'];
  assert.deepEqual(r.relu1.shape, [...relu1.shape]);
  const d = maxAbsDiff(r.relu1.data, relu1.data as Float32Array);
  assert.ok(d < 1e-5, `relu1.relu: max |chromium - node| = ${d}`);
  assert.ok(r.relu1.data.some((v) => v > 0), 'relu1.relu is all zeros');

  // c2.conv zeroed → relu2, pool and flatten are zero → logits = fc.bias in every row.
  const bias = native.graph.proto.initializer.find((t) => t.name === 'fc.bias');
  assert.ok(bias);
  const fcBias = Array.from(tensorFromProto(bias).data as Float32Array);
  assert.deepEqual(r.fcBias, fcBias, 'fc.bias read in the page differs from the file');
  assert.ok(fcBias.some((v) => v !== 0));
  const [rows, classes] = r.ablated.shape;
  assert.deepEqual([rows, classes], [4, 10]);
  for (let i = 0; i < rows; i++) {
    const row = r.ablated.data.slice(i * classes, (i + 1) * classes);
    assert.ok(maxAbsDiff(row, fcBias) < 1e-7, `row ${i}: ${row} != fc.bias ${fcBias}`);
  }
});

test('chromium: a path to Model.load says it is Node-only', { timeout: 60_000 }, async () => {
  const r = await pageResult();
  assert.match(r.pathError, /^fixtures\/torch\/cnn\.onnx: readFile \(node:fs\/promises\) is Node-only: in a browser, pass bytes/);
});

test('chromium: PNG decoding and encoding agree with Node', { timeout: 60_000 }, async () => {
  const r = await pageResult();
  const corrupt = await corruptPng();
  for (const f of PNGS) {
    const node = decodePng(new Uint8Array(await readFile(join(ROOT, 'test/data/fixtures/png', f))));
    assert.deepEqual(r.pngs[f].shape, [...node.shape], f);
    assert.deepEqual(r.pngs[f].data, Array.from(node.data), f);
  }
  // The page encoded the first input image (its own min..max over 0..255); Node decodes it to those levels.
  const x = await readNpy(join(ROOT, 'fixtures/torch/cnn.input.npy'));
  const first = Array.from((x.data as Float32Array).subarray(0, 28 * 28));
  const [lo, hi] = [Math.min(...first), Math.max(...first)];
  const decoded = decodePng(new Uint8Array(r.encoded));
  assert.deepEqual([...decoded.shape], [1, 1, 28, 28]);
  const levels = first.map((v) => Math.fround(Math.round(((v - lo) * 255) / (hi - lo)) / 255));
  assert.deepEqual(Array.from(decoded.data), levels);

  // pako stands in for Node's zlib in the bundle: a broken image stream fails with Node's message.
  assert.equal(r.corruptPngError, 'decodePng: not a valid PNG: corrupt image data (incorrect header check)');
  assert.throws(() => decodePng(corrupt), { message: r.corruptPngError });
});

test('chromium: the .wasm comes from beside the bundle, or from where setWasmPaths says', { timeout: 60_000 }, async () => {
  await pageResult();
  const WASM = 'ort-wasm-simd-threaded.jsep.wasm';
  assert.ok(requests.includes(`build/browser/${WASM}`), `requests: ${requests.join(', ')}`);
  const DIST = 'node_modules/onnxruntime-web/dist/';
  // A folder (the loader .mjs and the .wasm both come from it), then the .wasm file alone (the bundle's loader).
  for (const [where, fetched] of [
    [DIST, [`${DIST}ort-wasm-simd-threaded.jsep.mjs`, `${DIST}${WASM}`]],
    [`${DIST}${WASM}`, [`${DIST}${WASM}`]],
  ] as const) {
    requests.length = 0;
    const logits = await inNewPage(
      async ({ origin, where }: { origin: string; where: string }) => {
        const gb = (await import(`${origin}/build/browser/glassbox.js`)) as typeof import('../../src/browser.js');
        gb.setWasmPaths(`${origin}/${where}`);
        const model = await gb.Model.load(new Uint8Array(await (await fetch(`${origin}/fixtures/torch/cnn.onnx`)).arrayBuffer()));
        const { outputs } = await model.run({ x: gb.Tensor.zeros('float32', [1, 1, 28, 28]) });
        return Array.from(outputs.logits.data as Float32Array);
      },
      (origin: string) => ({ origin, where }),
    );
    assert.equal(logits.length, 10);
    const ort = requests.filter((r) => r.includes('ort-wasm'));
    assert.deepEqual(ort, fetched, `setWasmPaths('${where}') fetched ${ort.join(', ')}`);
  }
});
