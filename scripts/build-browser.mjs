#!/usr/bin/env node
/**
 * Bundles glassbox for browsers: build/src/browser.js (the tsc output; run `npx tsc -p .` first) becomes one ES module,
 * build/browser/glassbox.js, with onnxruntime-web inside it and the WebAssembly binary it fetches copied beside it.
 * A page needs nothing else: `import { Model } from './glassbox.js'` (serve the folder over http; onnxruntime-web
 * finds its .wasm next to the bundle, or wherever `setWasmPaths` says).
 *
 * What Node provides and a browser does not:
 * - Node built-ins (`node:fs/promises`, `node:path`, ...) are only reached when a path is given. They become stubs
 *   whose functions throw "... is Node-only", so the bundle loads and a path says what to do instead.
 * - PNG: pngjs's own browser build (pngjs/browser.js, with its polyfills inside), `zlib.inflateSync` from pako (the
 *   zlib port: same checks, same messages) and `Buffer` from the `buffer` package (injected into the modules that use
 *   it; no global is set).
 *
 * Usage: node scripts/build-browser.mjs (npm run build:browser)
 */
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = join(root, 'build/src/browser.js');
const outdir = join(root, 'build/browser');
const outfile = join(outdir, 'glassbox.js');
const require = createRequire(join(root, 'package.json'));
const ortDist = dirname(require.resolve('onnxruntime-web')); // dist/, whichever entry Node resolves

/** Node built-ins as stubs: every export of the real module, throwing when called. */
const nodeOnly = {
  name: 'node-only',
  setup(build) {
    const builtins = builtinModules.filter((m) => !m.startsWith('_') && m !== 'zlib' && m !== 'buffer');
    const bare = new RegExp(`^(node:.*|${builtins.map((m) => m.replace(/[/]/g, '\\/')).join('|')})$`);
    build.onResolve({ filter: bare }, (args) => ({ path: args.path.replace(/^node:/, ''), namespace: 'node-only' }));
    build.onLoad({ filter: /.*/, namespace: 'node-only' }, async ({ path }) => {
      const real = await import(`node:${path}`);
      const names = Object.keys(real).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
      const fail = `(what) => { throw new Error(\`\${what} (node:${path}) is Node-only: in a browser, pass bytes ` +
        `(e.g. new Uint8Array(await (await fetch(url)).arrayBuffer())) instead of a path\`); }`;
      const contents = [
        `const fail = ${fail};`,
        ...names.map((n) => `export function ${n}() { return fail(${JSON.stringify(n)}); }`),
        `export default new Proxy({}, { get: (_, key) => () => fail(String(key)) });`,
      ].join('\n');
      return { contents, loader: 'js' };
    });
  },
};

/** What png.ts needs from Node besides pngjs: `inflateSync` (to check IDAT data) and `Buffer`. */
const pngShims = {
  name: 'png-shims',
  setup(build) {
    build.onResolve({ filter: /^(node:)?zlib$/ }, () => ({ path: 'zlib', namespace: 'png-shims' }));
    build.onResolve({ filter: /^glassbox:buffer-global$/ }, () => ({ path: 'buffer-global', namespace: 'png-shims' }));
    build.onLoad({ filter: /^zlib$/, namespace: 'png-shims' }, () => ({
      resolveDir: root,
      loader: 'js',
      contents: `
        import { inflate } from ${JSON.stringify(require.resolve('pako'))};
        import { Buffer } from ${JSON.stringify(require.resolve('buffer/'))};
        // pako throws zlib's messages as strings ("incorrect header check"); Node's zlib throws Errors, and says
        // "unexpected end of file" for a truncated stream where pako says "buffer error".
        export function inflateSync(data) {
          let out;
          try {
            out = inflate(data);
          } catch (e) {
            const message = e instanceof Error ? e.message : String(e);
            throw new Error(message === 'buffer error' ? 'unexpected end of file' : message);
          }
          if (out === undefined) throw new Error('unexpected end of file');
          return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
        }`,
    }));
    build.onLoad({ filter: /^buffer-global$/, namespace: 'png-shims' }, () => ({
      resolveDir: root,
      loader: 'js',
      contents: `export { Buffer } from ${JSON.stringify(require.resolve('buffer/'))};`,
    }));
  },
};

async function main() {
  await stat(entry).catch(() => {
    throw new Error(`${relative(root, entry)} is missing: compile first (npx tsc -p .)`);
  });
  await mkdir(outdir, { recursive: true });
  const started = performance.now();
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    legalComments: 'eof',
    alias: { pngjs: 'pngjs/browser.js' },
    inject: ['glassbox:buffer-global'],
    plugins: [pngShims, nodeOnly], // pngShims first: it claims zlib and node:zlib before they become stubs
    logLevel: 'warning',
  });
  const bundle = await readFile(outfile, 'utf8');
  // The bundled onnxruntime-web names the .wasm it fetches (next to import.meta.url unless wasmPaths is set).
  const wasm = [...new Set(bundle.match(/ort-wasm[\w.-]*\.wasm/g) ?? [])];
  if (wasm.length === 0) throw new Error('the bundle names no ort-wasm-*.wasm file: did the onnxruntime-web entry change?');
  for (const f of wasm) await copyFile(join(ortDist, f), join(outdir, f));
  const mb = (n) => `${(n / 2 ** 20).toFixed(2)} MiB`;
  const sizes = await Promise.all(wasm.map(async (f) => `${f} ${mb((await stat(join(outdir, f))).size)}`));
  console.log(`${relative(root, outfile)} ${mb(Buffer.byteLength(bundle))} + ${sizes.join(', ')} ` +
    `(${Math.round(performance.now() - started)} ms)`);
}

main().catch((e) => {
  console.error(`build-browser: ${e.message}`);
  process.exit(1);
});
