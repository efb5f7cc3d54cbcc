#!/usr/bin/env node
// The ckv command. The polyfill is imported first: libp2p needs Promise.withResolvers. Then the
// CLI: esbuild's bundle of it (scripts/bundle.mjs, made by `npm run build`: a few files load
// much faster than the ~600 modules behind them), or tsc's modules one by one if there is no
// bundle or tsc rebuilt them after it (a bare `tsc`), so a stale bundle never runs. Stacks
// from the bundle name its functions and lines; `NODE_OPTIONS=--enable-source-maps` maps them
// back to src/**/*.ts (off by default: reading the maps costs a node start ~90 ms).
import '../dist/src/util/polyfill.js';
import { statSync } from 'node:fs';
import module from 'node:module';

// Node >= 22.1 can keep compiled code on disk between runs (Node 20 has no such API).
module.enableCompileCache?.();

const mtimeMs = (url) => statSync(url, { throwIfNoEntry: false })?.mtimeMs;
const bundle = new URL('../dist/src/cli/ckv.bundle.mjs', import.meta.url);
const bundleMs = mtimeMs(bundle);
const modulesMs = mtimeMs(new URL('../dist/src/cli/main.js', import.meta.url));
const useBundle = bundleMs !== undefined && (modulesMs === undefined || bundleMs >= modulesMs);
const { main } = await import(useBundle ? bundle.href : '../dist/src/cli/main.js');
await main(process.argv);
