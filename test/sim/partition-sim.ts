/**
 * The placement-aware data simulator (partitioned mode): nodes run the real Replica (over
 * memory stores), the real LayoutHistory and LayoutOwnership, and real sync sessions, over one
 * seeded event queue that plays the network, the disks and the faults. Everything random comes
 * from one Prng, so a seed replays exactly (`npm run sim -- --partitioned --seed N`).
 *
 * Model:
 * - Layouts as in layout-sim.ts: node 0 commits the first layout (the initial members, K);
 *   later nodes join on first contact (the coordinator, the smallest reachable owning member,
 *   commits the joins), a leaving node commits its own removal and stops once its view of the
 *   change is complete, a node that dies (at most one a run) is removed by an operator.
 *   Layouts and acks travel encoded (the gossip wire format), lossy, duplicated and late.
 * - A replica holds (accepts remote entries of) a key when its node's ownership holds the
 *   key's partition: it owns it in some active layout.
 * - Writes: a random up member coordinates a put or delete of a small key space. It stamps
 *   the write if it is a write owner (`writeOwners(p)`), else asks a reachable owner to; the
 *   stamped entry goes to every write owner over the lossy network; each owner that applies
 *   it (or holds newer) acks. The write is acknowledged once `quorumMet(writeSets(p), acks,
 *   'quorum')` in the coordinator's current view (a view that grew meanwhile sends to the new
 *   owners too); acknowledged writes are the ground truth.
 * - Anti-entropy: every ~2 s a node runs a sync session (the core's session driver over a
 *   frame channel, frames lossy and late; a loss, a partition or a crash breaks it) with the
 *   next node, round-robin, of those it shares partitions with. Sessions are restricted as in
 *   production (sync 1.2.0): the initiator asks for `sharedPartitions(peer)` in its view, the
 *   responder covers that AND its `heldPartitions()`; each replica also refuses entries of
 *   partitions it does not hold.
 * - Pulls: a new owner runs `pulls()`; for each partition it needs a successful session with
 *   every source after the pull became due, then calls `pulled` (its ack). A source that is
 *   dead or gone and removed from the newest layout is skipped (as production: see
 *   docs/partitioned-mode.md, Simulator; without the skip a change removing a dead node
 *   never completes).
 * - Purge: once a node has one active layout, rows of partitions it no longer holds are first
 *   offloaded (a successful session, restricted to those partitions, with every owner of
 *   each), then dropped with `Replica.dropUnchanged` (a row written meanwhile is kept).
 * - Faults, during the fault window: partitions and heals, crashes and restarts, one death,
 *   per-node clock skew (sometimes one node beyond the drift limit), disk writes durable only
 *   0-3 ms after they are issued (a crash before loses them: never acknowledged).
 * After the window the network heals, clocks agree, crashed nodes restart; nodes keep running
 * for `settleMs` (pulls, retirements, purges, anti-entropy), then the checker runs.
 *
 * Invariants (against ground truth, not what nodes claim; 1-5 at the end, partition-check.ts):
 * 1. every up node ends on the same single active layout, whose members are exactly the nodes
 *    that want in;
 * 2. each partition's owners hold identical entries for that partition;
 * 3. every acknowledged write (or a newer version of its key) is on all K owners;
 * 4. no node holds rows of a partition it does not own (one layout active, purge ran);
 * 5. no deleted key returns: where the last acknowledged write of a key is a delete, every
 *    owner holds that tombstone or a newer version some coordinator really wrote; and no
 *    replica ever replaced a version with an older one (checked as it happens);
 * 6. during the run, a quorum read (a member asks a quorum of its `readOwners`) returns at
 *    least the key's last write acknowledged before the read began: a write acknowledged
 *    during a change is where reads look, whichever layout they read from.
 * Canaries (options), each a placement bug the checker must catch: `modulo-holds` (replicas
 * decide what they hold by a modulo placement, not the layouts' rendezvous owners),
 * `early-purge` (a node drops the partitions it does not own in the newest layout as soon as
 * it learns it: no offload, before the new owners pulled), `newest-only` (the coordinator
 * sends a write to, and counts acks in, the newest layout's owners only).
 */
