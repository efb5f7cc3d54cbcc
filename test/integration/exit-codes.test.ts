/**
 * Exit codes from the error table (src/errors.ts) as a user meets them, with real processes:
 * `haskey` of a deleted key, `node start` with a flag that cannot be used, an unreadable
 * cluster key, and `peers forget` of a connected peer. Each error is one `ckv: ...` line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, runCliOk, startNode, stopCleanly, tempDir, waitFor, type CliResult, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

function assertOneLineError(result: CliResult, pattern: RegExp): void {
  assert.match(result.stderr, /^ckv: [^\n]+\n$/, `expected one 'ckv: ...' line on stderr, got ${JSON.stringify(result.stderr)}`);
  assert.match(result.stderr, pattern);
}

/** `ckv node start` on a fresh directory with `flags`, off the network unless they say otherwise. */
function nodeStart(flags: string[], dataDir = tempDir()): Promise<CliResult> {
  const defaults = [
    ...(flags.includes('--listen') ? [] : ['--listen', '/ip4/127.0.0.1/tcp/0']),
    ...(flags.includes('--http') ? [] : ['--http', 'off']),
    '--no-mdns',
  ];
  return runCli(['node', 'start', '--data-dir', dataDir, ...flags, ...defaults], { timeoutMs: 20_000 });
}

describe('exit codes of the CLI', () => {
  let node: NodeProcess;

  before(async () => {
    node = await startNode();
  });

  after(async () => {
    if (node) await node.stop();
  });

  it('haskey of a deleted key exits 1 (not found), naming the tombstone, nothing on stdout', async () => {
    await runCliOk(['put', 'soon/gone', 'v'], { socket: node.socket });
    assert.equal((await runCli(['haskey', 'soon/gone'], { socket: node.socket })).code, 0);
    await runCliOk(['del', 'soon/gone'], { socket: node.socket });
    const has = await runCli(['haskey', 'soon/gone'], { socket: node.socket });
    assert.equal(has.code, 1, has.stderr);
    assert.equal(has.stdout.length, 0);
    assertOneLineError(has, /deleted: soon\/gone \(tombstone \d+\.\d+@[0-9a-f]{16}\)/);
  });

  for (const [flag, value, pattern] of [
    ['--http', 'not-a-port', /--http not-a-port/],
    ['--http', '127.0.0.1:70000', /--http 127\.0\.0\.1:70000/],
    ['--listen', 'garbage', /--listen garbage: not a multiaddr/],
    ['--listen', '/ip4/127.0.0.1/udp/4001', /--listen .*TCP only/],
    ['--bootstrap', '/ip4/999.1.1.1/tcp/4001', /--bootstrap \/ip4\/999\.1\.1\.1\/tcp\/4001: not a multiaddr/],
    ['--bootstrap', '/ip4/127.0.0.1/tcp/4001/p2p/not-a-peer', /not a peer id/],
    ['--gc-batch', '0', /--gc-batch/],
    ['--gc-interval-ms', 'soon', /--gc-interval-ms/],
    ['--warm-up-entries', '-1', /--warm-up-entries/],
    ['--warm-up-entries', '100001', /--warm-up-entries/],
  ] as const) {
    it(`node start ${flag} ${value} exits 2 (usage) with one line`, async () => {
      const started = Date.now();
      const result = await nodeStart([flag, value]);
      assert.equal(result.code, 2, result.stderr);
      assertOneLineError(result, pattern);
      assert.ok(Date.now() - started < 15_000);
    });
  }

  it('node start with an unreadable --cluster-key exits 2 with one line, and leaves the data directory usable', async () => {
    const dataDir = tempDir();
    const missing = join(tempDir(), 'no-such-key.txt');
    const result = await nodeStart(['--cluster-key', missing], dataDir);
    assert.equal(result.code, 2, result.stderr);
    assertOneLineError(result, /cannot read cluster key .*no-such-key\.txt/);

    // The failed start released the store lock: a node with a readable key starts on the same directory.
    const key = join(tempDir(), 'key.txt');
    writeFileSync(key, (await runCliOk(['cluster-key'])).stdout);
    const again = await startNode({ dataDir, args: ['--cluster-key', key] });
    await again.stop();
  });
});

describe('ckv peers forget of a connected peer', () => {
  let a: NodeProcess;
  let b: NodeProcess;

  before(async () => {
    a = await startPeer('a');
    b = await startPeer('b', { bootstrap: [a] });
    await waitFor(async () => (await b.client.peers()).peers.some((p) => p.peerId === a.peerId && p.state === 'up'), {
      deadlineMs: 20_000,
      what: 'B to see A up',
    });
  });

  after(async () => {
    await Promise.all([a && stopCleanly(a), b && stopCleanly(b)]);
  });

  it(
    'exits 4 (refused) with one line and keeps the peer',
    async () => {
      const result = await runCli(['peers', 'forget', a.peerId], { socket: b.socket });
      assert.equal(result.code, 4, result.stderr);
      assertOneLineError(result, /connected/);
      assert.match((await runCliOk(['peers'], { socket: b.socket })).stdout.toString(), new RegExp(a.peerId));
    },
  );
});
