/**
 * The node's event ring (src/node/events.ts): sequence numbers rise from 1, a read returns what
 * came after a given seq (oldest first, bounded), the ring keeps only the last `capacity` events
 * and tells a reader that fell behind how many it missed, and long texts are cut.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { detailCharsMax, EventRing, eventsReadMax } from '../../src/node/events.js';

describe('EventRing', () => {
  it('numbers events from 1 and reads those after a seq, oldest first', () => {
    const ring = new EventRing(10);
    assert.equal(ring.lastSeq, 0);
    assert.deepEqual(ring.since(0), { events: [], lastSeq: 0, dropped: 0 });
    for (let i = 0; i < 3; i++) ring.add({ timeMs: 1000 + i, kind: 'member up', nodeId: `n${i}` });
    assert.equal(ring.lastSeq, 3);
    assert.deepEqual(ring.since(0).events.map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(ring.since(1).events.map((e) => e.nodeId), ['n1', 'n2']);
    assert.deepEqual(ring.since(3).events, []);
    assert.deepEqual(ring.since(99).events, []);
    assert.deepEqual(ring.since(0, 2).events.map((e) => e.seq), [1, 2], 'limit');
  });

  it('keeps only the last `capacity` events; a reader that fell behind is told how many it missed', () => {
    const ring = new EventRing(5);
    for (let i = 1; i <= 12; i++) ring.add({ timeMs: i, kind: 'sync failed', detail: `#${i}` });
    const all = ring.since(0);
    assert.deepEqual(all.events.map((e) => e.seq), [8, 9, 10, 11, 12]);
    assert.equal(all.lastSeq, 12);
    const behind = ring.since(2);
    assert.deepEqual(behind.events.map((e) => e.seq), [8, 9, 10, 11, 12]);
    assert.equal(behind.dropped, 5, 'seqs 3..7 were overwritten');
    assert.equal(ring.since(9).dropped, 0);
  });

  it('bounds what it stores and what one read returns', () => {
    const ring = new EventRing(eventsReadMax + 100);
    for (let i = 0; i < eventsReadMax + 50; i++) ring.add({ timeMs: i, kind: 'k' });
    assert.equal(ring.since(0, 10 ** 9).events.length, eventsReadMax);
    const long = ring.add({ timeMs: 0, kind: 'x'.repeat(1000), nodeId: 'n'.repeat(1000), detail: 'line one\n  line two ' + 'd'.repeat(5000) });
    assert.ok(long.kind.length <= 64 && long.nodeId.length <= 128);
    assert.equal(long.detail.length, detailCharsMax);
    assert.ok(long.detail.startsWith('line one line two'), 'one line');
    assert.throws(() => new EventRing(0), RangeError);
  });
});