import { Replica, type AppliedChange, type DropRequest } from '../../src/core/replica.js';
import { compareVersions, nodeIdFrom, type Entry, type HashText, type Version } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import { FrameChannel } from '../../src/core/frame-channel.js';
import { driveSession, type FrameTransport } from '../../src/core/session-driver.js';
import { SyncInitiator, SyncResponder, type SyncResult } from '../../src/core/sync-session.js';
import { utf8 } from '../../src/core/bytes.js';
import { LayoutChangeError, decodeLayoutMessage, encodeLayoutMessage, partitionBitmap, type ClusterLayout, type LayoutMessage } from '../../src/core/layout.js';
import { writeBatchOpsMax } from '../../src/core/limits.js';
import { LayoutHistory, type LayoutHistorySnapshot, type LayoutOutcome } from '../../src/core/layout-history.js';
import { LayoutOwnership, acksNeeded, quorumMet } from '../../src/core/ownership.js';
import { eligibleNodes, ownerCountOf, partitionCount, partitionOfHash, type Layout, type PartitionId, type Placement } from '../../src/core/placement.js';
import { RendezvousPlacement } from '../../src/core/rendezvous.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { Store } from '../../src/core/store.js';
import { EventQueue } from './event-queue.js';
import { checkEnd, keyOf, partitionOfKey, versionText } from './partition-check.js';
import { Prng } from './prng.js';

export type PartitionCanary = 'modulo-holds' | 'early-purge' | 'newest-only';

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
  /** Gets a line per commit, retirement, purge and node event. */
  trace?: (line: string) => void;
}

export interface PartitionSimReport {
  seed: number;
  nodes: number;
  ok: boolean;
  violations: string[];
  stats: {
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
  };
}

type Status = 'absent' | 'up' | 'crashed' | 'dead' | 'gone';

interface SimNode {
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
}

/** The canary placement: owners by partition modulo the sorted eligible members. */
class ModuloPlacement implements Placement {
  readonly mode = 'modulo-canary';
  private readonly all = Array.from({ length: partitionCount }, (_, i) => i);
  partitionOf(keyHash: HashText): PartitionId {
    return partitionOfHash(keyHash);
  }
  partitions(): readonly PartitionId[] {
    return this.all;
  }
  ownersOf(partition: PartitionId, layout: Layout): readonly string[] {
    const eligible = eligibleNodes(layout);
    return Array.from({ length: ownerCountOf(layout) }, (_, i) => eligible[(partition + i) % eligible.length]!);
  }
}

const epochMs = 1_700_000_000_000;
const cluster = 'sim';
const sessionTimeoutMs = 10_000;
const writeTimeoutMs = 3_000;
const gossipFanout = 6;

