/**
 * ckv on a real (virtual) LAN: three hosts, each a network namespace with its own IP address
 * on one bridge, each running one `ckv node start` process with mDNS on and no bootstrap.
 *
 * 1. Discovery: the nodes find each other by mDNS alone, and a write replicates to all.
 * 2. Partition: host 3 is cut off (nftables drop both ways), both sides write (including one
 *    key on both sides, later on host 3), the partition heals and all three converge with
 *    last-writer-wins.
 * 3. kill -9: while a load of writes runs against all three hosts, host 2 is SIGKILLed and
 *    restarted on its data dir; every acknowledged write survives everywhere.
 *
 * Needs root, iproute2 and nftables (`npm test` installs the two as root). Not root, one
 * skipped test says why ("cannot run here: not root"); as root or under CI=true, anything
 * missing fails one test that says what.
 * Every wait polls a condition against a deadline. Each node's stderr goes to
 * `<data dir>/node.log`; a failing test prints the tail of every log.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { compareVersions, type Version } from '../../src/core/entry.js';
import type { EntryMessage, VersionMessage } from '../../src/control/proto.js';
import { runCli, waitFor, withDeadline } from '../../harness/testing.js';
import { Lan, lanSuite, lanTempDir, LanNode, runLanNodes, runPrefix, subnetOctet } from './netns.js';

const syncIntervalMs = 200;
const hosts = [1, 2, 3] as const;

function version(message: VersionMessage | null | undefined): Version {
  assert.ok(message, 'a version');
  return { hlc: BigInt(message.hlc), node: message.node };
}

interface Cluster {
  lan: Lan;
  nodes: LanNode[];
  /** Host i's node (1-based). */
  node(host: number): LanNode;
  startedAtMs: number;
}

/**
 * A fresh LAN of three hosts with one node each (default listen address, mDNS on, no
 * bootstrap), given to `body`; the nodes are killed and the namespaces deleted afterwards.
 * On failure the tail of every node's log is printed.
 */
async function withCluster(t: TestContext, tag: string, body: (cluster: Cluster) => Promise<void>): Promise<void> {
  const lan = Lan.create(tag, hosts.length);
  const dir = lanTempDir(tag);
  const nodes = hosts.map((host) => new LanNode(lan, host, join(dir, `h${host}`), ['--sync-interval-ms', String(syncIntervalMs)]));
  const cluster: Cluster = {
    lan,
    nodes,
    node: (host) => nodes[host - 1]!,
    startedAtMs: Date.now(),
  };
  await runLanNodes(t.name, lan, nodes, () => body(cluster));
}

/** Each node lists every other node as up. */
async function meshUp(nodes: LanNode[]): Promise<boolean> {
  for (const n of nodes) {
    const { peers } = await withDeadline(n.client.peers(), 5_000, `peers of ${n.name}`);
    for (const other of nodes) {
      if (other === n) continue;
      if (peers.find((p) => p.peerId === other.peerId)?.state !== 'up') return false;
    }
  }
  return true;
}

async function waitForMesh(nodes: LanNode[], timeoutMs = 20_000): Promise<number> {
  const start = Date.now();
  await waitFor(() => meshUp(nodes), { deadlineMs: timeoutMs, intervalMs: 50, what: 'every node to list the others as up (mDNS discovery)' });
  return Date.now() - start;
}

function entryText(entry: EntryMessage | undefined): string {
  if (!entry) return '(missing)';
  return `${entry.deleted ? '(deleted)' : JSON.stringify(entry.value.toString('utf8'))} @ ${entry.version?.text ?? '-'}`;
}

/**
 * Undefined when all nodes have the same Merkle root and the same entries (key, value,
 * version, deleted); otherwise what differs, for the timeout message.
 */
