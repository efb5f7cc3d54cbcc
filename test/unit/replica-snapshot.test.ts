/**
 * The snapshot a clean stop saves (src/core/replica-snapshot.ts) and Replica.open's use of it:
 * a replica opened from it must hold exactly the tree a full scan builds (every node of every
 * level, counts included), the same tombstone count and clock, and a filter that has every
 * stored key; a stale, corrupt, other-format or other-depth snapshot is refused and the
 * replica scans. Over MemoryStore and LevelStore (a real directory).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { entryDigestText, keyHashText } from '../../src/core/entry.js';
import { hlcPack } from '../../src/core/hlc.js';
import { KeyFilter } from '../../src/core/key-filter.js';
import { merkleFanout } from '../../src/core/limits.js';
import { MerkleTree } from '../../src/core/merkle.js';
import { partitionCount, partitionOfHash } from '../../src/core/placement.js';
import { Replica, type ReplicaRoot } from '../../src/core/replica.js';
import { decodeSnapshot, encodeSnapshot, snapshotFormat } from '../../src/core/replica-snapshot.js';
import type { Store } from '../../src/core/store.js';
import { noTombstone, unknownBound } from '../../src/core/tombstone-bounds.js';
import { LevelStore } from '../../src/store/level-store.js';
import { value } from '../helpers/replicas.js';
import { storeSubjects } from '../helpers/store-subjects.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = 1_700_000_000_000;

/** Every node of two trees equal: digests and counts, level by level. */
function assertSameTree(a: MerkleTree, b: MerkleTree): void {
  assert.equal(a.depth, b.depth);
  for (let level = 0; level <= a.depth; level++) {
    for (let index = 0; index < merkleFanout ** level; index++) {
      assert.equal(a.count(level, index), b.count(level, index), `count at level ${level} node ${index}`);
      assert.deepStrictEqual(a.digest(level, index), b.digest(level, index), `digest at level ${level} node ${index}`);
    }
  }
}

function treeOf(replica: Replica): MerkleTree {
  return replica.syncContext({ cluster: 'test' }).tree;
}

/** Replica state that a scan of `store` gives: opened with the snapshot ignored. */
async function scanned(store: Store, depth = 3): Promise<Replica> {
  return Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth, useSnapshot: false });
}

async function assertSameAsScan(replica: Replica, store: Store): Promise<void> {
  const reference = await scanned(store, replica.depth);
  assertSameTree(treeOf(replica), treeOf(reference));
  assert.equal(replica.tombstoneCount, reference.tombstoneCount);
  assert.equal(replica.entryCount, reference.entryCount);
  assert.equal(replica.hlcLast, reference.hlcLast);
  // The scan's tombstone bounds are exact: each partition's oldest tombstone, or none.
  const oldest = new Array<bigint>(partitionCount).fill(noTombstone);
  for await (const entry of store.scanHash('')) {
    const partition = partitionOfHash(keyHashText(entry.key));
    if (entry.value === null && entry.version.hlc < oldest[partition]!) oldest[partition] = entry.version.hlc;
  }
  assert.deepStrictEqual(reference.tombstoneBounds.bounds(), oldest);
  // The replica's (from a snapshot, then noted writes) are known everywhere and never above
  // the truth: a tombstone overwritten since may leave one lower, which only costs a read.
  assert.equal(replica.tombstoneBounds.knownPartitions(), partitionCount);
  const bounds = replica.tombstoneBounds.bounds();
  for (let p = 0; p < partitionCount; p++) assert.ok(bounds[p]! <= oldest[p]!, `partition ${p}: bound ${bounds[p]} above its oldest tombstone ${oldest[p]}`);
}

/** Local puts and deletes, remote entries (some stamped ahead of the local clock), overwrites. */
async function fill(replica: Replica, keys: number, round: number): Promise<void> {
  const writes = Array.from({ length: keys }, (_, i) => ({ key: `k${i}`, value: i % 7 === 0 ? null : value(`v${i}.${round}`) }));
  await replica.writeMany(writes);
  await replica.applyRemote(
    Array.from({ length: keys / 2 }, (_, i) => ({ key: `r${i}`, value: i % 5 === 0 ? null : value(`r${i}`), version: { hlc: hlcPack(baseMs + 200 + round, i), node: nodeB } })),
  );
  await replica.delete('k1');
}

