/**
 * Partitioned mode (`--replicas 3`) on a LAN of network namespaces (test/lan/netns.ts): five
 * hosts, each one `ckv node start` with mDNS on and no bootstrap address.
 *
 * The hosts find each other by mDNS and settle on one layout of all five. Then hosts 4 and 5
 * are cut off (nftables drops both ways). Both sides write through the CLI: the majority side
 * at the default consistency (quorum), the minority with `--consistency one`; a write is
 * counted only if `ckv put` exited 0 (keys whose owners are out of reach fail, and that is
 * fine). The partition heals, and then every acknowledged key must be on exactly its three
 * owners (the core's rendezvous placement over the five node ids), with the same version on
 * each and the value that was acknowledged. One key is written on both sides: its owners agree
 * on one version.
 *
 * Needs root, iproute2 and nftables (see lan.test.ts for what happens without them). Every wait
 * polls a condition against a deadline; a failure prints every node's log tail.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { EntryMessage } from '../../src/control/proto.js';
import { runCli, waitFor, withDeadline } from '../../harness/testing.js';
import { ownersOf, partitionedArgs, statusJson } from '../helpers/partitioned.js';
import { Lan, lanSuite, lanTempDir, LanNode, runLanNodes, runPrefix, subnetOctet } from './netns.js';

const hostCount = 5;
const majority = [1, 2, 3];
const minority = [4, 5];
const writesPerSide = 20;

/** Each node lists every other node of `nodes` in state `state` (or, with 'not up', anything else). */
async function peersIn(observers: LanNode[], others: LanNode[], up: boolean): Promise<boolean> {
  for (const n of observers) {
    const { peers } = await withDeadline(n.client.peers(), 5_000, `peers of ${n.name}`);
    for (const other of others) {
      if (other === n) continue;
      if ((peers.find((p) => p.peerId === other.peerId)?.state === 'up') !== up) return false;
    }
  }
  return true;
}

/** Every node partitioned and a member (owns partitions) of one layout, the only active one, nothing pending or under-replicated. */
async function settled(nodes: LanNode[]): Promise<boolean> {
  const statuses = await Promise.all(nodes.map((n) => statusJson(n)));
  const p = statuses.map((s) => s.partitioned);
  if (p.some((x) => x === undefined)) return false;
  return p.every(
    (x) =>
      x!.layoutVersion >= 1 &&
      x!.layoutVersion === p[0]!.layoutVersion &&
      x!.partitionsOwned > 0 &&
      (x!.activeVersions?.length ?? 1) === 1 &&
      x!.rebalance.pending === 0 &&
      x!.partitionsUnderReplicated === 0,
  );
}

/** `ckv put KEY VALUE [...extra]` on `node`: true if acknowledged (exit 0). */
async function cliPut(node: LanNode, key: string, value: string, extra: string[] = []): Promise<boolean> {
  const result = await runCli(['put', key, value, ...extra], { socket: node.socket, timeoutMs: 30_000 });
  return result.code === 0;
}

/** Undefined when every key of `acked` is on exactly its owners with one version and the acked value. */
async function ownersDisagree(nodes: LanNode[], acked: Map<string, string | undefined>): Promise<string | undefined> {
  const maps = await Promise.all(nodes.map((n) => n.entries()));
  const members = nodes.map((n) => n.nodeId);
  const problems: string[] = [];
  for (const [key, value] of acked) {
    const owners = ownersOf(key, members);
    const versions = new Set<string>();
    for (const [i, node] of nodes.entries()) {
      const entry: EntryMessage | undefined = maps[i]!.get(key);
      const owns = owners.includes(node.nodeId);
      if (owns && entry === undefined) problems.push(`${key} missing on owner ${node.name}`);
      else if (!owns && entry !== undefined) problems.push(`${key} on non-owner ${node.name}`);
      else if (entry !== undefined) {
        versions.add(entry.version?.text ?? '-');
        if (value !== undefined && entry.value.toString('utf8') !== value) problems.push(`${key} on ${node.name} = ${entry.value.toString('utf8')}, acked ${value}`);
      }
    }
    if (versions.size > 1) problems.push(`${key}: owners hold different versions ${[...versions].join(' ')}`);
  }
  return problems.length === 0 ? undefined : `${problems.length} problems: ${problems.slice(0, 5).join('; ')}`;
}

