/**
 * Clusters of real nodes on 127.0.0.1 and waits on cluster-wide conditions.
 *
 * Formation: nodes listen on loopback (free ports, no mDNS) and find each other through
 * `--bootstrap` addresses of nodes already running; the members gossip spreads the rest, so
 * a cluster becomes a full mesh. `waitMesh` (every node lists every other as up, through
 * its `Peers` call), `waitLinked` / `waitStar` (given pairs only) and `waitConverged` (same
 * Merkle root and key count everywhere) poll with deadlines. `Cluster` starts and owns N
 * nodes named n00, n01, ... in one temp dir: node 0 first, then the rest in batches, each
 * bootstrapped to n00 and n01 (or to every earlier node). `putMany` loads a node with many
 * puts in flight; `putChunked` with PutMany calls (the bulk API), a few in flight.
 */
import { join } from 'node:path';
import type { ControlClient } from '../src/control/client.js';
import type { StatusMessage, VersionMessage } from '../src/control/proto.js';
import { startNode, type NodeOptions, type NodeProcess } from './node-process.js';
import { removeTempDir, tempDir } from './processes.js';
import { waitFor } from './wait.js';

export function counter(status: StatusMessage, name: string): number {
  return Number(status.counters[name] ?? 0);
}

/** Whether all statuses have the same Merkle root and key count. */
export function sameState(statuses: readonly StatusMessage[]): boolean {
  const first = statuses[0];
  return first !== undefined && statuses.every((s) => s.merkleRoot === first.merkleRoot && s.keyCount === first.keyCount);
}

/** Whether `observer` lists the node with `peerId` as up. */
export async function isUpAt(observer: NodeProcess, peerId: string): Promise<boolean> {
  return (await observer.peers()).some((p) => p.peerId === peerId && p.state === 'up');
}

/** Waits until, for every pair, each node lists the other as up. */
export async function waitLinked(pairs: [NodeProcess, NodeProcess][], deadlineMs = 20_000, intervalMs = 50): Promise<void> {
  const observers = [...new Set(pairs.flat())];
  let missing = 'no answer yet';
  await waitFor(
    async () => {
      const views = await Promise.all(observers.map(async (node) => new Set((await node.peers()).filter((p) => p.state === 'up').map((p) => p.peerId))));
      const up = new Map(observers.map((node, i) => [node, views[i]!]));
      for (const [x, y] of pairs) {
        for (const [a, b] of [[x, y], [y, x]] as const) {
          if (!up.get(a)!.has(b.peerId)) {
            missing = `${a.name} does not list ${b.name} as up`;
            return false;
          }
        }
      }
      return true;
    },
    { deadlineMs, intervalMs, what: `${pairs.map(([x, y]) => `${x.name}<->${y.name}`).join(', ')} to list each other as up` },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; last: ${missing}`);
  });
}

/** Waits until every node lists every other node as up. */
export async function waitMesh(nodes: NodeProcess[], deadlineMs = 20_000, intervalMs = 50): Promise<void> {
  const pairs: [NodeProcess, NodeProcess][] = [];
  for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) pairs.push([nodes[i]!, nodes[j]!]);
  await waitLinked(pairs, deadlineMs, intervalMs);
}

/** Waits until `hub` and each spoke list each other as up (spokes bootstrapped to the hub). */
export async function waitStar(hub: NodeProcess, spokes: NodeProcess[], deadlineMs = 20_000): Promise<void> {
  await waitLinked(spokes.map((spoke) => [hub, spoke]), deadlineMs);
}

/** Waits until all nodes report the same Merkle root and key count; returns the last statuses. */
export async function waitConverged(nodes: NodeProcess[], deadlineMs: number, intervalMs = 100): Promise<StatusMessage[]> {
  let last: StatusMessage[] = [];
  await waitFor(
    async () => {
      last = await Promise.all(nodes.map((node) => node.status()));
      return sameState(last);
    },
    { deadlineMs, intervalMs, what: `${nodes.map((n) => n.name).join(', ')} to converge` },
  ).catch((error: unknown) => {
    const keys = last.map((s, i) => `${nodes[i]?.name}: ${s.keyCount} keys root ${s.merkleRoot.slice(0, 12)}`).join(', ');
    throw new Error(`${(error as Error).message} (last: ${keys})`);
  });
  return last;
}

/**
 * `count` puts through one client with `inFlight` requests outstanding at a time; resolves
 * with the milliseconds until the last one was acknowledged. `onPut` sees each put as it is
 * sent, `onReply` each acknowledgement.
 */
export async function putMany(
  client: ControlClient,
  count: number,
  keyOf: (i: number) => string,
  valueOf: (i: number) => Uint8Array,
  inFlight = 256,
  hooks: { onPut?: (i: number, key: string, value: Uint8Array) => void; onReply?: (i: number, version: VersionMessage) => void } = {},
): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const key = keyOf(i);
      const value = valueOf(i);
      hooks.onPut?.(i, key, value);
      const reply = await client.put(key, value);
      hooks.onReply?.(i, reply.version);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return performance.now() - started;
}

/**
 * `count` puts through the bulk API: PutMany calls of `chunk` keys, `inFlight` calls
 * outstanding at a time; resolves with the milliseconds until the last call was acknowledged.
 * Throws if the node refused any put.
 */
export async function putChunked(
  client: ControlClient,
  count: number,
  keyOf: (i: number) => string,
  valueOf: (i: number) => Uint8Array,
  chunk = 1000,
  inFlight = 4,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let first = next; first < count; first = next) {
      next = Math.min(count, first + chunk);
      const puts = [];
      for (let i = first; i < next; i++) puts.push({ key: keyOf(i), value: valueOf(i) });
      const { results } = await client.putMany(puts);
      const refused = results.find((result) => result.error !== '');
      if (refused !== undefined || results.length !== puts.length) {
        throw new Error(`PutMany refused a put: ${refused?.error ?? `${results.length} results for ${puts.length} puts`}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, Math.ceil(count / chunk)) }, worker));
  return performance.now() - started;
}

