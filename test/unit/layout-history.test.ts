import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeIdFrom } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import { LayoutChangeError, decodeLayoutMessage, encodeLayoutMessage, partitionBitmap } from '../../src/core/layout.js';
import { LayoutHistory } from '../../src/core/layout-history.js';
import { layoutVersionsActiveMax } from '../../src/core/limits.js';
import { partitionCount } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';

const ids = (count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => nodeIdFrom(utf8(`node-${from + i}`)));
const placement = new RendezvousPlacement();
const historyOf = (self: string) => new LayoutHistory({ self, placement });

/** Gossip until quiet: every node sends its active layouts and its own acks to every other (through the wire encoding). */
function exchange(histories: LayoutHistory[]): void {
  for (let round = 0; round < 20; round++) {
    let changed = false;
    for (const from of histories) {
      const layouts = encodeLayoutMessage({ type: 'layouts', layouts: [...from.active()] });
      const acks = from.ownAcks().map((ack) => encodeLayoutMessage({ type: 'ack', ack }));
      for (const to of histories) {
        if (to === from) continue;
        const message = decodeLayoutMessage(layouts);
        assert.equal(message.type, 'layouts');
        changed = to.receiveLayouts(message.layouts).changed || changed;
        for (const bytes of acks) {
          const ack = decodeLayoutMessage(bytes);
          assert.equal(ack.type, 'ack');
          changed = to.receiveAck(from.self, ack.ack).result === 'accepted' || changed;
        }
      }
    }
    if (!changed) return;
  }
  assert.fail('gossip did not settle in 20 rounds');
}

/** Each node syncs (acks) every partition it owns in every layout whose sync may start. */
function syncAll(histories: LayoutHistory[]): void {
  for (const h of histories) {
    for (const layout of h.active().slice(1)) {
      if (h.syncMayStart(layout.version)) h.acknowledge(layout.version, h.unsyncedPartitions(layout.version));
    }
  }
}

function cluster(count: number, replicas = 3): LayoutHistory[] {
  const nodes = ids(count);
  const histories = nodes.map(historyOf);
  for (const nodeId of nodes) histories[0]!.stageAdd(nodeId);
  histories[0]!.stageReplicas(replicas);
  histories[0]!.commit();
  exchange(histories);
  return histories;
}

