/**
 * The node's local write path in process, against raw LevelDB, with the same keys and values.
 *
 * Variants, each on a fresh directory, interleaved within every repeat so load on a shared
 * machine hits them alike:
 * - `level`: raw `level`, `db.batch([...])` of 256 puts (utf8 keys, 100-byte values): the
 *   baseline the control API's throughput target is stated against.
 * - `store`: LevelStore.write of 256 entries a batch (entry + key index + HLC bound).
 * - `replica 256` / `replica 1000`: Replica.put on a LevelStore with that many puts in flight
 *   (group commit, merge, Merkle update, acks): the node's write path without gRPC and gossip.
 * - `writeMany`: Replica.writeMany of 256 puts a call, 4 calls in flight (one promise a call).
 * - `writeMany, first rewrite` / `second rewrite`: the same, timed over the second / third
 *   pass on the same keys (each put replaces a stored version: the first rewrite reads it from
 *   the store, the second finds it in the replica's version cache).
 * Prints puts/s per variant (median of the repeats) and the ratio to `level`, and the main
 * thread's time per entry in LevelStore.write (storeWriteMainThreadUs).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/write-path.js [--puts N] [--reps N] [--json FILE]
 * Defaults: 50,000 puts of 100 bytes, 7 repeats: about 10 s on 2 cores (40 s against the
 * write path before this bench was written).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Level } from 'level';
import { ByteReader, ByteWriter } from '../src/core/bytes.js';
import { encodeEntry, readEntry, ReceivedValues, writeEntry, type Entry } from '../src/core/entry.js';
import { hlcPack } from '../src/core/hlc.js';
import { valueBytesMax } from '../src/core/limits.js';
import { Replica } from '../src/core/replica.js';
import { LevelStore } from '../src/store/level-store.js';
import { formatInt, formatPercent, median } from './lib/stats.js';

const valueBytes = 100;
const batchOps = 256;
const benchNodeId = '00000000000000b1';
const usage = 'usage: node dist/bench/write-path.js [--puts N] [--reps N] [--json FILE]';

interface Options {
  puts: number;
  reps: number;
  json: string | undefined;
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { puts: 50_000, reps: 7, json: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') {
      options.json = argv[++i];
      continue;
    }
    const value = Number(argv[++i]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${arg} needs a positive integer\n${usage}`);
    if (arg === '--puts') options.puts = value;
    else if (arg === '--reps') options.reps = value;
    else throw new Error(`unknown option ${arg}\n${usage}`);
  }
  return options;
}

interface Workload {
  keys: string[];
  values: Uint8Array[];
}

/** Keys like the control API bench's; values are views into one random pool. */
function workload(tag: string, count: number): Workload {
  const pool = randomBytes(count * valueBytes);
  return {
    keys: Array.from({ length: count }, (_, i) => `bench:${tag}:${String(i).padStart(6, '0')}`),
    values: Array.from({ length: count }, (_, i) => new Uint8Array(pool.buffer, pool.byteOffset + i * valueBytes, valueBytes)),
  };
}

/** Runs task(0..n-1) with at most `width` pending at once. */
async function inFlight(n: number, width: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

async function timedRate(count: number, fn: () => Promise<void>): Promise<number> {
  const startedMs = performance.now();
  await fn();
  return count / ((performance.now() - startedMs) / 1000);
}

/** Times `write` over the workload cut into batches of `batchOps`. */
async function batchedRate(w: Workload, write: (keys: string[], values: Uint8Array[], first: number) => Promise<void>): Promise<number> {
  return timedRate(w.keys.length, async () => {
    for (let first = 0; first < w.keys.length; first += batchOps) {
      await write(w.keys.slice(first, first + batchOps), w.values.slice(first, first + batchOps), first);
    }
  });
}

async function rawLevel(dir: string, w: Workload): Promise<number> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    return await batchedRate(w, (keys, values) => db.batch(keys.map((key, i) => ({ type: 'put' as const, key, value: values[i]! }))));
  } finally {
    await db.close();
  }
}

/** Opens a LevelStore in `dir` for `run`, and closes it whatever happens. */
async function withStore<T>(dir: string, run: (store: LevelStore) => Promise<T>): Promise<T> {
  const store = new LevelStore(dir);
  await store.open();
  try {
    return await run(store);
  } finally {
    await store.close();
  }
}

function storeWrites(dir: string, w: Workload): Promise<number> {
  const wallMs = Date.now();
  return withStore(dir, (store) =>
    batchedRate(w, (keys, values, first) => {
      const version = (i: number) => ({ hlc: hlcPack(wallMs, (first + i) % 0xffff), node: benchNodeId });
      const entries: Entry[] = keys.map((key, i) => ({ key, value: values[i]!, version: version(i) }));
      return store.write(entries, entries.at(-1)!.version.hlc);
    }),
  );
}

