#!/bin/sh
':' //; unset NODE_EXTRA_CA_CERTS; export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864:glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1}"; exec node "$0" "$@"
// The line above is for the shell, which runs this file when it is executed (`npx ckv`, a
// `npm link`ed or installed `ckv`): it starts node on this same file without
// NODE_EXTRA_CA_CERTS and with ckv's malloc settings. To node the line is a string and a
// comment. Node reads that variable's file before any JavaScript runs, and with it set Node 20
// initializes OpenSSL and parses the whole CA bundle at every start: 36 ms of a 52 ms
// `node -e ''` on the reference machine, against 15 without (docs/measurements.md). ckv makes
// no TLS connections (peers use noise, the CLI a Unix socket), so the certificates were never
// used. The malloc settings (src/util/child-env.ts says what each does; unless GLIBC_TUNABLES
// is set already) keep memory glibc has freed for reuse instead of handing it back to the
// kernel, and map what it takes in huge pages where the kernel allows: on a VM where a first
// touch of a page costs ~11 us, a restarted node catching up had about half the page faults
// with them. `node bin/ckv.js` keeps NODE_EXTRA_CA_CERTS and gets glibc's defaults.
//
// The ckv command. The polyfill is imported first: libp2p needs Promise.withResolvers. Then the
// CLI: esbuild's bundle of it (scripts/bundle.mjs, made by `npm run build`: a few files load
// much faster than the ~600 modules behind them), or tsc's modules one by one if there is no
// bundle or tsc rebuilt them after it (a bare `tsc`), so a stale bundle never runs. Stacks
// from the bundle name its functions and lines; `NODE_OPTIONS=--enable-source-maps` maps them
// back to src/**/*.ts (off by default: reading the maps costs a node start ~90 ms).
//
// `ckv node start` loads the same code as one CommonJS bundle with a V8 code cache
// (./node-bundle.js): a node start compiles much less. The other commands load the ESM
// bundle's chunks they need. Either bundle runs any command, so a misread command line only
// costs load time.
import '../dist/src/util/polyfill.js';
import { statSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

// Node >= 22.1 can keep compiled code on disk between runs (Node 20 has no such API).
module.enableCompileCache?.();

const mtimeMs = (url) => statSync(url, { throwIfNoEntry: false })?.mtimeMs;
const modulesMs = mtimeMs(new URL('../dist/src/cli/main.js', import.meta.url));
const isFresh = (url) => {
  const bundleMs = mtimeMs(url);
  return bundleMs !== undefined && (modulesMs === undefined || bundleMs >= modulesMs);
};

/** `node start` among the arguments (after global options): the long-lived process. */
const isNodeStart = (args) => args.some((arg, i) => arg === 'node' && args[i + 1] === 'start');

const bundle = new URL('../dist/src/cli/ckv.bundle.mjs', import.meta.url);
const nodeBundle = new URL('../dist/src/cli/ckv.node.cjs', import.meta.url);
let main;
if (isNodeStart(process.argv.slice(2)) && !process.sourceMapsEnabled && isFresh(nodeBundle)) {
  const { loadNodeBundle } = await import('./node-bundle.js');
  ({ main } = loadNodeBundle(fileURLToPath(nodeBundle)));
} else {
  ({ main } = await import(isFresh(bundle) ? bundle.href : '../dist/src/cli/main.js'));
}
await main(process.argv);
