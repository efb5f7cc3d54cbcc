/**
 * Issue 13's burst, as its side-by-side table defines it for every system: `writes` puts sent
 * to node 1 (here by PutMany of `chunk`, `inFlight` calls at once, through n00), timed until
 * every node holds the last one (a Get of it on each node every 2 ms). Used by the throughput
 * scenario's "first burst" rows and by first-burst.ts.
 */
import { putChunked, waitFor, type Cluster } from '../../harness/index.js';

export interface BurstTimes {
  /** First put sent -> the last PutMany acknowledged. */
  ackMs: number;
  /** First put sent -> every node holds the last put's key. */
  heldMs: number;
}

export async function burstUntilHeld(
  cluster: Cluster,
  writes: number,
  keyOf: (i: number) => string,
  valueOf: (i: number) => Uint8Array,
  chunk: number,
  inFlight: number,
): Promise<BurstTimes> {
  const started = performance.now();
  const ackMs = await putChunked(cluster.nodes[0]!.client, writes, keyOf, valueOf, chunk, inFlight);
  const last = keyOf(writes - 1);
  await Promise.all(
    cluster.nodes.map((node) => waitFor(async () => (await node.client.get(last)).found, { what: `${node.name} to hold ${last}`, deadlineMs: 60_000, intervalMs: 2 })),
  );
  return { ackMs, heldMs: performance.now() - started };
}