const subjects = storeSubjects('ckv-snapshot-');

for (const subject of subjects) {
  describe(`Replica snapshot over ${subject.name}`, () => {
    it('a start after a clean stop uses the snapshot and holds exactly the state a scan builds', async () => {
      const { store, dispose } = subject.make();
      try {
        const clock = { ms: baseMs };
        let s = store();
        let replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => clock.ms, depth: 3 });
        assert.deepStrictEqual(replica.openedFrom, { source: 'scan', snapshot: 'none' });
        for (let round = 0; round < 3; round++) {
          await fill(replica, 400, round);
          clock.ms += 10;
          await replica.close();
          await replica.saveSnapshot();
          const before = { root: replica.root(), tombstones: replica.tombstoneCount, hlc: replica.hlcLast };
          await s.close();
          s = store();
          replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => clock.ms, depth: 3 });
          assert.deepStrictEqual(replica.openedFrom, { source: 'snapshot' });
          assert.deepStrictEqual(replica.root(), before.root);
          assert.equal(replica.tombstoneCount, before.tombstones);
          // The remote stamps are ahead of the wall clock: the clock must resume above them, as a scan's would.
          assert.equal(replica.hlcLast, before.hlc);
          await assertSameAsScan(replica, s);
          // The filter has every stored key (a write of a stored key must read it before the merge).
          const keys = (replica as unknown as { keys: KeyFilter }).keys;
          for await (const entry of s.scanHash('')) assert.ok(keys.mayHave(keyHashText(entry.key)), `filter lacks ${entry.key}`);
        }
        // Writes after a start from the snapshot keep the tree a scan would build.
        await replica.put('k2', value('after'));
        await replica.delete('new-after');
        await assertSameAsScan(replica, s);
        await replica.close();
        await s.close();
      } finally {
        dispose();
      }
    });

    it('after --reset-clock-bound left the bound below a stored stamp, the clock resumes above that stamp, as after a scan', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        await s.open();
        const future = hlcPack(baseMs + 3_600_000, 0);
        await s.write([{ key: 'future', value: value('f'), version: { hlc: future, node: nodeB } }], future);
        await s.close();
        s = store();
        const reset = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3, resetClockBound: true });
        await reset.put('now', value('n')); // persists a bound far below `future`
        assert.ok((await s.readHlc()) < future);
        await reset.close();
        await reset.saveSnapshot();
        await s.close();
        s = store();
        const reopened = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        assert.equal(reopened.openedFrom.source, 'snapshot');
        assert.equal(reopened.hlcLast, future);
        await assertSameAsScan(reopened, s);
        await s.close();
      } finally {
        dispose();
      }
    });

    it('a crash before the first write starts from the snapshot again; one after a few writes replays them; one after many scans', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        let replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        await fill(replica, 100, 0);
        await replica.close();
        await replica.saveSnapshot();
        await s.close();
        s = store();
        replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        assert.equal(replica.openedFrom.source, 'snapshot');
        const root = replica.root().digest;
        await s.close(); // "crash" before any write: no close, no saveSnapshot
        s = store();
        replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        assert.equal(replica.openedFrom.source, 'snapshot');
        assert.deepStrictEqual(replica.root().digest, root);
        // A few writes (an overwrite, a delete of a live key, a new key, a deleted key back), then "crash".
        await replica.put('k3', value('again'));
        await replica.delete('k4');
        await replica.put('brand-new', value('n'));
        await replica.put('k7', value('back')); // k7 was a tombstone (fill deletes every 7th)
        await s.close();
        s = store();
        replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        assert.deepStrictEqual(replica.openedFrom, { source: 'snapshot', replayed: 4 });
        await assertSameAsScan(replica, s);
        // Many writes: replaying them would cost more than half a scan (limits.replayCostFractionMax),
        // and they are more than replayTailAlwaysEntries.
        await fill(replica, 1100, 1); // then "crash": no close, no saveSnapshot
        await s.close();
        s = store();
        replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        assert.deepStrictEqual(replica.openedFrom, { source: 'scan', snapshot: 'behind' });
        assert.equal(replica.entryCount, 1100 + 550 + 1); // k0..k1099, r0..r549, brand-new
        await s.close();
      } finally {
        dispose();
      }
    });

    it('a snapshot written to after its save is stale: the replica scans', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        const replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        await fill(replica, 50, 0);
        await replica.close();
        await replica.saveSnapshot();
        await s.write([{ key: 'sneaked', value: value('x'), version: { hlc: hlcPack(baseMs + 1000, 0), node: nodeB } }], hlcPack(baseMs + 1000, 0));
        await s.close();
        s = store();
        const reopened = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        assert.deepStrictEqual(reopened.openedFrom, { source: 'scan', snapshot: 'stale' });
        assert.equal(reopened.entryCount, replica.entryCount + 1);
        await s.close();
      } finally {
        dispose();
      }
    });

    it('a corrupt snapshot or one of another depth is refused: the replica scans', async () => {
      const { store, dispose } = subject.make();
      try {
        let s = store();
        const replica = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth: 3 });
        await fill(replica, 60, 0);
        await replica.close();
        await replica.saveSnapshot();
        const taken = await s.readSnapshot();
        assert.equal(taken.state, 'current');
        const good = (taken as { bytes: Uint8Array }).bytes;
        const corrupt = good.slice();
        corrupt[100]! ^= 1;
        for (const [bytes, depth, expected] of [
          [corrupt, 3, 'corrupt'],
          [good.subarray(0, good.length - 1), 3, 'corrupt'],
          [good, 4, 'depth'],
        ] as const) {
          await s.saveSnapshot(bytes);
          await s.close();
          s = store();
          const reopened = await Replica.open({ nodeId: nodeA, store: s, wallClockMs: () => baseMs, depth });
          assert.deepStrictEqual(reopened.openedFrom, { source: 'scan', snapshot: expected });
          assert.equal(reopened.entryCount, replica.entryCount);
          if (depth === 3) assert.deepStrictEqual(reopened.root(), replica.root());
        }
        await s.close();
      } finally {
        dispose();
      }
    });
  });
}