async function difference(nodes: LanNode[]): Promise<string | undefined> {
  const roots = await Promise.all(nodes.map(async (n) => (await n.status()).merkleRoot));
  const maps = await Promise.all(nodes.map((n) => n.entries()));
  const problems: string[] = [];
  if (new Set(roots).size !== 1) problems.push(`merkle roots differ: ${nodes.map((n, i) => `${n.name}=${roots[i]!.slice(0, 12)}`).join(' ')}`);
  const keys = new Set(maps.flatMap((m) => [...m.keys()]));
  let shown = 0;
  let differing = 0;
  for (const key of [...keys].sort()) {
    const texts = maps.map((m) => entryText(m.get(key)));
    if (new Set(texts).size === 1) continue;
    differing++;
    if (shown++ < 5) problems.push(`key ${key}: ${nodes.map((n, i) => `${n.name}=${texts[i]}`).join(', ')}`);
  }
  if (differing > shown) problems.push(`... ${differing - shown} more differing keys`);
  if (problems.length === 0 && maps.some((m) => m.size !== maps[0]!.size)) problems.push('entry counts differ');
  return problems.length ? `${problems.join('; ')} (${keys.size} keys in all)` : undefined;
}

async function waitForConvergence(nodes: LanNode[], timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  let last: string | undefined = 'not checked yet';
  try {
    await waitFor(
      async () => {
        last = await difference(nodes);
        return last === undefined;
      },
      { deadlineMs: timeoutMs, what, intervalMs: 100 },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last difference: ${last}`);
  }
  return Date.now() - start;
}

async function valueAt(node: LanNode, key: string): Promise<string | undefined> {
  const reply = await withDeadline(node.client.get(key), 5_000, `get ${key} from ${node.name}`);
  return reply.found ? reply.value.toString('utf8') : undefined;
}

async function put(node: LanNode, key: string, value: string): Promise<Version> {
  const reply = await withDeadline(node.client.put(key, Buffer.from(value)), 5_000, `put ${key} on ${node.name}`);
  return version(reply.version);
}

// ---------------------------------------------------------------------------------------------

lanSuite('LAN tests', () => {
  describe(`ckv on a LAN of network namespaces (${runPrefix}, 10.77.${subnetOctet}.0/24)`, () => {
    it('three hosts find each other by mDNS alone and replicate a write', { timeout: 45_000 }, async (t) => {
      await withCluster(t, 'disc', async (c) => {
        const discoveryMs = await waitForMesh(c.nodes);
        t.diagnostic(`mDNS: full mesh ${discoveryMs} ms after the nodes answered status (${Date.now() - c.startedAtMs} ms after spawn)`);

        // The same through the CLI, as a user would check: `ckv peers --json` on each host.
        for (const n of c.nodes) {
          const result = await runCli(['peers', '--json'], { socket: n.socket, timeoutMs: 20_000 });
          assert.equal(result.code, 0, result.stderr);
          const peers = JSON.parse(result.stdout.toString()) as { peerId: string; state: string; addresses: string[] }[];
          for (const other of c.nodes) {
            if (other === n) continue;
            const peer = peers.find((p) => p.peerId === other.peerId);
            assert.equal(peer?.state, 'up', `${n.name} lists ${other.name} as up: ${result.stdout}`);
            assert.ok(
              peer.addresses.some((a) => a.includes(`/ip4/${c.lan.address(other.host)}/`)),
              `${n.name} knows ${other.name}'s LAN address ${c.lan.address(other.host)}: ${peer.addresses.join(' ')}`,
            );
          }
        }

        const start = Date.now();
        const written = await put(c.node(1), 'lan/hello', 'from host 1');
        await waitFor(async () => (await valueAt(c.node(2), 'lan/hello')) === 'from host 1' && (await valueAt(c.node(3), 'lan/hello')) === 'from host 1', {
          deadlineMs: 10_000,
          intervalMs: 50,
          what: 'the put on host 1 to be readable on hosts 2 and 3',
        });
        t.diagnostic(`put on host 1 readable on hosts 2 and 3 after ${Date.now() - start} ms`);
        const cli = await runCli(['get', 'lan/hello', '--json'], { socket: c.node(3).socket, timeoutMs: 20_000 });
        assert.equal(cli.code, 0, cli.stderr);
        const got = JSON.parse(cli.stdout.toString()) as { value: string; version: string };
        assert.equal(got.value, 'from host 1');
        assert.equal(got.version, `${written.hlc >> 16n}.${written.hlc & 0xffffn}@${written.node}`, 'host 3 holds the version host 1 wrote');
      });
    });

    it('a partitioned host writes on, and after healing all converge (last writer wins)', { timeout: 60_000 }, async (t) => {
      await withCluster(t, 'part', async (c) => {
        await waitForMesh(c.nodes);
        const [h1, h2, h3] = [c.node(1), c.node(2), c.node(3)];
        // A key every host holds before the cut, for compare-and-set on both sides of it.
        const casBase = (await h1.client.put('cas', new TextEncoder().encode('base'))).version;
        await waitFor(async () => (await valueAt(h2, 'cas')) === 'base' && (await valueAt(h3, 'cas')) === 'base', {
          deadlineMs: 10_000,
          intervalMs: 50,
          what: 'cas to reach every host before the partition',
        });

        c.lan.partition([3], [1, 2]);
        const partitionedAt = Date.now();
        const va = await put(h1, 'K', 'a');
        // Conditional writes are checked on the node that takes them, not across the cluster:
        // both sides of a partition see version casBase, so both compare-and-sets succeed
        // (README "Conditional writes"); last writer wins when the partition heals.
        const cas12 = version((await h1.client.put('cas', new TextEncoder().encode('side12'), { ifVersion: casBase.text })).version);
        const cas3 = version((await h3.client.put('cas', new TextEncoder().encode('side3'), { ifVersion: casBase.text })).version);
        assert.ok(compareVersions(cas3, cas12) > 0, 'side 3 wrote cas after side 1/2');
        await put(h1, 'side12/from1', 'one');
        await put(h2, 'side12/from2', 'two');
        await put(h3, 'side3/from3', 'three');
        const vb = await put(h3, 'K', 'b');
        assert.ok(compareVersions(vb, va) > 0, `b (${vb.hlc}@${vb.node}) was written after a (${va.hlc}@${va.node}) and must have the greater version`);

        // The majority side still replicates...
        await waitFor(
          async () =>
            (await valueAt(h2, 'K')) === 'a' && (await valueAt(h2, 'side12/from1')) === 'one' && (await valueAt(h1, 'side12/from2')) === 'two',
          { deadlineMs: 10_000, intervalMs: 50, what: 'hosts 1 and 2 to replicate to each other during the partition' },
        );
        // ...while traffic to and from host 3 is dropped (sync attempts every ~200 ms hit the rules).
        await waitFor(() => hosts.every((h) => c.lan.droppedPackets(h) >= 3), {
          deadlineMs: 10_000,
          intervalMs: 50,
          what: 'the partition rules to drop packets on every host',
        });
        assert.equal(await valueAt(h3, 'K'), 'b', 'host 3 keeps its own K during the partition');
        assert.equal(await valueAt(h3, 'side12/from1'), undefined, 'host 3 must not see writes of hosts 1/2 during the partition');
        assert.equal(await valueAt(h3, 'side12/from2'), undefined, 'host 3 must not see writes of hosts 1/2 during the partition');
        assert.equal(await valueAt(h1, 'side3/from3'), undefined, 'host 1 must not see writes of host 3 during the partition');
        assert.equal(await valueAt(h2, 'K'), 'a', 'host 2 must not see host 3 K during the partition');
        const roots = await Promise.all(c.nodes.map(async (n) => (await n.status()).merkleRoot));
        assert.notEqual(roots[0], roots[2], 'host 3 has diverged from host 1');

        // Hold the partition until both sides notice it (the connection monitor's pings fail
        // and the connections are aborted): healing then needs mDNS to reconnect the hosts.
        const notUp = async (n: LanNode, others: LanNode[]): Promise<boolean> => {
          const { peers } = await n.client.peers();
          return others.every((o) => peers.find((p) => p.peerId === o.peerId)?.state !== 'up');
        };
        await waitFor(async () => (await notUp(h3, [h1, h2])) && (await notUp(h1, [h3])) && (await notUp(h2, [h3])), {
          deadlineMs: 40_000,
          what: 'both sides of the partition to see the other side as down',
          intervalMs: 200,
        });
        t.diagnostic(`both sides saw the other as down ${Date.now() - partitionedAt} ms after the partition`);
        assert.ok(await meshUp([h1, h2]), 'hosts 1 and 2 stay connected during the partition');
        t.diagnostic(
          `partitioned for ${Date.now() - partitionedAt} ms; dropped packets: ${hosts.map((h) => `host ${h}=${c.lan.droppedPackets(h)}`).join(' ')}`,
        );

        c.lan.heal();
        const convergedMs = await waitForConvergence(c.nodes, 40_000, 'all three hosts to converge after the partition healed');
        t.diagnostic(`converged ${convergedMs} ms after healing`);

        for (const n of c.nodes) {
          assert.equal(await valueAt(n, 'K'), 'b', `${n.name}: K is b (the later write wins)`);
          const reply = await n.client.get('K');
          assert.equal(compareVersions(version(reply.version), vb), 0, `${n.name}: K has b's version`);
          assert.equal(await valueAt(n, 'side12/from1'), 'one');
          assert.equal(await valueAt(n, 'side12/from2'), 'two');
          assert.equal(await valueAt(n, 'side3/from3'), 'three');
          assert.equal(await valueAt(n, 'cas'), 'side3', `${n.name}: of the two compare-and-sets, the later one wins on heal`);
        }
        // After the heal the losing side's version is gone: a compare-and-set against it fails.
        const lost = await runCli(['put', 'cas', 'again', '--if-version', `${cas12.hlc >> 16n}.${cas12.hlc & 0xffffn}@${cas12.node}`], { socket: h1.socket, timeoutMs: 20_000 });
        assert.equal(lost.code, 7, lost.stderr);
        // And through the CLI: `ckv status --json` reports one Merkle root on all three.
        const cliRoots = await Promise.all(
          c.nodes.map(async (n) => {
            const result = await runCli(['status', '--json'], { socket: n.socket, timeoutMs: 20_000 });
            assert.equal(result.code, 0, result.stderr);
            return (JSON.parse(result.stdout.toString()) as { merkleRoot: string }).merkleRoot;
          }),
        );
        assert.equal(new Set(cliRoots).size, 1, `status --json merkleRoot on every host: ${cliRoots.join(' ')}`);
      });
    });

    it('kill -9 of a host under load loses no acknowledged write', { timeout: 60_000 }, async (t) => {
      await withCluster(t, 'kill', async (c) => {
        await waitForMesh(c.nodes);
        const victim = c.node(2);

        const total = 600;
        const keys = 200;
        const inFlight = 16;
        const killAfterAcks = 200;
        const resumeAt = 400; // writes from here on wait until the victim is back

        interface Ack {
          i: number;
          host: number;
          key: string;
          value: string;
          version: Version;
          /** Acknowledged before the victim was killed (only meaningful for the victim). */
          beforeKill: boolean;
        }
        const acks: Ack[] = [];
        const failures: { i: number; host: number; error: string }[] = [];
        let killed = false;
        let killStarted: Promise<void> | undefined;
        let resolveRestarted!: () => void;
        const restarted = new Promise<void>((done) => (resolveRestarted = done));
        let next = 0;

        const killAndRestart = async (): Promise<void> => {
          const start = Date.now();
          await victim.kill();
          killed = true;
          t.diagnostic(`SIGKILLed host 2 after ${acks.length} acknowledged writes (${acks.filter((a) => a.host === 2).length} by host 2)`);
          // No leave was announced: the others must show it as unreachable, not as left.
          await waitFor(
            async () => {
              for (const n of [c.node(1), c.node(3)]) {
                const { peers } = await n.client.peers();
                const state = peers.find((p) => p.peerId === victim.peerId)?.state;
                assert.notEqual(state, 'left', `${n.name} shows the SIGKILLed host 2 as left`);
                if (state !== 'unreachable') return false;
              }
              return true;
            },
            { deadlineMs: 15_000, intervalMs: 50, what: 'hosts 1 and 3 to show the killed host 2 as unreachable' },
          );
          await victim.start();
          t.diagnostic(`host 2 restarted and answering after ${Date.now() - start} ms`);
          resolveRestarted();
        };

        const worker = async (): Promise<void> => {
          for (let i = next++; i < total; i = next++) {
            if (i >= resumeAt) await restarted;
            const host = 1 + Math.floor(Math.random() * 3);
            const key = `k${Math.floor(Math.random() * keys)}`;
            const value = `w${i}@h${host}`;
            const node = c.node(host);
            try {
              const reply = await (async () => node.client.put(key, Buffer.from(value)))();
              acks.push({ i, host, key, value, version: version(reply.version), beforeKill: !killed && killStarted === undefined });
            } catch (error) {
              failures.push({ i, host, error: (error as Error).message.split('\n')[0]! });
            }
            if (acks.length >= killAfterAcks && killStarted === undefined) killStarted = killAndRestart();
          }
        };
        const loadStart = Date.now();
        await withDeadline(Promise.all(Array.from({ length: inFlight }, worker)), 40_000, 'the write load to finish');
        assert.ok(killStarted, 'host 2 was killed during the load');
        await killStarted;
        t.diagnostic(
          `load: ${acks.length} of ${total} writes acknowledged in ${Date.now() - loadStart} ms; ${failures.length} failed (host 2 down): ${[...new Set(failures.map((f) => f.error))].slice(0, 3).join(' | ')}`,
        );

        assert.deepEqual(
          failures.filter((f) => f.host !== 2),
          [],
          'only writes to the killed host may fail',
        );
        const victimBefore = acks.filter((a) => a.host === 2 && a.beforeKill).length;
        const victimAfter = acks.filter((a) => a.host === 2 && a.i >= resumeAt).length;
        assert.ok(victimBefore > 0, 'host 2 acknowledged writes before it was killed');
        assert.ok(victimAfter > 0, 'host 2 acknowledged writes after its restart');

        // The restarted node rejoins by mDNS, then anti-entropy repairs both directions.
        await waitForMesh(c.nodes, 30_000);
        const convergedMs = await waitForConvergence(c.nodes, 40_000, 'all three hosts to converge after the restart');
        t.diagnostic(`converged ${convergedMs} ms after the load ended`);

        const maps = await Promise.all(c.nodes.map((n) => n.entries()));
        const lost: string[] = [];
        for (const ack of acks) {
          for (const [index, map] of maps.entries()) {
            const entry = map.get(ack.key);
            const held = entry?.version ? version(entry.version) : undefined;
            const order = held ? compareVersions(held, ack.version) : -1;
            const ok = order > 0 || (order === 0 && !entry!.deleted && entry!.value.toString('utf8') === ack.value);
            if (!ok) {
              lost.push(`write #${ack.i} ${ack.key}=${ack.value} (acked by host ${ack.host}${ack.beforeKill ? ', before the kill' : ''}) is ${entryText(entry)} on host ${index + 1}`);
            }
          }
        }
        assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged writes lost or rolled back`);
        const roots = await Promise.all(c.nodes.map(async (n) => (await n.status()).merkleRoot));
        assert.equal(new Set(roots).size, 1, `one Merkle root: ${roots.join(' ')}`);
      });
    });
  });
});
