/**
 * A node that cannot bind what it was told to, with real processes and real busy ports:
 * - `--listen` on a busy port: one line `ckv: cannot listen on <addr>: address in use`, exit 5
 *   (not libp2p's several lines of advice about an option users cannot set, nor a stack);
 * - `--http HOST:PORT` on a busy port: one line, exit 5; the explicit address is never moved
 *   (the default address still moves to a free port: test/integration/http.test.ts);
 * - `ckv demo --base-port` on busy ports: one `ckv: demo failed: ...` line naming the cause, exit 5.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { runCli, startNode, tempDir, type CliResult } from '../../harness/testing.js';

/** A TCP server on 127.0.0.1 holding `port` (0 = any free one). */
async function hold(port = 0): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

const held: Server[] = [];
after(async () => {
  await Promise.all(held.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

async function busyPort(): Promise<number> {
  const { server, port } = await hold();
  held.push(server);
  return port;
}

function assertOneLineError(result: CliResult, pattern: RegExp): void {
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  const errors = lines.filter((line) => line.startsWith('ckv: '));
  assert.equal(errors.length, 1, `one 'ckv: ...' line, got ${JSON.stringify(result.stderr)}`);
  assert.match(errors[0]!, pattern);
  assert.doesNotMatch(result.stderr, /faultTolerance|NO_FATAL|^\s+at /m, 'no libp2p advice, no stack trace');
}

function nodeStart(flags: string[], dataDir = tempDir()): Promise<CliResult> {
  const defaults = [...(flags.includes('--http') ? [] : ['--http', 'off']), '--no-mdns'];
  return runCli(['node', 'start', '--data-dir', dataDir, ...flags, ...defaults], { timeoutMs: 20_000 });
}

describe('node start on busy addresses', () => {
  it('--listen on a busy port exits 5 with one line naming the address; the directory stays usable', async () => {
    const port = await busyPort();
    const dataDir = tempDir();
    const result = await nodeStart(['--listen', `/ip4/127.0.0.1/tcp/${port}`], dataDir);
    assert.equal(result.code, 5, result.stderr);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, `only one line: ${result.stderr}`);
    assertOneLineError(result, new RegExp(`^ckv: cannot listen on /ip4/127\\.0\\.0\\.1/tcp/${port}: address in use$`));
    // The failed start released the store lock.
    const again = await startNode({ dataDir });
    await again.stop();
  });

  it('--http HOST:PORT on a busy port exits 5 with one line; it does not move to another port', async () => {
    const port = await busyPort();
    const result = await nodeStart(['--listen', '/ip4/127.0.0.1/tcp/0', '--http', `127.0.0.1:${port}`]);
    assert.equal(result.code, 5, result.stderr);
    assertOneLineError(result, new RegExp(`^ckv: cannot serve HTTP on 127\\.0\\.0\\.1:${port}: address in use`));
    assert.doesNotMatch(result.stderr, /http listening/, 'it never served HTTP elsewhere');
  });
});

describe('ckv demo --base-port on busy ports', () => {
  let basePort: number;
  let blockers: Server[] = [];

  before(async () => {
    // Hold the libp2p port node 1 would take (base + 100); keep the HTTP port free.
    for (let attempt = 0; attempt < 20 && blockers.length === 0; attempt++) {
      const { server, port } = await hold();
      if (port - 100 < 1024) {
        server.close();
        continue;
      }
      blockers = [server];
      basePort = port - 100;
    }
    assert.ok(blockers.length > 0, 'found a port to block');
  });

  after(async () => {
    await Promise.all(blockers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  it('ends with one ckv: line naming the busy address, exit 5', { timeout: 40_000 }, async () => {
    const result = await runCli(['demo', '--nodes', '1', '--base-port', String(basePort)], { timeoutMs: 35_000 });
    assert.equal(result.code, 5, result.stderr);
    assertOneLineError(result, new RegExp(`^ckv: demo failed: node 1 .*cannot listen on /ip4/127\\.0\\.0\\.1/tcp/${basePort + 100}: address in use$`));
    assert.match(result.stderr.trimEnd().split('\n').at(-1)!, /^ckv: demo failed: /, 'the error is the last line');
  });
});