describe('snapshot encoding', () => {
  function state(keys: number): { tree: MerkleTree; keys: KeyFilter; tombstones: number; entryHlcMax: bigint } {
    const tree = new MerkleTree(2);
    const filter = new KeyFilter();
    for (let i = 0; i < keys; i++) {
      const hash = keyHashText(`key${i}`);
      tree.updateText(hash, undefined, entryDigestText(`key${i}`, { hlc: BigInt(i + 1), node: nodeA }));
      filter.add(hash);
    }
    return { tree, keys: filter, tombstones: Math.min(3, keys), entryHlcMax: BigInt(keys) };
  }

  it('round-trips: every tree node, the counts, the filter and the stamp', () => {
    const original = state(500);
    const decoded = decodeSnapshot(encodeSnapshot(original), 2);
    assert.ok('state' in decoded);
    assertSameTree(decoded.state.tree, original.tree);
    assert.equal(decoded.state.tombstones, 3);
    assert.equal(decoded.state.entryHlcMax, 500n);
    assert.deepStrictEqual(decoded.state.keys.layerStates(), original.keys.layerStates());
  });

  it('a filter of several layers round-trips', () => {
    const original = state(0);
    for (let i = 0; i < 120_000; i++) original.keys.add(keyHashText(`many${i}`));
    assert.equal(original.keys.layerStates().length, 2);
    // The count check needs as many entries as filter keys at most: an empty tree is fine.
    const decoded = decodeSnapshot(encodeSnapshot(original), 2);
    assert.ok('state' in decoded);
    assert.deepStrictEqual(decoded.state.keys.layerStates(), original.keys.layerStates());
  });

  it('refuses another format, another depth, a flipped bit anywhere, a truncation', () => {
    const bytes = encodeSnapshot(state(50));
    const other = bytes.slice();
    other[0] = snapshotFormat + 1;
    assert.deepStrictEqual(decodeSnapshot(other, 2), { rejected: 'format' });
    assert.deepStrictEqual(decodeSnapshot(bytes, 3), { rejected: 'depth' });
    for (const at of [1, 5, 20, 1000, bytes.length - 40, bytes.length - 1]) {
      const flipped = bytes.slice();
      flipped[at]! ^= 0x10;
      assert.deepStrictEqual(decodeSnapshot(flipped, 2), { rejected: 'corrupt' }, `bit flipped at byte ${at}`);
    }
    assert.deepStrictEqual(decodeSnapshot(bytes.subarray(0, 10), 2), { rejected: 'corrupt' });
    assert.deepStrictEqual(decodeSnapshot(bytes.subarray(0, bytes.length - 4), 2), { rejected: 'corrupt' });
  });

  it('round-trips the tombstone bounds: unknown, none and an HLC per partition', () => {
    const tombstoneBounds = Array.from({ length: partitionCount }, (_, p) => (p % 3 === 0 ? unknownBound : p % 3 === 1 ? noTombstone : BigInt(p) << 20n));
    const decoded = decodeSnapshot(encodeSnapshot({ ...state(100), tombstoneBounds }), 2);
    assert.ok('state' in decoded);
    assert.deepStrictEqual(decoded.state.tombstoneBounds, tombstoneBounds);
    // Saved without bounds: every one unknown.
    const without = decodeSnapshot(encodeSnapshot(state(100)), 2);
    assert.ok('state' in without);
    assert.deepStrictEqual(without.state.tombstoneBounds, new Array(partitionCount).fill(unknownBound));
  });

  /**
   * An older format made from the current encoding (format 4) of a depth-2 tree: the 18-byte
   * header kept, its 2 alignment bytes dropped, the inner levels (root and level 1, 17 nodes of
   * 36 bytes) cut out for formats 1 and 2, the bounds too for format 1, and the checksum made
   * again.
   */
  function olderFormat(current: Uint8Array, format: 1 | 2 | 3): Buffer {
    const innerBytes = format === 3 ? 0 : (1 + 16) * 36;
    const boundsBytes = format === 1 ? partitionCount * 9 : 0;
    const body = Buffer.concat([current.subarray(0, 18), current.subarray(20 + innerBytes, current.length - 32 - boundsBytes)]);
    body[0] = format;
    return Buffer.concat([body, createHash('sha256').update(body).digest()]);
  }

  it('format 4 places every digest at a multiple of 4: the tree keeps the read bytes as its memory', () => {
    const original = state(700);
    const bytes = encodeSnapshot(original);
    assert.equal(bytes[0], 4);
    assert.deepStrictEqual([bytes[18], bytes[19]], [0, 0]);
    const decoded = decodeSnapshot(bytes, 2);
    assert.ok('state' in decoded);
    assertSameTree(decoded.state.tree, original.tree);
    for (const { digests } of decoded.state.tree.levels()) assert.equal(digests.buffer, bytes.buffer, 'a level is a view of the snapshot bytes, not a copy');
    // Updates go to that memory, and the tree stays the one updates build.
    const update = (tree: MerkleTree): void => tree.updateText(keyHashText('one more'), undefined, entryDigestText('one more', { hlc: 9n, node: nodeA }));
    update(decoded.state.tree);
    update(original.tree);
    assertSameTree(decoded.state.tree, original.tree);
  });

  it('bytes at an offset that is not a multiple of 4 decode to the same tree, copied', () => {
    const original = state(300);
    const encoded = encodeSnapshot(original);
    const shifted = new Uint8Array(encoded.byteLength + 1);
    shifted.set(encoded, 1);
    const decoded = decodeSnapshot(shifted.subarray(1), 2);
    assert.ok('state' in decoded);
    assertSameTree(decoded.state.tree, original.tree);
    for (const { digests } of decoded.state.tree.levels()) assert.notEqual(digests.buffer, shifted.buffer);
  });

  it('refuses format-4 alignment bytes that are not zero, even with a good checksum', () => {
    const current = encodeSnapshot(state(20));
    const body = Buffer.from(current.subarray(0, current.length - 32));
    body[19] = 1;
    const resealed = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    assert.deepStrictEqual(decodeSnapshot(resealed, 2), { rejected: 'corrupt' });
  });

  it('reads a format-3 snapshot (every level, saved before the alignment bytes)', () => {
    const tombstoneBounds = Array.from({ length: partitionCount }, (_, p) => (p % 2 === 0 ? noTombstone : BigInt(p) << 12n));
    const original = { ...state(400), tombstoneBounds };
    const decoded = decodeSnapshot(olderFormat(encodeSnapshot(original), 3), 2);
    assert.ok('state' in decoded, 'rejected' in decoded ? decoded.rejected : '');
    assertSameTree(decoded.state.tree, original.tree);
    assert.deepStrictEqual(decoded.state.tombstoneBounds, tombstoneBounds);
    assert.deepStrictEqual(decoded.state.keys.layerStates(), original.keys.layerStates());
  });

  it('reads a format-1 snapshot (leaves, saved before the bounds): the bounds stay unknown', () => {
    const decoded = decodeSnapshot(olderFormat(encodeSnapshot(state(200)), 1), 2);
    assert.ok('state' in decoded, 'rejected' in decoded ? decoded.rejected : '');
    assert.equal(decoded.state.tombstoneBounds, undefined);
    assertSameTree(decoded.state.tree, state(200).tree);
  });

  it('reads a format-2 snapshot (leaves and bounds): the inner nodes are computed', () => {
    const tombstoneBounds = Array.from({ length: partitionCount }, (_, p) => (p % 2 === 0 ? noTombstone : BigInt(p) << 10n));
    const decoded = decodeSnapshot(olderFormat(encodeSnapshot({ ...state(300), tombstoneBounds }), 2), 2);
    assert.ok('state' in decoded, 'rejected' in decoded ? decoded.rejected : '');
    assert.deepStrictEqual(decoded.state.tombstoneBounds, tombstoneBounds);
    assertSameTree(decoded.state.tree, state(300).tree);
  });

  it('refuses a tree whose root count is not the entry count, even with a good checksum', () => {
    const current = encodeSnapshot(state(40));
    const body = Buffer.from(current.subarray(0, current.length - 32));
    // The root's count: right after the 20-byte header and the root's 32-byte digest.
    body.writeUInt32BE(41, 20 + 32);
    const resealed = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    assert.deepStrictEqual(decodeSnapshot(resealed, 2), { rejected: 'corrupt' });
  });

  it('refuses a bound of an unknown kind, or an HLC with a kind that has none, even with a good checksum', () => {
    const current = encodeSnapshot(state(10));
    const boundsAt = current.length - 32 - partitionCount * 9;
    for (const [at, byte] of [[boundsAt, 7], [boundsAt + 8, 1]] as const) {
      const body = Buffer.from(current.subarray(0, current.length - 32));
      body[at] = byte;
      const resealed = Buffer.concat([body, createHash('sha256').update(body).digest()]);
      assert.deepStrictEqual(decodeSnapshot(resealed, 2), { rejected: 'corrupt' }, `byte ${at} = ${byte}`);
    }
  });

  it('MerkleTree.fromLeaves equals the tree built by updates', () => {
    const built = state(2000).tree;
    const { digests, counts } = built.leaves();
    assertSameTree(MerkleTree.fromLeaves(2, digests.slice(), counts.slice()), built);
  });

  it('MerkleTree.adoptLevels keeps aligned levels as they are and copies unaligned ones', () => {
    const built = state(1500).tree;
    const levels = built.levels().map(({ digests, counts }) => ({ digests: digests.slice(), counts: counts.slice() }));
    const adopted = MerkleTree.adoptLevels(2, levels);
    assertSameTree(adopted, built);
    assert.equal(adopted.levels()[2]!.digests, levels[2]!.digests);
    const unaligned = levels.map(({ digests, counts }) => {
      const shifted = new Uint8Array(digests.byteLength + 2);
      shifted.set(digests, 2);
      return { digests: shifted.subarray(2), counts };
    });
    const copied = MerkleTree.adoptLevels(2, unaligned);
    assertSameTree(copied, built);
    assert.notEqual(copied.levels()[2]!.digests.buffer, unaligned[2]!.digests.buffer);
  });

  it('MerkleTree.fromLevels copies every level: the same tree, not views of the old one', () => {
    const built = state(2000).tree;
    const copied = MerkleTree.fromLevels(2, built.levels());
    assertSameTree(copied, built);
    built.updateText(keyHashText('one more'), undefined, entryDigestText('one more', { hlc: 1n, node: nodeA }));
    assert.notDeepStrictEqual(copied.rootDigest, built.rootDigest);
    assert.throws(() => MerkleTree.fromLevels(2, built.levels().slice(1)), /a level per depth/);
  });
});