async function withLan(t: TestContext, body: (lan: Lan, nodes: LanNode[]) => Promise<void>): Promise<void> {
  const lan = Lan.create('pm', hostCount);
  const dir = lanTempDir('pm');
  const nodes = Array.from({ length: hostCount }, (_, i) => new LanNode(lan, i + 1, join(dir, `h${i + 1}`), partitionedArgs()));
  await runLanNodes(t.name, lan, nodes, () => body(lan, nodes), 30_000);
}

lanSuite('partitioned LAN tests', () => {
  describe(`partitioned mode on a LAN of network namespaces (${runPrefix}, 10.77.${subnetOctet}.0/24)`, () => {
    it('5 hosts by mDNS with K = 3; a minority cut off, writes on both sides, heal: every key\'s owners agree', { timeout: 170_000 }, async (t) => {
      await withLan(t, async (lan, nodes) => {
        const side = (hosts: number[]): LanNode[] => hosts.map((h) => nodes[h - 1]!);
        await waitFor(() => peersIn(nodes, nodes, true), { deadlineMs: 30_000, intervalMs: 100, what: 'the 5 hosts to find each other by mDNS' });
        await waitFor(() => settled(nodes), { deadlineMs: 60_000, intervalMs: 300, what: 'the 5 hosts to settle on one layout' });

        const acked = new Map<string, string | undefined>();
        // One key both sides will write, on every owner before the cut.
        assert.ok(await cliPut(nodes[0]!, 'both', 'before'), 'put before the cut');

        lan.partition(minority, majority);
        await waitFor(async () => (await peersIn(side(majority), side(minority), false)) && (await peersIn(side(minority), side(majority), false)), {
          deadlineMs: 60_000,
          intervalMs: 200,
          what: 'each side to see the other as not up',
        });

        // Puts whose owners are out of reach wait for the write timeout: 4 at a time.
        const writeSide = async (hosts: number[], tag: string, extra: string[]): Promise<number> => {
          let count = 0;
          for (let first = 0; first < writesPerSide; first += 4) {
            await Promise.all(
              Array.from({ length: Math.min(4, writesPerSide - first) }, async (_, j) => {
                const i = first + j;
                if (await cliPut(side(hosts)[i % hosts.length]!, `${tag}/${i}`, `${tag}${i}`, extra)) {
                  acked.set(`${tag}/${i}`, `${tag}${i}`);
                  count++;
                }
              }),
            );
          }
          return count;
        };
        const majorityAcked = await writeSide(majority, 'maj', []);
        const minorityAcked = await writeSide(minority, 'min', ['--consistency', 'one']);
        const bothMinority = await cliPut(side(minority)[0]!, 'both', 'minority', ['--consistency', 'one']);
        const bothMajority = await cliPut(side(majority)[0]!, 'both', 'majority');
        if (bothMinority || bothMajority) acked.set('both', undefined); // whichever wins: the owners must agree
        t.diagnostic(`during the partition: ${majorityAcked}/${writesPerSide} majority writes and ${minorityAcked}/${writesPerSide} minority writes acknowledged`);
        assert.ok(majorityAcked > 0, 'the majority side acknowledged writes at quorum');
        assert.ok(minorityAcked > 0, 'the minority side acknowledged writes with --consistency one');

        lan.heal();
        await waitFor(() => peersIn(nodes, nodes, true), { deadlineMs: 60_000, intervalMs: 200, what: 'the 5 hosts to see each other again after the heal' });
        let last: string | undefined = 'not checked';
        try {
          await waitFor(
            async () => {
              last = await ownersDisagree(nodes, acked);
              return last === undefined;
            },
            { deadlineMs: 60_000, intervalMs: 300, what: 'every acknowledged key on exactly its 3 owners with one version' },
          );
        } catch (error) {
          throw new Error(`${(error as Error).message}; last: ${last}`);
        }
      });
    });
  });
});