/** A store that stops working when its incarnation crashes, and makes writes durable 0-3 ms late. */
function fencedStore(disk: MemoryStore, fence: { alive: boolean }, queue: EventQueue, rng: Prng): Store {
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

export async function runPartitionSimulation(options: PartitionSimOptions): Promise<PartitionSimReport> {
  const { seed, canary, trace } = options;
  const count = options.nodes;
  if (count < 3 || count > 50) throw new Error(`nodes must be 3..50, not ${count}`);
  const replicas = options.replicas ?? 3;
  const keys = options.keys ?? 16;
  const writes = options.writes ?? 40;
  const faultWindowMs = options.faultWindowMs ?? 8_000;
  // Anti-entropy meets each co-owner once a round (every other tick): larger clusters need longer.
  const settleMs = options.settleMs ?? 16_000 + 1_000 * Math.max(0, count - 10);
  const rng = new Prng(seed);
  const queue = new EventQueue();
  const placement = new RendezvousPlacement();
  const modulo = new ModuloPlacement();
  const depth = rng.int(2, 3);
  const loss = rng.float() * 0.15;
  const frameLoss = rng.float() * 0.01;
  const delayMsMax = rng.int(2, 60);
  const violations: string[] = [];
  const violate = (text: string): void => {
    if (violations.length < 50) violations.push(`at ${queue.nowMs} ms: ${text}`);
  };
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
  const nameOf = (nodeId: string): string => `${byId.get(nodeId)?.index ?? nodeId}`;

  // Ground truth.
  /** Per key, the greatest acknowledged version and whether it was a delete. */
  const acked = new Map<string, { version: Version; deleted: boolean }>();
  /** Every version some node stamped, as text, with whether it is a delete. */
  const stamped = new Map<string, boolean>();
  const pendingRemovals: string[] = [];
  const decoded = new WeakMap<Uint8Array, LayoutMessage | Error>();
  let faults = true;
  let running = true;

  const isUp = (n: SimNode): boolean => n.status === 'up' && n.replica !== undefined;
  const reachable = (a: SimNode, b: SimNode): boolean => a !== b && isUp(a) && isUp(b) && a.group === b.group;
  const wallOf = (n: SimNode): number => epochMs + queue.nowMs + n.skewMs;

  /** Runs `run` after a network delay if `from` can still reach `to` then (lossy during faults). */
  function carry(from: SimNode, to: SimNode, run: () => void, lossy = true): void {
    if (!reachable(from, to)) return;
    if (lossy && faults && rng.chance(loss)) return;
    const copies = lossy && faults && rng.chance(0.03) ? 2 : 1;
    const boots = [from.boot, to.boot];
    for (let c = 0; c < copies; c++) {
      queue.schedule(rng.int(1, delayMsMax), () => {
        if (to.boot === boots[1] && from.group === to.group && isUp(to)) run();
      });
    }
  }

  // --- the holds rule ----------------------------------------------------------------------

  function holdsPartition(node: SimNode, partition: PartitionId): boolean {
    const history = node.history;
    if (!history || history.newest() === undefined) return false;
    if (canary === 'modulo-holds') return history.active().some((l) => modulo.ownersOf(partition, l).includes(node.nodeId));
    return node.ownership!.holds(partition);
  }

  // --- layouts: gossip, commits, acks (as layout-sim.ts) -----------------------------------

  function deliverLayout(from: SimNode, to: SimNode, bytes: Uint8Array): void {
    let message = decoded.get(bytes);
    if (!message) {
      try {
        message = decodeLayoutMessage(bytes);
      } catch (error) {
        if (!(error instanceof MalformedError)) violate(`a layout message failed with ${String(error)}`);
        message = error as Error;
      }
      decoded.set(bytes, message);
    }
    if (message instanceof Error) return;
    const history = to.history!;
    if (message.type === 'layouts') after(to, history.receiveLayouts(message.layouts));
    else after(to, history.receiveAck(from.nodeId, message.ack).outcome);
  }

  function layoutsMessage(node: SimNode): Uint8Array | undefined {
    const layouts = node.history!.active();
    if (layouts.length === 0) return undefined;
    const key = layouts.map(keyOf).join(' ');
    if (node.encoded?.key !== key) node.encoded = { key, bytes: encodeLayoutMessage({ type: 'layouts', layouts: [...layouts] }) };
    return node.encoded.bytes;
  }

  function gossip(node: SimNode, to: SimNode[]): void {
    const bytes = layoutsMessage(node);
    if (bytes) for (const peer of to) carry(node, peer, () => deliverLayout(node, peer, bytes));
    const acks: Uint8Array[] = [];
    for (const ack of node.history!.ownAcks()) {
      const encoded = encodeLayoutMessage({ type: 'ack', ack });
      const key = `${ack.version}:${ack.digest}`;
      const text = Buffer.from(encoded).toString('latin1');
      if (node.flooded.get(key) === text) continue;
      node.flooded.set(key, text);
      acks.push(encoded);
    }
    for (const peer of nodes) if (reachable(node, peer)) for (const ack of acks) carry(node, peer, () => deliverLayout(node, peer, ack));
  }

  function fanout(node: SimNode): SimNode[] {
    const peers = nodes.filter((peer) => reachable(node, peer));
    const chosen: SimNode[] = [];
    while (chosen.length < gossipFanout && peers.length > 0) chosen.push(peers.splice(rng.int(0, peers.length - 1), 1)[0]!);
    return chosen;
  }

  /** After any change of a node's history: persist, gossip, and react (pulls, purge, commits). */
  function after(node: SimNode, outcome: LayoutOutcome): void {
    if (!outcome.changed && outcome.conflicts.length === 0 && outcome.retired.length === 0) return;
    if (!isUp(node)) return;
    const history = node.history!;
    if (outcome.retired.length > 0) {
      stats.retirements++;
      trace?.(`${queue.nowMs} node ${node.index} retired ${outcome.retired.join(',')}; active ${history.active().map(keyOf).join(' ')}`);
    }
    node.layoutDisk = history.snapshot();
    gossip(node, fanout(node));
    if (canary === 'early-purge') void purge(node, true);
    schedulePulls(node);
    reconcile(node);
  }

  function coordinatorOf(node: SimNode, newest: ClusterLayout): string | undefined {
    return newest.nodes.find((id) => {
      const member = byId.get(id)!;
      return newest.weights[id]! > 0 && !member.leaving && (member === node || reachable(node, member));
    });
  }

  function reconcile(node: SimNode): void {
    if (!isUp(node)) return;
    const history = node.history!;
    const newest = history.newest();
    if (!newest) return;
    if (node.leaving && newest.weights[node.nodeId] === undefined && history.active().length === 1) {
      trace?.(`${queue.nowMs} node ${node.index} handed off (layout ${keyOf(newest)}) and stops`);
      crash(node, 'gone');
      return;
    }
    if (queue.nowMs - node.lastCommitMs < 1000) return;
    try {
      if (node.leaving) {
        if (newest.weights[node.nodeId] === undefined) return;
        history.stageRemove(node.nodeId);
      } else {
        if (coordinatorOf(node, newest) !== node.nodeId) return;
        const joins = nodes.filter((n) => n.wantsIn && (n === node || reachable(node, n)) && newest.weights[n.nodeId] === undefined);
        const dead = pendingRemovals.filter((id) => newest.weights[id] !== undefined);
        if (dead.length > 0) for (const id of dead) history.stageRemove(id);
        else if (joins.length > 0) for (const n of joins) history.stageAdd(n.nodeId, n.weight);
        else return;
      }
      commit(node);
    } catch (error) {
      history.revert();
      if (!(error instanceof LayoutChangeError)) throw error;
    }
  }

  function commit(node: SimNode): void {
    const { layout, outcome } = node.history!.commit();
    trace?.(`${queue.nowMs} node ${node.index} commits ${keyOf(layout)}: ${layout.nodes.map((id) => `${nameOf(id)}:${layout.weights[id]}`).join(' ')}`);
    stats.commits++;
    node.lastCommitMs = queue.nowMs;
    after(node, outcome);
  }

  // --- nodes -------------------------------------------------------------------------------

  async function start(node: SimNode): Promise<void> {
    node.boot++;
    const boot = node.boot;
    node.status = 'up';
    node.pulls = new Map();
    node.busyWith = new Set();
    node.purging = false;
    node.pullsScheduled = false;
    node.flooded = new Map();
    node.encoded = undefined;
    const historyOptions = { self: node.nodeId, placement };
    node.history = node.layoutDisk ? LayoutHistory.restore(historyOptions, node.layoutDisk) : new LayoutHistory(historyOptions);
    node.ownership = new LayoutOwnership(node.history, { onChange: (outcome) => after(node, outcome) });
    await openReplica(node);
    if (node.boot !== boot) return;
    let ticks = node.index;
    const tick = (): void => {
      if (node.boot !== boot || !isUp(node) || !running) return;
      ticks++;
      const peers = nodes.filter((peer) => reachable(node, peer));
      if (peers.length > 0) {
        const bytes = layoutsMessage(node);
        const peer = rng.pick(peers);
        if (bytes) carry(node, peer, () => deliverLayout(node, peer, bytes));
        // Every third tick (~3 s) its acks go to everyone again (a gossipsub publish): a lost
        // flood must not leave a peer unaware that this node knows a layout.
        if (ticks % 3 === 0) {
          const acks = node.history!.ownAcks().map((ack) => encodeLayoutMessage({ type: 'ack', ack }));
          for (const p of peers) for (const ack of acks) carry(node, p, () => deliverLayout(node, p, ack));
        }
      }
      if (ticks % 2 === 0) antiEntropy(node);
      if (node.history!.active().length > 1) startPulls(node);
      reconcile(node);
      if (node.history!.active().length === 1) void purge(node, false);
      queue.schedule(rng.int(750, 1250), tick);
    };
    queue.schedule(rng.int(0, 1000), tick);
    gossip(node, fanout(node));
  }

  async function openReplica(node: SimNode): Promise<void> {
    const boot = node.boot;
    node.fence = { alive: true };
    const replica = await Replica.open({
      nodeId: node.nodeId,
      store: fencedStore(node.disk, node.fence, queue, rng),
      depth,
      wallClockMs: () => wallOf(node),
      holds: (keyHash) => holdsPartition(node, partitionOfHash(keyHash)),
      rng: () => rng.float(),
      onApplied: (change) => onApplied(node, change),
    });
    if (node.boot !== boot || node.status !== 'up') return;
    node.replica = replica;
  }

  function crash(node: SimNode, status: Status): void {
    node.fence.alive = false;
    node.replica = undefined;
    node.status = status;
    node.boot++;
  }

  function onApplied(node: SimNode, change: AppliedChange): void {
    if (change.previous && compareVersions(change.entry.version, change.previous) <= 0) {
      violate(`node ${node.index} replaced ${change.entry.key}@${versionText(change.previous)} with older ${versionText(change.entry.version)}`);
    }
  }

  // --- sync sessions -----------------------------------------------------------------------

  /**
   * One session from `from` (initiator) to `to`, restricted as production's (sync 1.2.0): the
   * initiator asks for `partitions` (default: what it shares with `to` in its view), the
   * responder covers that AND what it holds. `done(ok)` once both sides finished or it broke.
   */
  function session(from: SimNode, to: SimNode, done: (ok: boolean) => void, partitions?: Uint8Array): void {
    if (!reachable(from, to)) return done(false);
    stats.sessions++;
    from.busyWith.add(to.nodeId);
    const boots = [from.boot, to.boot];
    let over = false;
    const results: (SyncResult | undefined)[] = [undefined, undefined];
    const inboxes = [new FrameChannel(), new FrameChannel()];
    const lastDelivery = [0, 0];
    const alive = (): boolean => !over && from.boot === boots[0] && to.boot === boots[1];
    const end = (ok: boolean): void => {
      if (over) return;
      over = true;
      if (from.boot === boots[0]) from.busyWith.delete(to.nodeId);
      if (!ok) {
        stats.sessionsFailed++;
        const broken = new Error('session aborted');
        for (const inbox of inboxes) inbox.fail(broken);
      }
      done(ok);
    };
    queue.schedule(sessionTimeoutMs, () => end(false));
    const sides: [SimNode, SyncInitiator | SyncResponder][] = [
      [from, new SyncInitiator(from.replica!.syncContext({ cluster, wallClockMs: () => wallOf(from), partitions: partitions ?? from.ownership!.sharedPartitions(to.nodeId) }), rng.u32())],
      [to, new SyncResponder(to.replica!.syncContext({ cluster, partitions: to.ownership!.heldPartitions() }))],
    ];
    for (const [i, [node, machine]] of sides.entries()) {
      const other = 1 - i;
      const transmit = (deliver: () => void, lossy: boolean): void => {
        if (over) throw new Error('session aborted');
        if (!reachable(from, to) || !alive() || (lossy && faults && rng.chance(frameLoss))) {
          end(false);
          throw new Error('link broke');
        }
        const atMs = Math.max(queue.nowMs + rng.int(1, delayMsMax), lastDelivery[other]!);
        lastDelivery[other] = atMs;
        queue.schedule(atMs - queue.nowMs, () => {
          if (!over) deliver();
        });
      };
      const transport: FrameTransport = {
        send: (frame) => transmit(() => inboxes[other]!.push(frame), true),
        receive: () => inboxes[i]!.receive(),
        close: () => transmit(() => inboxes[other]!.close(), false),
      };
      const apply = async (entries: Entry[]): Promise<void> => {
        const replica = alive() ? node.replica : undefined;
        if (!replica) throw new Error('session aborted or node down');
        await replica.applyRemote(entries);
      };
      driveSession(machine, transport, { apply }).then(
        (result) => {
          if (over) return;
          results[i] = result;
          if (results[0] && results[1]) end(alive() && (results[0].outcome === 'in-sync' || results[0].outcome === 'synced'));
        },
        () => end(false),
      );
    }
  }

  /** A session with the next node this node shares partitions with (its co-owners, as sync schedules them). */
  function antiEntropy(node: SimNode): void {
    if (!node.ownership!.ready()) return;
    const layouts = node.history!.active().map(keyOf).join(' ');
    if (node.coOwnersKey !== layouts) {
      const coOwners = new Set<string>();
      for (let p = 0; p < partitionCount; p++) {
        const owners = node.ownership!.writeOwners(p);
        if (owners.includes(node.nodeId)) for (const id of owners) if (id !== node.nodeId) coOwners.add(id);
      }
      node.coOwners = [...coOwners].sort();
      node.coOwnersKey = layouts;
      node.coOwnerNext = rng.int(0, Math.max(0, node.coOwners.length - 1));
    }
    // Round-robin from a random start: every pair of co-owners meets within a round.
    const count = node.coOwners.length;
    for (let i = 0; i < count; i++) {
      const peer = byId.get(node.coOwners[(node.coOwnerNext + i) % count]!)!;
      if (!reachable(node, peer) || node.busyWith.has(peer.nodeId)) continue;
      node.coOwnerNext = (node.coOwnerNext + i + 1) % count;
      session(node, peer, () => undefined);
      return;
    }
  }

  /** startPulls soon, once for a burst of history changes (acks arrive in floods). */
  function schedulePulls(node: SimNode): void {
    if (node.pullsScheduled) return;
    node.pullsScheduled = true;
    const boot = node.boot;
    queue.schedule(20, () => {
      if (node.boot !== boot) return;
      node.pullsScheduled = false;
      startPulls(node);
    });
  }

  /** Pulls that became due: a session with each source, then `pulled`. */
  function startPulls(node: SimNode): void {
    if (!isUp(node)) return;
    const ownership = node.ownership!;
    const newest = ownership.newest();
    const due = ownership.pulls();
    const boot = node.boot;
    const skipped = (id: string): boolean => !options.waitForRemovedSources && newest?.weights[id] === undefined && ['dead', 'gone'].includes(byId.get(id)!.status);
    const needed = new Set<string>();
    const finished = new Map<number, PartitionId[]>();
    for (const pull of due) {
      const key = `${pull.version}:${pull.partition}`;
      let done = node.pulls.get(key);
      if (!done) node.pulls.set(key, (done = new Set()));
      const sources = pull.sources.filter((id) => !skipped(id));
      const enough = sources.every((id) => done.has(id));
      if (enough) finished.set(pull.version, [...(finished.get(pull.version) ?? []), pull.partition]);
      else for (const id of sources) if (!done.has(id)) needed.add(id);
    }
    for (const [version, partitions] of finished) {
      for (const p of partitions) node.pulls.delete(`${version}:${p}`);
      stats.pulled += partitions.length;
      ownership.pulled(version, partitions);
      if (node.boot !== boot) return;
    }
    for (const id of needed) {
      const source = byId.get(id)!;
      if (!reachable(node, source) || node.busyWith.has(id)) continue;
      // Only pulls due before the session started count it.
      const waiting = [...node.pulls.values()].filter((done) => !done.has(id));
      session(node, source, (ok) => {
        if (!ok || node.boot !== boot) return;
        for (const done of waiting) done.add(id);
        startPulls(node);
      });
    }
  }

  /**
   * Drop rows of partitions this node does not hold: first offloaded (a session with every
   * owner of each), then dropped (`early` = the canary: no offload, and whatever the layouts).
   */
  async function purge(node: SimNode, early: boolean): Promise<void> {
    if (!isUp(node) || node.purging) return;
    const history = node.history!;
    const newest = history.newest();
    if (!newest) return;
    const holds = (p: PartitionId): boolean => (early ? placement.ownersOf(p, newest).includes(node.nodeId) : holdsPartition(node, p));
    const drop = new Set<PartitionId>();
    for await (const entry of node.disk.scanHash('')) {
      const p = partitionOfKey(entry.key);
      if (!holds(p)) drop.add(p);
    }
    if (drop.size === 0 || !isUp(node) || node.purging) return;
    node.purging = true;
    const boot = node.boot;
    if (!early) {
      const owners = new Set<string>();
      for (const p of drop) for (const id of history.writeOwners(p)) if (id !== node.nodeId) owners.add(id);
      let ok = true;
      for (const id of owners) {
        ok = await new Promise<boolean>((resolve) => session(node, byId.get(id)!, resolve, partitionBitmap([...drop])));
        if (!ok || node.boot !== boot) break;
      }
      if (!ok || node.boot !== boot) {
        if (node.boot === boot) node.purging = false;
        return;
      }
    }
    // Drop, as production's purge: each row if it is still the version read (a write that
    // came meanwhile is kept).
    const drops: DropRequest[] = [];
    for await (const entry of node.disk.scanHash('')) {
      const p = partitionOfKey(entry.key);
      if (drop.has(p) && !holds(p)) drops.push({ key: entry.key, version: entry.version });
    }
    const replica = node.replica;
    if (!replica || node.boot !== boot) return;
    let dropped = 0;
    try {
      for (let i = 0; i < drops.length; i += writeBatchOpsMax) dropped += (await replica.dropUnchanged(drops.slice(i, i + writeBatchOpsMax))).dropped;
    } catch {
      return; // crashed meanwhile: the next boot purges again
    }
    stats.purges++;
    stats.purgedRows += dropped;
    trace?.(`${queue.nowMs} node ${node.index} purged ${dropped} rows of partitions ${[...drop].join(',')}`);
    if (node.boot === boot) node.purging = false;
  }

  // --- writes ------------------------------------------------------------------------------

  /** The owner sets a write counts acks in, and the nodes it goes to, in `node`'s view. */
  function writeSetsOf(node: SimNode, p: PartitionId): readonly (readonly string[])[] {
    const newest = node.history!.newest()!;
    return canary === 'newest-only' ? [placement.ownersOf(p, newest)] : node.ownership!.writeSets(p);
  }

  function clientWrite(): void {
    const candidates = nodes.filter((n) => isUp(n) && !n.leaving && n.history!.newest()?.weights[n.nodeId] !== undefined);
    if (candidates.length === 0) return;
    const coordinator = rng.pick(candidates);
    const key = `k${rng.int(0, keys - 1)}`;
    const isDelete = rng.chance(0.25);
    const p = partitionOfKey(key);
    const owners = [...new Set(writeSetsOf(coordinator, p).flat())];
    const stamper = owners.includes(coordinator.nodeId) ? coordinator : byId.get(rng.pick(owners))!;
    stats.writes++;
    const boot = coordinator.boot;
    const stamp = (): void => {
      const replica = stamper.replica;
      if (!replica || !holdsPartition(stamper, p)) return;
      const value = utf8(`${coordinator.index}@${queue.nowMs}`);
      const stamperBoot = stamper.boot;
      (isDelete ? replica.delete(key) : replica.put(key, value)).then(
        (version) => {
          stamped.set(`${key} ${versionText(version)}`, isDelete);
          if (stamper.boot !== stamperBoot) return;
          const entry: Entry = { key, value: isDelete ? null : value, version };
          const reply = (): void => coordinate(coordinator, boot, entry, p, isDelete, stamper.nodeId);
          if (stamper === coordinator) reply();
          else carry(stamper, coordinator, reply);
        },
        () => undefined,
      );
    };
    if (stamper === coordinator) stamp();
    else carry(coordinator, stamper, stamp);
  }

  /** The coordinator sends a stamped write to every write owner and counts their acks. */
  function coordinate(coordinator: SimNode, boot: number, entry: Entry, p: PartitionId, isDelete: boolean, stamper: string): void {
    if (coordinator.boot !== boot) return;
    const acks = new Set<string>([stamper]);
    const sent = new Set<string>([stamper]);
    let done = false;
    const deadlineMs = queue.nowMs + writeTimeoutMs;
    const check = (): void => {
      if (done || coordinator.boot !== boot || queue.nowMs > deadlineMs) return;
      const sets = writeSetsOf(coordinator, p);
      if (quorumMet(sets, acks, 'quorum')) {
        done = true;
        stats.acknowledgedWrites++;
        const best = acked.get(entry.key);
        if (!best || compareVersions(entry.version, best.version) > 0) acked.set(entry.key, { version: entry.version, deleted: isDelete });
        // Half the time a client reads it back soon after (from any member: read your writes).
        if (rng.chance(0.5)) queue.schedule(rng.int(5, 300), () => clientRead(entry.key));
        return;
      }
      // Send to owners not sent to yet (the view may have grown since).
      for (const id of new Set(sets.flat())) {
        if (sent.has(id)) continue;
        sent.add(id);
        const owner = byId.get(id)!;
        carry(coordinator, owner, () => {
          void owner.replica!.applyRemote([entry]).then(
            (report) => {
              if (report.applied + report.stale === 0) return;
              carry(owner, coordinator, () => {
                acks.add(id);
                check();
              });
            },
            () => undefined,
          );
        });
      }
    };
    check();
  }

  /**
   * A quorum read during the run (invariant 6): a member asks its read owners of the key's
   * partition; once a quorum answered, the greatest version must be at least the key's last
   * write acknowledged before the read began.
   */
  function clientRead(readKey?: string): void {
    const candidates = nodes.filter((n) => isUp(n) && n.history!.newest()?.weights[n.nodeId] !== undefined);
    if (candidates.length === 0) return;
    const reader = rng.pick(candidates);
    const key = readKey ?? `k${rng.int(0, keys - 1)}`;
    const p = partitionOfKey(key);
    const owners = reader.ownership!.readOwners(p);
    const before = acked.get(key);
    const needed = acksNeeded('quorum', owners.length);
    const boot = reader.boot;
    const answers = new Map<string, Version | undefined>();
    const deadlineMs = queue.nowMs + writeTimeoutMs;
    stats.reads++;
    for (const id of owners) {
      const owner = byId.get(id)!;
      const answer = (version: Version | undefined): void => {
        // Per owner: the network duplicates messages, and a duplicate is not a second answer.
        if (reader.boot !== boot || queue.nowMs > deadlineMs || answers.size >= needed || answers.has(id)) return;
        answers.set(id, version);
        if (answers.size < needed || !before) return;
        const best = [...answers.values()].reduce<Version | undefined>((a, b) => (!a || (b && compareVersions(b, a) > 0) ? b : a), undefined);
        if (!best || compareVersions(best, before.version) < 0) {
          violate(
            `node ${reader.index} read ${key} from a quorum of owners ${owners.map(nameOf).join(',')} of partition ${p} and got ${best ? versionText(best) : 'nothing'}; ${versionText(before.version)} was acknowledged before the read`,
          );
        }
      };
      const ask = (): void => {
        const replica = owner.replica;
        if (!replica) return;
        const ownerBoot = owner.boot;
        void replica.get(key).then(
          (entry) => {
            if (owner.boot !== ownerBoot) return;
            if (owner === reader) answer(entry?.version);
            else carry(owner, reader, () => answer(entry?.version));
          },
          () => undefined,
        );
      };
      if (owner === reader) ask();
      else carry(reader, owner, ask);
    }
  }

  // --- faults ------------------------------------------------------------------------------

  const ownersLeft = (): number => nodes.filter((n) => n.wantsIn && n.weight > 0 && n.status !== 'dead').length;

  function faultStep(): void {
    if (!faults) return;
    const up = nodes.filter((n) => isUp(n) && !n.leaving);
    const roll = rng.float();
    if (roll < 0.3 && up.length > 1) {
      const victim = rng.pick(up);
      const forGood = stats.deaths === 0 && rng.chance(0.25) && victim.weight > 0 && ownersLeft() > replicas + 1 && victim !== nodes[0];
      if (forGood || ownersLeft() > replicas || victim.weight === 0) {
        stats.crashes++;
        crash(victim, forGood ? 'dead' : 'crashed');
        trace?.(`${queue.nowMs} node ${victim.index} ${forGood ? 'dies' : 'crashes'}`);
        if (forGood) {
          stats.deaths++;
          victim.wantsIn = false;
          queue.schedule(rng.int(1000, 3000), () => pendingRemovals.push(victim.nodeId));
        } else {
          queue.schedule(rng.int(200, 3000), () => {
            if (victim.status === 'crashed') void start(victim);
          });
        }
      }
    } else if (roll < 0.4 && ownersLeft() > replicas + 1) {
      const candidates = up.filter((n) => n.wantsIn && n !== nodes[0] && n.history!.newest()?.weights[n.nodeId] !== undefined);
      if (candidates.length > 0) {
        const leaver = rng.pick(candidates);
        stats.leaves++;
        trace?.(`${queue.nowMs} node ${leaver.index} begins leaving`);
        leaver.leaving = true;
        leaver.wantsIn = false;
        reconcile(leaver);
      }
    } else if (roll < 0.6) {
      stats.partitions++;
      for (const n of nodes) n.group = rng.int(0, 1);
      queue.schedule(rng.int(500, 4000), () => {
        for (const n of nodes) n.group = 0;
      });
    }
    queue.schedule(rng.int(300, 2000), faultStep);
  }

  // --- the run -----------------------------------------------------------------------------

  for (const node of nodes.slice(0, initialCount)) {
    node.wantsIn = true;
    await start(node);
  }
  {
    const first = nodes[0]!.history!;
    for (const node of nodes.slice(0, initialCount)) first.stageAdd(node.nodeId, node.weight);
    first.stageReplicas(replicas);
    commit(nodes[0]!);
  }
  for (const node of nodes.slice(initialCount)) {
    queue.schedule(rng.int(500, faultWindowMs), () => {
      stats.joins++;
      node.wantsIn = true;
      trace?.(`${queue.nowMs} node ${node.index} starts (weight ${node.weight})`);
      void start(node).then(() => {
        const contact = nodes.find((peer) => reachable(peer, node) && peer.history?.newest());
        if (contact) gossip(contact, [node]);
      });
    });
  }
  for (let w = 0; w < writes; w++) queue.schedule(rng.int(0, faultWindowMs - 1), clientWrite);
  for (let r = 0; r < writes / 2; r++) queue.schedule(rng.int(0, faultWindowMs + settleMs / 2), () => clientRead());
  queue.schedule(rng.int(300, 2000), faultStep);
  queue.schedule(faultWindowMs, () => {
    faults = false;
    for (const n of nodes) n.group = 0;
    for (const n of nodes) n.skewMs = rng.int(-50, 50);
    for (const n of nodes) if (n.status === 'crashed') void start(n);
  });
  queue.schedule(faultWindowMs + settleMs, () => {
    running = false;
  });

  const limitMs = faultWindowMs + settleMs + 2 * sessionTimeoutMs;
  for (let event = queue.pop(); event; event = queue.pop()) {
    event.run();
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (queue.nowMs > limitMs) {
      violate(`the event queue did not drain by ${limitMs} ms`);
      break;
    }
  }
  stats.simulatedMs = queue.nowMs;
  checkEnd(nodes, { acked, stamped }, placement, violate, stats);
  return { seed, nodes: count, ok: violations.length === 0, violations, stats };
}
