// How `ckv node start` loads its code: one CommonJS bundle (dist/src/cli/ckv.node.cjs, made by
// scripts/bundle.mjs) compiled through node:vm with a V8 code cache beside it.
//
// The file holds the bundle already wrapped in the function Node's CommonJS loader would wrap
// it in (module.wrapper), so it is compiled as it is read: no 2.6 MiB string is joined and
// copied at every start.
//
// Why: a node start compiled ~3.5 MiB of bundled JavaScript (libp2p, gRPC, protobufjs, ckv)
// through Node's ESM loader, ~95 ms of V8 compile and ~20 ms of decoding, and then compiled
// the functions the start runs one by one as they were first called. Node 20 has no compile
// cache for modules (22.1+ has `module.enableCompileCache`), but `vm.Script` takes
// `cachedData`: V8's compiled code for the whole script, including every function compiled so
// far when the cache was made. So a node makes the cache a few seconds
// after it starts (`cacheDelayMs`: by then the start, the first sessions and requests have
// compiled what they use) and later starts deserialize it instead of compiling
// (docs/measurements.md, 2026-12-03 (afternoon)). The other commands keep the ESM bundle,
// split into chunks, so they do not read the node's code at all.
//
// Safety of the cache:
// - V8 checks a cache against its own version, its flags and the source's length, and rejects
//   one that does not match (`cachedDataRejected`); the source's content it does not check.
//   So the cache's file name carries the bundle's content hash (ckv.node.cjs.id, written by
//   the build with the bundle; no id file, no cache), the Node version and the architecture:
//   a cache is only ever offered to the exact bundle and Node it was made by. The build
//   removes old caches.
// - A cache that fails to read or is rejected costs the compile, never the start; a rejected
//   or missing one is made again (written aside and renamed over, so a concurrent reader sees
//   a whole file or none). A directory we cannot write (an install owned by another user)
//   means no cache, silently.
// - With --enable-source-maps the caller uses the ESM bundle instead: Node maps stacks of
//   modules it loaded itself, not of a vm.Script.
//
// `CKV_CODE_CACHE_LOG=1` writes a line to stderr saying what the load did, and one when the
// cache is written (tests use them).
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import vm from 'node:vm';

/** How long after loading a node makes the code cache: its start and first work have compiled by then. */
const cacheDelayMs = 3000;

/**
 * Loads the CommonJS bundle at `bundleFile` and returns its exports (`main`). Uses and makes the
 * code cache in `<dir of bundleFile>/ckv.node-cache/`.
 */
export function loadNodeBundle(bundleFile) {
  const log = process.env.CKV_CODE_CACHE_LOG === '1' ? (line) => process.stderr.write(`code cache: ${line}\n`) : () => {};
  // The bundle is ASCII (the build makes it so): read as latin1 it becomes a one-byte string
  // without UTF-8 decoding (~30 ms for 4 MiB here).
  const source = readFileSync(bundleFile).toString('latin1');
  const id = readId(`${bundleFile}.id`);
  const cacheDir = join(dirname(bundleFile), 'ckv.node-cache');
  const cacheFile = id === undefined ? undefined : join(cacheDir, `${id}-${process.version}-${process.arch}.v8`);
  let cachedData;
  if (cacheFile !== undefined) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      cachedData = undefined; // none yet (or unreadable): compile, and make one below
    }
  }
  // The build writes the bundle wrapped as module.wrap would (scripts/bundle.mjs says why); a
  // bundle that is not (made otherwise) is wrapped here.
  const wrapped = source.startsWith(module.wrapper[0]) ? source : module.wrap(source);
  const script = new vm.Script(wrapped, { filename: bundleFile, ...(cachedData !== undefined ? { cachedData } : {}) });
  const state = cacheFile === undefined ? 'no id' : cachedData === undefined ? 'none' : script.cachedDataRejected === true ? 'rejected' : 'used';
  log(state);
  if (state === 'none' || state === 'rejected') {
    setTimeout(() => {
      try {
        const startedMs = performance.now();
        mkdirSync(cacheDir, { recursive: true });
        const aside = `${cacheFile}.${process.pid}`;
        const bytes = script.createCachedData();
        writeFileSync(aside, bytes);
        try {
          renameSync(aside, cacheFile);
        } catch (error) {
          rmSync(aside, { force: true });
          throw error;
        }
        log(`written (${(bytes.byteLength / 1024 / 1024).toFixed(1)} MiB in ${Math.round(performance.now() - startedMs)} ms)`);
      } catch (error) {
        log(`not written: ${error instanceof Error ? error.message : String(error)}`);
      }
    }, cacheDelayMs).unref();
  }
  const bundleModule = { exports: {} };
  script.runInThisContext()(bundleModule.exports, createRequire(bundleFile), bundleModule, bundleFile, dirname(bundleFile));
  return bundleModule.exports;
}

/** The bundle's content hash (16 hex digits), or undefined if there is none or it is not one. */
function readId(file) {
  let text;
  try {
    text = readFileSync(file, 'latin1').trim();
  } catch {
    return undefined;
  }
  return /^[0-9a-f]{16}$/.test(text) ? text : undefined;
}
