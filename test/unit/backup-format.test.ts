/**
 * The backup file format (src/cli/backup-format.ts, docs/backup-format.md): a round trip of
 * entries through BackupWriter and BackupReader (small, tombstones, a large incompressible
 * value stored raw), and that every kind of damage is refused with the byte offset of the
 * damage before anything from the damaged block is handed out: truncation at every cut of a
 * small file, a flipped bit at every byte of it, trailing bytes, a foreign file, lengths over
 * their limits (refused before allocating).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { ByteReader } from '../../src/core/bytes.js';
import { encodeEntry, readEntry, type Entry } from '../../src/core/entry.js';
import {
  BackupDamagedError,
  BackupReader,
  BackupWriter,
  blockHeaderBytes,
  ByteSource,
  countEntries,
  encodeHeader,
  type BackupBlock,
} from '../../src/cli/backup-format.js';

const node = '0123456789abcdef';

function entry(i: number, value: Uint8Array | null = Buffer.from(`value-${i}`)): Entry {
  return { key: `k/${String(i).padStart(6, '0')}`, value, version: { hlc: (1_700_000_000_000n << 16n) + BigInt(i), node } };
}

/** The entry with its value as a Buffer, so entries compare whatever view they were read into. */
function plain(e: Entry): Entry {
  return { ...e, value: e.value === null ? null : Buffer.from(e.value) };
}

/** Entries grouped into raw blocks in the core encoding. */
function rawBlocks(groups: Entry[][]): { raw: Buffer; count: number }[] {
  return groups.map((group) => ({ raw: Buffer.concat(group.map((e) => encodeEntry(e))), count: group.length }));
}

async function writeBackup(groups: Entry[][], prefix = ''): Promise<Buffer> {
  const parts: Buffer[] = [];
  const writer = new BackupWriter(async (bytes) => void parts.push(Buffer.from(bytes)), {
    includesDeleted: true,
    createdAtMs: 1_700_000_000_000,
    sourceNodeId: node,
    prefix,
  });
  for (const { raw, count } of rawBlocks(groups)) await writer.add(raw, count);
  await writer.finish();
  return Buffer.concat(parts);
}

/** Reads a whole backup from `bytes` handed over in chunks of `chunkBytes`. */
async function readBackup(bytes: Buffer, chunkBytes = 7): Promise<{ entries: Entry[]; blocks: BackupBlock[]; prefix: string }> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let at = 0; at < bytes.byteLength; at += chunkBytes) yield bytes.subarray(at, at + chunkBytes);
  }
  const reader = new BackupReader(new ByteSource(chunks()));
  const header = await reader.header();
  const blocks: BackupBlock[] = [];
  const entries: Entry[] = [];
  for await (const block of reader.blocks()) {
    blocks.push(block);
    const r = new ByteReader(block.raw);
    while (r.remaining > 0) entries.push(plain(readEntry(r)));
  }
  return { entries, blocks, prefix: header.prefix };
}

/** What reading `bytes` does: the blocks handed out before it failed, and the error. */
async function readDamaged(bytes: Buffer): Promise<{ blocks: BackupBlock[]; error: unknown }> {
  const blocks: BackupBlock[] = [];
  try {
    async function* one(): AsyncGenerator<Buffer> {
      yield bytes;
    }
    const reader = new BackupReader(new ByteSource(one()));
    await reader.header();
    for await (const block of reader.blocks()) blocks.push(block);
    return { blocks, error: undefined };
  } catch (error) {
    return { blocks, error };
  }
}

