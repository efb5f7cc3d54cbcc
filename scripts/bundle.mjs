#!/usr/bin/env node
// The command as a few files instead of ~600 modules: `npm run build` runs this after tsc.
//
// Why: at every start Node's ESM loader resolves, reads, compiles and links each module the
// node loads, one by one: libp2p and its dependencies, gRPC, protobufjs, ~600 files. That was
// most of `ckv node start`'s time to serving (bench scenario `start`; a CPU profile put ~75%
// of a start in the loader). esbuild bundles dist/src/cli/main.js (tsc's output) and all it
// imports into dist/src/cli/ckv.bundle.mjs plus chunks beside it (ckv.chunk-*.mjs): code
// that only `node start` needs (behind its dynamic import of the wiring) is in a chunk the
// other commands never load. bin/ckv.js loads the bundle when it exists.
//
// - classic-level stays external: a native addon, found from its own directory at run time.
// - The files sit in dist/src/cli/, the depth of every module tsc emits, so the bundled
//   modules' `import.meta.url` paths (demo.ts -> bin/ckv.js, proto.ts -> src/control/ckv.proto)
//   resolve as they do unbundled.
// - CommonJS dependencies (gRPC, protobufjs) call require(): the banner gives each file one.
//   Some find files of their own package from __dirname (@grpc/reflection's reflection.proto,
//   grpc-js's channelz.proto): a module that mentions __dirname or __filename gets them
//   defined as its original location, found at run time relative to the bundle file
//   (symlinks kept as they are, so the path stays inside this checkout's node_modules).
// - Old bundle files are removed first, so a failed or skipped bundle never leaves a stale
//   one for bin/ckv.js to load. Without esbuild installed (node_modules older than this
//   script) it says so and stops there: bin/ckv.js then loads the modules one by one. With
//   CI=true a missing esbuild is an error.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'src', 'cli');
const isBundleFile = (name) => /^ckv\.(bundle|chunk-[A-Za-z0-9]+)\.mjs$/.test(name);

for (const name of readdirSync(outdir)) if (isBundleFile(name)) rmSync(join(outdir, name));

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (error) {
  const why = `esbuild is not installed (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); run npm ci`;
  if (process.env.CI === 'true') {
    console.error(`bundle: ${why}`);
    process.exit(1);
  }
  console.error(`bundle: skipped: ${why}. bin/ckv.js loads dist/ module by module (slower start).`);
  process.exit(0);
}

/** Defines __dirname and __filename in a dependency that uses them: its own path, from the bundle's. */
const ownPaths = {
  name: 'own-paths',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, (args) => {
      const contents = readFileSync(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(contents)) return undefined;
      const file = relative(outdir, args.path).split('\\').join('/');
      const prelude = `var __filename = __ckvOwnPath(${JSON.stringify(file)}); var __dirname = __ckvDirname(__filename);\n`;
      return { contents: prelude + contents, loader: 'js' };
    });
  },
};

const result = await esbuild.build({
  entryPoints: { 'ckv.bundle': join(outdir, 'main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'ckv.chunk-[hash]',
  external: ['classic-level'],
  preserveSymlinks: true,
  plugins: [ownPaths],
  banner: {
    js: [
      "import { createRequire as __ckvCreateRequire } from 'node:module';",
      "import { dirname as __ckvDirname, join as __ckvJoin } from 'node:path';",
      "import { fileURLToPath as __ckvFileURLToPath } from 'node:url';",
      'const require = __ckvCreateRequire(import.meta.url);',
      'const __ckvOwnPath = (file) => __ckvJoin(__ckvDirname(__ckvFileURLToPath(import.meta.url)), file);',
    ].join(' '),
  },
  logLevel: 'warning',
  metafile: true,
});
const outputs = Object.entries(result.metafile.outputs);
const bytes = outputs.reduce((sum, [, output]) => sum + output.bytes, 0);
console.error(`bundle: ${outputs.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB in dist/src/cli/ (${Object.keys(result.metafile.inputs).length} modules)`);
