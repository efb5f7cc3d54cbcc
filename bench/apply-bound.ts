/**
 * How fast received entries could be applied, against how fast they are (docs/design-bulk-apply.md,
 * "What it can save"). Each run is a fresh process (what a restarted node catching up runs is
 * code V8 has not optimised yet) that applies `--entries` received entries, in frames of
 * `--frame` (each entry `[varint length][encodeEntry bytes]`, 100-byte values, all keys new),
 * to a fresh LevelDB directory, one of three ways:
 * - `today`: `readEntry` per entry (its value copied into the frame's shared chunks and its
 *   bytes kept as its encoding when canonical, as decodeFrame does), then
 *   `Replica.applyRemote` per frame on a LevelStore, up to 4 frames in flight (as the sync
 *   session driver pipelines them); `own`: the same with a copy of its own per value (as
 *   before 2026-12-06: docs/measurements.md);
 * - `bound`: one loop per frame over the received bytes: `readEncodedEntryFacts`, both hashes
 *   in place, the key filter's check, the `e`, `s` and `k` rows copied from the received bytes
 *   into scratch memory and put (src/store/batch-rows.ts), one batch write a frame (one at a
 *   time), the tree and filter updated once a frame is written. No merge, clock check, seq
 *   bookkeeping or change objects: what the plan's steps 1-4 could reach at best. Its rows are
 *   not read back: a bound, not a store.
 * `--no-store` leaves the bound's `e` rows and batch writes out (what LevelDB's part costs).
 * Prints wall time and the CPU of all the process's threads, per variant, alternated.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/apply-bound.js [--entries 10000] [--frame 500] [--rounds 3] [--no-store]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Level } from 'level';
import { ByteReader } from '../src/core/bytes.js';
import { canonicalEncoding, encodedEntryDigestText, encodedEntryFacts, encodedKeyHashText, encodeEntry, hashPrefixDigits, readEncodedEntryFacts, readEntry, ReceivedValues, type Entry, type HashText } from '../src/core/entry.js';
import { hlcPack } from '../src/core/hlc.js';
import { KeyFilter } from '../src/core/key-filter.js';
import { merkleDepthDefault, valueBytesMax } from '../src/core/limits.js';
import { MerkleTree } from '../src/core/merkle.js';
import { decodeReceivedEntries } from '../src/core/received-entries.js';
import { Replica } from '../src/core/replica.js';
import { batchRows, RowScratch } from '../src/store/batch-rows.js';
import { LevelStore } from '../src/store/level-store.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '10000' },
    frame: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
    'no-store': { type: 'boolean', default: false },
    /** Internal: run one variant in this process and print its result as JSON. */
    one: { type: 'string' },
  },
});
const entries = Number(values.entries);
const frameEntries = Number(values.frame);
const noStore = values['no-store'];
const variants = ['today', 'decoded', 'own', 'bound'] as const;
type Variant = (typeof variants)[number];

/** The received frames: `[varint length][entry bytes]` each, `frameEntries` entries a frame. */
function frames(): Uint8Array[] {
  const wallMs = Date.now();
  const value = new Uint8Array(100).fill(9);
  const out: Uint8Array[] = [];
  for (let first = 0; first < entries; first += frameEntries) {
    const encoded: Uint8Array[] = [];
    for (let i = first; i < Math.min(entries, first + frameEntries); i++) {
      encoded.push(encodeEntry({ key: `run0/${i}`, value, version: { hlc: hlcPack(wallMs - 5000, i % 60_000), node: '00000000000000aa' } }));
    }
    const frame = Buffer.alloc(encoded.reduce((sum, bytes) => sum + bytes.byteLength + 5, 0));
    let at = 0;
    for (const bytes of encoded) {
      let length = bytes.byteLength;
      while (length >= 0x80) {
        frame[at++] = (length & 0x7f) | 0x80;
        length >>>= 7;
      }
      frame[at++] = length;
      frame.set(bytes, at);
      at += bytes.byteLength;
    }
    out.push(new Uint8Array(frame.buffer, frame.byteOffset, at));
  }
  return out;
}

