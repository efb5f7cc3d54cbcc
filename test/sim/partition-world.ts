/**
 * The state of one placement-aware data simulation (partition-sim.ts) and its network: the
 * options and report, the simulated nodes (a node's disk survives its crashes; a boot counter
 * fences the scheduled work of a dead boot), the ground truth the checker judges by (writes
 * acknowledged, versions stamped), and the primitives every part of the simulator shares:
 * - `carry` delivers a message after a seeded delay if the two nodes can still reach each other
 *   then; during the fault window it drops or duplicates some;
 * - `fencedStore` is a node's disk as its Replica sees it: writes become durable 0-3 ms after
 *   they are issued, and a crash loses those not yet durable (never acknowledged);
 * - `holdsPartition` is the replicas' holds rule (the node's LayoutOwnership, or the
 *   `modulo-holds` canary's modulo placement);
 * - `crash` stops a node's incarnation.
 * `createWorld` draws the run's random parameters in a fixed order: a seed replays exactly.
 */
import type { DeliveryQueue } from '../../src/core/delivery-queue.js';
import type { Replica } from '../../src/core/replica.js';
import { nodeIdFrom, type Version } from '../../src/core/entry.js';
import { utf8 } from '../../src/core/bytes.js';
import type { LayoutMessage } from '../../src/core/layout.js';
import type { LayoutHistory, LayoutHistorySnapshot } from '../../src/core/layout-history.js';
import type { LayoutOwnership } from '../../src/core/ownership.js';
import type { PartitionId } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { Store } from '../../src/core/store.js';
import { EventQueue, violationLog, type RunReport } from './event-queue.js';
import { ModuloPlacement } from './layout-gossip.js';
import { Prng } from './prng.js';

export type PartitionCanary = 'modulo-holds' | 'early-purge' | 'newest-only' | 'hints-lost-on-crash' | 'hints-removed-early';

export interface PartitionSimOptions {
  seed: number;
  /** Node identities (initial members and later joiners), 3..50. */
  nodes: number;
  /** K (default 3). */
  replicas?: number;
  /** Client writes spread over the fault window. */
  writes?: number;
  /** Size of the key space; small, so that writers conflict. */
  keys?: number;
  faultWindowMs?: number;
  settleMs?: number;
  /** Only the canary tests set this: a placement bug the checker must catch. */
  canary?: PartitionCanary;
  /**
   * Wait for every source of a pull, even a dead node the newest layout removed (what
   * production's pull loop did before it skipped departed sources that are down: a change
   * removing a dead node then never completes).
   * Default false: such sources are skipped.
   */
  waitForRemovedSources?: boolean;
  /**
   * Delivery until acknowledged (partition-delivery.ts): coordinators keep rows for owners
   * that did not ack and deliver them; anti-entropy is off and no node leaves or dies, so
   * delivery is the only repair and the checker also wants every node's pending rows at zero.
   */
  delivery?: boolean;
  /** Gets a line per commit, retirement, purge and node event. */
  trace?: (line: string) => void;
}

export interface PartitionSimReport extends RunReport<PartitionSimStats> {
  nodes: number;
}

export interface PartitionSimStats {
  commits: number;
  joins: number;
  leaves: number;
  deaths: number;
  crashes: number;
  partitions: number;
  writes: number;
  acknowledgedWrites: number;
  reads: number;
  sessions: number;
  sessionsFailed: number;
  pulled: number;
  retirements: number;
  purges: number;
  purgedRows: number;
  finalVersion: number;
  entries: number;
  simulatedMs: number;
}

export type Status = 'absent' | 'up' | 'crashed' | 'dead' | 'gone';

