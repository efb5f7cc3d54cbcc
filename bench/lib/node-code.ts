/**
 * Which code the nodes a bench starts will run, and a refusal to measure the wrong one.
 *
 * bin/ckv.js starts a node from the node bundle (dist/src/cli/ckv.node.cjs, loaded with its V8
 * code cache: bin/node-bundle.js) only while the bundle is at least as new as tsc's
 * dist/src/cli/main.js; after a bare `tsc` (or an editor's build) it falls back, silently and
 * correctly, to loading the ~1,000 modules one by one. A node then starts ~4x slower (start to
 * serving 120 -> 400-530 ms in two full runs of 2026-12-07 that measured it by mistake) and
 * runs differently laid-out code, so every figure of such a run belongs to another build.
 * `npm run bench` builds both first; a bench started by hand (`node dist/bench/run.js`,
 * kill-catch-up.js, ...) after a bare `tsc` would not. So `startCluster`, run.js (before its
 * first scenario) and control-api.js refuse a stale or missing bundle (`assertNodeBundleFresh`).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../harness/index.js';

/** 'bundle': nodes load the bundle; 'stale': tsc rebuilt the modules after it; 'none': no bundle built. */
export type NodeCodeState = 'bundle' | 'stale' | 'none';

/** The same rule as bin/ckv.js's `isFresh`, for the build under `root` (default: this checkout). */
export function nodeCodeState(root: string = repoRoot): NodeCodeState {
  const mtimeMs = (path: string): number | undefined => statSync(join(root, path), { throwIfNoEntry: false })?.mtimeMs;
  const bundleMs = mtimeMs('dist/src/cli/ckv.node.cjs');
  if (bundleMs === undefined) return 'none';
  const modulesMs = mtimeMs('dist/src/cli/main.js');
  return modulesMs === undefined || bundleMs >= modulesMs ? 'bundle' : 'stale';
}

/** Throws (one line saying what to run) unless nodes started now would load a current bundle. */
export function assertNodeBundleFresh(root: string = repoRoot): void {
  const state = nodeCodeState(root);
  if (state === 'bundle') return;
  const why = state === 'stale' ? 'dist/src/cli/ckv.node.cjs is older than dist/src/cli/main.js (tsc ran without the bundler)' : 'there is no dist/src/cli/ckv.node.cjs';
  throw new Error(`${why}, so nodes would load the modules one by one instead of the node bundle and measure another build; run \`npm run build\` first`);
}
