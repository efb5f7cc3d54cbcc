/**
 * A split healed (issue 12, part 1): concurrent put, delete and put of the same keys on both
 * sides, one node's clock near the drift limit; after the heal every owner holds the same
 * winner, the highest (HLC, node id) among every acknowledged write, and every node reports
 * that very version. 4 nodes, --replicas 3.
 *
 * The skewed node D runs `--test-clock-skew-ms 400` from the start: its clock is 400 ms ahead
 * of the others', under the 500 ms a peer accepts (README "Clocks"), so its writes are taken,
 * stamped ahead of later writes elsewhere: the winner is then not the write made last in real
 * time, which is the point of comparing versions rather than values.
 *
 * The split on one host, by SIGSTOP (the kernel keeps a frozen process's sockets open, so the
 * other side sees it silent, as across a cut): side 1 = {A, D}, side 2 = {B, C}; each key has
 * 3 of its owners among the 4, so at least one on each side, and the writes are
 * `--consistency one`.
 *   1. B, C frozen: side 1 writes put v1 (through D), del (through A, `ckv del --consistency
 *      one`), put v2 (through D) of each key.
 *   2. At once B, C thawed and A, D frozen: side 2 writes put w1 (through B), del (through C),
 *      put w2 (through B) of each key, in reverse order (the first within D's skew of side 1's
 *      last writes may lose to them; how many did is printed). (A retry of side 1 still queued on the wire may reach B
 *      or C first: the order of arrival must not matter, only the versions.)
 *   3. A, D thawed (heal): delivery and anti-entropy bring everything together; pending rows
 *      reach 0 on every node; every owner holds the newest acknowledged version of each key,
 *      and a quorum read through every node returns it.
 *
 * GC ("GC did not advance during the split") is the gc-wire branch's: see the hook below.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { VersionMessage } from '../../src/control/proto.js';
import { parseVersionText } from '../../src/core/entry.js';
import { runCli, waitFor, type NodeProcess } from '../../harness/testing.js';
import { ownersOf, startPartitioned, waitSettled } from '../helpers/partitioned.js';
import { newestVersion, pendingOf, waitSeesDown, waitVersions } from '../helpers/delivery.js';

/** Under the default 500 ms drift limit (--clock-drift-ms-max): close to it, still accepted. */
const skewMs = 400;
const keyCount = 12;

/** `ckv gc --run --json` on a node: its watermark (HLC text or 'none') and the rows it deleted. */
async function gcRun(node: NodeProcess): Promise<{ watermark: string; deleted: number }> {
  const result = await runCli(['gc', '--run', '--json'], { socket: node.socket, timeoutMs: 30_000 });
  assert.equal(result.code, 0, `${node.name}: ckv gc --run: ${result.stderr}`);
  const json = JSON.parse(result.stdout.toString('utf8')) as { watermark: string; run: { deleted: number } };
  return { watermark: json.watermark, deleted: json.run.deleted };
}

/** The wall ms of an HLC text ("wallMs.counter", or a version's "wallMs.counter@node"). */
function wallMsOf(text: string): number {
  return Number(text.split('.')[0]);
}

/**
 * "GC did not advance during the split" (issue 12): while one side is frozen, collection runs
 * on the other side (`ckv gc --run`, several times) leave the watermark below the split's first
 * write (or 'none': the frozen members cannot answer) and keep a tombstone made on that side;
 * after the heal the tombstone is collected on every owner and does not come back.
 */
async function gcHeldDuringSplit(awake: readonly NodeProcess[], probeOwners: readonly NodeProcess[], splitStartWallMs: number): Promise<void> {
  for (let i = 0; i < 4; i++) {
    for (const node of awake) {
      const { watermark } = await gcRun(node);
      assert.ok(watermark === 'none' || wallMsOf(watermark) < splitStartWallMs, `${node.name}: the watermark ${watermark} passed the split's start (${splitStartWallMs}) while members were cut off`);
    }
  }
  for (const owner of probeOwners) {
    const held = await owner.client.hasKey(probeKey);
    assert.ok(held.found && held.deleted, `${owner.name}: the probe's tombstone was collected during the split`);
  }
}

const probeKey = 'split-gc-probe';

/**
 * What each write made, by its version text: the value put, or undefined for a delete. Which
 * write wins a key is its (HLC, node id) order, not the order the test made them in: a node
 * that took the skewed node's stamps (+skewMs) before it wrote can stamp a delete above a put
 * that followed it in time, so a delete can be the newest (correct last-writer-wins).
 */
const madeBy = new Map<string, string | undefined>();

/** A put, or a delete (value undefined), at consistency one; a delete through `cli` is `ckv del KEY --consistency one`. */
async function write(node: NodeProcess, key: string, value: string | undefined, log: VersionMessage[], via: 'grpc' | 'cli' = 'grpc'): Promise<void> {
  let version: VersionMessage;
  if (value !== undefined) {
    version = (await node.client.put(key, Buffer.from(value), {}, 'one')).version;
  } else if (via === 'grpc') {
    version = (await node.client.delete(key, {}, 'one')).version;
  } else {
    const result = await runCli(['del', key, '--consistency', 'one', '--json'], { socket: node.socket });
    assert.equal(result.code, 0, result.stderr);
    version = versionMessageOf((JSON.parse(result.stdout.toString('utf8')) as { version: string }).version);
  }
  log.push(version);
  madeBy.set(version.text, value);
}