function replicaPuts(dir: string, w: Workload, width: number): Promise<number> {
  return withStore(dir, async (store) => {
    const replica = await Replica.open({ nodeId: benchNodeId, store, wallClockMs: Date.now, onApplied: () => undefined });
    const rate = await timedRate(w.keys.length, () => inFlight(w.keys.length, width, (i) => replica.put(w.keys[i]!, w.values[i]!)));
    await replica.close();
    return rate;
  });
}

/** Replica.writeMany of `batchOps` puts a call, `calls` calls in flight (like the control API's PutMany). */
function replicaWriteMany(dir: string, w: Workload, calls: number): Promise<number> {
  return withStore(dir, async (store) => {
    const replica = await Replica.open({ nodeId: benchNodeId, store, wallClockMs: Date.now, onApplied: () => undefined });
    const chunks = Math.ceil(w.keys.length / batchOps);
    const rate = await timedRate(w.keys.length, () =>
      inFlight(chunks, calls, (c) => {
        const first = c * batchOps;
        return replica.writeMany(w.keys.slice(first, first + batchOps).map((key, i) => ({ key, value: w.values[first + i]! })));
      }),
    );
    await replica.close();
    return rate;
  });
}
/**
 * Main-thread time of LevelStore.write per entry: the synchronous part of each call (rows
 * encoded and handed to the native batch), before the batch goes to LevelDB's thread. Written
 * as the replica writes (seqs given, no read of previous versions). What the node's main thread
 * spends per stored entry where the throughput above is bound by LevelDB's own thread.
 */
/**
 * The main thread's time in LevelStore.write per entry (the rows handed to LevelDB's batch;
 * the batch's own write runs on the thread pool). `received`: the entries come with their
 * bytes as received (WriteIndex.encodings, as a sync frame or gossip message gives them),
 * which the rows copy instead of encoding the entries again; made before the timing.
 */
async function storeWriteMainThreadUs(dir: string, w: Workload, received = false): Promise<number> {
  const wallMs = Date.now();
  let syncMs = 0;
  await withStore(dir, async (store) => {
    for (let first = 0; first < w.keys.length; first += batchOps) {
      const keys = w.keys.slice(first, first + batchOps);
      const entries: Entry[] = keys.map((key, i) => ({ key, value: w.values[first + i]!, version: { hlc: hlcPack(wallMs, (first + i) % 0xffff), node: benchNodeId } }));
      const index = { seqFirst: first + 1, previousSeqs: keys.map(() => undefined), ...(received ? { encodings: entries.map((entry) => encodeEntry(entry)) } : {}) };
      const startedMs = performance.now();
      const writing = store.write(entries, entries.at(-1)!.version.hlc, undefined, index);
      syncMs += performance.now() - startedMs;
      await writing;
    }
  });
  return (syncMs * 1000) / w.keys.length;
}

/**
 * readEntry's time per received entry (frames of batchOps entries, as decodeFrame reads them;
 * the decoded entries of the last 8 frames kept alive, as a session's pipeline keeps them).
 * `shared`: each frame's values copied into shared chunks (ReceivedValues, what sync frames and
 * gossip messages do); otherwise a copy of its own per value (before 2026-12-06).
 */
function decodeUs(w: Workload, shared: boolean): number {
  const wallMs = Date.now();
  const frames: Uint8Array[] = [];
  for (let first = 0; first < w.keys.length; first += batchOps) {
    const writer = new ByteWriter();
    for (let i = first; i < Math.min(first + batchOps, w.keys.length); i++) {
      writeEntry(writer, { key: w.keys[i]!, value: w.values[i]!, version: { hlc: hlcPack(wallMs, i % 0xffff), node: benchNodeId } });
    }
    frames.push(writer.finish());
  }
  const kept: Entry[][] = [];
  const startedMs = performance.now();
  for (const frame of frames) {
    const reader = new ByteReader(frame);
    const values = shared ? new ReceivedValues(frame.byteLength) : undefined;
    const entries: Entry[] = [];
    while (reader.remaining > 0) entries.push(readEntry(reader, valueBytesMax, values));
    kept.push(entries);
    if (kept.length > 8) kept.shift();
  }
  return ((performance.now() - startedMs) * 1000) / w.keys.length;
}

interface Variant {
  name: string;
  run: (dir: string, w: Workload) => Promise<number>;
}

const variants: Variant[] = [
  { name: `level db.batch(${batchOps})`, run: rawLevel },
  { name: `LevelStore.write(${batchOps})`, run: storeWrites },
  { name: 'Replica.put, 256 in flight', run: (dir, w) => replicaPuts(dir, w, 256) },
  { name: 'Replica.put, 1000 in flight', run: (dir, w) => replicaPuts(dir, w, 1000) },
];
// Replica.writeMany only exists from this change on: the bench also runs against older builds.
if ('writeMany' in Replica.prototype) {
  variants.push({ name: `Replica.writeMany(${batchOps}), 4 in flight`, run: (dir, w) => replicaWriteMany(dir, w, 4) });
  variants.push({ name: `Replica.writeMany(${batchOps}), 4 in flight, first rewrite`, run: (dir, w) => replicaOverwrites(dir, w, 4, 2) });
  variants.push({ name: `Replica.writeMany(${batchOps}), 4 in flight, second rewrite`, run: (dir, w) => replicaOverwrites(dir, w, 4, 3) });
}