/**
 * What a sync session does with a received frame (its entries back to back, as an Entries
 * frame carries them after its count): decodeReceivedEntries, then Replica.applyReceived.
 */
function today(received: { bytes: Uint8Array; count: number }[], dir: string): Promise<number> {
  return applyEach(dir, received, (replica, frame) => replica.applyReceived(decodeReceivedEntries(frame.bytes, 0, frame.count, valueBytesMax).entries));
}

/**
 * A replica on a fresh LevelStore in `dir` applying each of `frames` with `apply`, up to 4
 * frames in flight (as the sync session driver pipelines them); returns the entries it holds.
 */
async function applyEach<F>(dir: string, frames: readonly F[], apply: (replica: Replica, frame: F) => Promise<unknown>): Promise<number> {
  const store = new LevelStore(dir);
  const replica = await Replica.open({ nodeId: '00000000000000bb', store, wallClockMs: Date.now });
  const pending: Promise<unknown>[] = [];
  for (const frame of frames) {
    pending.push(apply(replica, frame));
    if (pending.length > 4) await pending.shift();
  }
  await Promise.all(pending);
  const count = replica.entryCount;
  await replica.close();
  await store.close();
  return count;
}

/** A frame of `[varint length][entry bytes]` as an Entries frame's entries: the bytes without the lengths, and their count. */
function withoutLengths(frame: Uint8Array): { bytes: Uint8Array; count: number } {
  const reader = new ByteReader(frame);
  const parts: Uint8Array[] = [];
  while (reader.remaining > 0) parts.push(reader.raw(reader.varint()));
  return { bytes: Buffer.concat(parts), count: parts.length };
}

function decoded(received: Uint8Array[], dir: string, ownValues = false): Promise<number> {
  return applyEach(dir, received, (replica, frame) => {
    const reader = new ByteReader(frame);
    const list: Entry[] = [];
    const encodings: (Uint8Array | undefined)[] = [];
    const received = ownValues ? undefined : new ReceivedValues(frame.byteLength);
    // One reader over the frame, as decodeFrame reads an Entries frame (a reader per entry
    // made a DataView each: ~1 us an entry of cold code that the node does not run).
    while (reader.remaining > 0) {
      const length = reader.varint();
      const start = reader.position;
      const decoded = readEntry(reader, undefined, received);
      if (reader.position !== start + length) throw new Error(`an entry of ${reader.position - start} bytes where the frame said ${length}`);
      list.push(decoded);
      encodings.push(canonicalEncoding(frame, start, reader.position, decoded));
    }
    return replica.applyRemote(list, { encodings });
  });
}

