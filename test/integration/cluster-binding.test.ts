/**
 * A data directory belongs to its cluster, with real processes: cluster names are validated
 * (1..64 of A-Z a-z 0-9 . _ -: usage error, exit 2), the name of the first start is kept in the
 * directory, a restart with another `--cluster` is refused (one line, exit 2) and leaves the
 * directory as it was, and `--rebind-cluster` moves it, data and all, to the new cluster.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, runCliOk, startNode, tempDir, type CliResult } from '../../harness/testing.js';

function assertOneLineError(result: CliResult, pattern: RegExp): void {
  assert.match(result.stderr, /^ckv: [^\n]+\n$/, `expected one 'ckv: ...' line on stderr, got ${JSON.stringify(result.stderr)}`);
  assert.match(result.stderr, pattern);
}

function nodeStart(flags: string[], dataDir = tempDir()): Promise<CliResult> {
  return runCli(['node', 'start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--http', 'off', '--no-mdns', ...flags], {
    timeoutMs: 20_000,
  });
}

describe('cluster names', () => {
  for (const name of ['', 'a b/c', 'x'.repeat(65), 'slash/inside', 'ünïcode']) {
    it(`--cluster ${JSON.stringify(name)} is a usage error (exit 2), one line`, async () => {
      const result = await nodeStart(['--cluster', name]);
      assert.equal(result.code, 2, result.stderr);
      assertOneLineError(result, /--cluster .*: a cluster name is 1 to 64 characters of A-Z a-z 0-9 \. _ -/);
    });
  }

  it('accepts 1..64 of A-Z a-z 0-9 . _ -', async () => {
    const name = `Az09._-${'y'.repeat(57)}`;
    assert.equal(name.length, 64);
    const node = await startNode({ args: ['--cluster', name] });
    try {
      assert.equal(node.readyStatus!.cluster, name);
    } finally {
      await node.stop();
    }
  });
});

describe('a data directory is bound to its cluster', () => {
  it('refuses another --cluster (exit 2, one line), keeps its data, and moves with --rebind-cluster', { timeout: 90_000 }, async () => {
    const dataDir = tempDir();
    const first = await startNode({ dataDir, args: ['--cluster', 'alpha'] });
    await runCliOk(['put', 'k', 'from alpha'], { socket: first.socket });
    await first.stop();

    for (const other of ['beta', 'default']) {
      const flags = other === 'default' ? [] : ['--cluster', other];
      const refused = await nodeStart(flags, dataDir);
      assert.equal(refused.code, 2, refused.stderr);
      assertOneLineError(refused, new RegExp(`belongs to cluster "alpha", not "${other}".*--rebind-cluster`));
    }

    // Still alpha's, untouched.
    const again = await startNode({ dataDir, args: ['--cluster', 'alpha'] });
    assert.equal(again.readyStatus!.cluster, 'alpha');
    assert.equal((await runCliOk(['get', 'k'], { socket: again.socket })).stdout.toString(), 'from alpha');
    await again.stop();

    // Moved on purpose: data and all, and bound to the new name from then on.
    const moved = await startNode({ dataDir, args: ['--cluster', 'beta', '--rebind-cluster'] });
    assert.equal(moved.readyStatus!.cluster, 'beta');
    assert.equal((await runCliOk(['get', 'k'], { socket: moved.socket })).stdout.toString(), 'from alpha');
    assert.match(moved.stderrText(), /warn cluster rebound from=alpha to=beta/);
    await moved.stop();
    const back = await nodeStart(['--cluster', 'alpha'], dataDir);
    assert.equal(back.code, 2, back.stderr);
    assertOneLineError(back, /belongs to cluster "beta", not "alpha"/);
  });
});