/** A LevelDB directory a replica wrote `keys` keys to and then stopped in (its snapshot saved); its root. */
async function stoppedWithSnapshot(dir: string, keys: number, onWritten: () => void = () => {}): Promise<ReplicaRoot> {
  const store = new LevelStore(dir);
  const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth: 3 });
  await fill(replica, keys, 0);
  onWritten();
  await replica.close();
  await replica.saveSnapshot();
  await store.close();
  return replica.root();
}

/** Opens a replica on `store` and checks it came from the snapshot, with `root`, as a scan would build it. */
async function assertOpensFromSnapshot(store: LevelStore, root: ReplicaRoot): Promise<void> {
  const reopened = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs, depth: 3 });
  assert.deepStrictEqual(reopened.openedFrom, { source: 'snapshot' });
  assert.deepStrictEqual(reopened.root(), root);
  await assertSameAsScan(reopened, store);
  await reopened.close();
  await store.close();
}

/** Runs `body` on a fresh temporary directory, removed afterwards. */
async function inTempDir(prefix: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  try {
    await body(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('LevelStore at a clean stop', () => {
  it('leaves LevelDB no log to replay at the next open (the memtable goes to a table at the stop), and the snapshot still serves', () =>
    inTempDir('ckv-snapshot-flush-', async (dir) => {
      const logBytes = (): number =>
        fs
          .readdirSync(dir)
          .filter((name) => name.endsWith('.log'))
          .reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
      const root = await stoppedWithSnapshot(dir, 400, () => assert.ok(logBytes() > 0, 'the writes are in the log before the stop'));
      assert.equal(logBytes(), 0, 'a clean stop leaves an empty log');
      await assertOpensFromSnapshot(new LevelStore(dir), root);
    }));

  it('a snapshot read ahead of the open (prefetchSnapshot) serves as the one read at readSnapshot', () =>
    inTempDir('ckv-snapshot-prefetch-', async (dir) => {
      const root = await stoppedWithSnapshot(dir, 300);
      const store = new LevelStore(dir);
      store.prefetchSnapshot();
      store.prefetchSnapshot(); // idempotent
      await assertOpensFromSnapshot(store, root);
    }));

  it('a read ahead of a later save is dropped: readSnapshot hands out the saved snapshot, not the older file', () =>
    inTempDir('ckv-snapshot-prefetch-', async (dir) => {
      await stoppedWithSnapshot(dir, 200);
      const first = fs.readFileSync(path.join(dir, 'CKV-SNAPSHOT'));
      const store = new LevelStore(dir);
      store.prefetchSnapshot(); // reads the first snapshot's file
      await store.open();
      const second = new Uint8Array(first.byteLength).fill(7);
      await store.saveSnapshot(second); // the prefetched first file must not stand in for this one
      const taken = await store.readSnapshot();
      assert.equal(taken.state, 'current');
      assert.ok(taken.state === 'current' && Buffer.from(taken.bytes).equals(second));
      await store.close();
    }));

  it('a read ahead with no snapshot saved finds none, and a prefetched store that is only closed leaves nothing behind', () =>
    inTempDir('ckv-snapshot-prefetch-', async (dir) => {
      let store = new LevelStore(dir);
      store.prefetchSnapshot();
      await store.open();
      assert.deepStrictEqual(await store.readSnapshot(), { state: 'none' });
      await store.close();
      const files = fs.readdirSync(dir).sort();
      store = new LevelStore(dir);
      store.prefetchSnapshot();
      await store.close();
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), files, 'a read ahead writes nothing');
    }));
});
