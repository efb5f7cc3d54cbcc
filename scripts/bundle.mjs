#!/usr/bin/env node
// The command as a few files instead of ~600 modules: `npm run build` runs this after tsc.
//
// Why: at every start Node's module loader resolves, reads, compiles and links each module
// the process loads, one by one: libp2p and its dependencies, gRPC, protobufjs, ~600 files.
// A CPU profile of `ckv node start` put ~60 % of its busy time to serving in the loader
// (docs/measurements.md). esbuild bundles tsc's output, dist/src/cli/main.js and everything it
// imports, into dist/src/cli/ckv.bundle.mjs plus chunks beside it (ckv.chunk-*.mjs): code that
// only `node start` needs (behind main's dynamic import of the wiring) sits in a chunk the
// other commands never load. bin/ckv.js loads the bundle.
//
// - classic-level's JavaScript (and abstract-level's, level-transcoder's...) is bundled; only
//   its addon loader, classic-level/binding.js, stays external: node-gyp-build finds the
//   native addon from that file's own directory at run time. (Loaded from node_modules one
//   by one, with no code cache, those modules cost a node ~18 ms of every start.)
// - libp2p's peer store and peer records sort with code-unit comparisons instead of
//   `localeCompare`, whose first call makes ICU's collator at every start (`locale-free-sorts`
//   below).
// - The files sit in dist/src/cli/, the depth of every module tsc emits, so the bundled
//   modules' `import.meta.url` paths (demo.ts -> bin/ckv.js, proto.ts -> src/control/ckv.proto)
//   resolve as they do unbundled.
// - CommonJS dependencies (gRPC, protobufjs) call require(): the banner gives each file one.
//   Some find files of their own package from __dirname (@grpc/reflection's reflection.proto,
//   grpc-js's channelz.proto): a module that mentions __dirname or __filename gets them
//   defined as its original location, found at run time relative to the bundle file
//   (symlinks kept as they are, so the path stays inside this checkout's node_modules).
// - Source maps: each output file has a .map beside it that goes through tsc's maps back to
//   src/**/*.ts; bin/ckv.js turns source-mapped stacks on, so an error's stack names the
//   TypeScript file and line, as it did unbundled.
// - ckv.proto is written as protobufjs JSON to dist/src/control/ckv.proto.json (first, for the
//   bundled and the unbundled command alike): the server reads that instead of parsing the
//   .proto at every start (src/control/proto.ts).
// - `ckv node start` loads a second bundle of the same code: one CommonJS file,
//   dist/src/cli/ckv.node.cjs, compiled through node:vm with a V8 code cache (bin/node-bundle.js
//   says why and how). `import.meta.url` becomes the file's URL there; its content hash goes
//   in ckv.node.cjs.id, which names the cache. Both bundles are made ASCII-only (esbuild
//   escapes code but keeps some comments as they are): V8 then keeps the source as one-byte
//   strings and Node's loader decodes it in half the time.
// - Old bundle files (and code caches) are removed first, so a failed bundle never leaves a
//   stale one for bin/ckv.js to load; and bin/ckv.js loads tsc's modules one by one instead if
//   dist/src/cli/main.js is newer than the bundle (a bare `tsc` after `npm run build`), so a
//   stale bundle never runs.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import protobuf from 'protobufjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'src', 'cli');
const entry = join(outdir, 'main.js');
const isBundleFile = (name) => /^ckv\.((bundle|chunk-[A-Za-z0-9]+)\.mjs(\.map)?|node\.cjs(\.map|\.id)?|node-cache)$/.test(name);

for (const name of readdirSync(outdir)) if (isBundleFile(name)) rmSync(join(outdir, name), { recursive: true, force: true });

// As src/control/proto.ts's parseKvProto (proto-loader's parse: camelCase field names).
const kvProto = new protobuf.Root().loadSync(join(root, 'src', 'control', 'ckv.proto'), { keepCase: false });
writeFileSync(join(root, 'dist', 'src', 'control', 'ckv.proto.json'), `${JSON.stringify(kvProto.toJSON())}\n`);

