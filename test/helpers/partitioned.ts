/**
 * Helpers for tests and benches of partitioned mode (`--replicas K`) on real processes, written
 * against the user-visible surface: `ckv node start --replicas K`, `ckv status --json`'s
 * `partitioned` object, and the local gRPC calls that do not change meaning in partitioned mode
 * (Scan with `from: 'local'` and HasKey answer from this node's store only).
 *
 * Where a key must live is computed here, independently of the node's code paths, with the pure
 * core's placement (src/core/rendezvous.ts) over the node ids the test expects in the layout,
 * every weight 1: so "every key on exactly its owners" checks the layout's membership too.
 *
 * Status comes two ways: `statusJson`/`waitSettled` read `ckv status --json` (the CLI's view),
 * `partitionedOf`/`waitOneLayout` the node's gRPC status (what a node reports, fastest to poll).
 *
 * A load is bounded (`writesMax`) and stops when asked; it records every acknowledged write so a
 * test can check none was lost, and a reader can check that no acknowledged key is ever missed.
 */
import assert from 'node:assert/strict';
import type { StatusMessage } from '../../src/control/proto.js';
import { keyHashText } from '../../src/core/entry.js';
import { partitionOfHash } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';
import { Cluster, runCli, runCliOk, waitFor, withDeadline, type ClusterOptions, type NodeProcess } from '../../harness/testing.js';

/** K in these tests. */
export const replicasDefault = 3;

/** Flags of every partitioned node in tests: K, and a fast anti-entropy period. */
export function partitionedArgs(replicas = replicasDefault): string[] {
  return ['--replicas', String(replicas), '--sync-interval-ms', '200'];
}

/**
 * Failures of `load` through nodes other than `joiner` (a failure's reason starts with the name
 * of the node asked), and every reason. A node that just started is a poor coordinator for its
 * first seconds on a loaded machine: its peers' clocks are estimated from its first Hellos,
 * which load delays (it refuses writes as if its clock were ahead), and its connections to the
 * owners may take longer than a write's deadline (docs/partitioned-mode.md, "Remains").
 */
export function failuresBesidesJoiner(load: Load, joiner: NodeProcess): { count: number; reasons: string } {
  let count = 0;
  for (const [reason, n] of load.failureReasons) if (!reason.startsWith(`${joiner.name}: `)) count += n;
  const reasons = [...load.failureReasons].map(([reason, n]) => `${n} x ${reason}`).join('; ');
  return { count, reasons };
}

/** Starts `n` nodes with `--replicas K` (harness Cluster: n00 and n01 are everyone's bootstrap). */
export function startPartitioned(n: number, options: ClusterOptions & { replicas?: number } = {}): Promise<Cluster> {
  const { replicas, args, ...rest } = options;
  return Cluster.start(n, { ...rest, args: [...partitionedArgs(replicas), ...(args ?? [])] });
}

/** `ckv status --json`'s `partitioned` object (README "Partitioned mode"). */
export interface PartitionedStatus {
  replicas: number;
  layoutVersion: number;
  /** Every active layout's version, oldest first (several during a change). */
  activeVersions?: number[];
  partitionsOwned: number;
  partitionsUnderReplicated: number;
  rebalance: { pending: number; done: number };
  /** The layout version this node was removed at; 0 if it was not. */
  removedAt?: number;
}

export interface StatusJson {
  nodeId: string;
  keyCount: number;
  counters: Record<string, number>;
  partitioned?: PartitionedStatus;
}

/** `ckv status --json` of a running node, parsed. */
export async function statusJson(node: NodeProcess | { socket: string }): Promise<StatusJson> {
  const result = await runCliOk(['status', '--json'], { socket: node.socket, timeoutMs: 10_000 });
  return JSON.parse(result.stdout.toString('utf8')) as StatusJson;
}

const placement = new RendezvousPlacement();

