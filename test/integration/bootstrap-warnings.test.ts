/**
 * A `--bootstrap` address that gives no member is said, counted and shown, with real
 * processes: nothing listens there, the node there has another cluster key (or this one has
 * none), or it is a node of another cluster (it connects, but does not speak our sync
 * protocol). Each time the node logs a warning naming the address and the likely cause, once
 * and not once per redial, counts it (`bootstrap_failed_<reason>`), and shows it in `ckv
 * status` (a `warning` line: address, cause and last error, since when) and in the status
 * object (gRPC `bootstrap`, /api/status). An address that starts working is said too.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { StatusMessage } from '../../src/control/proto.js';
import { fetchWithin, counter, runCliOk, startNode, stopCleanly, tempDir, waitFor, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => stopCleanly(n)));
});

async function peer(name: string, args: string[] = [], options: { bootstrap?: NodeProcess[] } = {}): Promise<NodeProcess> {
  const node = await startPeer(name, { args, ...options });
  nodes.push(node);
  return node;
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function clusterKeyFile(): Promise<string> {
  const path = join(tempDir(), 'key.txt');
  writeFileSync(path, (await runCliOk(['cluster-key'])).stdout);
  return path;
}

function bootstrapOf(status: StatusMessage, address: string): StatusMessage['bootstrap'][number] | undefined {
  return status.bootstrap.find((b) => b.address === address);
}

function warnings(node: NodeProcess, address: string): string[] {
  return node
    .stderrText()
    .split('\n')
    .filter((line) => / warn bootstrap failing /.test(line) && line.includes(`address=${address} `));
}

/** Waits for the node's status to show `address` in `state`; returns that entry. */
async function waitBootstrap(node: NodeProcess, address: string, state: string, deadlineMs = 20_000): Promise<StatusMessage['bootstrap'][number]> {
  let entry: StatusMessage['bootstrap'][number] | undefined;
  await waitFor(
    async () => {
      entry = bootstrapOf(await node.status(), address);
      return entry?.state === state;
    },
    { deadlineMs, what: `${node.name} to show bootstrap ${address} ${state} (now: ${JSON.stringify(entry)})` },
  );
  return entry!;
}

describe('bootstrap addresses that give no member', () => {
  it('nothing listens: one warning (not one per redial), counted, shown in status; then it connects', { timeout: 90_000 }, async () => {
    const port = await closedPort();
    const address = `/ip4/127.0.0.1/tcp/${port}`;
    const b = await peer('b', ['--bootstrap', address]);

    // Three dials at least (backoff 1 s, 2 s, 4 s ...), and still one warning line.
    await waitFor(async () => counter(await b.status(), 'bootstrap_failed_unreachable') >= 3, {
      deadlineMs: 30_000,
      what: 'three failed dials of the closed port',
    });
    const lines = warnings(b, address);
    assert.equal(lines.length, 1, `one warning for several redials:\n${b.stderrText()}`);
    assert.match(lines[0]!, /cause="nothing listens there \(connection refused\)"/);
    assert.match(lines[0]!, /error="[^"]*ECONNREFUSED/);
    assert.doesNotMatch(b.stderrText(), /\[object /);

    const entry = await waitBootstrap(b, address, 'failing');
    assert.match(entry.lastError, /^nothing listens there \(connection refused\): .*ECONNREFUSED/);
    assert.ok(Number(entry.failures) >= 3, entry.failures);
    assert.ok(Number(entry.sinceMs) > 0 && Number(entry.sinceMs) <= Date.now());

    const text = (await runCliOk(['status'], { socket: b.socket })).stdout.toString();
    assert.match(
      text,
      new RegExp(`^warning {5}bootstrap ${address} failing since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, \\d+ failed dials: nothing listens there \\(connection refused\\)`, 'm'),
      text,
    );
    const json = JSON.parse((await runCliOk(['status', '--json'], { socket: b.socket })).stdout.toString()) as { bootstrap: { address: string; state: string; failures: number }[] };
    const shown = json.bootstrap.find((x) => x.address === address);
    assert.equal(shown?.state, 'failing');
    assert.equal(typeof shown.failures, 'number', 'counts are JSON numbers');

    // Something starts listening there: the address works, and the node says so.
    const a = await startNode({ name: 'a', args: ['--listen', address] });
    nodes.push(a);
    await waitBootstrap(b, address, 'connected', 40_000);
    await waitFor(() => /info bootstrap connected /.test(b.stderrText()), { deadlineMs: 10_000, what: 'b to log the address working' });
    assert.doesNotMatch((await runCliOk(['status'], { socket: b.socket })).stdout.toString(), /^warning/m);
  });

  it('another cluster key: the warning names the cluster key as the likely cause', { timeout: 60_000 }, async () => {
    const a = await peer('key-a', ['--cluster-key', await clusterKeyFile()]);
    const b = await peer('key-b', ['--cluster-key', await clusterKeyFile(), '--bootstrap', a.address]);
    await waitFor(() => warnings(b, a.address).length > 0, { deadlineMs: 30_000, what: 'b to warn about a' });
    assert.match(warnings(b, a.address)[0]!, /cause="[^"]*another cluster key/);
    const entry = await waitBootstrap(b, a.address, 'failing');
    assert.match(entry.lastError, /cluster key/);
    const status = await b.status();
    assert.ok(counter(status, 'bootstrap_failed_handshake') + counter(status, 'bootstrap_failed_timeout') >= 1, JSON.stringify(status.counters));
    assert.equal((await b.peers()).length, 0);

    // No key at all, against a node with one.
    const c = await peer('key-c', ['--bootstrap', a.address]);
    await waitFor(() => warnings(c, a.address).length > 0, { deadlineMs: 30_000, what: 'c to warn about a' });
    assert.match(warnings(c, a.address)[0]!, /cause="[^"]*cluster key/);
  });

  it('another cluster name: connected, but the warning says which cluster it is in', { timeout: 60_000 }, async () => {
    const a = await peer('alpha', ['--cluster', 'alpha']);
    const b = await peer('beta', ['--cluster', 'beta', '--bootstrap', a.address, '--http', '127.0.0.1:0']);
    await waitFor(() => warnings(b, a.address).length > 0, { deadlineMs: 30_000, what: 'b to warn about a' });
    assert.match(warnings(b, a.address)[0]!, /cause="connected, but it is in cluster \\"alpha\\", not \\"beta\\" \(started with another --cluster\)"/);
    const entry = await waitBootstrap(b, a.address, 'foreign');
    assert.equal(entry.peerId, a.peerId);
    assert.match(entry.lastError, /in cluster "alpha", not "beta"/);
    assert.ok(counter(await b.status(), 'bootstrap_failed_foreign') >= 1);
    const text = (await runCliOk(['status'], { socket: b.socket })).stdout.toString();
    assert.match(text, new RegExp(`^warning {5}bootstrap ${a.address} foreign since .*: connected, but it is in cluster "alpha"`, 'm'), text);
    const snapshot = (await (await fetchWithin(new URL('/api/status', b.readyStatus!.httpUrl))).json()) as { bootstrap: { address: string; state: string }[] };
    assert.deepEqual(
      snapshot.bootstrap.map((x) => [x.address, x.state]),
      [[a.address, 'foreign']],
    );
  });
});
