/**
 * Catch-up in process, over two real LevelDB replicas and the loopback session (no network,
 * no process start): what the sync session itself costs when an initiator that held a
 * watermark for its peer missed K writes, by delta and (the same data, no watermark) by
 * descent; and a new node receiving everything. One line per case; the times are wall time
 * on whatever else the machine is doing, so compare cases of one run. `--restricted P` adds
 * the partitioned case: a session restricted to P of the 256 partitions (sync 1.2.0, which has
 * no delta) catching up the same missed writes by descent (what a per-partition delta could
 * save at most; docs/partitioned-mode.md "Delta catch-up per partition").
 *
 *   node dist/bench/catch-up-core.js [--shared 30000] [--missed 10000] [--runs 3] [--only delta|serve] [--restricted 154]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry } from '../src/core/entry.js';
import { hlcPack } from '../src/core/hlc.js';
import { partitionBitmap } from '../src/core/layout.js';
import { MerkleTree } from '../src/core/merkle.js';
import { Replica } from '../src/core/replica.js';
import { runLoopbackSession } from '../src/core/sync-loopback.js';
import { LevelStore } from '../src/store/level-store.js';

const { values } = parseArgs({
  options: {
    shared: { type: 'string', default: '30000' },
    missed: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    /** `delta` to run only the delta case (for a profile); `serve` the serving side alone (serveOnly). */
    only: { type: 'string' },
    restricted: { type: 'string' },
  },
});
const shared = Number(values.shared);
const missed = Number(values.missed);
const runs = Number(values.runs);
const cluster = 'bench';
const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = Date.now();

function entries(prefix: string, count: number, hlcMs: number): Entry[] {
  const value = new Uint8Array(100).fill(7);
  return Array.from({ length: count }, (_, i) => ({ key: `${prefix}/${String(i).padStart(7, '0')}`, value, version: { hlc: hlcPack(hlcMs, 0), node: nodeB } }));
}

async function load(replica: Replica, list: Entry[]): Promise<void> {
  for (let i = 0; i < list.length; i += 2000) await replica.applyRemote(list.slice(i, i + 2000));
}

const stores = new Map<Replica, LevelStore>();

async function open(dir: string, nodeId: string, name: string): Promise<Replica> {
  const store = new LevelStore(join(dir, name));
  const replica = await Replica.open({ nodeId, store, wallClockMs: () => Date.now(), rng: Math.random });
  stores.set(replica, store);
  return replica;
}

async function close(replica: Replica): Promise<void> {
  await replica.close();
  await stores.get(replica)!.close();
}

const restricted = values.restricted === undefined ? undefined : partitionBitmap(Array.from({ length: Number(values.restricted) }, (_, p) => p));

async function session(
  a: Replica,
  b: Replica,
  withWatermark: boolean,
  partitions?: Uint8Array,
): Promise<{ ms: number; received: number; delta: number | undefined; rounds: number }> {
  const startedMs = performance.now();
  const result = await runLoopbackSession(
    { ctx: a.syncContext({ cluster, partitions, ...(withWatermark ? { peerNodeId: b.nodeId } : {}) }), apply: (list) => a.applyReceived(list) },
    { ctx: b.syncContext({ cluster, partitions }), apply: (list) => b.applyReceived(list) },
    42,
  );
  const ms = performance.now() - startedMs;
  a.recordSession(b.nodeId, result.initiator);
  return { ms, received: result.initiator.entriesReceived, delta: result.initiator.delta?.entries, rounds: result.initiator.rounds };
}

/**
 * `--only serve`: the serving side of a new node's whole state alone (B's scan and frames,
 * plus the initiator's decode): an empty initiator whose apply drops the entries. CPU time
 * of the process, which moves less than wall time when other work shares the machine.
 */
async function serveOnly(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-catch-up-core-'));
  try {
    const b = await open(dir, nodeB, 'b');
    await load(b, entries('s', shared + missed, baseMs - 60_000));
    const empty = { async *scanHash() {}, async *scanHashPrefixes() {}, async *scanSince() {} };
    for (let run = 0; run < runs; run++) {
      let received = 0;
      const cpu = process.cpuUsage();
      const startedMs = performance.now();
      await runLoopbackSession(
        { ctx: { tree: new MerkleTree(b.depth), store: empty, cluster }, apply: async (list) => void (received += list.length) },
        { ctx: b.syncContext({ cluster }), apply: (list) => b.applyReceived(list) },
        42,
      );
      const used = process.cpuUsage(cpu);
      console.log(`serve run ${run + 1}: ${received} entries, ${(performance.now() - startedMs).toFixed(0)} ms, CPU ${((used.user + used.system) / 1000).toFixed(0)} ms`);
    }
    await close(b);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.only === 'serve') {
  await serveOnly();
  process.exit(0);
}

for (let run = 0; run < runs; run++) {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-catch-up-core-'));
  try {
    // Two pairs with the same data: A has the shared entries and (pair 1) B's watermark.
    const sharedEntries = entries('s', shared, baseMs - 60_000);
    const missedEntries = entries('m', missed, baseMs - 30_000);
    const results: string[] = [];
    const cases: ('delta' | 'descent' | 'restricted')[] = values.only === 'delta' ? ['delta'] : ['delta', 'descent', ...(restricted ? ['restricted' as const] : [])];
    for (const kind of cases) {
      const withWatermark = kind === 'delta';
      const partitions = kind === 'restricted' ? restricted : undefined;
      const a = await open(dir, nodeA, `a${kind}`);
      const b = await open(dir, nodeB, `b${kind}`);
      await load(a, sharedEntries);
      await load(b, sharedEntries);
      const first = await session(a, b, withWatermark, partitions); // in sync: records B's position
      await load(b, missedEntries);
      const timed = await session(a, b, withWatermark, partitions);
      if (first.received !== 0 || (partitions === undefined && timed.received < missed)) throw new Error(`unexpected session: ${JSON.stringify({ first, timed })}`);
      const name = kind === 'restricted' ? `restricted to ${values.restricted} partitions, descent` : kind === 'delta' ? 'delta  ' : 'descent';
      results.push(`${name} ${timed.ms.toFixed(0).padStart(6)} ms (received ${timed.received}, delta ${timed.delta ?? '-'}, rounds ${timed.rounds})`);
      await close(a);
      await close(b);
    }
    // A new node: everything B holds, in one scan.
    const fresh = await open(dir, nodeA, 'fresh');
    const b = await open(dir, nodeB, 'bdelta');
    const joined = await session(fresh, b, true);
    results.push(`new node ${joined.ms.toFixed(0).padStart(5)} ms (received ${joined.received})`);
    await close(fresh);
    await close(b);
    console.log(`run ${run + 1}: shared ${shared}, missed ${missed}: ${results.join('; ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