/** The K owners of `key` in a layout of `members` (node ids, weight 1 each). */
export function ownersOf(key: string, members: readonly string[], replicas = replicasDefault): readonly string[] {
  const layout = { version: 1, nodes: [...members].sort(), replicas };
  return placement.ownersOf(partitionOfHash(keyHashText(key)), layout);
}

/** The keys under `prefix` in this node's own store (tombstones included). */
export async function localKeys(node: NodeProcess, prefix: string): Promise<Set<string>> {
  const keys = new Set<string>();
  const scan = async (): Promise<void> => {
    for await (const entry of node.client.scan({ prefix, withValues: false, includeDeleted: true, from: 'local' })) keys.add(entry.key);
  };
  await withDeadline(scan(), 20_000, `scan of ${node.name}`);
  return keys;
}

/**
 * Undefined when every key of `keys` is held by exactly its owners among `members` (every
 * node of `nodes` is asked for its local keys under `prefix`; a node outside `members` must
 * hold none); otherwise what is wrong, for the failure message.
 */
export async function placementProblems(nodes: NodeProcess[], prefix: string, keys: Iterable<string>, members: readonly string[]): Promise<string | undefined> {
  const held = await Promise.all(nodes.map((node) => localKeys(node, prefix)));
  const problems: string[] = [];
  let missing = 0;
  let extra = 0;
  const expectedCount = new Map<string, number>();
  for (const key of keys) {
    const owners = ownersOf(key, members);
    for (const [i, node] of nodes.entries()) {
      const owns = owners.includes(node.nodeId);
      if (owns) expectedCount.set(node.name, (expectedCount.get(node.name) ?? 0) + 1);
      const has = held[i]!.has(key);
      if (owns && !has) {
        if (missing++ < 3) problems.push(`${key} missing on owner ${node.name}`);
      } else if (!owns && has) {
        if (extra++ < 3) problems.push(`${key} still on non-owner ${node.name}`);
      }
    }
  }
  if (problems.length === 0) return undefined;
  const counts = nodes.map((node, i) => `${node.name} holds ${held[i]!.size}/owns ${expectedCount.get(node.name) ?? 0}`).join(', ');
  return `${missing} copies missing, ${extra} copies on non-owners (${problems.join('; ')}); ${counts}`;
}

