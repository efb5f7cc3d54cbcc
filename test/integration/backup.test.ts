/**
 * `ckv export` and `ckv import` against real nodes (real processes, LevelDB, the CLI as a
 * user runs it): a round trip of 1,000,000 small keys (loaded with PutMany) ends with the
 * same Merkle root and count on a fresh node; a PREFIX export holds exactly its keys; an
 * import killed with kill -9 (the CLI, and separately the node) and run again ends with the
 * same root; a truncated file and a file with one flipped byte are refused (exit 9) naming
 * the byte offset, with exactly the blocks before the damage applied and nothing after it,
 * and the repaired import is idempotent; two 64 MiB values round-trip; an old backup does not
 * overwrite newer data ("older than present"); --include-deleted round-trips tombstones; an
 * entry stamped in the importing node's future is refused (exit 4).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackupReader, ByteSource } from '../../src/cli/backup-format.js';
import type { ControlClient } from '../../src/control/client.js';
import { ByteReader } from '../../src/core/bytes.js';
import { GrpcStatus, GrpcStatusError } from '../../src/control/h2.js';
import { importEntriesMax } from '../../src/control/limits.js';
import { encodeEntry, readEntry } from '../../src/core/entry.js';
import {
  ckvBin,
  exitOf,
  repoRoot,
  runCli,
  runCliOk,
  spawnCli,
  spawnTracked,
  startNode,
  counter,
  waitMesh,
  tempDir,
  waitFor,
  withDeadline,
  type NodeProcess,
} from '../../harness/testing.js';

const MiB = 1024 * 1024;
const keysTotal = 1_000_000;
/** `key/000` matches key/00000000 .. key/00099999. */
const prefix = 'key/000';
const prefixKeys = 100_000;

function keyOf(i: number): string {
  return `key/${String(i).padStart(8, '0')}`;
}

