/**
 * The bench refuses to start nodes from a stale node bundle (bench/lib/node-code.ts): the same
 * rule as bin/ckv.js's choice between the bundle and the modules, on a build laid out in a
 * temporary directory with chosen modification times.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../harness/testing.js';
import { assertNodeBundleFresh, nodeCodeState } from '../../bench/lib/node-code.js';

function build(files: Record<string, number>): string {
  const root = tempDir('ckv-node-code-');
  mkdirSync(join(root, 'dist', 'src', 'cli'), { recursive: true });
  for (const [name, mtimeS] of Object.entries(files)) {
    const path = join(root, 'dist', 'src', 'cli', name);
    writeFileSync(path, '');
    utimesSync(path, mtimeS, mtimeS);
  }
  return root;
}

describe('bench: which code the nodes run', () => {
  it('a bundle at least as new as the modules is used', () => {
    assert.equal(nodeCodeState(build({ 'main.js': 1000, 'ckv.node.cjs': 1000 })), 'bundle');
    assert.equal(nodeCodeState(build({ 'main.js': 1000, 'ckv.node.cjs': 1001 })), 'bundle');
    assert.equal(nodeCodeState(build({ 'ckv.node.cjs': 1000 })), 'bundle');
    assert.doesNotThrow(() => assertNodeBundleFresh(build({ 'main.js': 1000, 'ckv.node.cjs': 1001 })));
  });

  it('modules rebuilt after the bundle (a bare tsc) are refused, saying what to run', () => {
    const root = build({ 'main.js': 1001, 'ckv.node.cjs': 1000 });
    assert.equal(nodeCodeState(root), 'stale');
    assert.throws(() => assertNodeBundleFresh(root), /older than dist\/src\/cli\/main\.js.*run `npm run build` first$/);
  });

  it('no bundle at all is refused', () => {
    const root = build({ 'main.js': 1000 });
    assert.equal(nodeCodeState(root), 'none');
    assert.throws(() => assertNodeBundleFresh(root), /there is no dist\/src\/cli\/ckv\.node\.cjs/);
  });
});