/** Waits until `placementProblems` finds nothing; throws with the last problems at the deadline. */
export async function waitPlacement(nodes: NodeProcess[], prefix: string, keys: Iterable<string>, members: readonly string[], deadlineMs: number, what: string): Promise<void> {
  const list = [...keys];
  let last: string | undefined = 'not checked yet';
  try {
    await waitFor(
      async () => {
        last = await placementProblems(nodes, prefix, list, members);
        return last === undefined;
      },
      { deadlineMs, intervalMs: 250, what },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last: ${last}`);
  }
}

/**
 * Waits until every node is in partitioned mode with K = `replicas`, all on one layout version
 * (at least `versionAtLeast`) as the only active one, each owning partitions in it (so each is a
 * member: with K = 3 and up to 9 nodes every member owns some of the 256), nothing pending and no partition
 * under-replicated; returns the statuses.
 */
export async function waitSettled(nodes: NodeProcess[], deadlineMs: number, what: string, versionAtLeast = 1, replicas = replicasDefault): Promise<StatusJson[]> {
  let last: StatusJson[] = [];
  const describe = (): string =>
    last.map((s, i) => `${nodes[i]?.name}: ${s.partitioned ? `v${s.partitioned.layoutVersion} owns ${s.partitioned.partitionsOwned} under ${s.partitioned.partitionsUnderReplicated} pending ${s.partitioned.rebalance.pending}` : 'not partitioned'}`).join(', ');
  try {
    await waitFor(
      async () => {
        last = await Promise.all(nodes.map((node) => statusJson(node)));
        const p = last.map((s) => s.partitioned);
        if (p.some((x) => x === undefined || x.replicas !== replicas)) return false;
        const version = p[0]!.layoutVersion;
        return (
          version >= versionAtLeast &&
          p.every((x) => x!.layoutVersion === version && x!.partitionsOwned > 0 && x!.rebalance.pending === 0 && x!.partitionsUnderReplicated === 0 && (x!.activeVersions?.length ?? 1) === 1)
        );
      },
      { deadlineMs, intervalMs: 300, what },
    );
  } catch (error) {
    const logs = nodes.map((node) => `--- ${node.name} (last log lines)\n${node.logTail(25)}`).join('\n');
    throw new Error(`${(error as Error).message}; last: ${describe()}\n${logs}`);
  }
  return last;
}

/** The `partitioned` block of a node's status over gRPC (StatusMessage: versions as text). */
export type PartitionedView = NonNullable<StatusMessage['partitioned']>;

/** A node's `partitioned` status block; fails the test when the node reports none. */
export async function partitionedOf(node: NodeProcess): Promise<PartitionedView> {
  const status = await node.status();
  assert.ok(status.partitioned, `${node.name} reports no partitioned status`);
  return status.partitioned;
}

/**
 * Waits until `nodes` hold one complete layout: the same version everywhere and the only active
 * one, K x 256 partition-replicas owned in all; with `everyOwns`, each node owns some (none is
 * a gateway); with `gateways`, each node but those owns some. Without either, a layout that has
 * not yet taken in a node still starting passes, and its join then opens a second layout.
 * Returns the last views.
 */
export async function waitOneLayout(
  nodes: NodeProcess[],
  options: { replicas: number; deadlineMs: number; everyOwns?: boolean; gateways?: NodeProcess[]; intervalMs?: number; what?: string },
): Promise<PartitionedView[]> {
  const { replicas, deadlineMs, everyOwns = false, gateways, intervalMs, what = `one layout of ${nodes.length} nodes, K = ${replicas}` } = options;
  const mustOwn = (node: NodeProcess): boolean => (gateways === undefined ? everyOwns : !gateways.includes(node));
  let views: PartitionedView[] = [];
  await waitFor(
    async () => {
      views = await Promise.all(nodes.map(partitionedOf));
      return (
        new Set(views.map((v) => v.layoutVersion)).size === 1 &&
        views.every((v, i) => v.activeVersions.length === 1 && (!mustOwn(nodes[i]!) || v.partitionsOwned > 0)) &&
        views.reduce((sum, v) => sum + v.partitionsOwned, 0) === 256 * replicas
      );
    },
    { deadlineMs, what, ...(intervalMs === undefined ? {} : { intervalMs }) },
  );
  return views;
}

export interface Load {
  /** Acknowledged writes so far: key -> value. */
  readonly acked: Map<string, string>;
  /** Puts that failed (not acknowledged: they may or may not be stored). */
  failures: number;
  /** Why they failed: the node asked and the error's first line (the key as KEY), with a count; at most 50 reasons. */
  readonly failureReasons: Map<string, number>;
  /** Stops the load and resolves once the writes in flight are settled. */
  stop(): Promise<void>;
}

/**
 * Writes `prefix<i>` = `v<i>` (each key once) through the nodes `nodesNow()` returns (round
 * robin, skipping nodes that are not running), `inFlight` at a time, until stopped or
 * `writesMax` writes. Default consistency (quorum).
 */
export function startLoad(nodesNow: () => NodeProcess[], prefix: string, options: { writesMax: number; inFlight?: number }): Load {
  const acked = new Map<string, string>();
  let stopped = false;
  let next = 0;
  const load: Load = { acked, failures: 0, failureReasons: new Map(), stop: async () => undefined };
  const worker = async (): Promise<void> => {
    while (!stopped && next < options.writesMax) {
      const i = next++;
      const live = nodesNow().filter((node) => node.running);
      const node = live[i % Math.max(1, live.length)];
      if (node === undefined) return;
      const key = `${prefix}${String(i).padStart(6, '0')}`;
      const value = `v${i}`;
      try {
        await withDeadline(node.client.put(key, Buffer.from(value)), 10_000, `put ${key} on ${node.name}`);
        acked.set(key, value);
      } catch (error) {
        load.failures++;
        const reason = `${node.name}: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]!.replaceAll(key, 'KEY')}`;
        if (load.failureReasons.has(reason) || load.failureReasons.size < 50) load.failureReasons.set(reason, (load.failureReasons.get(reason) ?? 0) + 1);
      }
    }
  };
  const workers = Array.from({ length: options.inFlight ?? 4 }, () => worker());
  load.stop = async () => {
    stopped = true;
    await Promise.all(workers);
  };
  return load;
}

export interface Reader {
  reads: number;
  /** Acknowledged keys a read did not find, or found with another value. */
  readonly misses: string[];
  /** Reads that failed outright (the node or owners unreachable). */
  errors: number;
  stop(): Promise<void>;
}

/**
 * Reads acknowledged keys of `acked` (the newest first, then random ones) through the nodes
 * `nodesNow()` returns, one at a time (`from`: the read's consistency, as `get --from`), until
 * stopped; records every miss.
 */
export function startReader(nodesNow: () => NodeProcess[], acked: Map<string, string>, options: { from?: string; readsMax?: number } = {}): Reader {
  const readsMax = options.readsMax ?? 20_000;
  let stopped = false;
  const reader: Reader = { reads: 0, misses: [], errors: 0, stop: async () => undefined };
  const loop = async (): Promise<void> => {
    let round = 0;
    while (!stopped && reader.reads < readsMax) {
      const keys = [...acked.keys()];
      const live = nodesNow().filter((node) => node.running);
      if (keys.length === 0 || live.length === 0) {
        await new Promise((done) => setTimeout(done, 20));
        continue;
      }
      round++;
      const key = round % 2 === 0 ? keys[keys.length - 1]! : keys[Math.floor(Math.random() * keys.length)]!;
      const node = live[round % live.length]!;
      try {
        const reply = await withDeadline(node.client.get(key, options.from === undefined ? {} : { from: options.from }), 10_000, `get ${key} from ${node.name}`);
        reader.reads++;
        const value = reply.found ? reply.value.toString('utf8') : undefined;
        if (value !== acked.get(key) && reader.misses.length < 100) reader.misses.push(`${key} on ${node.name}: ${value ?? 'not found'}`);
      } catch {
        reader.errors++;
      }
    }
  };
  const running = loop();
  reader.stop = async () => {
    stopped = true;
    await running;
  };
  return reader;
}

/** Undefined when every key of `acked` reads back with its value from `node`; else the first misses. */
export async function unreadable(node: NodeProcess, acked: Map<string, string>, inFlight = 16): Promise<string | undefined> {
  const keys = [...acked.keys()];
  const misses: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) {
      const key = keys[i]!;
      try {
        const reply = await withDeadline(node.client.get(key), 10_000, `get ${key} from ${node.name}`);
        const value = reply.found ? reply.value.toString('utf8') : undefined;
        if (value !== acked.get(key)) misses.push(`${key}: ${value ?? 'not found'}`);
      } catch (error) {
        misses.push(`${key}: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
  return misses.length === 0 ? undefined : `${misses.length} of ${keys.length} keys unreadable from ${node.name}: ${misses.slice(0, 3).join('; ')}`;
}

/** `ckv ARGS --json` on `node`, parsed (throws unless it exits 0). */
export async function cliJson<T>(node: NodeProcess, args: string[], timeoutMs = 30_000): Promise<T> {
  const result = await runCliOk([...args, '--json'], { socket: node.socket, timeoutMs });
  return JSON.parse(result.stdout.toString('utf8')) as T;
}

/** `ckv ARGS` on `node`: the exit code and output. */
export function cli(node: NodeProcess, args: string[], timeoutMs = 30_000): ReturnType<typeof runCli> {
  return runCli(args, { socket: node.socket, timeoutMs });
}