async function bound(received: Uint8Array[], dir: string): Promise<number> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const tree = new MerkleTree(merkleDepthDefault);
  const keys = new KeyFilter();
  const facts = encodedEntryFacts();
  const scratch = new RowScratch();
  const keyRow = scratch.keyBytes;
  const hexDigits = Buffer.from('0123456789abcdef');
  const [ePrefix, sPrefix, kPrefix] = ['!e!', '!s!', '!k!'].map((prefix) => Buffer.from(prefix, 'latin1')) as [Buffer, Buffer, Buffer];
  const empty = new Uint8Array(0);
  const hlcRow = { key: Buffer.from('!m!hlc'), value: new Uint8Array(8) };
  let seq = 0;
  let applied = 0;
  let writing: Promise<void> = Promise.resolve();
  for (const frame of received) {
    const batch = db.batch();
    const { put } = batchRows(batch);
    const hashes: HashText[] = [];
    const digests: HashText[] = [];
    let at = 0;
    while (at < frame.byteLength) {
      let length = 0;
      let scale = 1;
      let byte: number;
      do {
        byte = frame[at++]!;
        length += (byte & 0x7f) * scale;
        scale *= 0x80;
      } while (byte >= 0x80);
      const bytes = new Uint8Array(frame.buffer, frame.byteOffset + at, length);
      at += length;
      readEncodedEntryFacts(bytes, facts);
      const hash = encodedKeyHashText(bytes, facts);
      const digest = encodedEntryDigestText(bytes, facts);
      // Every key is new here; the check is made for its cost (a false positive would cost a read).
      keys.mayHave(hash);
      seq++;
      // `e`: prefix, 8 hex digits of the hash, the key's bytes; value: the entry's bytes, its seq.
      keyRow.set(ePrefix, 0);
      let keyEnd = 3;
      for (let i = 0; i < hashPrefixDigits / 2; i++) {
        keyRow[keyEnd++] = hexDigits[hash.charCodeAt(i) >> 4]!;
        keyRow[keyEnd++] = hexDigits[hash.charCodeAt(i) & 0xf]!;
      }
      keyRow.set(bytes.subarray(facts.keyStart, facts.flagsAt), keyEnd);
      keyEnd += facts.flagsAt - facts.keyStart;
      const valueRow = scratch.valueBytesFor(length + 8);
      valueRow.set(bytes, 0);
      valueRow.writeUInt32BE(Math.floor(seq / 2 ** 32), length);
      valueRow.writeUInt32BE(seq >>> 0, length + 4);
      if (!noStore) put(scratch.keyView(keyEnd), scratch.valueView(length + 8));
      // `s`: the seq; value: the entry's bytes.
      keyRow.set(sPrefix, 0);
      keyRow.writeUInt32BE(Math.floor(seq / 2 ** 32), 3);
      keyRow.writeUInt32BE(seq >>> 0, 7);
      put(scratch.keyView(11), scratch.valueView(length));
      // `k`: the key as UTF-16BE (the bench's keys are ASCII).
      keyRow.set(kPrefix, 0);
      let kEnd = 3;
      for (let i = facts.keyStart; i < facts.flagsAt; i++) {
        keyRow[kEnd++] = 0;
        keyRow[kEnd++] = bytes[i]!;
      }
      put(scratch.keyView(kEnd), empty);
      hashes.push(hash);
      digests.push(digest);
    }
    batch.put(hlcRow.key, hlcRow.value);
    writing = writing
      .then(() => (noStore ? batch.close() : batch.write()))
      .then(() => {
        for (let i = 0; i < hashes.length; i++) {
          tree.updateText(hashes[i]!, undefined, digests[i]!);
          keys.add(hashes[i]!);
        }
        applied += hashes.length;
      });
  }
  await writing;
  await db.close();
  return applied;
}

async function runOne(variant: Variant): Promise<void> {
  const received = frames();
  const stripped = variant === 'today' ? received.map(withoutLengths) : [];
  const dir = mkdtempSync(join(tmpdir(), 'ckv-apply-bound-'));
  try {
    const startedMs = performance.now();
    const cpu = process.cpuUsage();
    const applied =
      variant === 'bound' ? await bound(received, dir) : variant === 'today' ? await today(stripped, dir) : await decoded(received, dir, variant === 'own');
    const used = process.cpuUsage(cpu);
    if (applied !== entries) throw new Error(`${variant} applied ${applied} of ${entries} entries`);
    console.log(JSON.stringify({ wallMs: performance.now() - startedMs, cpuMs: (used.user + used.system) / 1000 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.one !== undefined) {
  await runOne(values.one as Variant);
} else {
  const self = fileURLToPath(import.meta.url);
  console.log(`apply bound: ${entries} entries in frames of ${frameEntries}, a fresh process per run${noStore ? ", the bound without its 'e' rows and batch writes" : ''}`);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const variant of variants) {
      const args = [self, '--one', variant, '--entries', String(entries), '--frame', String(frameEntries), ...(noStore ? ['--no-store'] : [])];
      const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`${variant} run failed: ${child.stderr}`);
      const { wallMs, cpuMs } = JSON.parse(child.stdout) as { wallMs: number; cpuMs: number };
      console.log(`round ${round}  ${variant.padEnd(5)}  ${wallMs.toFixed(0).padStart(6)} ms wall  ${cpuMs.toFixed(0).padStart(6)} ms CPU (all threads)  ${((cpuMs * 1000) / entries).toFixed(1)} us CPU an entry`);
    }
  }
}
