import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { unbundleFrames, type ProfileFrame } from '../../bench/lib/profile-sources.js';
import { repoRoot } from '../../harness/index.js';

const nodeBundle = join(repoRoot, 'dist', 'src', 'cli', 'ckv.node.cjs');

/** A profile frame at the first place `text` appears in the node's bundle (0-based line and column, as V8 writes them). */
function frameAt(text: string, url: string = nodeBundle): ProfileFrame {
  const lines = readFileSync(nodeBundle, 'latin1').split('\n');
  const line = lines.findIndex((each) => each.includes(text));
  assert.ok(line >= 0, `${text} is in the bundle`);
  return { functionName: 'f', url, lineNumber: line, columnNumber: lines[line]!.indexOf(text) };
}

describe('profile frames of the bundles, mapped back to their modules (bench/lib/profile-sources.ts)', () => {
  it("maps ckv's own code to its compiled module and a package's to its file", () => {
    const ckv = frameAt('async commitReceived(');
    const pkg = frameAt('Connection=class extends TypedEventEmitter', pathToFileURL(nodeBundle).href);
    unbundleFrames([ckv, pkg]);
    assert.equal(ckv.url, pathToFileURL(join(repoRoot, 'dist', 'src', 'core', 'replica.js')).href);
    assert.ok(ckv.lineNumber > 0 && ckv.lineNumber < readFileSync(join(repoRoot, 'src', 'core', 'replica.ts'), 'utf8').split('\n').length);
    assert.match(readFileSync(join(repoRoot, 'src', 'core', 'replica.ts'), 'utf8').split('\n')[ckv.lineNumber]!, /commitReceived/);
    // A package's file as its own source map names it (libp2p ships its TypeScript sources).
    assert.ok(pkg.url.startsWith(pathToFileURL(join(repoRoot, 'node_modules', 'libp2p')).href + '/'), pkg.url);
    assert.match(pkg.url, /\/src\/connection\.(js|ts)$/);
  });

  it('leaves frames outside the bundles as they are', () => {
    const frames: ProfileFrame[] = [
      { functionName: '(garbage collector)', url: '', lineNumber: -1, columnNumber: -1 },
      { functionName: 'emit', url: 'node:events', lineNumber: 469, columnNumber: 10 },
      { functionName: 'g', url: pathToFileURL(join(repoRoot, 'dist', 'src', 'core', 'replica.js')).href, lineNumber: 5, columnNumber: 2 },
    ];
    const before = structuredClone(frames);
    unbundleFrames(frames);
    assert.deepEqual(frames, before);
  });
});