export interface SimNode {
  index: number;
  nodeId: string;
  status: Status;
  disk: MemoryStore;
  fence: { alive: boolean };
  replica: Replica | undefined;
  history: LayoutHistory | undefined;
  ownership: LayoutOwnership | undefined;
  layoutDisk: LayoutHistorySnapshot | undefined;
  /** Boots (and purge reopenings): fences a dead boot's scheduled work. */
  boot: number;
  group: number;
  weight: number;
  skewMs: number;
  wantsIn: boolean;
  leaving: boolean;
  lastCommitMs: number;
  /** Pulls in progress this boot: "version:partition" -> sources a session succeeded with since it became due. */
  pulls: Map<string, Set<string>>;
  /** The nodes it shares partitions with, under the active layouts named by `coOwnersKey`. */
  coOwners: string[];
  coOwnersKey: string;
  coOwnerNext: number;
  /** Sessions this node initiated and that are still running, by peer. */
  busyWith: Set<string>;
  purging: boolean;
  pullsScheduled: boolean;
  flooded: Map<string, string>;
  encoded?: { key: string; bytes: Uint8Array };
  /** Option `delivery`: the rows this node keeps for owners that did not ack (rebuilt from its disk at boot). */
  delivery?: DeliveryQueue;
}

const epochMs = 1_700_000_000_000;
export const cluster = 'sim';
export const sessionTimeoutMs = 10_000;
export const writeTimeoutMs = 3_000;

/** One run's state: what every part of the simulator reads and changes. */
export interface PartitionWorld {
  readonly options: PartitionSimOptions;
  readonly canary: PartitionCanary | undefined;
  readonly trace: ((line: string) => void) | undefined;
  readonly replicas: number;
  readonly keys: number;
  readonly rng: Prng;
  readonly queue: EventQueue;
  readonly placement: RendezvousPlacement;
  readonly modulo: ModuloPlacement;
  /** The replicas' tree depth. */
  readonly depth: number;
  /** Chance a message is lost during faults. */
  readonly loss: number;
  /** Chance a session frame is lost during faults (the session breaks). */
  readonly frameLoss: number;
  readonly delayMsMax: number;
  readonly violations: string[];
  readonly violate: (text: string) => void;
  readonly stats: PartitionSimReport['stats'];
  /** The members of the first layout: nodes[0..initialCount). */
  readonly initialCount: number;
  readonly nodes: SimNode[];
  readonly byId: Map<string, SimNode>;
  readonly nameOf: (nodeId: string) => string;
  /** Ground truth: per key, the greatest acknowledged version and whether it was a delete. */
  readonly acked: Map<string, { version: Version; deleted: boolean }>;
  /** Ground truth: every version some node stamped, as "key versionText", with whether it is a delete. */
  readonly stamped: Map<string, boolean>;
  /** Dead nodes an operator removes (the coordinator commits their removal). */
  readonly pendingRemovals: string[];
  /** Decoded layout messages, by their bytes (a flood sends the same bytes to many). */
  readonly decoded: WeakMap<Uint8Array, LayoutMessage | Error>;
  /** During the fault window. */
  faults: boolean;
  /** Until the end of the settle time: nodes tick. */
  running: boolean;
}