/** `ckv del --json`'s version text ("wallMs.counter@node") as a Version message. */
function versionMessageOf(text: string): VersionMessage {
  const version = parseVersionText(text);
  assert.ok(version, `a version: ${text}`);
  return { hlc: String(version.hlc), node: version.node, text };
}

describe('a split with put, delete, put on both sides, one clock near the drift limit (4 nodes, K = 3)', () => {
  it('converges on the highest (HLC, node id) everywhere after the heal', async () => {
    const cluster = await startPartitioned(3);
    try {
      const [d] = await cluster.add(1, ['--test-clock-skew-ms', String(skewMs)]);
      await waitSettled(cluster.nodes, 60_000, 'one layout of 4 nodes');
      const [a, b, c] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
      assert.ok(d);
      const members = cluster.nodes.map((n) => n.nodeId);
      const keys = Array.from({ length: keyCount }, (_, i) => `split-${i}`);
      const written = new Map<string, VersionMessage[]>(keys.map((key) => [key, []]));

      // 1. Side 1 = {A, D} alone.
      b.freeze();
      c.freeze();
      await Promise.all([waitSeesDown(a, b.nodeId), waitSeesDown(a, c.nodeId), waitSeesDown(d, b.nodeId), waitSeesDown(d, c.nodeId)]);
      for (const key of keys) {
        const log = written.get(key)!;
        await write(d, key, `side1-v1-${key}`, log);
        await write(a, key, undefined, log, 'cli');
        await write(d, key, `side1-v2-${key}`, log);
      }
      // 2. Side 2 = {B, C} alone, at once, the keys in reverse order: its first writes may come
      // within D's skew of side 1's last ones, and lose to them.
      b.thaw();
      c.thaw();
      a.freeze();
      d.freeze();
      for (const key of [...keys].reverse()) {
        const log = written.get(key)!;
        await write(b, key, `side2-w1-${key}`, log);
        await write(c, key, undefined, log);
        await write(b, key, `side2-w2-${key}`, log);
      }
      // A tombstone made on this side while the other is cut off: GC must keep it.
      await write(b, probeKey, 'probe', []);
      await write(b, probeKey, undefined, []);
      const splitStartWallMs = Math.min(...[...written.values()].flat().map((v) => wallMsOf(v.text)));
      const probeOwners = ownersOf(probeKey, members).map((id) => cluster.nodes.find((n) => n.nodeId === id)!);
      await gcHeldDuringSplit([b, c], probeOwners.filter((n) => n === b || n === c), splitStartWallMs);

      // 3. Heal.
      a.thaw();
      d.thaw();
      const winner = new Map(keys.map((key) => [key, newestVersion(written.get(key)!)]));
      const fromSide1 = keys.filter((key) => winner.get(key)!.node === d.nodeId).length;
      const deletes = keys.filter((key) => madeBy.get(winner.get(key)!.text) === undefined).length;
      console.log(`# split: ${fromSide1} of ${keyCount} keys won by the skewed node's earlier write (side 1), ${keyCount - fromSide1} by side 2; ${deletes} by a delete`);
      await waitVersions(cluster.nodes, keys, (key) => ownersOf(key, members), (key) => winner.get(key)!.text, 60_000, 'every owner to hold the winner');
      await waitFor(async () => (await Promise.all(cluster.nodes.map(pendingOf))).every((n) => n === 0), { deadlineMs: 60_000, what: 'no delivery pending anywhere' });
      for (const node of cluster.nodes) {
        for (const key of keys) {
          const read = await node.client.get(key, { from: 'quorum' });
          const expected = winner.get(key)!;
          assert.equal(read.version?.text, expected.text, `${key} read through ${node.name}`);
          assert.ok(madeBy.has(expected.text), `${key}: the winner ${expected.text} is one of the test's writes`);
          const value = madeBy.get(expected.text);
          assert.equal(read.found, value !== undefined, `${key} through ${node.name}: the newest write is ${value === undefined ? 'a delete' : 'a put'}`);
          if (value !== undefined) assert.equal(read.value.toString('utf8'), value, `${key} through ${node.name}`);
        }
      }
      // Healed: the probe's tombstone is collected on every owner (GC runs every 10 s; asked
      // now too), and no read brings it back.
      await waitFor(
        async () => {
          for (const node of cluster.nodes) await gcRun(node);
          const held = await Promise.all(probeOwners.map((owner) => owner.client.hasKey(probeKey)));
          return held.every((h) => !h.found);
        },
        { deadlineMs: 90_000, intervalMs: 1_000, what: 'the probe tombstone to be collected on every owner after the heal' },
      );
      for (const node of cluster.nodes) assert.equal((await node.client.get(probeKey, { from: 'quorum' })).found, false, `${node.name}: the collected key came back`);
    } finally {
      await cluster.stop();
    }
  });
});