/**
 * Replica.writeMany as above, timed over pass `timedPass` (2 or 3) on the same keys: every put
 * overwrites a stored key, for the first time (2) or again (3: the replica's version cache
 * knows what it replaces).
 */
function replicaOverwrites(dir: string, w: Workload, calls: number, timedPass: number): Promise<number> {
  return withStore(dir, async (store) => {
    const replica = await Replica.open({ nodeId: benchNodeId, store, wallClockMs: Date.now, onApplied: () => undefined });
    const chunks = Math.ceil(w.keys.length / batchOps);
    const pass = (): Promise<void> =>
      inFlight(chunks, calls, (c) => {
        const first = c * batchOps;
        return replica.writeMany(w.keys.slice(first, first + batchOps).map((key, i) => ({ key, value: w.values[first + i]! })));
      });
    for (let untimed = 1; untimed < timedPass; untimed++) await pass();
    const rate = await timedRate(w.keys.length, pass);
    await replica.close();
    return rate;
  });
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const work = mkdtempSync(join(tmpdir(), 'ckv-write-path-'));
  const rates = variants.map(() => [] as number[]);
  const mainThreadUs: number[] = [];
  const receivedUs: number[] = [];
  const decodeSharedUs: number[] = [];
  const decodeOwnUs: number[] = [];
  console.log(`write path: ${formatInt(options.puts)} puts of ${valueBytes} B, ${options.reps} repeats; ${availableParallelism()} CPUs, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  try {
    // Warm-up: JIT and the native addon, not counted.
    const warm = workload('warm', 2000);
    for (const [i, variant] of variants.entries()) {
      await variant.run(join(work, `warm-${i}`), warm);
      rmSync(join(work, `warm-${i}`), { recursive: true, force: true });
    }
    for (let rep = 0; rep < options.reps; rep++) {
      const w = workload(`r${rep}`, options.puts);
      const line: string[] = [];
      for (const [i, variant] of variants.entries()) {
        const dir = join(work, `${rep}-${i}`);
        rates[i]!.push(await variant.run(dir, w));
        rmSync(dir, { recursive: true, force: true });
        line.push(formatInt(rates[i]!.at(-1)!));
      }
      mainThreadUs.push(await storeWriteMainThreadUs(join(work, `${rep}-main-thread`), w));
      rmSync(join(work, `${rep}-main-thread`), { recursive: true, force: true });
      receivedUs.push(await storeWriteMainThreadUs(join(work, `${rep}-received`), w, true));
      rmSync(join(work, `${rep}-received`), { recursive: true, force: true });
      // Alternated, so that neither always runs on the heap the other left.
      if (rep % 2 === 0) decodeSharedUs.push(decodeUs(w, true));
      decodeOwnUs.push(decodeUs(w, false));
      if (rep % 2 === 1) decodeSharedUs.push(decodeUs(w, true));
      console.log(
        `  rep ${rep + 1}/${options.reps}: ${line.join(' / ')}; LevelStore.write main thread ${mainThreadUs.at(-1)!.toFixed(2)} us/entry (${receivedUs.at(-1)!.toFixed(2)} with received bytes); decode ${decodeSharedUs.at(-1)!.toFixed(2)} us/entry (${decodeOwnUs.at(-1)!.toFixed(2)} with a copy per value)`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const baseline = median(rates[0]!);
  const rows = variants.map((variant, i) => ({ name: variant.name, putsPerS: median(rates[i]!), ratio: median(rates[i]!) / baseline }));
  const width = Math.max(...rows.map((row) => row.name.length));
  console.log(`\n${'variant'.padEnd(width)}  ${'puts/s'.padStart(9)}  vs level`);
  for (const row of rows) console.log(`${row.name.padEnd(width)}  ${formatInt(row.putsPerS).padStart(9)}  ${formatPercent(row.ratio).padStart(8)}`);
  console.log(`LevelStore.write(${batchOps}) main-thread time: ${median(mainThreadUs).toFixed(2)} us an entry (median; key hashes included)`);
  console.log(`LevelStore.write(${batchOps}) main-thread time, entries with their received bytes: ${median(receivedUs).toFixed(2)} us an entry (median)`);
  console.log(`readEntry of received frames of ${batchOps}: ${median(decodeSharedUs).toFixed(2)} us an entry with the values in shared chunks, ${median(decodeOwnUs).toFixed(2)} with a copy per value (medians)`);
  console.log(`(load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  if (options.json) writeFileSync(options.json, JSON.stringify({ options, rates: Object.fromEntries(variants.map((v, i) => [v.name, rates[i]])), rows, mainThreadUs, receivedUs, decodeSharedUs, decodeOwnUs }, null, 2));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