export function createWorld(options: PartitionSimOptions): PartitionWorld {
  const { seed, canary, trace } = options;
  const count = options.nodes;
  if (count < 3 || count > 50) throw new Error(`nodes must be 3..50, not ${count}`);
  const replicas = options.replicas ?? 3;
  const keys = options.keys ?? 16;
  const rng = new Prng(seed);
  const queue = new EventQueue();
  const placement = new RendezvousPlacement();
  const modulo = new ModuloPlacement();
  const depth = rng.int(2, 3);
  const loss = rng.float() * 0.15;
  const frameLoss = rng.float() * 0.01;
  const delayMsMax = rng.int(2, 60);
  const { violations, violate } = violationLog(queue);
  const stats: PartitionSimReport['stats'] = {
    commits: 0,
    joins: 0,
    leaves: 0,
    deaths: 0,
    crashes: 0,
    partitions: 0,
    writes: 0,
    acknowledgedWrites: 0,
    reads: 0,
    sessions: 0,
    sessionsFailed: 0,
    pulled: 0,
    retirements: 0,
    purges: 0,
    purgedRows: 0,
    finalVersion: 0,
    entries: 0,
    simulatedMs: 0,
  };

  const initialCount = Math.max(replicas, Math.ceil(count * 0.6));
  const beyondDrift = rng.chance(0.3) ? rng.int(0, count - 1) : -1;
  const nodes: SimNode[] = Array.from({ length: count }, (_, index) => ({
    index,
    nodeId: nodeIdFrom(utf8(`partition-sim ${seed} ${index}`)),
    status: 'absent',
    disk: new MemoryStore(),
    fence: { alive: false },
    replica: undefined,
    history: undefined,
    ownership: undefined,
    layoutDisk: undefined,
    boot: 0,
    group: 0,
    weight: index < initialCount ? 1 : rng.chance(0.15) ? 0 : rng.chance(0.1) ? 2 : 1,
    skewMs: index === beyondDrift ? rng.int(600, 1200) : rng.chance(0.5) ? 0 : rng.int(-200, 200),
    wantsIn: false,
    leaving: false,
    lastCommitMs: -Infinity,
    pulls: new Map(),
    coOwners: [],
    coOwnersKey: '',
    coOwnerNext: 0,
    busyWith: new Set(),
    purging: false,
    pullsScheduled: false,
    flooded: new Map(),
  }));
  const byId = new Map(nodes.map((n) => [n.nodeId, n]));
  return {
    options,
    canary,
    trace,
    replicas,
    keys,
    rng,
    queue,
    placement,
    modulo,
    depth,
    loss,
    frameLoss,
    delayMsMax,
    violations,
    violate,
    stats,
    initialCount,
    nodes,
    byId,
    nameOf: (nodeId) => `${byId.get(nodeId)?.index ?? nodeId}`,
    acked: new Map(),
    stamped: new Map(),
    pendingRemovals: [],
    decoded: new WeakMap(),
    faults: true,
    running: true,
  };
}

export const isUp = (n: SimNode): boolean => n.status === 'up' && n.replica !== undefined;
export const reachable = (a: SimNode, b: SimNode): boolean => a !== b && isUp(a) && isUp(b) && a.group === b.group;
/** The node's wall clock (skewed). */
export const wallOf = (w: PartitionWorld, n: SimNode): number => epochMs + w.queue.nowMs + n.skewMs;

/** Runs `run` after a network delay if `from` can still reach `to` then (lossy during faults). */
export function carry(w: PartitionWorld, from: SimNode, to: SimNode, run: () => void, lossy = true): void {
  if (!reachable(from, to)) return;
  if (lossy && w.faults && w.rng.chance(w.loss)) return;
  const copies = lossy && w.faults && w.rng.chance(0.03) ? 2 : 1;
  const boots = [from.boot, to.boot];
  for (let c = 0; c < copies; c++) {
    w.queue.schedule(w.rng.int(1, w.delayMsMax), () => {
      if (to.boot === boots[1] && from.group === to.group && isUp(to)) run();
    });
  }
}

/** The holds rule: a replica accepts a partition's entries when its node's ownership holds it. */
export function holdsPartition(w: PartitionWorld, node: SimNode, partition: PartitionId): boolean {
  const history = node.history;
  if (!history || history.newest() === undefined) return false;
  if (w.canary === 'modulo-holds') return history.active().some((l) => w.modulo.ownersOf(partition, l).includes(node.nodeId));
  return node.ownership!.holds(partition);
}

export function crash(node: SimNode, status: Status): void {
  node.fence.alive = false;
  node.replica = undefined;
  node.status = status;
  node.boot++;
}

/** A store that stops working when its incarnation crashes, and makes writes durable 0-3 ms late. */
export function fencedStore(disk: MemoryStore, fence: { alive: boolean }, queue: EventQueue, rng: Prng): Store {
  return new Proxy(disk, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (prop === 'close') return () => Promise.resolve();
      if (prop === 'write') {
        return (...args: unknown[]) =>
          new Promise((resolve, reject) => {
            queue.schedule(rng.int(0, 3), () => {
              if (!fence.alive) return reject(new Error('node crashed before the write was durable'));
              (method.apply(target, args) as Promise<void>).then(resolve, reject);
            });
          });
      }
      return (...args: unknown[]) => {
        if (!fence.alive) throw new Error('node crashed');
        return method.apply(target, args);
      };
    },
  }) as Store;
}