describe('LayoutHistory', () => {
  it('a first commit makes version 1; gossip brings every node to it', () => {
    const histories = cluster(4);
    for (const h of histories) {
      assert.deepEqual(h.active().map((l) => l.version), [1]);
      assert.equal(h.newest()!.replicas, 3);
      for (let p = 0; p < partitionCount; p++) {
        assert.deepEqual(h.readOwners(p), placement.ownersOf(p, h.newest()!));
        assert.deepEqual(h.writeOwners(p), [...placement.ownersOf(p, h.newest()!)].sort());
      }
    }
  });

  it('a change: writes to both layouts, reads move partition by partition, the old retires once all synced and switched', () => {
    const histories = cluster(4);
    const joiner = historyOf(ids(1, 4)[0]!);
    histories.push(joiner);
    joiner.receiveLayouts(histories[0]!.active());
    joiner.stageAdd(joiner.self);
    const { layout: v2 } = joiner.commit();
    assert.equal(v2.version, 2);
    const v1 = joiner.active()[0]!;
    // Not every node knows v2 yet: nobody may sync toward it.
    assert.ok(!joiner.syncMayStart(2));
    assert.throws(() => joiner.acknowledge(2, joiner.unsyncedPartitions(2)), /before every node knows it/);
    exchange(histories);
    for (const h of histories) {
      assert.deepEqual(h.active().map((l) => l.version), [1, 2]);
      assert.ok(h.syncMayStart(2));
      for (let p = 0; p < partitionCount; p++) {
        const union = [...new Set([...placement.ownersOf(p, v1), ...placement.ownersOf(p, v2)])].sort();
        assert.deepEqual(h.writeOwners(p), union);
        assert.deepEqual(h.readOwners(p), placement.ownersOf(p, v1));
      }
    }
    // The joiner syncs one partition it gains; its other owners ack it too: reads of that one move.
    const gained = joiner.unsyncedPartitions(2)[0]!;
    for (const h of histories) if (placement.ownersOf(gained, v2).includes(h.self)) h.acknowledge(2, [gained]);
    exchange(histories);
    for (const h of histories) {
      assert.deepEqual(h.readOwners(gained), placement.ownersOf(gained, v2));
      const other = (gained + 1) % partitionCount;
      assert.deepEqual(h.readOwners(other), placement.ownersOf(other, v1));
      assert.deepEqual(h.active().map((l) => l.version), [1, 2]);
    }
    syncAll(histories);
    exchange(histories);
    for (const h of histories) {
      assert.deepEqual(h.active().map((l) => l.version), [2], `${h.self} did not retire v1`);
      assert.equal(h.retiredBelow(), 2);
      for (let p = 0; p < partitionCount; p++) assert.deepEqual(h.readOwners(p), placement.ownersOf(p, v2));
    }
    // v1 is old news now.
    assert.equal(histories[0]!.receiveLayouts([v1]).changed, false);
    assert.deepEqual(histories[0]!.active(), [v2]);
  });

  it('does not retire while one node has not switched its reads, or one owner has not synced', () => {
    const histories = cluster(4);
    histories[0]!.stageReplicas(2);
    histories[0]!.commit();
    exchange(histories);
    // Everyone but node 3 syncs; node 3 owns partitions in v2.
    for (const h of histories.slice(0, 3)) h.acknowledge(2, h.unsyncedPartitions(2));
    exchange(histories);
    for (const h of histories) assert.equal(h.active().length, 2);
    // Node 3 syncs: now all synced; every node switches, then all retire v1.
    histories[3]!.acknowledge(2, histories[3]!.unsyncedPartitions(2));
    for (const h of histories.slice(0, 3)) assert.equal(h.active().length, 2, 'retired before the others switched');
    exchange(histories);
    for (const h of histories) assert.deepEqual(h.active().map((l) => l.version), [2]);
  });

  it('refuses an ack about another node, of partitions its node does not own, of a layout it does not hold', () => {
    const histories = cluster(4);
    const [a, b] = histories;
    a!.stageReplicas(2);
    const { layout: v2 } = a!.commit();
    exchange(histories);
    const owned = b!.unsyncedPartitions(2);
    const notOwned = [...Array(partitionCount).keys()].filter((p) => !owned.includes(p));
    const ack = { nodeId: b!.self, version: 2, digest: v2.digest, partitions: partitionBitmap(owned), switched: true };
    assert.equal(a!.receiveAck(histories[2]!.self, ack).result, 'not-self');
    assert.equal(a!.receiveAck(b!.self, { ...ack, partitions: partitionBitmap([notOwned[0]!]) }).result, 'not-owner');
    assert.equal(a!.receiveAck(b!.self, { ...ack, version: 3 }).result, 'unknown-layout');
    assert.equal(a!.receiveAck(b!.self, { ...ack, digest: '0000000000000000' }).result, 'unknown-layout');
    assert.equal(a!.receiveAck(b!.self, ack).result, 'accepted');
    assert.equal(a!.receiveAck(b!.self, ack).result, 'duplicate');
    assert.equal(a!.receiveAck(b!.self, { ...ack, partitions: partitionBitmap(owned.slice(0, 1)), switched: false }).result, 'duplicate');
    // The canary's history believes anyone.
    const gullible = new LayoutHistory({ self: a!.self, placement, trustAnyAck: true });
    gullible.receiveLayouts(a!.active());
    assert.equal(gullible.receiveAck(histories[2]!.self, { ...ack, partitions: partitionBitmap([notOwned[0]!]) }).result, 'accepted');
  });

  it('a same-version conflict: both kept visible, the greater digest wins on every node whatever the order', () => {
    const histories = cluster(3);
    const [a, b, c] = histories;
    a!.stageAdd(ids(1, 10)[0]!);
    b!.stageAdd(ids(1, 11)[0]!);
    const { layout: fromA } = a!.commit();
    const { layout: fromB } = b!.commit();
    assert.equal(fromA.version, fromB.version);
    const winner = fromA.digest > fromB.digest ? fromA : fromB;
    // c hears them in one order, a and b each heard its own first.
    c!.receiveLayouts([fromB]);
    const outcome = c!.receiveLayouts([fromA]);
    assert.equal(outcome.conflicts.length, 1);
    exchange(histories);
    const loser = winner === fromA ? b! : a!;
    for (const h of histories) assert.equal(h.newest()!.digest, winner.digest);
    // Every node that heard both shows the conflict; the loser's author always does (the
    // winner's may never hear the loser, replaced everywhere before it travelled).
    for (const h of [c!, loser]) {
      assert.equal(h.conflicts().length, 1);
      assert.equal(h.conflicts()[0]!.kept.digest, winner.digest);
    }
    // The loser sees its change did not happen and commits it again on top.
    const lost = winner === fromA ? ids(1, 11)[0]! : ids(1, 10)[0]!;
    assert.equal(loser.newest()!.weights[lost], undefined);
    loser.stageAdd(lost);
    assert.equal(loser.commit().layout.version, 3);
    // The canary's history keeps its own: two nodes disagree for good.
    const stubborn = new LayoutHistory({ self: c!.self, placement, resolveConflicts: false });
    stubborn.receiveLayouts([winner === fromA ? fromB : fromA]);
    stubborn.receiveLayouts([winner]);
    assert.notEqual(stubborn.newest()!.digest, winner.digest);
  });

  it('staging: add, weights, remove, K; preview, revert, and refused commits', () => {
    const histories = cluster(3);
    const h = histories[0]!;
    const [x, y] = ids(2, 20);
    assert.throws(() => h.commit(), /nothing to commit/);
    assert.throws(() => h.stageRemove(x!), LayoutChangeError);
    assert.throws(() => h.stageAdd('nope'), LayoutChangeError);
    assert.throws(() => h.stageAdd(x!, -1), LayoutChangeError);
    assert.throws(() => h.stageReplicas(0), LayoutChangeError);
    h.stageAdd(x!, 4);
    h.stageAdd(y!, 0);
    h.stageRemove(y!); // staged only: unstaged
    h.stageRemove(histories[1]!.self);
    h.stageReplicas(undefined);
    const preview = h.preview();
    assert.equal(preview.version, 2);
    assert.equal(preview.weights[x!], 4);
    assert.equal(preview.weights[y!], undefined);
    assert.equal(preview.weights[histories[1]!.self], undefined);
    assert.equal(preview.replicas, undefined);
    h.revert();
    assert.equal(h.staged().members.size, 0);
    assert.throws(() => h.commit(), /nothing to commit/);
    // Removing every node of weight > 0 is refused.
    for (const nodeId of h.newest()!.nodes) h.stageRemove(nodeId);
    assert.throws(() => h.commit(), /at least one node of weight > 0/);
    h.revert();
    // At most layoutVersionsActiveMax layouts at once.
    for (let i = 0; i < layoutVersionsActiveMax - 1; i++) {
      h.stageAdd(ids(1, 30 + i)[0]!);
      h.commit();
    }
    assert.equal(h.active().length, layoutVersionsActiveMax);
    h.stageAdd(ids(1, 40)[0]!);
    assert.throws(() => h.commit(), /layouts are active/);
    h.revert();
    // ...but removing a node (a dead one blocking the change) still may.
    h.stageRemove(histories[2]!.self);
    assert.equal(h.commit().layout.version, layoutVersionsActiveMax + 1);
  });

  it('a snapshot restores the same state', () => {
    const histories = cluster(4);
    histories[0]!.stageReplicas(2);
    histories[0]!.commit();
    exchange(histories);
    const h = histories[1]!;
    h.acknowledge(2, h.unsyncedPartitions(2).slice(0, 5));
    exchange(histories);
    const restored = LayoutHistory.restore({ self: h.self, placement }, h.snapshot());
    assert.deepEqual(restored.active(), h.active());
    assert.deepEqual(restored.ownAcks(), h.ownAcks());
    assert.equal(restored.retiredBelow(), h.retiredBelow());
    for (let p = 0; p < partitionCount; p++) {
      assert.deepEqual(restored.readOwners(p), h.readOwners(p));
      assert.deepEqual(restored.writeOwners(p), h.writeOwners(p));
    }
    for (const other of histories) assert.deepEqual(restored.ackOf(2, other.self), h.ackOf(2, other.self));
  });

  it('a node that missed a whole change jumps to the newest layout', () => {
    const histories = cluster(4);
    const [a] = histories;
    const away = histories.pop()!;
    a!.stageAdd(ids(1, 9)[0]!);
    a!.commit();
    const joined = historyOf(ids(1, 9)[0]!);
    histories.push(joined);
    exchange(histories);
    // away is in v2 too: the sync may not start while it does not know v2.
    assert.ok(!a!.syncMayStart(2));
    histories.push(away);
    exchange(histories);
    syncAll(histories);
    exchange(histories);
    for (const h of histories) assert.deepEqual(h.active().map((l) => l.version), [2]);
  });
});