describe('backup format', () => {
  it('round-trips entries, tombstones and the prefix, read in small pieces', async () => {
    const groups = [
      Array.from({ length: 100 }, (_, i) => entry(i)),
      [entry(100, null), entry(101, new Uint8Array(0))],
      Array.from({ length: 50 }, (_, i) => entry(200 + i)),
    ];
    const file = await writeBackup(groups, 'k/é');
    const { entries, blocks, prefix } = await readBackup(file);
    assert.equal(prefix, 'k/é');
    assert.deepEqual(entries, groups.flat().map(plain));
    assert.deepEqual(blocks.map((b) => b.entries), [100, 2, 50]);
    assert.ok(file.byteLength < Buffer.concat(rawBlocks(groups).map((b) => b.raw)).byteLength, 'compressed');
  });

  it('stores an incompressible large value as it is and reads it back', async () => {
    const value = randomBytes(3 * 1024 * 1024 + 17);
    const groups = [[entry(1)], [entry(2, value)], [entry(3)]];
    const file = await writeBackup(groups);
    assert.ok(file.byteLength > value.byteLength && file.byteLength < value.byteLength + 1024, `${file.byteLength} bytes`);
    const { entries } = await readBackup(file, 1 << 20);
    assert.deepEqual(entries, groups.flat().map(plain));
  });

  it('reads an empty backup (no blocks)', async () => {
    const { entries, blocks } = await readBackup(await writeBackup([]));
    assert.deepEqual([entries.length, blocks.length], [0, 0]);
  });

  it('refuses a file cut at any byte, naming an offset at or after the cut, and hands out no block past it', async () => {
    const file = await writeBackup([[entry(1), entry(2)], [entry(3)], [entry(4, null)]]);
    for (let cut = 0; cut < file.byteLength; cut++) {
      const { blocks, error } = await readDamaged(file.subarray(0, cut));
      assert.ok(error instanceof BackupDamagedError, `cut at ${cut}: ${String(error)}`);
      assert.ok(error.offset <= cut, `cut at ${cut}: offset ${error.offset}`);
      for (const block of blocks) assert.ok(block.offset + block.fileBytes <= cut, `cut at ${cut}: block ${block.index} handed out`);
      assert.match(error.message, /^backup damaged at byte offset \d+: /);
    }
  });

  it('refuses a flipped bit at any byte, naming the offset of the damaged part, and hands out nothing from it on', async () => {
    const file = await writeBackup([[entry(1), entry(2)], [entry(3)], [entry(4, null)]]);
    const good = await readBackup(file);
    // Where a part starts: the header (0; its version at 8, its prefix length at 28), each block, the trailer.
    const starts = [0, 8, 28, ...good.blocks.map((b) => b.offset), ...good.blocks.map((b) => b.offset + b.fileBytes)];
    for (let at = 0; at < file.byteLength; at++) {
      const damaged = Buffer.from(file);
      damaged[at]! ^= 0x10;
      const { blocks, error } = await readDamaged(damaged);
      assert.ok(error instanceof BackupDamagedError, `byte ${at}: ${String(error)}`);
      assert.ok(error.offset <= at, `byte ${at}: offset ${error.offset} is after the damage`);
      // The damage is in the part that starts at the named offset: no block handed out reaches it...
      for (const block of blocks) assert.ok(block.offset + block.fileBytes <= at, `byte ${at}: block ${block.index} handed out`);
      // ...and the offset is the start of the header, of a block or of the trailer that holds it.
      assert.ok(starts.includes(error.offset), `byte ${at}: offset ${error.offset}`);
    }
  });

  it('refuses bytes after the trailer and a file that is not a backup', async () => {
    const file = await writeBackup([[entry(1)]]);
    const trailing = await readDamaged(Buffer.concat([file, Buffer.from([0])]));
    assert.ok(trailing.error instanceof BackupDamagedError);
    assert.equal(trailing.error.offset, file.byteLength);
    assert.match(trailing.error.message, /bytes follow the trailer/);
    const foreign = await readDamaged(Buffer.from('{"not": "a backup at all, but long enough"}'));
    assert.ok(foreign.error instanceof BackupDamagedError);
    assert.match(foreign.error.message, /at byte offset 0: not a ckv backup file/);
  });

  it('refuses a block header whose lengths are over the limits (with a valid CRC) before allocating', async () => {
    const header = encodeHeader({ includesDeleted: false, createdAtMs: 0, sourceNodeId: node, prefix: '' });
    for (const [entries, rawBytes, storedBytes] of [
      [1, 0xffffffff, 100],
      [0x7fffffff, 1024, 100],
      [1, 1024, 0xfffffff0],
      [0, 0, 0],
    ] as const) {
      const frame = Buffer.alloc(blockHeaderBytes);
      frame[0] = 1;
      frame[1] = 1;
      frame.writeUInt32BE(entries, 2);
      frame.writeUInt32BE(rawBytes, 6);
      frame.writeUInt32BE(storedBytes, 10);
      frame.writeUInt32BE(0, 14);
      frame.writeUInt32BE(crc32(frame.subarray(0, 18)), 18);
      const { error } = await readDamaged(Buffer.concat([header, frame]));
      assert.ok(error instanceof BackupDamagedError, String(error));
      assert.equal(error.offset, header.byteLength);
      assert.match(error.message, /block 0: /);
    }
  });

  it('counts entries by walking their lengths, and refuses a partial one', () => {
    const raw = Buffer.concat([encodeEntry(entry(1)), encodeEntry(entry(2, null)), encodeEntry(entry(3, Buffer.alloc(300)))]);
    assert.equal(countEntries(raw), 3);
    for (let cut = 1; cut < raw.byteLength; cut++) {
      const counted = countEntries(raw.subarray(0, cut));
      assert.ok(counted === undefined || [1, 2].includes(counted), `cut ${cut}: ${counted}`);
    }
    assert.equal(countEntries(raw.subarray(0, raw.byteLength - 1)), undefined);
  });
});
