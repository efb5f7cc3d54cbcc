import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../../src/core/bytes.js';
import { entryDigest, entryDigestText, keyHash, keyHashPrefix, keyHashText, type Version } from '../../src/core/entry.js';
import { merkleFanout } from '../../src/core/limits.js';
import { MerkleTree, Projector, differingLeaves, digestsEqual } from '../../src/core/merkle.js';
import { randomBytes, record, seededRng } from '../helpers/core-gen.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';

function versionOf(hlc: number, node = nodeA): Version {
  return { hlc: BigInt(hlc), node };
}

/** A tree holding `entries` (key -> version), inserted in the map's order. */
function treeOf(depth: number, entries: Iterable<[string, Version]>): MerkleTree {
  const tree = new MerkleTree(depth);
  for (const [key, version] of entries) tree.update(keyHash(key), undefined, entryDigest(key, version));
  return tree;
}

/** Every node of a tree, level by level, as "digest:count" strings. */
function snapshot(tree: MerkleTree): string[] {
  const nodes: string[] = [];
  for (let level = 0; level <= tree.depth; level++) {
    for (let index = 0; index < merkleFanout ** level; index++) {
      nodes.push(`${toHex(tree.digest(level, index))}:${tree.count(level, index)}`);
    }
  }
  return nodes;
}

function isEmpty(tree: MerkleTree): boolean {
  for (let level = 0; level <= tree.depth; level++) {
    for (let index = 0; index < merkleFanout ** level; index++) {
      if (tree.count(level, index) !== 0 || tree.digest(level, index).some((b) => b !== 0)) return false;
    }
  }
  return true;
}

/** Distinct keys with versions, plus a shuffled copy of the same key set. */
const keySetAndShuffle = fc
  .uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 1_000 })), {
    maxLength: 150,
    selector: ([key]) => key,
  })
  .chain((entries) =>
    fc.tuple(fc.constant(entries), fc.shuffledSubarray(entries, { minLength: entries.length, maxLength: entries.length })),
  );

describe('MerkleTree', () => {
  // The tree is a function of the key set: any insertion order gives the same root and the same leaves.
  it('insertion order changes neither the root nor any node', () => {
    fc.assert(
      fc.property(keySetAndShuffle, fc.integer({ min: 1, max: 3 }), ([entries, shuffled], depth) => {
        const a = treeOf(depth, entries.map(([k, h]) => [k, versionOf(h)]));
        const b = treeOf(depth, shuffled.map(([k, h]) => [k, versionOf(h)]));
        assert.ok(digestsEqual(a.rootDigest, b.rootDigest));
        assert.deepEqual(snapshot(a), snapshot(b));
        assert.equal(differingLeaves(a, b).length, 0);
      }),
      { numRuns: 100 },
    );
  });

  // Undoing every update (before/after swapped, in any order) returns the tree to all zeros.
  it('update then reverse update returns to the empty tree', () => {
    fc.assert(
      fc.property(keySetAndShuffle, fc.integer({ min: 1, max: 3 }), ([entries, shuffled], depth) => {
        const tree = new MerkleTree(depth);
        assert.ok(isEmpty(tree));
        const changes: [Uint8Array, Uint8Array | undefined, Uint8Array | undefined][] = [];
        for (const [key, hlc] of entries) {
          const first = entryDigest(key, versionOf(hlc));
          const second = entryDigest(key, versionOf(hlc + 1, nodeB));
          changes.push([keyHash(key), undefined, first], [keyHash(key), first, second]);
        }
        for (const [hash, before, after] of changes) tree.update(hash, before, after);
        if (entries.length > 0) assert.ok(!isEmpty(tree));
        // Undo in another order: each second -> first, then each first -> absent.
        const order = new Map(shuffled.map(([key], i) => [key, i]));
        const undo = entries
          .map(([key, hlc]) => ({ key, hlc }))
          .sort((x, y) => order.get(x.key)! - order.get(y.key)!);
        for (const { key, hlc } of undo) {
          tree.update(keyHash(key), entryDigest(key, versionOf(hlc + 1, nodeB)), entryDigest(key, versionOf(hlc)));
        }
        for (const { key, hlc } of undo) tree.update(keyHash(key), entryDigest(key, versionOf(hlc)), undefined);
        assert.ok(isEmpty(tree), 'tree not empty after undoing every update');
      }),
      { numRuns: 100 },
    );
  });

  // Counts: the root counts every key, each leaf its keys, each inner node the sum of its children.
  it('counts equal the number of keys under each node', () => {
    fc.assert(
      fc.property(keySetAndShuffle, fc.integer({ min: 1, max: 3 }), ([entries], depth) => {
        const tree = treeOf(depth, entries.map(([k, h]) => [k, versionOf(h)]));
        assert.equal(tree.rootCount, entries.length);
        const perLeaf = new Map<number, number>();
        for (const [key] of entries) {
          const leaf = tree.leafOf(keyHash(key));
          perLeaf.set(leaf, (perLeaf.get(leaf) ?? 0) + 1);
        }
        for (let leaf = 0; leaf < merkleFanout ** depth; leaf++) assert.equal(tree.count(depth, leaf), perLeaf.get(leaf) ?? 0);
        for (let level = 0; level < depth; level++) {
          for (let index = 0; index < merkleFanout ** level; index++) {
            let sum = 0;
            for (let c = 0; c < merkleFanout; c++) sum += tree.count(level + 1, index * merkleFanout + c);
            assert.equal(tree.count(level, index), sum);
          }
        }
        // Overwriting a key's version keeps the counts.
        if (entries.length > 0) {
          const [key, hlc] = entries[0]!;
          tree.update(keyHash(key), entryDigest(key, versionOf(hlc)), entryDigest(key, versionOf(hlc + 1)));
          assert.equal(tree.rootCount, entries.length);
        }
      }),
      { numRuns: 100 },
    );
  });

  // hashPrefix(level, index) is the hex prefix of SHA-256(key) for every key under that node.
  it('hashPrefix matches the key hash of keys in the node', () => {
    const trees = [1, 2, 3, 4, 5].map((depth) => new MerkleTree(depth)); // leafOf needs only the depth
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.integer({ min: 1, max: 5 }), (key, depth) => {
        const tree = trees[depth - 1]!;
        const hash = keyHash(key);
        const hex = toHex(hash);
        assert.ok(hex.startsWith(keyHashPrefix(key)));
        const leaf = tree.leafOf(hash);
        assert.ok(leaf >= 0 && leaf < merkleFanout ** depth);
        for (let level = 0; level <= depth; level++) {
          const index = Math.floor(leaf / merkleFanout ** (depth - level));
          const prefix = MerkleTree.hashPrefix(level, index);
          assert.equal(prefix.length, level);
          assert.equal(prefix, hex.slice(0, level), `level ${level} index ${index}`);
        }
      }),
      { numRuns: 500 },
    );
    assert.equal(MerkleTree.hashPrefix(0, 0), '');
    assert.equal(MerkleTree.hashPrefix(4, 0), '0000');
    assert.equal(MerkleTree.hashPrefix(4, 0xffff), 'ffff');
    assert.equal(MerkleTree.hashPrefix(3, 0x0a1), '0a1');
  });

  // Depth outside 1..merkleDepthMax is a programmer error.
  it('rejects unsupported depths', () => {
    for (const depth of [0, 6, 2.5]) assert.throws(() => new MerkleTree(depth), /ckv assertion/);
  });
});

