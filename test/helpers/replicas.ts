/** Test helpers: replicas over memory stores with a controllable wall clock. */
import { Replica, type ReplicaOptions } from '../../src/core/replica.js';
import { runLoopbackSession, type LoopbackResult } from '../../src/core/sync-loopback.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { utf8 } from '../../src/core/bytes.js';
import type { Entry } from '../../src/core/entry.js';

export interface TestClock {
  ms: number;
}

export async function memoryReplica(
  nodeId: string,
  clock: TestClock = { ms: 1_700_000_000_000 },
  extra: Partial<ReplicaOptions> = {},
): Promise<Replica> {
  return Replica.open({ nodeId, store: new MemoryStore(), wallClockMs: () => clock.ms, ...extra });
}

export function syncPair(a: Replica, b: Replica, salt = 1234, cluster = 'test'): Promise<LoopbackResult> {
  return runLoopbackSession(
    { ctx: a.syncContext({ cluster }), apply: (entries) => a.applyReceived(entries) },
    { ctx: b.syncContext({ cluster }), apply: (entries) => b.applyReceived(entries) },
    salt,
  );
}

export async function allEntries(replica: Replica): Promise<Map<string, Entry>> {
  const map = new Map<string, Entry>();
  for await (const entry of replica.scanHash('')) map.set(entry.key, entry);
  return map;
}

export function value(text: string): Uint8Array {
  return utf8(text);
}
