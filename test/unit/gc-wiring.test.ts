/**
 * The pieces that wire tombstone GC into a node (docs/design-delivery-gc.md section 2), each
 * alone over a MemoryStore: the replica's resurrection check and settled HLC, the holder
 * (floors persisted, delete-if-unchanged, refusals), this node's floor (full replication: only
 * in-sync sessions with every member; partitioned: pending writes), the persisted member set
 * and the delivery queue's oldest row.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keyHashText, type Entry } from '../../src/core/entry.js';
import { DeliveryQueue } from '../../src/core/delivery-queue.js';
import { partitionOfHash } from '../../src/core/placement.js';
import { Replica } from '../../src/core/replica.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { Counters } from '../../src/util/counters.js';
import { GcFloor } from '../../src/node/gc-floor.js';
import { GcHolder } from '../../src/node/gc-holder.js';
import { GcMembers } from '../../src/node/gc-members.js';
import { value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const nodeC = '00000000000000cc';

const tombstone = (key: string, hlc: bigint, node = nodeB): Entry => ({ key, value: null, version: { hlc, node } });
const live = (key: string, hlc: bigint, node = nodeB): Entry => ({ key, value: value('v'), version: { hlc, node } });

async function holderOver(store: MemoryStore): Promise<{ replica: Replica; holder: GcHolder; counters: Counters }> {
  const counters = new Counters();
  let wall = 1_000_000;
  const ref: { replica?: Replica } = {};
  const holder = new GcHolder({ store, replica: () => ref.replica!, counters, floor: () => ({ floor: undefined, members: [] }) });
  const replica = await Replica.open({
    nodeId: nodeA,
    store,
    wallClockMs: () => wall++,
    driftMsMax: 1e12,
    refuseResurrection: (keyHash, hlc) => holder.refuse(keyHash, hlc),
  });
  ref.replica = replica;
  await holder.load();
  return { replica, holder, counters };
}

describe('GC holder and the replica', () => {
  it('deletes only rows still exactly the tombstone, raises and persists the floor, then refuses the key coming back', async () => {
    const store = new MemoryStore();
    const { replica, holder, counters } = await holderOver(store);
    await replica.applyRemote([tombstone('gone', 100n), tombstone('changed', 100n), live('other', 50n)]);
    await replica.applyRemote([live('changed', 200n)]);
    const p = partitionOfHash(keyHashText('gone'));
    const deleted = await holder.deleteIfUnchanged(p, [
      { key: 'gone', version: { hlc: 100n, node: nodeB } },
      { key: 'changed', version: { hlc: 100n, node: nodeB } },
    ]);
    assert.equal(deleted, 1);
    assert.equal(await replica.get('gone'), undefined);
    assert.equal((await replica.get('changed'))?.version.hlc, 200n, 'a newer write is kept');
    assert.equal(replica.tombstoneCount, 0);
    assert.equal(holder.floors.floor(p), 100n);
    // A stale copy of the collected key (at or below the floor) is refused; a newer write is not.
    const report = await replica.applyRemote([live('gone', 90n), tombstone('gone', 100n)]);
    assert.equal(report.applied, 0);
    assert.equal(report.stale, 2);
    assert.equal(counters.snapshot().gc_refused, 2);
    assert.equal(await replica.get('gone'), undefined);
    assert.equal((await replica.applyRemote([live('gone', 101n)])).applied, 1, 'a write above the floor creates the key');
    // Keys already present are merged as always (the check is for absent keys only).
    assert.equal((await replica.applyRemote([live('other', 60n)])).applied, 1);
    await replica.close();
    // The floor survives a restart.
    const again = await holderOver(store);
    assert.equal(again.holder.floors.floor(p), 100n);
    await again.replica.close();
  });

  it('phase one acknowledges durable, superseded or refused tombstones, not a clock-drift refusal', async () => {
    const { replica, holder } = await holderOver(new MemoryStore());
    await replica.applyRemote([live('newer', 500n)]);
    assert.equal(await holder.push(0, [tombstone('k', 100n), tombstone('newer', 100n)]), true);
    assert.equal((await replica.get('k'))?.value, null);
    await replica.close();
    let wall = 1_000;
    const strict = await Replica.open({ nodeId: nodeA, store: new MemoryStore(), wallClockMs: () => wall++, driftMsMax: 10 });
    const strictHolder = new GcHolder({ store: new MemoryStore(), replica: () => strict, counters: new Counters(), floor: () => ({ floor: undefined, members: [] }) });
    assert.equal(await strictHolder.push(0, [tombstone('k', 2n ** 60n)]), false, 'stamped far ahead: not applied, not acknowledged');
    await strict.close();
  });

  it('settledHlc: at or above every durable local stamp while idle', async () => {
    let wall = 5_000;
    const replica = await Replica.open({ nodeId: nodeA, store: new MemoryStore(), wallClockMs: () => wall });
    const version = await replica.delete('x');
    // While its commit runs a stamp is above the bound (conservative); once the queue drains, not.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(replica.settledHlc() >= version.hlc);
    wall += 10;
    assert.ok(replica.settledHlc() > version.hlc, 'idle: the clock now');
    await replica.close();
  });
});

describe('GC floor', () => {
  it('full replication: undefined until an in-sync session with every member; then the minimum; non-members forgotten', () => {
    let members = [nodeB, nodeC];
    const floor = new GcFloor({ settledHlc: () => 1000n, members: () => members, partitioned: false });
    assert.equal(floor.answer().floor, undefined);
    floor.sessionInSync(nodeB, 300n);
    assert.equal(floor.answer().floor, undefined, 'nodeC never in sync: no floor');
    floor.sessionInSync(nodeC, 500n);
    assert.equal(floor.answer().floor, 300n);
    floor.sessionInSync(nodeB, 200n);
    assert.equal(floor.answer().floor, 300n, 'a lower bound never lowers what a member already proved');
    floor.sessionInSync(nodeB, 700n);
    assert.equal(floor.answer().floor, 500n);
    assert.deepEqual(floor.answer().members, [nodeB, nodeC]);
    members = [nodeB];
    assert.equal(floor.answer().floor, 700n);
    assert.equal(floor.inSyncOf(nodeC), undefined, 'forgotten with the member');
    members = [];
    assert.equal(floor.answer().floor, 1000n, 'alone: the settled HLC');
  });

  it('partitioned: the oldest pending write, else the settled HLC', () => {
    let pending: bigint | undefined = 40n;
    const floor = new GcFloor({ settledHlc: () => 1000n, members: () => [nodeB], pendingOldest: () => pending, partitioned: true });
    assert.equal(floor.answer().floor, 40n);
    pending = undefined;
    assert.equal(floor.answer().floor, 1000n);
  });

  it('the delivery queue names its oldest row', () => {
    const q = new DeliveryQueue({ rowsMax: 100, bytesMax: 1 << 20, delayMsMin: 500, delayMsMax: 30_000, batchRowsMax: 10, batchBytesTarget: 1 << 20, random: () => 0.5 });
    assert.equal(q.oldestHlc(), undefined);
    q.hold(nodeB, live('a', 70n), 0);
    q.hold(nodeC, live('b', 30n), 0);
    q.hold(nodeC, live('c', 90n), 0);
    assert.equal(q.oldestHlc(), 30n);
  });
});

describe('GC members (full replication)', () => {
  it('remembers every member across restarts until forgotten; ignores what is not a node id', async () => {
    const store = new MemoryStore();
    await store.open();
    const members = new GcMembers(store);
    await members.load();
    members.add([nodeC, nodeB, 'not-a-node-id']);
    await members.durable();
    const again = new GcMembers(store);
    await again.load();
    assert.deepEqual(again.list(), [nodeB, nodeC]);
    assert.equal(again.forget(nodeB), true);
    assert.equal(again.forget(nodeB), false);
    await again.durable();
    const third = new GcMembers(store);
    await third.load();
    assert.deepEqual(third.list(), [nodeC]);
  });
});

describe('settledHlc while a commit waits on the disk', () => {
  it('stays below a stamp not yet durable (the clock, the naive bound, would not)', async () => {
    let wall = 10_000;
    const store = new MemoryStore();
    let release!: () => void;
    let entered!: () => void;
    const writing = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    const write = store.write.bind(store);
    store.write = async (...args: Parameters<MemoryStore['write']>) => {
      entered();
      await gate;
      return write(...args);
    };
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => wall });
    const deleting = replica.delete('k');
    await writing;
    const stamp = replica.hlcLast;
    wall += 5;
    assert.ok(replica.settledHlc() <= stamp, 'a stamp still on its way to disk is not below the settled HLC');
    assert.ok(replica.hlcNow() > stamp, 'the naive bound (the clock) would have claimed it');
    release();
    const version = await deleting;
    assert.equal(version.hlc, stamp);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(replica.settledHlc() > stamp, 'durable and idle: the clock now');
    await replica.close();
  });
});
