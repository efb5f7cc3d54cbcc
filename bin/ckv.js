#!/usr/bin/env node
// The ckv command. The polyfill is imported first: libp2p needs Promise.withResolvers. Then the
// CLI: bundled (scripts/bundle.mjs, made by `npm run build`: a few files load much faster than
// the ~600 modules behind them), or, if no bundle was made, the modules tsc built.
import '../dist/src/util/polyfill.js';
import { existsSync } from 'node:fs';
import module from 'node:module';

// Node >= 22.1 can keep compiled code on disk between runs (Node 20 has no such API).
module.enableCompileCache?.();

const bundle = new URL('../dist/src/cli/ckv.bundle.mjs', import.meta.url);
const { main } = await import(existsSync(bundle) ? bundle.href : '../dist/src/cli/main.js');
await main(process.argv);