describe('differingLeaves', () => {
  type Change = 'bump' | 'delete' | 'add' | 'node';
  const diffCase = record({
    depth: fc.integer({ min: 1, max: 4 }),
    base: fc.uniqueArray(fc.integer({ min: 0, max: 2_000 }), { maxLength: 200 }),
    changes: fc.array(
      fc.tuple(fc.integer({ min: 0, max: 2_200 }), fc.constantFrom<Change>('bump', 'delete', 'add', 'node')),
      { maxLength: 40 },
    ),
  });

  // Reported leaves are exactly the leaves holding a key whose version differs or is missing on one side,
  // and scanning those leaves finds exactly the differing keys.
  it('reports exactly the leaves that hold a differing key', () => {
    fc.assert(
      fc.property(diffCase, ({ depth, base, changes }) => {
        const a = new Map<string, Version>(base.map((i) => [`key-${i}`, versionOf(i)]));
        const b = new Map(a);
        for (const [i, change] of changes) {
          const key = `key-${i}`;
          const current = b.get(key);
          if (change === 'delete') b.delete(key);
          else if (change === 'add' || current === undefined) b.set(key, versionOf(i + 7, nodeB));
          else if (change === 'bump') b.set(key, versionOf(Number(current.hlc) + 1, current.node));
          else b.set(key, { hlc: current.hlc, node: current.node === nodeA ? nodeB : nodeA });
        }
        const keys = new Set([...a.keys(), ...b.keys()]);
        const differing = new Set(
          [...keys].filter((k) => {
            const va = a.get(k);
            const vb = b.get(k);
            return va === undefined || vb === undefined || va.hlc !== vb.hlc || va.node !== vb.node;
          }),
        );
        const treeA = treeOf(depth, a);
        const treeB = treeOf(depth, b);
        const reported = differingLeaves(treeA, treeB);
        for (let i = 1; i < reported.length; i++) assert.ok(reported[i - 1]! < reported[i]!, 'leaves not sorted/unique');
        assert.deepEqual(differingLeaves(treeB, treeA), reported, 'not symmetric');

        const leafOf = (key: string) => treeA.leafOf(keyHash(key));
        const expectedLeaves = [...new Set([...differing].map(leafOf))].sort((x, y) => x - y);
        assert.deepEqual(reported, expectedLeaves);

        // Diff finds exactly the differing keys: compare the keys of the reported leaves only.
        const reportedSet = new Set(reported);
        const found = new Set(
          [...keys].filter((k) => {
            if (!reportedSet.has(leafOf(k))) return false;
            const va = a.get(k);
            const vb = b.get(k);
            return va === undefined || vb === undefined || va.hlc !== vb.hlc || va.node !== vb.node;
          }),
        );
        assert.deepEqual([...found].sort(), [...differing].sort());
      }),
      { numRuns: 150 },
    );
  });

  // Trees of different depth cannot be compared.
  it('refuses trees of different depth', () => {
    assert.throws(() => differingLeaves(new MerkleTree(2), new MerkleTree(3)), /ckv assertion/);
  });
});

