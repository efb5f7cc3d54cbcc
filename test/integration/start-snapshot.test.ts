/**
 * The start snapshot with real processes and a real LevelDB: a clean stop (SIGTERM) saves the
 * replica's tree and key filter and the next start uses it; a running node saves the same
 * snapshot once quiet (a checkpoint), and a kill -9 after it starts from it, as does a kill -9
 * right after that start (no write since); a kill -9 right after writes starts from the
 * snapshot and replays the entries written after it (replica-replay.ts); a corrupt snapshot is
 * refused (logged, counted) and the node scans. Each time the restarted node's Merkle root and count must equal what it
 * reported before it went down, and at the end a replica built by a full scan of the data
 * directory (in this process, snapshot ignored) must agree too.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { toHex } from '../../src/core/bytes.js';
import { Replica } from '../../src/core/replica.js';
import type { StatusMessage } from '../../src/control/proto.js';
import { LevelStore } from '../../src/store/level-store.js';
import { counter, startNode, tempDir, waitFor, type NodeProcess } from '../../harness/testing.js';

function state(status: StatusMessage): { root: string; keys: string; tombstones: string } {
  return { root: status.merkleRoot, keys: status.keyCount, tombstones: status.tombstoneCount };
}

async function write(node: NodeProcess, from: number, count: number): Promise<void> {
  const puts = Array.from({ length: count }, (_, i) => ({ key: `key/${from + i}`, value: Buffer.from(`value ${from + i}`) }));
  const reply = await node.client.putMany(puts);
  assert.ok(reply.results.every((r) => r.error === ''), 'every put stored');
  for (let i = from; i < from + count; i += 97) await node.client.delete(`key/${i}`);
}

/** How the node built its tree at start, from its counters. */
function treeSource(status: StatusMessage): string {
  const sources = ['start_tree_snapshot', 'start_tree_replay', 'start_tree_scan_no_snapshot', 'start_tree_scan_stale', 'start_tree_scan_behind', 'start_tree_scan_rejected'].filter((name) => counter(status, name) > 0);
  assert.equal(sources.length, 1, `exactly one start_tree_* counter is set: ${sources.join(', ')}`);
  return sources[0]!;
}

describe('start snapshot across clean stops, kill -9 and corruption', () => {
  const dataDir = tempDir('ckv-start-snap-');
  let node: NodeProcess | undefined;

  after(async () => {
    await node?.kill();
  });

  it('restores the same root after a clean stop, replays after kill -9, scans after a corrupt snapshot, and always agrees with a full scan', async () => {
    // Tombstone GC only when asked: a collection run between two reads would change the counts compared.
    node = await startNode({ name: 'snap', dataDir, args: ['--gc-interval-ms', '0'] });
    assert.equal(treeSource(await node.status()), 'start_tree_scan_no_snapshot');
    await write(node, 0, 3000);
    const first = state(await node.status());
    assert.equal(first.keys, String(3000 - Math.ceil(3000 / 97)));
    assert.equal(first.tombstones, String(Math.ceil(3000 / 97)));

    // Clean stop: the next start comes from the snapshot, with the same tree.
    await node.stop();
    node = await node.respawn();
    let status = await node.status();
    assert.equal(treeSource(status), 'start_tree_snapshot');
    assert.deepEqual(state(status), first);
    assert.match(node.stderrText(), /replica opened tree=snapshot keys=3000/);
    assert.equal((await node.client.get('key/1500')).value.toString(), 'value 1500');

    // Writes after a start from the snapshot, quiet until the node saves a checkpoint, then
    // kill -9: the next start comes from the checkpoint, with the same tree.
    await write(node, 2500, 1000); // overwrites 500 keys, adds 500
    await node.client.put('key/0', Buffer.from('again')); // a deleted key comes back
    const checkpointed = state(await node.status());
    assert.notEqual(checkpointed.root, first.root);
    const running = node;
    await waitFor(async () => counter(await running.status(), 'checkpoints_saved') >= 1 && /checkpoint saved keys=3500 /.test(running.stderrText()), {
      deadlineMs: 30_000,
      what: 'a checkpoint after the writes',
    });
    await node.kill();
    node = await node.respawn();
    status = await node.status();
    assert.equal(treeSource(status), 'start_tree_snapshot');
    assert.deepEqual(state(status), checkpointed);

    // kill -9 again before any write (a crash loop): the snapshot read at that start is still
    // current (only a write makes it stale), so this start comes from it too.
    await node.kill();
    node = await node.respawn();
    status = await node.status();
    assert.equal(treeSource(status), 'start_tree_snapshot');
    assert.deepEqual(state(status), checkpointed);

    // Writes (new keys, overwrites of live and deleted keys, deletes), then kill -9 at once:
    // the snapshot is behind them, and the start replays the entries written after it on top.
    await write(node, 3490, 20); // 10 overwrites, 10 new keys: a tail short enough to replay (limits.replayTailAlwaysEntries)
    await node.client.put('key/97', Buffer.from('back'));
    const beforeKill = state(await node.status());
    assert.notEqual(beforeKill.root, checkpointed.root);
    await node.kill();
    node = await node.respawn();
    status = await node.status();
    assert.equal(treeSource(status), 'start_tree_replay');
    assert.match(node.stderrText(), /replica opened tree=snapshot replayed=\d+ keys=3510/);
    assert.deepEqual(state(status), beforeKill);

    // Clean stop, then corrupt the saved snapshot: refused, logged, counted; the node scans.
    await node.stop();
    const store = new LevelStore(join(dataDir, 'db'));
    await store.open();
    const taken = await store.readSnapshot();
    assert.equal(taken.state, 'current', 'a clean stop saved a snapshot');
    const corrupt = (taken as { bytes: Uint8Array }).bytes.slice();
    corrupt[corrupt.length >> 1]! ^= 0x01;
    await store.saveSnapshot(corrupt);
    await store.close();
    node = await node.respawn();
    status = await node.status();
    assert.equal(treeSource(status), 'start_tree_scan_rejected');
    assert.match(node.stderrText(), /warn start snapshot rejected: tree rebuilt by a scan reason=corrupt/);
    assert.deepEqual(state(status), beforeKill);

    // Last: a clean stop, and a replica built by a full scan of the directory agrees with it.
    await node.stop();
    node = undefined;
    const offline = new LevelStore(join(dataDir, 'db'));
    const nodeId = await (async () => {
      await offline.open();
      return toHex((await offline.getMeta('node-id'))!);
    })();
    const scanned = await Replica.open({ nodeId, store: offline, wallClockMs: Date.now, useSnapshot: false });
    assert.equal(scanned.openedFrom.source, 'scan');
    assert.equal(toHex(scanned.root().digest), beforeKill.root);
    assert.equal(String(scanned.entryCount - scanned.tombstoneCount), beforeKill.keys);
    assert.equal(String(scanned.tombstoneCount), beforeKill.tombstones);
    await offline.close();
  });
});
