/**
 * `ckv node start` loads the CommonJS bundle with a V8 code cache (bin/node-bundle.js), with
 * real processes and the built files: a node makes the cache a few seconds after it starts,
 * the next start uses it, a damaged cache is rejected (and made again) without costing the
 * start, and with --enable-source-maps the node does not load that bundle at all. Each node
 * runs with CKV_CODE_CACHE_LOG=1, which makes the loader say on stderr what it did.
 *
 * The cache directory is the build's (dist/src/cli/ckv.node-cache), shared with every other
 * node the tests start: integration tests run one file at a time, so nothing else writes it
 * meanwhile, and the test leaves a valid cache behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { repoRoot, startNode, tempDir, waitFor } from '../../harness/testing.js';

const cliDir = join(repoRoot, 'dist', 'src', 'cli');
const cacheLog = { CKV_CODE_CACHE_LOG: '1' };

function cacheFile(): string {
  const id = readFileSync(join(cliDir, 'ckv.node.cjs.id'), 'latin1').trim();
  assert.match(id, /^[0-9a-f]{16}$/, 'the build wrote the bundle id');
  return join(cliDir, 'ckv.node-cache', `${id}-${process.version}-${process.arch}.v8`);
}

/** The loader's lines on a node's stderr. */
function cacheLines(text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('code cache: '));
}

describe('node start code cache', () => {
  it('loads a bundle the build wrote already wrapped as a CommonJS module (no 2.6 MiB string joined at every start)', () => {
    const source = readFileSync(join(cliDir, 'ckv.node.cjs'), 'latin1');
    const [head, tail] = (module as unknown as { wrapper: [string, string] }).wrapper; // Node's, undeclared in @types/node
    assert.ok(source.startsWith(head), 'the bundle begins with the module wrapper');
    assert.ok(source.replace(/\/\/# sourceMappingURL=\S+\s*$/, '').trimEnd().endsWith(tail), 'and ends with its close, before the source map comment');
  });

  it('is made by a running node, used by the next start, and a damaged one is rejected and made again', async () => {
    const file = cacheFile();
    rmSync(file, { force: true });
    const dataDir = tempDir('ckv-code-cache-');

    let node = await startNode({ name: 'cache', dataDir, env: cacheLog });
    assert.deepEqual(cacheLines(node.stderrText()), ['code cache: none']);
    await waitFor(() => existsSync(file), { deadlineMs: 30_000, what: 'the node wrote its code cache' });
    await waitFor(() => cacheLines(node.stderrText()).some((line) => line.startsWith('code cache: written')), { deadlineMs: 10_000, what: 'the node said so' });
    await node.stop();

    node = await node.respawn();
    assert.deepEqual(cacheLines(node.stderrText()), ['code cache: used']);
    await node.client.put('k', Buffer.from('v'));
    assert.equal((await node.client.get('k')).value.toString(), 'v');
    await node.stop();

    // Garbage where the cache was: V8 refuses it, the node starts and serves, and writes a good one.
    writeFileSync(file, Buffer.alloc(4096, 0x5a));
    node = await node.respawn();
    assert.deepEqual(cacheLines(node.stderrText()), ['code cache: rejected']);
    assert.equal((await node.client.get('k')).value.toString(), 'v');
    await waitFor(() => cacheLines(node.stderrText()).some((line) => line.startsWith('code cache: written')), { deadlineMs: 30_000, what: 'the node made the cache again' });
    await node.stop();
    assert.notDeepEqual(readFileSync(file).subarray(0, 4096), Buffer.alloc(4096, 0x5a));

    node = await node.respawn();
    assert.deepEqual(cacheLines(node.stderrText()), ['code cache: used']);
    await node.stop();
  });

  it('is not used with --enable-source-maps: the node loads the ESM bundle, whose stacks Node maps', async () => {
    const node = await startNode({ name: 'maps', dataDir: tempDir('ckv-code-cache-maps-'), env: { ...cacheLog, NODE_OPTIONS: '--enable-source-maps' } });
    try {
      assert.deepEqual(cacheLines(node.stderrText()), []);
      await node.client.put('k', Buffer.from('v'));
    } finally {
      await node.stop();
    }
  });
});