describe('Projector', () => {
  // A projection depends only on (salt, width, digest): two projectors with one salt agree.
  it('the same salt gives the same output; equal digests project equal', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 4 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (salt, width, digest) => {
          const p = new Projector(salt, width);
          const q = new Projector(salt, width);
          const out = p.project(digest);
          assert.equal(q.project(digest), out);
          assert.equal(p.project(digest.slice()), out);
          assert.ok(Number.isInteger(out) && out >= 0 && out < 256 ** width, `${out} out of range`);
        },
      ),
      { numRuns: 500 },
    );
  });

  // The projection is GF(2)-linear: project(a XOR b) = project(a) XOR project(b), and zero maps to zero.
  it('is linear over XOR', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 4 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (salt, width, a, b) => {
          const p = new Projector(salt, width);
          const x = a.map((byte, i) => byte ^ b[i]!);
          assert.equal(p.project(x), (p.project(a) ^ p.project(b)) >>> 0);
          assert.equal(p.project(new Uint8Array(32)), 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  // With a fresh salt per try, random distinct digests never collide at width 4 in 10,000 tries.
  it('random distinct digests do not collide at width 4', () => {
    const rng = seededRng(0xc0ffee);
    let collisions = 0;
    let saltChanges = 0;
    for (let i = 0; i < 10_000; i++) {
      const salt = Math.floor(rng() * 2 ** 32);
      const p = new Projector(salt, 4);
      const a = randomBytes(rng, 32);
      const b = randomBytes(rng, 32);
      if (digestsEqual(a, b)) continue;
      if (p.project(a) === p.project(b)) collisions++;
      if (new Projector(salt + 1, 4).project(a) !== p.project(a)) saltChanges++;
    }
    assert.equal(collisions, 0);
    // Different salts give different projections of the same digest (almost always).
    assert.ok(saltChanges > 9_900, `salt changed the projection only ${saltChanges} times`);
  });

  // Widths outside 1..4 are a programmer error.
  it('rejects unsupported widths', () => {
    for (const width of [0, 5]) assert.throws(() => new Projector(1, width), /ckv assertion/);
  });
});

describe('MerkleTree.updateText', () => {
  // The write path's text form builds the same tree as byte updates: inserts and replacements.
  it('equals update with the same hashes as bytes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }), // a snapshot of a deeper tree is slow; depth 5 below
        fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 3 }), fc.nat(50)), { maxLength: 60 }),
        (depth, writes) => {
          const bytes = new MerkleTree(depth);
          const text = new MerkleTree(depth);
          const held = new Map<string, Version>();
          for (const [key, hlc] of writes) {
            const version = versionOf(hlc + 1, hlc % 2 ? nodeA : nodeB);
            const old = held.get(key);
            bytes.update(keyHash(key), old && entryDigest(key, old), entryDigest(key, version));
            text.updateText(keyHashText(key), old && entryDigestText(key, old), entryDigestText(key, version));
            held.set(key, version);
          }
          assert.deepEqual(snapshot(text), snapshot(bytes));
          assert.deepEqual(snapshot(text), snapshot(treeOf(depth, held)));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('finds the same leaf as update at the deepest depth', () => {
    const bytes = new MerkleTree(5);
    const text = new MerkleTree(5);
    for (const key of ['a', 'b', 'c', 'key:1']) {
      bytes.update(keyHash(key), undefined, entryDigest(key, versionOf(1)));
      text.updateText(keyHashText(key), undefined, entryDigestText(key, versionOf(1)));
      const leaf = bytes.leafOf(keyHash(key));
      assert.equal(toHex(text.digest(5, leaf)), toHex(bytes.digest(5, leaf)));
      assert.equal(text.count(5, leaf), bytes.count(5, leaf));
    }
    assert.equal(toHex(text.rootDigest), toHex(bytes.rootDigest));
  });
});
