/**
 * `ckv demo`: a real 3-node demo cluster, used the way its output tells a user to (the printed
 * `ckv --socket ... put hello world` line on one node, `get` on another, the HTTP URLs), then
 * Ctrl-C (SIGINT): every node process must be gone and every temporary directory removed.
 * Also: a bad --nodes is a usage error, and a node that cannot start ends the demo with its
 * log and leaves nothing behind.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { fetchWithin, runCli, runCliOk, spawnCli, waitFor, withDeadline, type BackgroundCli } from '../../harness/testing.js';

interface DemoNodeInfo {
  index: number;
  peerId: string;
  pid: number;
  socket: string;
  http: string;
  tryLine: string;
}

/** Parses the demo's stdout (see describe() in src/cli/demo.ts). */
function parseDemo(text: string): { root: string; nodes: DemoNodeInfo[] } {
  const root = /data in (\S+)\n/.exec(text)?.[1];
  assert.ok(root, `no data directory in the demo output:\n${text}`);
  const nodes: DemoNodeInfo[] = [];
  const block = /^node (\d+) {2}peer (\S+)\n {2}pid +(\d+)\n {2}socket +(\S+)\n {2}http +(\S+)\n {2}try +(.+)$/gm;
  for (let m = block.exec(text); m; m = block.exec(text)) {
    nodes.push({ index: Number(m[1]), peerId: m[2]!, pid: Number(m[3]), socket: m[4]!, http: m[5]!, tryLine: m[6]! });
  }
  return { root, nodes };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// If a test fails half-way: no node of a demo and no demo directory is left behind.
const leftovers = { pids: [] as number[], dirs: [] as string[] };
after(() => {
  for (const pid of leftovers.pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const dir of leftovers.dirs) rmSync(dir, { recursive: true, force: true });
});

describe('ckv demo', () => {
  it('runs 3 nodes that replicate; Ctrl-C stops them all and removes their directories', { timeout: 60_000 }, async () => {
    const demo: BackgroundCli = spawnCli(['demo', '--nodes', '3']);
    await waitFor(
      () => {
        if (demo.process.exitCode !== null) throw new Error(`demo exited ${demo.process.exitCode}: ${demo.stderrText()}`);
        return /^ready: /m.test(demo.stdoutText());
      },
      { deadlineMs: 40_000, what: `the demo to print "ready" (stderr so far: ${demo.stderrText()})`, intervalMs: 50 },
    );
    const { root, nodes } = parseDemo(demo.stdoutText());
    leftovers.pids.push(...nodes.map((n) => n.pid));
    leftovers.dirs.push(root);
    assert.equal(nodes.length, 3, demo.stdoutText());
    assert.equal(new Set(nodes.map((n) => n.socket)).size, 3);
    assert.equal(new Set(nodes.map((n) => n.http)).size, 3);
    for (const node of nodes) {
      assert.ok(node.socket.startsWith(`${root}/`), `${node.socket} is under ${root}`);
      assert.ok(existsSync(node.socket));
      assert.ok(isAlive(node.pid));
      assert.match(node.http, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.equal(node.tryLine, `ckv --socket ${node.socket} put hello world`);
    }

    // Every page lists the other two as up.
    for (const node of nodes) {
      const snap = (await (await fetchWithin(new URL('/api/status', node.http))).json()) as { self: { peerId: string }; peers: { peerId: string; state: string }[] };
      assert.equal(snap.self.peerId, node.peerId);
      const up = snap.peers.filter((p) => p.state === 'up').map((p) => p.peerId).sort();
      assert.deepEqual(up, nodes.filter((n) => n !== node).map((n) => n.peerId).sort(), `node ${node.index} sees the others`);
    }

    // The printed line, as pasted into a shell (ckv = node bin/ckv.js).
    const words = nodes[0]!.tryLine.split(' ');
    assert.equal(words[0], 'ckv');
    await runCliOk(words.slice(1));
    for (const other of nodes.slice(1)) {
      await waitFor(async () => (await runCli(['--socket', other.socket, 'get', 'hello'])).stdout.toString() === 'world', {
        deadlineMs: 10_000,
        what: `the put on node 1 to reach node ${other.index}`,
      });
    }
    assert.equal(await (await fetchWithin(new URL('/kv/hello', nodes[2]!.http))).text(), 'world');

    demo.process.kill('SIGINT');
    const result = await withDeadline(demo.result, 30_000, 'the demo to exit after SIGINT');
    assert.equal(result.code, 0, `demo exited ${result.code ?? result.signal}: ${result.stderr}`);
    assert.match(result.stderr, /stopped; removed /);
    assert.equal(existsSync(root), false, `${root} is still there`);
    for (const node of nodes) assert.equal(isAlive(node.pid), false, `node ${node.index} (pid ${node.pid}) still runs`);
  });

  it('rejects a bad --nodes as a usage error', async () => {
    for (const n of ['0', '17', 'abc']) {
      const result = await runCli(['demo', '--nodes', n]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /^ckv: --nodes must be a whole number from 1 to 16/);
    }
  });

  it('a node that cannot start ends the demo with its log; nothing is left behind', { timeout: 40_000 }, async () => {
    // Take the port node 1 would listen on (libp2p = base port + 100).
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as AddressInfo).port;
    try {
      const result = await runCli(['demo', '--nodes', '1', '--base-port', String(taken - 100)], { timeoutMs: 35_000 });
      const root = /starting 1 node\(s\) in (\S+)\.\.\./.exec(result.stderr)?.[1];
      if (root) leftovers.dirs.push(root);
      assert.equal(result.code, 5, `${result.stdout.toString()}\n${result.stderr}`);
      assert.match(result.stderr, /ckv: demo failed: node 1 exited before it was ready/);
      assert.match(result.stderr, /last log lines of node 1/);
      assert.ok(root, result.stderr);
      assert.equal(existsSync(root), false, `${root} is still there`);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});