/** SIGTERM and wait for the exit; throws (with the node's log) unless it exits with code 0. */
export async function stopCleanly(node: NodeProcess): Promise<void> {
  const exit = await node.stop();
  if (exit.code !== 0) throw new Error(`${node.name} exited ${exit.code ?? exit.signal} on SIGTERM; stderr:\n${node.stderrText()}`);
}

export interface ClusterOptions {
  /** Extra flags for every node (e.g. --sync-interval-ms). */
  args?: string[];
  /** Nodes started at once (each takes ~0.5-1 s of CPU to start). Default 4. */
  startBatch?: number;
  /**
   * 'seeds' (default): each node bootstraps to n00 and n01 and learns the rest from the
   * members gossip. 'all': each node bootstraps to every node started before it, so the full
   * mesh is formed by direct dials (used where N is large).
   */
  bootstrap?: 'seeds' | 'all';
  /** Further options for every node (cpuProfDir, keepLines, readiness, ...). */
  node?: NodeOptions;
  /** Called after each batch is up (progress). */
  onNode?: (started: number, total: number) => void;
}

export class Cluster {
  readonly nodes: NodeProcess[] = [];
  private nextIndex = 0;

  private constructor(
    readonly dir: string,
    readonly options: ClusterOptions,
  ) {}

  /** Starts `n` nodes (see the top comment); resolves when all answer Status. */
  static async start(n: number, options: ClusterOptions = {}): Promise<Cluster> {
    const cluster = new Cluster(tempDir('ckv-cluster-'), options);
    try {
      // n00, then n01 on their own, so that every later node lists both as bootstrap peers.
      await cluster.add(1);
      if (n > 1) await cluster.add(1);
      if (n > 2) await cluster.add(n - 2);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Starts `count` more nodes bootstrapped to the first ones; resolves when all answer Status. */
  async add(count: number, extraArgs: string[] = []): Promise<NodeProcess[]> {
    // With bootstrap 'all', nodes of one batch would not know each other: start one at a time.
    const batch = this.options.bootstrap === 'all' ? 1 : Math.max(1, this.options.startBatch ?? 4);
    const added: NodeProcess[] = [];
    for (let i = 0; i < count; i += batch) {
      const size = Math.min(batch, count - i);
      const started = await Promise.all(Array.from({ length: size }, () => this.startOne(extraArgs)));
      added.push(...started);
      // Keep nodes in start order (n00, n01, ...) whatever order they became ready in.
      this.nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.options.onNode?.(this.nodes.length, this.nodes.length + count - i - size);
    }
    return added;
  }

  private async startOne(extraArgs: string[]): Promise<NodeProcess> {
    const name = `n${String(this.nextIndex++).padStart(2, '0')}`;
    const node = await startNode({
      readyDeadlineMs: 30_000,
      ...this.options.node,
      name,
      dataDir: join(this.dir, name),
      args: [...(this.options.args ?? []), ...extraArgs],
      bootstrap: this.options.bootstrap === 'all' ? [...this.nodes] : this.nodes.slice(0, 2),
    });
    this.nodes.push(node);
    return node;
  }

  /** Stops `node` (SIGTERM) and starts it again on its data dir with the same flags. */
  async restart(node: NodeProcess, afterStop?: () => Promise<void>): Promise<NodeProcess> {
    await node.stop();
    await afterStop?.();
    return this.respawn(node);
  }

  /** Starts a stopped `node` again on its data dir and flags; it replaces `node` in `nodes`. */
  async respawn(node: NodeProcess): Promise<NodeProcess> {
    const fresh = await node.respawn();
    this.nodes[this.nodes.indexOf(node)] = fresh;
    return fresh;
  }

  /** Removes a node from the cluster (stops it) and deletes its data dir. */
  async remove(node: NodeProcess): Promise<void> {
    await node.stop();
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
    removeTempDir(node.dataDir);
  }

  /** Waits until every node lists every other node as up. */
  waitMesh(deadlineMs: number, nodes: NodeProcess[] = this.nodes): Promise<void> {
    return waitMesh(nodes, deadlineMs, 100 + 10 * nodes.length);
  }

  /** Waits until all nodes report the same Merkle root and key count; returns the statuses. */
  waitConverged(deadlineMs: number, intervalMs = 25, nodes: NodeProcess[] = this.nodes): Promise<StatusMessage[]> {
    return waitConverged(nodes, deadlineMs, intervalMs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop(10_000).catch(() => undefined)));
    this.nodes.length = 0;
    removeTempDir(this.dir);
  }
}
