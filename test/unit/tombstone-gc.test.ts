import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FloorBook } from '../../src/core/gc-watermark.js';
import { CollectedFloors, TombstoneCollector, gcHolders, type RowState } from '../../src/core/tombstone-gc.js';

describe('FloorBook', () => {
  it('the watermark is the minimum floor over the newest layout members and names who holds it', () => {
    const book = new FloorBook();
    book.hear('a', 100n, 1);
    book.hear('b', 40n, 1);
    book.hear('c', 70n, 2);
    assert.deepEqual(book.watermark(['a', 'b', 'c']), { watermark: 40n, holdsBack: 'b' });
    assert.deepEqual(book.watermark(['a', 'c']), { watermark: 70n, holdsBack: 'c' });
  });

  it('a member never heard from holds the watermark back entirely', () => {
    const book = new FloorBook();
    book.hear('a', 100n, 1);
    assert.deepEqual(book.watermark(['a', 'd']), { watermark: undefined, holdsBack: 'd' });
  });

  it('a silent member keeps the watermark where it last was until it returns or is forgotten', () => {
    const book = new FloorBook();
    book.hear('a', 10n, 1);
    book.hear('b', 10n, 1);
    for (let i = 0; i < 100; i++) book.hear('a', BigInt(1000 + i), 1);
    assert.deepEqual(book.watermark(['a', 'b']), { watermark: 10n, holdsBack: 'b' });
    book.hear('b', 5000n, 2);
    assert.deepEqual(book.watermark(['a', 'b']), { watermark: 1099n, holdsBack: 'a' });
    book.forget('b');
    assert.equal(book.heard('b'), undefined);
    assert.equal(book.size(), 1);
  });

  it('a lower or reordered floor never moves the watermark back', () => {
    const book = new FloorBook();
    book.hear('a', 50n, 3);
    book.hear('a', 20n, 2);
    assert.deepEqual(book.heard('a'), { floor: 50n, layoutVersion: 3 });
    book.hear('a', 50n, 4);
    assert.deepEqual(book.heard('a'), { floor: 50n, layoutVersion: 4 });
  });
});

describe('TombstoneCollector', () => {
  const tombs = [
    { key: 'k1', version: 10n },
    { key: 'k2', version: 30n },
    { key: 'k3', version: 20n },
  ];

  it('collects only tombstones strictly below the watermark, oldest first, bounded', () => {
    const c = new TombstoneCollector({ batchMax: 1 });
    assert.deepEqual(c.collectable(tombs, 30n), [{ key: 'k1', version: 10n }]);
    assert.deepEqual(new TombstoneCollector().collectable(tombs, 30n).map((t) => t.key), ['k1', 'k3']);
    assert.deepEqual(new TombstoneCollector().collectable(tombs, undefined), []);
  });

  it('phase two waits for every holder, including one added after the round started', () => {
    const c = new TombstoneCollector();
    const round = c.plan(7, tombs, 100n, ['b', 'a']);
    assert.ok(round);
    assert.deepEqual(round.holders, ['a', 'b']);
    c.acknowledge(round.id, 'a');
    assert.equal(c.phaseTwo(round.id, ['a', 'b']), undefined);
    c.acknowledge(round.id, 'b');
    assert.equal(c.phaseTwo(round.id, ['a', 'b', 'n']), undefined, 'a new holder must have it too');
    assert.deepEqual(c.missing(round.id, ['a', 'b', 'n']), ['n']);
    c.acknowledge(round.id, 'n');
    const requests = c.phaseTwo(round.id, ['a', 'b', 'n']);
    assert.ok(requests);
    assert.deepEqual(requests.map((r) => r.holder), ['a', 'b', 'n']);
    assert.equal(requests[0]?.partition, 7);
    assert.equal(requests[0]?.tombstones.length, 3);
    assert.equal(c.open().length, 0);
    assert.equal(c.phaseTwo(round.id, ['a']), undefined, 'a finished round gives nothing again');
  });

  it('bounds open rounds, does not plan a key twice, and replans after abandon', () => {
    const c = new TombstoneCollector({ roundsMax: 1 });
    const first = c.plan(1, tombs, 100n, ['a']);
    assert.ok(first);
    assert.equal(c.plan(2, [{ key: 'x', version: 1n }], 100n, ['a']), undefined);
    c.abandon(first.id);
    const again = c.plan(1, tombs, 100n, ['a']);
    assert.ok(again);
    const c2 = new TombstoneCollector();
    assert.ok(c2.plan(1, tombs, 100n, ['a']));
    assert.equal(c2.plan(1, tombs, 100n, ['a']), undefined, 'keys already in a round');
    assert.equal(c2.plan(1, tombs, 100n, []), undefined, 'no holders');
  });

  it('gcHolders is the union of active owners and offloading nodes', () => {
    assert.deepEqual(gcHolders([['b', 'a'], ['c', 'a']], ['d', 'b']), ['a', 'b', 'c', 'd']);
  });
});

describe('CollectedFloors', () => {
  it('deletes only rows still exactly the tombstone and raises the floor', () => {
    const floors = new CollectedFloors();
    const rows = new Map<string, RowState>([
      ['k1', { kind: 'tombstone', version: 10n }],
      ['k2', { kind: 'value', version: 40n }],
      ['k3', { kind: 'tombstone', version: 25n }],
    ]);
    const deleted = floors.deleteIfUnchanged(3, [
      { key: 'k1', version: 10n },
      { key: 'k2', version: 30n },
      { key: 'k3', version: 20n },
      { key: 'k4', version: 5n },
    ], (key) => rows.get(key) ?? { kind: 'absent' });
    assert.deepEqual(deleted, ['k1']);
    assert.equal(floors.floor(3), 10n);
    assert.equal(floors.floor(4), 0n);
  });

  it('refuses a version at or below the floor, accepts above it, per partition', () => {
    const floors = new CollectedFloors();
    floors.raise(1, 50n);
    floors.raise(1, 20n);
    assert.equal(floors.refuseResurrection(1, 50n), true);
    assert.equal(floors.refuseResurrection(1, 49n), true);
    assert.equal(floors.refuseResurrection(1, 51n), false);
    assert.equal(floors.refuseResurrection(2, 1n), false);
    assert.deepEqual(floors.entries(), [[1, 50n]]);
  });
});