/** Defines __dirname and __filename in a dependency that uses them: its own path, from the bundle's. */
const ownPaths = {
  name: 'own-paths',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, (args) => {
      const contents = readFileSync(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(contents)) return undefined;
      const file = relative(outdir, args.path).split('\\').join('/');
      const prelude = `var __filename = __ckvOwnPath(${JSON.stringify(file)}); var __dirname = __ckvDirname(__filename);`;
      // On the first line, so the rest of the file keeps its line numbers for the source map.
      return { contents: prelude + contents, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/**
 * src/net/yamux-stream-module.ts loads yamux's (unexported) stream module by file URL; in the
 * bundle that would be a second copy, so the patch of ./yamux-window.ts would miss the class the
 * bundle uses. Here it becomes a static import of the file yamux's own `./stream.js` resolves to
 * (the same path string, so esbuild makes it the same module).
 */
const yamuxStreamModule = {
  name: 'yamux-stream-module',
  setup(build) {
    build.onLoad({ filter: /[\\/]dist[\\/]src[\\/]net[\\/]yamux-stream-module\.js$/ }, async () => {
      const entry = await build.resolve('@chainsafe/libp2p-yamux', { kind: 'import-statement', resolveDir: outdir });
      if (entry.errors.length > 0) throw new Error(`bundle: cannot resolve @chainsafe/libp2p-yamux: ${entry.errors[0].text}`);
      const streamFile = join(dirname(entry.path), 'stream.js');
      const contents = `import * as stream from ${JSON.stringify(streamFile)};\nexport async function loadYamuxStreamModule() { return stream; }\n`;
      return { contents, loader: 'js', resolveDir: dirname(streamFile) };
    });
  },
};

/**
 * libp2p's peer store and peer records sort small lists (a peer's metadata and tags by name,
 * its addresses, two address lists to compare them) with `String#localeCompare`. The first
 * such call in a process makes ICU's collator: ~6 ms of the main thread (10-14 ms cold), paid
 * by every start on its way to its first connection (docs/measurements.md, 2026-12-07 (5)).
 * Those orders only need to be consistent, so in these files `x.localeCompare(y)` becomes a
 * comparison of UTF-16 code units. Each file must have had a call and have none left: if a
 * new version writes them differently, the build fails here rather than keep the cost quietly.
 */
const localeFreeSortFiles = [
  /[\\/]@libp2p[\\/]peer-store[\\/]dist[\\/]src[\\/]utils[\\/](to-peer-pb|dedupe-addresses)\.js$/,
  /[\\/]@libp2p[\\/]peer-record[\\/]dist[\\/]src[\\/]peer-record[\\/]utils\.js$/,
];
const localeFreeSortsPatched = new Set();
const localeFreeSorts = {
  name: 'locale-free-sorts',
  setup(build) {
    for (const filter of localeFreeSortFiles) {
      build.onLoad({ filter }, (args) => {
        const contents = readFileSync(args.path, 'utf8');
        const call = /([\w$]+(?:\.[\w$]+)*(?:\(\))?)\.localeCompare\(([\w$]+(?:\.[\w$]+)*(?:\(\))?)\)/g;
        if (!call.test(contents)) throw new Error(`bundle: no localeCompare call left to replace in ${args.path}; see locale-free-sorts`);
        const replaced = contents.replace(call, '__ckvCompareCodeUnits($1, $2)');
        if (replaced.includes('localeCompare')) throw new Error(`bundle: a localeCompare call in ${args.path} is not of the form x.localeCompare(y)`);
        localeFreeSortsPatched.add(filter);
        // On the first line, so the rest of the file keeps its line numbers for the source map.
        const prelude = 'const __ckvCompareCodeUnits = (a, b) => (a < b ? -1 : a > b ? 1 : 0);';
        return { contents: prelude + replaced, loader: 'js', resolveDir: dirname(args.path) };
      });
    }
  },
};

/** classic-level's `require('./binding')` stays a run-time require of classic-level/binding.js. */
const levelBinding = {
  name: 'level-binding',
  setup(build) {
    build.onResolve({ filter: /^\.\/binding(\.js)?$/ }, (args) =>
      /[\\/]classic-level[\\/]/.test(args.importer) ? { path: 'classic-level/binding.js', external: true } : undefined,
    );
  },
};

/** What both bundles share. */
const common = {
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  preserveSymlinks: true,
  sourcemap: 'linked',
  sourcesContent: false,
  plugins: [localeFreeSorts, ownPaths, yamuxStreamModule, levelBinding],
  logLevel: 'warning',
  metafile: true,
};

const result = await esbuild.build({
  ...common,
  entryPoints: { 'ckv.bundle': entry },
  splitting: true,
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'ckv.chunk-[hash]',
  banner: {
    js: [
      "import { createRequire as __ckvCreateRequire } from 'node:module';",
      "import { dirname as __ckvDirname, join as __ckvJoin } from 'node:path';",
      "import { fileURLToPath as __ckvFileURLToPath } from 'node:url';",
      'const require = __ckvCreateRequire(import.meta.url);',
      'const __ckvOwnPath = (file) => __ckvJoin(__ckvDirname(__ckvFileURLToPath(import.meta.url)), file);',
    ].join(' '),
  },
});

// The node's bundle: CommonJS, one file (bin/node-bundle.js). require, __dirname and
// __filename are the vm wrapper's (the bundle file's own); import.meta.url is derived from them.
// Whitespace and comments are left out (3.9 -> 2.6 MiB): every start reads, decodes and
// hands V8 the whole source, and a start took 30-40 ms less (docs/measurements.md). Names are
// kept, so stacks still name functions; with --enable-source-maps the node loads the ESM
// bundle instead, whose stacks map back to the TypeScript.
// The file is written already wrapped as Node's CommonJS loader wraps a module (the function
// of exports, require, module, __filename and __dirname; nodeBundleWrapper below): the
// loader compiles it as it is. Wrapping at load time joined two strings around 2.6 MiB, which
// V8 then copied into one before compiling (~8 ms a start: docs/measurements.md, 2026-12-06 (5)).
const nodeBundleWrapper = ['(function (exports, require, module, __filename, __dirname) { ', '\n});'];
const nodeResult = await esbuild.build({
  ...common,
  entryPoints: { 'ckv.node': entry },
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  define: { 'import.meta.url': '__ckvImportMetaUrl' },
  minifyWhitespace: true,
  banner: {
    js: [
      nodeBundleWrapper[0],
      "const __ckvImportMetaUrl = require('node:url').pathToFileURL(__filename).href;",
      "const __ckvDirname = require('node:path').dirname;",
      "const __ckvOwnPath = (file) => require('node:path').join(__dirname, file);",
    ].join(' '),
  },
  footer: { js: nodeBundleWrapper[1] },
});

/**
 * Non-ASCII characters (esbuild leaves them in comments) become \uXXXX escapes, which mean
 * the same character in a string, a regular expression or an identifier, and are plain text
 * in a comment. Lines and earlier columns stay where they were, so the source maps hold.
 */
function makeAscii(file) {
  const text = readFileSync(file, 'utf8');
  // eslint-disable-next-line no-control-regex
  const ascii = text.replace(/[^\x00-\x7f]/g, (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}

for (const filter of localeFreeSortFiles) {
  if (!localeFreeSortsPatched.has(filter)) throw new Error(`bundle: no file matched ${filter} (locale-free-sorts): has libp2p moved it?`);
}

const allOutputs = [...Object.entries(result.metafile.outputs), ...Object.entries(nodeResult.metafile.outputs)];
for (const [name] of allOutputs) if (/\.(mjs|cjs)$/.test(name)) makeAscii(join(root, name));
const nodeBundle = join(outdir, 'ckv.node.cjs');
const nodeBundleId = createHash('sha256').update(readFileSync(nodeBundle)).digest('hex').slice(0, 16);
writeFileSync(`${nodeBundle}.id`, `${nodeBundleId}\n`);

const outputs = Object.entries(result.metafile.outputs).filter(([name]) => name.endsWith('.mjs'));
const bytes = outputs.reduce((sum, [, output]) => sum + output.bytes, 0);
const nodeBytes = readFileSync(nodeBundle).byteLength;
console.error(
  `bundle: ${outputs.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB in dist/src/cli/ (${Object.keys(result.metafile.inputs).length} modules); ` +
    `the node's: ckv.node.cjs, ${(nodeBytes / 1024 / 1024).toFixed(1)} MiB`,
);
