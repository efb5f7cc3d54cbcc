/**
 * What a full scan of a node's store costs, in one process on a real LevelStore (issue 13).
 *
 * Writes `--entries` entries of 100-byte values through a Replica (every `--ttl-every`th with
 * a TTL), reopens the store (so the rows are read from tables, not the memtable), then times,
 * in alternating rounds, wall and CPU of:
 * - the TTL sweeper's start scan as it was: every entry decoded (`Replica.scanHash('')`);
 * - the start scan now (`Replica.scanExpiring`: each row's flags byte read in place, only the
 *   rows with an expiry decoded);
 * - the rows alone (`LevelStore.scanAllEncoded`, what a new node's stream reads): classic-level
 *   makes one Buffer per row, the floor of any scan here;
 * - the start scan after a kill (`scanReplicaState`: the Merkle tree and key filter from those
 *   rows, two SHA-256 an entry);
 * then a start after a kill whose snapshot is behind by 1, 1,000 and 10,000 writes: replayed
 * (replica-replay.ts) against scanned (`replayCost`).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/scan-cost.js [--entries 100000] [--ttl-every 10000] [--rounds 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Entry } from '../src/core/entry.js';
import { merkleDepthDefault } from '../src/core/limits.js';
import { Replica } from '../src/core/replica.js';
import { scanReplicaState } from '../src/core/replica-scan.js';
import { LevelStore } from '../src/store/level-store.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    'ttl-every': { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
  },
});
const entries = Number(values.entries);
const ttlEvery = Number(values['ttl-every']);
const rounds = Number(values.rounds);
const nodeId = '0123456789abcdef';
/** Puts per writeMany call while loading. */
const loadBatch = 1000;

const cpuMs = (): number => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

async function* once<T>(make: () => Promise<T>): AsyncIterable<T> {
  yield await make();
}

async function open(dir: string): Promise<{ store: LevelStore; replica: Replica }> {
  const store = new LevelStore(dir);
  await store.open();
  return { store, replica: await Replica.open({ nodeId, store, wallClockMs: () => Date.now() }) };
}

async function close({ store, replica }: { store: LevelStore; replica: Replica }): Promise<void> {
  await replica.close();
  await store.close();
}

/**
 * A start after a kill whose snapshot is behind (src/core/replica-replay.ts): a clean stop saves
 * a snapshot, then tails of 1, 1,000 and 10,000 overwrites (spread over the keys) are written
 * and the store closed without a new one, as a kill; each is timed as Replica.open (replay)
 * against Replica.open with the snapshot ignored (a scan), alternated `rounds` times.
 */
async function replayCost(dir: string): Promise<void> {
  let { store, replica } = await open(dir);
  await replica.close();
  await replica.saveSnapshot();
  await store.close();
  let written = 0;
  for (const tail of [1, 1_000, 10_000]) {
    ({ store, replica } = await open(dir));
    const value = new Uint8Array(100).fill(written % 251);
    const stride = Math.max(1, Math.floor(entries / tail));
    for (let i = written; i < tail; i += loadBatch) {
      const writes = [];
      for (let j = i; j < Math.min(tail, i + loadBatch); j++) writes.push({ key: `scan/${String((j * stride) % entries).padStart(8, '0')}`, value });
      await replica.writeMany(writes);
    }
    written = tail;
    await replica.close(); // no saveSnapshot: the store is left as a kill leaves it
    await store.close();
    for (let round = 1; round <= rounds; round++) {
      for (const useSnapshot of [true, false]) {
        const reopened = new LevelStore(dir);
        await reopened.open();
        const startedMs = performance.now();
        const opened = await Replica.open({ nodeId, store: reopened, wallClockMs: () => Date.now(), useSnapshot });
        const wallMs = performance.now() - startedMs;
        const from = opened.openedFrom.source === 'snapshot' ? `snapshot, ${opened.openedFrom.replayed ?? 0} replayed` : `scan (${opened.openedFrom.snapshot})`;
        console.log(`tail ${String(tail).padStart(6)}  round ${round}  ${(useSnapshot ? 'open (replay)' : 'open (scan)').padEnd(14)} ${wallMs.toFixed(0).padStart(6)} ms  ${from}`);
        await opened.close();
        await reopened.close();
      }
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'ckv-scan-cost-'));
try {
  const loading = await open(dir);
  const value = new Uint8Array(100).fill(7);
  for (let i = 0; i < entries; i += loadBatch) {
    const writes = [];
    for (let j = i; j < Math.min(entries, i + loadBatch); j++) {
      writes.push({ key: `scan/${String(j).padStart(8, '0')}`, value, ...(j % ttlEvery === 0 ? { ttlMs: 3_600_000 } : {}) });
    }
    await loading.replica.writeMany(writes);
  }
  await close(loading);
  const { store, replica } = await open(dir);
  const scans: [string, () => AsyncIterable<unknown>][] = [
    ['every entry decoded (scanHash)', () => replica.scanHash('')],
    ['expiring rows only (scanExpiring)', () => replica.scanExpiring()],
    ['rows alone (scanAllEncoded)', () => store.scanAllEncoded()],
    // What a start after a kill does (Replica.open without a current snapshot): one item, the state.
    ['tree and filter (scanReplicaState)', () => once(() => scanReplicaState(store, merkleDepthDefault))],
  ];
  console.log(`${entries} entries, one in ${ttlEvery} with a TTL`);
  for (let round = 1; round <= rounds; round++) {
    for (const [name, scan] of scans) {
      const startedMs = performance.now();
      const startedCpuMs = cpuMs();
      let items = 0;
      let expiring = 0;
      for await (const item of scan()) {
        if (Array.isArray(item)) items += item.length;
        else {
          items++;
          if ((item as Entry).expiresAtMs !== undefined) expiring++;
        }
      }
      const wallMs = performance.now() - startedMs;
      console.log(`round ${round}  ${name.padEnd(36)} ${wallMs.toFixed(0).padStart(6)} ms wall ${(cpuMs() - startedCpuMs).toFixed(0).padStart(6)} ms CPU  (${items} items, ${expiring} with an expiry)`);
    }
  }
  await close({ store, replica });
  await replayCost(dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
