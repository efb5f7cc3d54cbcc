/**
 * A node (re)joining a cluster that holds entries it lacks: shared by catch-up (a restarted
 * node) and new-node (a fresh one). The node is spawned; on the bench's clock we note its
 * first 'member up' log line ("peer up" in the tables: its first cluster connection is
 * identified and its member is up, the catch-up session starts right after; before the
 * membership core the line was 'peer up') and poll its Status (every 10 ms, 50 ms after 2 s) until its Merkle root and key count equal the
 * cluster's. Its own counters (fresh process, so since start) give the sync bytes.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster, NodeProcess } from '../../harness/index.js';
import { counter, sleep } from '../../harness/index.js';
import { settledStatus } from '../lib/cluster.js';
import { processCost, type ProcessCost } from '../lib/cpu-load.js';

export interface SyncLine {
  node: string;
  peer: string;
  outcome: string;
  received: number;
  sent: number;
  ms: number;
  /** Bench clock when the line arrived (session end). */
  atMs: number;
}

export function syncLines(nodes: NodeProcess[], sinceMs: number): SyncLine[] {
  return nodes.flatMap((node) =>
    node.linesSince(sinceMs, / info sync /).map((line) => {
      const field = (name: string): string => new RegExp(`\\b${name}=(\\S+)`).exec(line.text)?.[1] ?? '';
      return {
        node: node.name,
        peer: field('peer').slice(-6),
        outcome: field('outcome'),
        received: Number(field('received')),
        sent: Number(field('sent')),
        ms: Number(field('ms')),
        atMs: line.atMs,
      };
    }),
  );
}

/** The log line that says a peer is up (the membership core's; older nodes logged 'peer up'). */
export const peerUpLine = / info (member|peer) up /;

export interface JoinResult {
  node: NodeProcess;
  /** spawn -> answers Status. */
  readyMs: number;
  /** spawn -> first 'peer up' line. */
  peerUpMs: number;
  /** first 'peer up' -> root equal (what the targets use). */
  catchUpMs: number;
  /** spawn -> root equal. */
  totalMs: number;
  /** The root was already equal at the first Status answer: catchUpMs is an upper bound. */
  doneBeforeReady: boolean;
  bytesIn: number;
  bytesOut: number;
  entriesApplied: number;
  sessions: SyncLine[];
  /** The node process's CPU and first-touch page faults from spawn to root equal (Linux). */
  costAtDone: ProcessCost | undefined;
}

/**
 * `spawn()` starts the node (NodeProcess.start under the hood); resolves once its root equals
 * `targetRoot` with `targetKeys` live keys.
 */
export async function timeJoin(
  cluster: Cluster,
  spawn: () => Promise<NodeProcess>,
  targetRoot: string,
  targetKeys: string,
  timeoutMs: number,
): Promise<JoinResult> {
  const spawnAt = performance.now();
  const node = await spawn();
  const readyAt = node.readyAtMs;
  let doneAt = Number.NaN;
  let costAtDone: ProcessCost | undefined;
  let first = true;
  let doneBeforeReady = false;
  // Status every 10 ms for the first 2 s, then every 50 ms: each Status costs the node a
  // readdir + stat of its LevelDB files, which adds up over a long catch-up.
  for (;;) {
    const status = await node.status();
    if (status.merkleRoot === targetRoot && status.keyCount === targetKeys) {
      doneAt = performance.now();
      costAtDone = processCost(node.pid);
      doneBeforeReady = first;
      break;
    }
    first = false;
    const elapsed = performance.now() - readyAt;
    if (elapsed > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${node.name} to reach the cluster's root (${targetKeys} keys; has ${status.keyCount})`);
    await sleep(elapsed < 2000 ? 10 : 50);
  }
  const up = await node.waitLine(peerUpLine, node.spawnedAtMs, 5000).catch(() => undefined);
  // Without the line (it did not come within 5 s) the catch-up is timed from ready: an upper
  // bound when the node caught up before it answered, a lower one otherwise.
  const upAt = up?.atMs ?? readyAt;
  // Byte counters are added when a session ends, after its entries are applied: let them settle.
  const settled = await settledStatus(node, doneAt - upAt);
  return {
    node,
    readyMs: readyAt - spawnAt,
    peerUpMs: upAt - spawnAt,
    catchUpMs: doneAt - upAt,
    totalMs: doneAt - spawnAt,
    doneBeforeReady,
    bytesIn: counter(settled, 'sync_bytes_in'),
    bytesOut: counter(settled, 'sync_bytes_out'),
    entriesApplied: counter(settled, 'sync_entries_applied'),
    costAtDone,
    sessions: syncLines(cluster.nodes.includes(node) ? cluster.nodes : [...cluster.nodes, node], spawnAt).filter((s) => s.received + s.sent > 0),
  };
}
