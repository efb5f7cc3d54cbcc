/**
 * The replica's state rebuilt by a scan (src/core/replica-scan.ts): read in place from encoded
 * rows, it must be exactly the state the entry-by-entry scan builds (tree, key filter,
 * tombstones and their bounds, greatest stamp: compared as their snapshot encoding, byte for
 * byte), over MemoryStore and LevelStore, for live values, tombstones, values with an expiry,
 * and keys in every UTF-8 length. A damaged row is refused as decodeEntry refuses it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  decodeEntry,
  encodeEntry,
  encodedEntryDigestText,
  encodedEntryFacts,
  encodedKeyHashText,
  entryDigestText,
  keyHashText,
  readEncodedEntryFacts,
  type Entry,
} from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import { hlcPack } from '../../src/core/hlc.js';
import { encodeSnapshot } from '../../src/core/replica-snapshot.js';
import { scanReplicaState } from '../../src/core/replica-scan.js';
import type { Store } from '../../src/core/store.js';
import { LevelStore } from '../../src/store/level-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const nodes = ['00000000000000aa', 'ffffffffffffff01', '0123456789abcdef'];
const baseMs = 1_700_000_000_000;

/** Keys of 1-, 2-, 3- and 4-byte UTF-8 characters, long and short; values live, deleted, expiring. */
function entries(count: number): Entry[] {
  const pieces = ['a', 'é', '\u20ac', '\uffff', '\u{1f511}', 'key/with/slashes'];
  return Array.from({ length: count }, (_, i) => {
    const key = `${pieces[i % pieces.length]!.repeat(1 + (i % 5))}${i}`;
    const version = { hlc: hlcPack(baseMs + (i % 97) * 1000, i % 13), node: nodes[i % nodes.length]! };
    if (i % 7 === 0) return { key, value: null, version };
    const value = new Uint8Array(i % 11).fill(i & 0xff);
    return i % 5 === 0 ? { key, value, version, expiresAtMs: baseMs + (i % 97) * 1000 + 60_000 } : { key, value, version };
  });
}

/** The store without its encoded scan: Replica.open then scans entry by entry. */
function entriesOnly(store: Store): Pick<Store, 'scanHash' | 'scanAllEncoded'> {
  return { scanHash: (prefix) => store.scanHash(prefix) };
}

const subjects: { name: string; open(): Promise<{ store: Store; dispose(): Promise<void> }> }[] = [
  {
    name: 'MemoryStore',
    async open() {
      const store = new MemoryStore();
      await store.open();
      return { store, dispose: async () => store.close() };
    },
  },
  {
    name: 'LevelStore',
    async open() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-replica-scan-'));
      const store = new LevelStore(dir);
      await store.open();
      return {
        store,
        dispose: async () => {
          await store.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

for (const subject of subjects) {
  describe(`the replica's scan over ${subject.name}`, () => {
    it('read in place, builds exactly the state the entry-by-entry scan builds', async () => {
      const { store, dispose } = await subject.open();
      try {
        assert.ok(store.scanAllEncoded, 'the store hands out encoded rows');
        const all = entries(3000);
        for (let i = 0; i < all.length; i += 500) await store.write(all.slice(i, i + 500), hlcPack(baseMs + 200_000, 0));
        const encoded = await scanReplicaState(store, 3);
        const reference = await scanReplicaState(entriesOnly(store), 3);
        assert.equal(encoded.tree.rootCount, all.length);
        assert.equal(encoded.tombstones, all.filter((entry) => entry.value === null).length);
        assert.equal(encoded.entryHlcMax, all.reduce((max, entry) => (entry.version.hlc > max ? entry.version.hlc : max), 0n));
        assert.deepStrictEqual(encodeSnapshot(encoded), encodeSnapshot(reference), 'tree, filter, tombstones, bounds and stamp all equal');
      } finally {
        await dispose();
      }
    });
  });
}

describe('encoded entry facts', () => {
  it('give the key hash and digest that the decoded entry gives', () => {
    const facts = encodedEntryFacts();
    for (const entry of entries(300)) {
      const bytes = encodeEntry(entry);
      readEncodedEntryFacts(bytes, facts);
      assert.equal(encodedKeyHashText(bytes, facts), keyHashText(entry.key), entry.key);
      assert.equal(encodedEntryDigestText(bytes, facts), entryDigestText(entry.key, entry.version), entry.key);
      assert.equal(facts.tombstone, entry.value === null);
      assert.equal((BigInt(facts.hlcHigh) << 32n) | BigInt(facts.hlcLow), entry.version.hlc);
    }
  });

  it('a damaged row is refused, as decodeEntry refuses it', () => {
    const facts = encodedEntryFacts();
    const live = encodeEntry({ key: 'k', value: new Uint8Array([1, 2, 3]), version: { hlc: hlcPack(baseMs, 0), node: nodes[0]! } });
    const tombstone = encodeEntry({ key: 'k', value: null, version: { hlc: hlcPack(baseMs, 0), node: nodes[0]! } });
    const flagsAt = 2;
    const withFlags = (bytes: Uint8Array, flags: number): Uint8Array => {
      const copy = bytes.slice();
      copy[flagsAt] = flags;
      return copy;
    };
    const damaged: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['truncated in the version', live.subarray(0, 10)],
      ['truncated in the value', live.subarray(0, live.byteLength - 1)],
      ['a byte too many', new Uint8Array([...live, 0])],
      ['a tombstone with a byte too many', new Uint8Array([...tombstone, 0])],
      ['unknown flags', withFlags(live, 4)],
      ['a tombstone with an expiry', withFlags(tombstone, 3)],
      ['an empty key', new Uint8Array([0, ...tombstone.subarray(2)])],
      ['a key length that does not decode', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ];
    for (const [what, bytes] of damaged) {
      assert.throws(() => decodeEntry(bytes), MalformedError, `decodeEntry refuses: ${what}`);
      assert.throws(() => readEncodedEntryFacts(bytes, facts), MalformedError, what);
    }
  });
});