/** Puts key/00000000.. with PutMany, 10,000 a call, 4 calls in flight. */
async function loadKeys(client: ControlClient, n: number): Promise<void> {
  const perCall = 10_000;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const start = next;
      next += perCall;
      const puts = [];
      for (let i = start; i < Math.min(n, start + perCall); i++) puts.push({ key: keyOf(i), value: Buffer.from(`v${i}`) });
      const reply = await client.putMany(puts);
      const failed = reply.results.find((r) => r.error);
      assert.equal(failed, undefined, failed?.error);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

interface BlockInfo {
  offset: number;
  fileBytes: number;
  entries: number;
  firstKey: string;
}

/** The blocks of a backup file, read and verified with the format's own reader. */
async function blocksOf(file: string): Promise<BlockInfo[]> {
  const reader = new BackupReader(new ByteSource(createReadStream(file)[Symbol.asyncIterator]() as AsyncIterator<Buffer>));
  await reader.header();
  const blocks: BlockInfo[] = [];
  for await (const block of reader.blocks()) {
    const firstKey = readEntry(new ByteReader(block.raw)).key;
    blocks.push({ offset: block.offset, fileBytes: block.fileBytes, entries: block.entries, firstKey });
  }
  return blocks;
}

/** The terminal's "erase the line" (CSI 2 K) as a regular expression source. */
const erase = '\\x1b\\[2K';

/** Runs `ckv ARGS` with a pseudo-terminal as stdin, stdout and stderr (util-linux `script`); its output. */
async function onTerminal(args: string[]): Promise<{ code: number | null; output: string }> {
  const quoted = [process.execPath, ckvBin, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawnTracked('script', ['-qec', quoted, '/dev/null'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => (output += chunk));
  const { code } = await withDeadline(exitOf(child), 60_000, `ckv ${args.join(' ')} on a terminal`);
  return { code, output };
}

async function rootOf(node: NodeProcess): Promise<{ root: string; keys: number; tombstones: number }> {
  const status = await node.status();
  return { root: status.merkleRoot, keys: Number(status.keyCount), tombstones: Number(status.tombstoneCount) };
}

async function hasKey(node: NodeProcess, key: string): Promise<boolean> {
  return (await node.client.hasKey(key)).found;
}

/**
 * Tombstone GC only when asked: a lone node collects its tombstones at its next run (every 10
 * s by default), and these tests compare roots and tombstone counts across export and import.
 */
const noGc = ['--gc-interval-ms', '0'];

describe('backup and restore', () => {
  const dir = tempDir('ckv-backup-');
  const full = join(dir, 'full.ckvb');
  const partial = join(dir, 'prefix.ckvb');
  let source: NodeProcess;
  /** The root of a node holding exactly the PREFIX backup. */
  let prefixRoot: { root: string; keys: number; tombstones: number };

  before(async () => {
    source = await startNode({ name: 'source', args: noGc });
  });

  after(async () => {
    await source?.stop();
  });

  it('round-trips 1,000,000 small keys: the same Merkle root and count on a fresh node', { timeout: 300_000 }, async (t) => {
    // Phase times are reported (t.diagnostic), never asserted: the machine is shared.
    let phaseMs = performance.now();
    const phase = (name: string): void => {
      t.diagnostic(`${name}: ${((performance.now() - phaseMs) / 1000).toFixed(1)} s`);
      phaseMs = performance.now();
    };
    await loadKeys(source.client, keysTotal);
    phase('load 1,000,000 keys with PutMany');
    const before = await rootOf(source);
    assert.equal(before.keys, keysTotal);
    const exported = await runCliOk(['export', '-o', full], { socket: source.socket, timeoutMs: 120_000 });
    phase('ckv export');
    assert.match(exported.stderr, /^exported 1,000,000 entries in \d+ blocks: .* written to .*full\.ckvb in [\d.]+ s\n$/);
    const target = await startNode({ name: 'target', args: noGc });
    phaseMs = performance.now();
    const imported = await runCliOk(['import', '-i', full], { socket: target.socket, timeoutMs: 120_000 });
    phase('ckv import into a fresh node');
    assert.match(imported.stderr, /^imported 1,000,000 entries in \d+ blocks: 1,000,000 applied, 0 older than present \(or equal\), 0 refused\n$/);
    assert.deepEqual(await rootOf(target), before);
    await target.stop();
  });

  it('exports a PREFIX: exactly its keys, in blocks of thousands', { timeout: 120_000 }, async () => {
    await runCliOk(['export', prefix, '-o', partial], { socket: source.socket, timeoutMs: 60_000 });
    const blocks = await blocksOf(partial);
    assert.equal(blocks.reduce((n, b) => n + b.entries, 0), prefixKeys);
    assert.ok(blocks.length >= 4 && blocks.every((b) => b.entries >= 1000), JSON.stringify(blocks.map((b) => b.entries)));
    const target = await startNode({ name: 'prefix-target', args: noGc });
    await runCliOk(['import', '-i', partial], { socket: target.socket, timeoutMs: 60_000 });
    prefixRoot = await rootOf(target);
    assert.equal(prefixRoot.keys, prefixKeys);
    assert.ok(await hasKey(target, keyOf(0)));
    assert.ok(await hasKey(target, keyOf(prefixKeys - 1)));
    assert.ok(!(await hasKey(target, keyOf(prefixKeys))));
    await target.stop();
  });

  it('an import whose CLI is killed with kill -9 mid-way, run again, ends with the same root', { timeout: 120_000 }, async () => {
    const target = await startNode({ name: 'cli-killed', args: noGc });
    const cli = spawnCli(['import', '-i', partial], { socket: target.socket });
    await waitFor(async () => (await rootOf(target)).keys > 0, { deadlineMs: 30_000, what: 'the import to apply its first block' });
    await cli.kill('SIGKILL');
    const midway = (await rootOf(target)).keys;
    assert.ok(midway > 0 && midway < prefixKeys, `killed after ${midway} of ${prefixKeys} keys`);
    const again = await runCliOk(['import', '-i', partial, '--json'], { socket: target.socket, timeoutMs: 60_000 });
    assert.match(again.stderr, /older than present/);
    const summary = JSON.parse(again.stdout.toString()) as { entries: number; applied: number; olderOrEqual: number; refused: number };
    assert.equal(summary.entries, prefixKeys);
    assert.equal(summary.applied + summary.olderOrEqual, prefixKeys, 'every entry applied or already there');
    assert.ok(summary.olderOrEqual >= midway, 'what the killed import applied is not applied again');
    assert.equal(summary.refused, 0);
    assert.deepEqual(await rootOf(target), prefixRoot);
    await target.stop();
  });

  it('an import whose node is killed with kill -9 mid-way: the CLI says so; after a restart, run again, the same root', { timeout: 120_000 }, async () => {
    const target = await startNode({ name: 'node-killed', args: noGc });
    const cli = spawnCli(['import', '-i', partial], { socket: target.socket });
    await waitFor(async () => (await rootOf(target)).keys > 0, { deadlineMs: 30_000, what: 'the import to apply its first block' });
    await target.kill();
    const result = await cli.result;
    assert.ok(result.code === 6 || result.code === 3, `exit ${result.code}: ${result.stderr}`);
    assert.match(result.stderr, /^ckv: .*imported before it; importing again is safe\)\n$/);
    const restarted = await target.respawn();
    const midway = (await rootOf(restarted)).keys;
    assert.ok(midway > 0 && midway < prefixKeys, `killed after ${midway} of ${prefixKeys} keys`);
    await runCliOk(['import', '-i', partial], { socket: restarted.socket, timeoutMs: 60_000 });
    assert.deepEqual(await rootOf(restarted), prefixRoot);
    await restarted.stop();
  });

  it('refuses a truncated file and one with a flipped byte at the offset of the damage, applying nothing after it; the repaired import is idempotent', { timeout: 120_000 }, async () => {
    const blocks = await blocksOf(partial);
    const bytes = readFileSync(partial);
    const target = await startNode({ name: 'damaged', args: noGc });
    const entriesBefore = (index: number): number => blocks.slice(0, index).reduce((n, b) => n + b.entries, 0);

    // Cut inside block 2: blocks 0 and 1 are applied, nothing of block 2 or later.
    const cut = blocks[2]!.offset + Math.floor(blocks[2]!.fileBytes / 2);
    const truncated = join(dir, 'truncated.ckvb');
    writeFileSync(truncated, bytes.subarray(0, cut));
    const t = await runCli(['import', '-i', truncated], { socket: target.socket, timeoutMs: 60_000 });
    assert.equal(t.code, 9, t.stderr);
    assert.equal(t.stderr.split('\n').length, 2, 'one line');
    assert.match(t.stderr, new RegExp(`^ckv: backup damaged at byte offset ${cut}: the file ends there, inside block 2 starting at byte ${blocks[2]!.offset} \\(truncated\\); the 2 blocks before it \\([\\d,]+ entries\\) were imported, nothing after it`));
    assert.equal((await rootOf(target)).keys, entriesBefore(2));
    assert.ok(await hasKey(target, blocks[1]!.firstKey));
    assert.ok(!(await hasKey(target, blocks[2]!.firstKey)));

    // One byte flipped in the middle of block 3's data: blocks 0..2 are applied, nothing of block 3 on.
    const flippedAt = blocks[3]!.offset + Math.floor(blocks[3]!.fileBytes / 2);
    const flipped = Buffer.from(bytes);
    flipped[flippedAt]! ^= 0x01;
    const flippedFile = join(dir, 'flipped.ckvb');
    writeFileSync(flippedFile, flipped);
    const f = await runCli(['import', '-i', flippedFile], { socket: target.socket, timeoutMs: 60_000 });
    assert.equal(f.code, 9, f.stderr);
    assert.match(f.stderr, new RegExp(`^ckv: backup damaged at byte offset ${blocks[3]!.offset}: block 3: its \\d+ bytes of data \\(from byte \\d+\\) fail their checksum; the 3 blocks before it`));
    assert.equal((await rootOf(target)).keys, entriesBefore(3));
    assert.ok(!(await hasKey(target, blocks[3]!.firstKey)));

    // The whole file: what is there counts as older than present (or equal), the rest is applied.
    const repaired = await runCliOk(['import', '-i', partial], { socket: target.socket, timeoutMs: 60_000 });
    const older = entriesBefore(3).toLocaleString('en-US');
    const applied = (prefixKeys - entriesBefore(3)).toLocaleString('en-US');
    assert.match(repaired.stderr, new RegExp(`: ${applied} applied, ${older} older than present \\(or equal\\), 0 refused\\n$`));
    assert.deepEqual(await rootOf(target), prefixRoot);
    await target.stop();
  });

  it('round-trips two 64 MiB values', { timeout: 180_000 }, async () => {
    const values = [randomBytes(64 * MiB), Buffer.alloc(64 * MiB, 'ckv ')];
    await source.client.put('big/random', values[0]!);
    await source.client.put('big/text', values[1]!);
    const file = join(dir, 'big.ckvb');
    const exported = await runCliOk(['export', 'big/', '-o', file], { socket: source.socket, timeoutMs: 120_000 });
    assert.match(exported.stderr, /^exported 2 entries in 2 blocks: /);
    const target = await startNode({ name: 'big-target', args: noGc });
    await runCliOk(['import', '-i', file], { socket: target.socket, timeoutMs: 120_000 });
    for (const [i, key] of ['big/random', 'big/text'].entries()) {
      const got = await target.client.get(key);
      const [theirs, ours] = [got.value, values[i]!].map((v) => createHash('sha256').update(v).digest('hex'));
      assert.equal(theirs, ours, key);
      assert.equal(got.version?.text, (await source.client.hasKey(key)).version?.text);
    }
    await target.stop();
  });

  it('an old backup does not overwrite newer data; --include-deleted round-trips tombstones; a future stamp is refused', { timeout: 120_000 }, async () => {
    const writer = await startNode({ name: 'writer', args: noGc });
    const run = (args: string[]) => runCliOk(args, { socket: writer.socket });
    await run(['put', 'old/1', 'first']);
    await run(['put', 'old/2', 'first']);
    await run(['put', 'old/3', 'first']);
    const old = join(dir, 'old.ckvb');
    await run(['export', 'old/', '-o', old]);
    await run(['put', 'old/1', 'second']);
    await run(['del', 'old/2']);
    const over = await run(['import', '-i', old]);
    assert.match(over.stderr, /^imported 3 entries in 1 block: 0 applied, 3 older than present \(or equal\), 0 refused\n$/);
    assert.equal((await run(['get', 'old/1'])).stdout.toString(), 'second');
    assert.equal((await runCli(['get', 'old/2'], { socket: writer.socket })).code, 1);

    // Without --include-deleted the tombstone stays behind; with it, it travels.
    const live = join(dir, 'live.ckvb');
    assert.match((await run(['export', 'old/', '-o', live])).stderr, /^exported 2 entries in 1 block: /);
    const withDeleted = join(dir, 'with-deleted.ckvb');
    assert.match((await run(['export', 'old/', '--include-deleted', '-o', withDeleted])).stderr, /^exported 3 entries in 1 block: /);
    const restored = await startNode({ name: 'restored', args: noGc });
    await runCliOk(['import', '-i', withDeleted], { socket: restored.socket });
    assert.deepEqual(await rootOf(restored), await rootOf(writer));
    assert.equal((await rootOf(restored)).tombstones, 1);
    const keys = await runCliOk(['keys', '--deleted'], { socket: restored.socket });
    assert.equal(keys.stdout.toString(), 'old/1\nold/2 (deleted)\nold/3\n');

    // A node whose clock runs a minute ahead stamps in the future: the restored node refuses those (exit 4).
    const ahead = await startNode({ name: 'ahead', args: ['--test-clock-skew-ms', '60000', ...noGc] });
    await runCliOk(['put', 'future/1', 'x'], { socket: ahead.socket });
    const future = join(dir, 'future.ckvb');
    await runCliOk(['export', 'future/', '-o', future], { socket: ahead.socket });
    const refused = await runCli(['import', '-i', future], { socket: restored.socket });
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /^ckv: imported 1 entry in 1 block: 0 applied, 0 older than present \(or equal\), 1 refused \(1 stamped too far in this node's future\)\n$/);
    await Promise.all([writer.stop(), restored.stop(), ahead.stop()]);
  });

  it('on a terminal: a progress line, erased before the summary; a backup is not written to a terminal', { timeout: 120_000 }, async () => {
    const file = join(dir, 'tty.ckvb');
    const exported = await onTerminal(['--socket', source.socket, 'export', prefix, '-o', file]);
    assert.equal(exported.code, 0, exported.output);
    assert.match(exported.output, new RegExp(`\r${erase}exporting: [\\d,]+ entries, [\\d.]+ \\S+ written`));
    assert.match(exported.output, new RegExp(`\r${erase}exported 100,000 entries in \\d+ blocks: `));
    const target = await startNode({ name: 'tty-target', args: noGc });
    const imported = await onTerminal(['--socket', target.socket, 'import', '-i', file]);
    assert.equal(imported.code, 0, imported.output);
    assert.match(imported.output, new RegExp(`\r${erase}importing: [\\d,]+ entries applied or checked, [\\d.]+ \\S+ of [\\d.]+ \\S+ read`));
    assert.match(imported.output, new RegExp(`\r${erase}imported 100,000 entries in \\d+ blocks: 100,000 applied`));
    assert.deepEqual(await rootOf(target), prefixRoot);
    await target.stop();
    const refused = await onTerminal(['--socket', source.socket, 'export', prefix]);
    assert.equal(refused.code, 2, refused.output);
    assert.match(refused.output, /ckv: the backup is binary: give -o FILE, or redirect standard output/);
  });

  it('exports to a pipe and imports from one', { timeout: 60_000 }, async () => {
    const exported = await runCliOk(['export', prefix], { socket: source.socket });
    assert.match(exported.stderr, /^exported 100,000 entries in \d+ blocks: [^\n]* written in [\d.]+ s\n$/);
    const target = await startNode({ name: 'pipe-target', args: noGc });
    const imported = await runCliOk(['import'], { socket: target.socket, input: exported.stdout });
    assert.match(imported.stderr, /^imported 100,000 entries in \d+ blocks: 100,000 applied/);
    assert.deepEqual(await rootOf(target), prefixRoot);
    await target.stop();
  });

  it('imported entries reach the other nodes by gossip at once, not at the next anti-entropy round', { timeout: 90_000 }, async () => {
    // Anti-entropy every 10 minutes: only gossip can bring the imported keys within the wait.
    const args = ['--sync-interval-ms', '600000'];
    const a = await startNode({ name: 'gossip-a', args });
    const b = await startNode({ name: 'gossip-b', args, bootstrap: [a] });
    await waitMesh([a, b]);
    // The catch-up sessions of the connection are over, and gossip flows from a to b.
    await waitFor(async () => (await b.peers()).some((p) => Number(p.lastSyncMs) > 0) && (await a.peers()).some((p) => Number(p.lastSyncMs) > 0), {
      deadlineMs: 20_000,
      what: 'the first sync sessions to end',
    });
    await a.client.put('gossip/ready', Buffer.from('x'));
    await waitFor(() => hasKey(b, 'gossip/ready'), { deadlineMs: 20_000, what: 'b to get a write by gossip' });
    const syncedBefore = counter(await b.status(), 'sync_entries_applied');
    // key/00000000 .. key/00000999: a thousand gossip messages.
    const file = join(dir, 'gossip.ckvb');
    await runCliOk(['export', 'key/00000', '-o', file], { socket: source.socket });
    await runCliOk(['import', '-i', file], { socket: a.socket, timeoutMs: 60_000 });
    await waitFor(async () => (await rootOf(b)).keys === 1000 + 1, { deadlineMs: 30_000, what: 'b to hold the 1,000 imported keys' });
    assert.equal(counter(await b.status(), 'sync_entries_applied'), syncedBefore, 'no entry came by anti-entropy');
    await Promise.all([a.stop(), b.stop()]);
  });

  it('Import refuses a batch that is not what it says (INVALID_ARGUMENT) and applies nothing of it', async () => {
    const before = await rootOf(source);
    const one = encodeEntry({ key: 'bad/1', value: Buffer.from('x'), version: { hlc: 1n << 16n, node: '00000000000000aa' } });
    for (const [bytes, count, pattern] of [
      [Buffer.concat([one, Buffer.from([0xff])]), 1, /holds more than the 1 entries it announced/],
      [Buffer.concat([one, one.subarray(0, 5)]), 2, /entry 1 does not decode/],
      [one, 2, /holds 1 entries, not the 2 it announced/],
      [one, importEntriesMax + 1, /the limit is 65536/],
    ] as const) {
      await assert.rejects(source.client.importEntries(bytes, count), (error: unknown) => {
        assert.ok(error instanceof GrpcStatusError, String(error));
        assert.equal(error.code, GrpcStatus.INVALID_ARGUMENT);
        assert.match(error.details, pattern);
        return true;
      });
    }
    assert.deepEqual(await rootOf(source), before);
  });

  it('refuses a missing -i file and an -o directory (exit 2), and a file that is not a backup (exit 9)', async () => {
    const missing = await runCli(['import', '-i', join(dir, 'nope.ckvb')], { socket: source.socket });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /^ckv: cannot read -i .*nope\.ckvb: /);
    const toDir = await runCli(['export', '-o', dir], { socket: source.socket });
    assert.equal(toDir.code, 2, toDir.stderr);
    const notBackup = join(dir, 'not-a-backup.txt');
    writeFileSync(notBackup, 'hello, this is not a backup file at all\n');
    const foreign = await runCli(['import', '-i', notBackup], { socket: source.socket });
    assert.equal(foreign.code, 9, foreign.stderr);
    assert.match(foreign.stderr, /^ckv: backup damaged at byte offset 0: not a ckv backup file/);
  });
});
