/**
 * The deterministic simulator: N nodes run the real core (Replica, SyncInitiator/Responder,
 * SyncScheduler) over memory stores, and one seeded event queue plays the network, the disks
 * and the faults. Everything random comes from one Prng, so a seed replays exactly.
 *
 * Model:
 * - Disk: a write becomes durable 0-3 ms after it is issued; a crash before then loses it
 *   (the writer is never acknowledged). Each incarnation of a node writes through a fence
 *   that a crash closes, so a dead incarnation can never write again.
 * - Gossip: every acknowledged local write is broadcast to each reachable node, with loss,
 *   duplication and random delay (so reordering).
 * - Sync sessions: each side runs the core's session driver over a frame channel; frames
 *   (and the close that ends a side) travel in order (a stream) with random delay; a lost
 *   frame, a partition or a crash breaks the session on both sides (both channels fail); a
 *   session times out after 10 s.
 * - Faults, during the fault window only: partitions and heals, crashes and restarts (some
 *   with the wall clock set back), per-node clock skew, one node sometimes beyond the drift
 *   limit. Writes (puts and deletes over a small key space, so conflicts are common) also
 *   happen only in the window.
 * Afterwards the network is clean and clocks are close; nodes keep syncing for `settleMs`,
 * then schedulers stop and the queue drains, and the checker runs:
 * 1. all nodes hold identical entries and identical Merkle roots;
 * 2. every acknowledged write is present or superseded by a greater version;
 * 3. no node ever replaced a version with an older one (a deleted key never comes back
 *    with an older version);
 * 4. each node's acknowledged stamps strictly increase, across restarts (its HLC never
 *    went backwards).
 */
import { Replica, type AppliedChange } from '../../src/core/replica.js';
import { compareVersions, lastWriterWins, type Entry, type MergeRule, type Version } from '../../src/core/entry.js';
import { hlcToString, type Hlc } from '../../src/core/hlc.js';
import { inboundSessionsMax } from '../../src/core/limits.js';
import { SyncScheduler } from '../../src/core/scheduler.js';
import { RefuseReason } from '../../src/core/sync-frames.js';
import { FrameChannel } from '../../src/core/frame-channel.js';
import { driveSession, type FrameTransport } from '../../src/core/session-driver.js';
import { SyncInitiator, SyncResponder, type SyncResult } from '../../src/core/sync-session.js';
import { toHex, utf8 } from '../../src/core/bytes.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ScanKeysOptions, Store } from '../../src/core/store.js';
import { EventQueue } from './event-queue.js';
import { Prng } from './prng.js';

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Client writes spread over the fault window. */
  writes?: number;
  /** Size of the key space; small, so that writers conflict. */
  keys?: number;
  faultWindowMs?: number;
  settleMs?: number;
  /** Only the canary changes this. */
  mergeRule?: MergeRule;
}

export interface SimReport {
  seed: number;
  nodes: number;
  depth: number;
  ok: boolean;
  violations: string[];
  stats: {
    acknowledgedWrites: number;
    sessions: number;
    sessionsFailed: number;
    crashes: number;
    partitions: number;
    gossipDelivered: number;
    clockDriftRejections: number;
    simulatedMs: number;
    entries: number;
  };
}

const epochMs = 1_700_000_000_000;
const cluster = 'sim';
const sessionTimeoutMs = 10_000;
const tickMsMax = 100;

interface SimNode {
  index: number;
  nodeId: string;
  disk: MemoryStore;
  fence: Fence | undefined;
  replica: Replica | undefined;
  scheduler: SyncScheduler | undefined;
  incarnation: number;
  skewMs: number;
  group: number;
  inbound: number;
  lastAckedHlc: Hlc;
}

interface Side {
  node: SimNode;
  incarnation: number;
  /** Frames from the other side, pushed by events of the queue. */
  inbox: FrameChannel;
  lastDeliveryAtMs: number;
  result: SyncResult | undefined;
}

interface Session {
  initiator: Side;
  responder: Side;
  over: boolean;
}

/** A store that stops working when its incarnation crashes, and writes with disk latency. */
class Fence implements Store {
  alive = true;
  constructor(private readonly disk: MemoryStore, private readonly sim: Simulation) {}

  private check(): void {
    if (!this.alive) throw new Error('node crashed');
  }
  open(): Promise<void> {
    return this.disk.open();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  get(key: string): Promise<Entry | undefined> {
    this.check();
    return this.disk.get(key);
  }
  getMany(keys: readonly string[]): Promise<(Entry | undefined)[]> {
    this.check();
    return this.disk.getMany(keys);
  }
  readHlc(): Promise<Hlc> {
    this.check();
    return this.disk.readHlc();
  }
  write(entries: readonly Entry[], hlcLast: Hlc): Promise<void> {
    this.check();
    return new Promise((resolve, reject) => {
      this.sim.queue.schedule(this.sim.rng.int(0, 3), () => {
        if (!this.alive) reject(new Error('node crashed before the write was durable'));
        else this.disk.write(entries, hlcLast).then(resolve, reject);
      });
    });
  }
  async *scanHash(prefix: string): AsyncIterable<Entry> {
    this.check();
    yield* this.disk.scanHash(prefix);
  }
  async *scanHashPrefixes(prefixes: readonly string[]): AsyncIterable<Entry> {
    this.check();
    yield* this.disk.scanHashPrefixes(prefixes);
  }
  scanKeys(options?: ScanKeysOptions): AsyncIterable<Entry> {
    this.check();
    return this.disk.scanKeys(options);
  }
  getMeta(name: string): Promise<Uint8Array | undefined> {
    return this.disk.getMeta(name);
  }
  putMeta(name: string, value: Uint8Array): Promise<void> {
    return this.disk.putMeta(name, value);
  }
  sizeBytes(): Promise<number> {
    return this.disk.sizeBytes();
  }
}

export class Simulation {
  readonly queue = new EventQueue();
  readonly rng: Prng;
  private readonly options: Required<Omit<SimOptions, 'mergeRule'>> & { mergeRule: MergeRule };
  private readonly nodes: SimNode[] = [];
  private readonly depth: number;
  private readonly violations: string[] = [];
  private readonly acked = new Map<string, Version>();
  private readonly sessions = new Set<Session>();
  private faultsOver = false;
  private stopped = false;
  private gossipLoss: number;
  private gossipDuplication: number;
  private frameLoss: number;
  private delayMsMax: number;
  private readonly stats: SimReport['stats'] = {
    acknowledgedWrites: 0,
    sessions: 0,
    sessionsFailed: 0,
    crashes: 0,
    partitions: 0,
    gossipDelivered: 0,
    clockDriftRejections: 0,
    simulatedMs: 0,
    entries: 0,
  };

  constructor(options: SimOptions) {
    this.options = {
      writes: 120,
      keys: 24,
      faultWindowMs: 12_000,
      settleMs: 40_000,
      mergeRule: lastWriterWins,
      ...options,
    };
    this.rng = new Prng(options.seed);
    this.depth = this.rng.int(1, 4);
    this.gossipLoss = this.rng.float() * 0.4;
    this.gossipDuplication = this.rng.float() * 0.1;
    this.frameLoss = this.rng.float() * 0.02;
    this.delayMsMax = this.rng.int(2, 80);
  }

  async run(): Promise<SimReport> {
    const { nodes, writes, faultWindowMs, settleMs } = this.options;
    const beyondDrift = this.rng.chance(0.3) ? this.rng.int(0, nodes - 1) : -1;
    for (let i = 0; i < nodes; i++) {
      // Half the clocks agree exactly, so simultaneous writes tie on HLC and the node-id
      // tie-break is exercised; one node is sometimes beyond the drift limit.
      const skewMs = i === beyondDrift ? this.rng.int(700, 1500) : this.rng.chance(0.5) ? 0 : this.rng.int(-200, 200);
      this.nodes.push({
        index: i,
        nodeId: i.toString(16).padStart(16, '0'),
        disk: new MemoryStore(),
        fence: undefined,
        replica: undefined,
        scheduler: undefined,
        incarnation: 0,
        skewMs,
        group: 0,
        inbound: 0,
        lastAckedHlc: 0n,
      });
    }
    for (const node of this.nodes) await this.boot(node);
    for (const node of this.nodes) this.connectAll(node);

    for (let w = 0; w < writes; w++) this.queue.schedule(this.rng.int(0, faultWindowMs - 1), () => this.clientWrite());
    this.scheduleFaults();
    this.queue.schedule(faultWindowMs, () => void this.endFaults());
    this.queue.schedule(faultWindowMs + settleMs, () => {
      this.stopped = true;
    });

    const limitMs = faultWindowMs + settleMs + 5 * sessionTimeoutMs;
    for (let event = this.queue.pop(); event; event = this.queue.pop()) {
      event.run();
      await drainMicrotasks();
      if (this.queue.nowMs > limitMs) {
        this.violations.push(`the event queue did not drain by ${limitMs} ms`);
        break;
      }
    }
    this.stats.simulatedMs = this.queue.nowMs;
    await this.check();
    return {
      seed: this.options.seed,
      nodes,
      depth: this.depth,
      ok: this.violations.length === 0,
      violations: this.violations,
      stats: this.stats,
    };
  }

  // --- nodes -------------------------------------------------------------------------------

  private async boot(node: SimNode): Promise<void> {
    node.incarnation++;
    const incarnation = node.incarnation;
    node.fence = new Fence(node.disk, this);
    node.replica = await Replica.open({
      nodeId: node.nodeId,
      store: node.fence,
      depth: this.depth,
      wallClockMs: () => epochMs + this.queue.nowMs + node.skewMs,
      mergeRule: this.options.mergeRule,
      onApplied: (change) => this.onApplied(node, incarnation, change),
    });
    node.scheduler = new SyncScheduler({ rng: () => this.rng.float() }, this.queue.nowMs);
    this.scheduleTick(node, incarnation, 1);
  }

  private isUp(node: SimNode): boolean {
    return node.replica !== undefined;
  }

  private reachable(a: SimNode, b: SimNode): boolean {
    return this.isUp(a) && this.isUp(b) && a.group === b.group;
  }

  private connectAll(node: SimNode): void {
    for (const other of this.nodes) {
      if (other === node || !this.reachable(node, other)) continue;
      node.scheduler!.peerConnected(String(other.index));
      other.scheduler!.peerConnected(String(node.index));
    }
  }

  private disconnect(a: SimNode, b: SimNode): void {
    a.scheduler?.peerDisconnected(String(b.index));
    b.scheduler?.peerDisconnected(String(a.index));
    for (const session of this.sessions) {
      const pair = [session.initiator.node, session.responder.node];
      if (pair.includes(a) && pair.includes(b)) this.abort(session);
    }
  }

  private crash(node: SimNode): void {
    if (!this.isUp(node)) return;
    this.stats.crashes++;
    node.fence!.alive = false;
    node.replica = undefined;
    node.scheduler = undefined;
    node.inbound = 0;
    for (const other of this.nodes) if (other !== node) this.disconnect(node, other);
  }

  private async restart(node: SimNode): Promise<void> {
    if (this.isUp(node)) return;
    await this.boot(node);
    this.connectAll(node);
  }

  private scheduleTick(node: SimNode, incarnation: number, afterMs: number): void {
    this.queue.schedule(afterMs, () => {
      if (this.stopped || node.incarnation !== incarnation || !node.scheduler) return;
      const now = this.queue.nowMs;
      for (let peer = node.scheduler.takeDue(now); peer !== undefined; peer = node.scheduler.takeDue(now)) {
        this.startSession(node, this.nodes[Number(peer)]!);
      }
      const wakeMs = node.scheduler.wakeAtMs(now) - now;
      this.scheduleTick(node, incarnation, Math.min(tickMsMax, Math.max(1, wakeMs)));
    });
  }

  // --- writes and gossip -------------------------------------------------------------------

  /** One client write; a fifth of them race a write of the same key on another node. */
  private clientWrite(): void {
    const key = `k${this.rng.int(0, this.options.keys - 1)}`;
    this.writeOn(this.rng.pick(this.nodes), key);
    if (this.rng.chance(0.2)) this.writeOn(this.rng.pick(this.nodes), key);
  }

  private writeOn(node: SimNode, key: string): void {
    const replica = node.replica;
    if (!replica) return;
    const isDelete = this.rng.chance(0.25);
    const incarnation = node.incarnation;
    const write = isDelete ? replica.delete(key) : replica.put(key, utf8(`${node.index}@${this.queue.nowMs}`));
    write.then(
      (version) => {
        if (node.incarnation !== incarnation) return; // acknowledged to no one: the node died
        this.stats.acknowledgedWrites++;
        if (version.hlc <= node.lastAckedHlc) {
          this.violations.push(`node ${node.index} stamped ${hlcToString(version.hlc)} after ${hlcToString(node.lastAckedHlc)}: its HLC went backwards`);
        }
        node.lastAckedHlc = version.hlc;
        const best = this.acked.get(key);
        if (!best || compareVersions(version, best) > 0) this.acked.set(key, version);
      },
      () => undefined, // a crash before the write was durable: never acknowledged
    );
  }

  private onApplied(node: SimNode, incarnation: number, change: AppliedChange): void {
    if (change.previous && compareVersions(change.entry.version, change.previous) <= 0) {
      this.violations.push(
        `node ${node.index} replaced ${change.entry.key}@${versionText(change.previous)} with older ${versionText(change.entry.version)}`,
      );
    }
    if (change.origin !== 'local' || node.incarnation !== incarnation) return;
    for (const other of this.nodes) {
      if (other === node) continue;
      const copies = this.rng.chance(this.gossipDuplication) ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        if (!this.reachable(node, other) || this.rng.chance(this.gossipLoss)) continue;
        this.queue.schedule(this.rng.int(1, this.delayMsMax), () => {
          if (!this.reachable(node, other)) return;
          this.stats.gossipDelivered++;
          void other.replica!.applyRemote([change.entry]).then(
            (report) => (this.stats.clockDriftRejections += report.rejectedClockDrift),
            () => undefined,
          );
        });
      }
    }
  }

  // --- sync sessions -----------------------------------------------------------------------

  private startSession(from: SimNode, to: SimNode): void {
    const peer = String(to.index);
    if (!this.reachable(from, to)) {
      from.scheduler!.report(peer, false, this.queue.nowMs);
      return;
    }
    this.stats.sessions++;
    const refuse = to.inbound >= inboundSessionsMax ? { reason: RefuseReason.busy, message: 'busy' } : undefined;
    to.inbound++;
    const side = (node: SimNode): Side => ({
      node,
      incarnation: node.incarnation,
      inbox: new FrameChannel(),
      lastDeliveryAtMs: 0,
      result: undefined,
    });
    const initiator = new SyncInitiator(from.replica!.syncContext({ cluster }), this.rng.u32());
    const responder = new SyncResponder(to.replica!.syncContext({ cluster }), refuse ? { refuse } : {});
    const session: Session = { initiator: side(from), responder: side(to), over: false };
    this.sessions.add(session);
    this.queue.schedule(sessionTimeoutMs, () => this.abort(session));
    this.drive(session, session.initiator, initiator);
    this.drive(session, session.responder, responder);
  }

  /** Run one side through the core's session driver; its frames go out through `transmit`. */
  private drive(session: Session, side: Side, machine: SyncInitiator | SyncResponder): void {
    const transport: FrameTransport = {
      send: (frame) => this.transmit(session, side, (to) => to.inbox.push(frame), true),
      receive: () => side.inbox.receive(),
      close: () => this.transmit(session, side, (to) => to.inbox.close(), false),
    };
    const apply = async (entries: Entry[]): Promise<void> => {
      const replica = !session.over && side.node.incarnation === side.incarnation ? side.node.replica : undefined;
      if (!replica) throw new Error('session aborted or node down');
      const report = await replica.applyRemote(entries);
      this.stats.clockDriftRejections += report.rejectedClockDrift;
    };
    driveSession(machine, transport, { apply }).then(
      (result) => this.finish(session, side, result),
      () => this.abort(session),
    );
  }

  /** Deliver a frame (or the close) to the other side, in order, after a random delay. */
  private transmit(session: Session, from: Side, deliver: (to: Side) => void, lossy: boolean): void {
    if (session.over) throw new Error('session aborted');
    const to = from === session.initiator ? session.responder : session.initiator;
    if (!this.reachable(from.node, to.node) || (lossy && this.rng.chance(this.frameLoss))) {
      this.abort(session);
      throw new Error('link broke');
    }
    const atMs = Math.max(this.queue.nowMs + this.rng.int(1, this.delayMsMax), to.lastDeliveryAtMs);
    to.lastDeliveryAtMs = atMs;
    this.queue.schedule(atMs - this.queue.nowMs, () => {
      if (!session.over) deliver(to);
    });
  }

  private finish(session: Session, side: Side, result: SyncResult): void {
    if (session.over) return; // aborted while its last effects ran: as if never finished
    side.result = result;
    if (side === session.initiator) {
      const ok = result.outcome === 'in-sync' || result.outcome === 'synced';
      if (!ok) this.stats.sessionsFailed++;
      side.node.scheduler?.report(String(session.responder.node.index), ok, this.queue.nowMs);
    }
    if (session.initiator.result && session.responder.result) this.close(session);
  }

  private abort(session: Session): void {
    if (session.over) return;
    if (!session.initiator.result) {
      this.stats.sessionsFailed++;
      const { node, incarnation } = session.initiator;
      if (node.incarnation === incarnation) node.scheduler?.report(String(session.responder.node.index), false, this.queue.nowMs);
    }
    const broken = new Error('session aborted');
    session.initiator.inbox.fail(broken);
    session.responder.inbox.fail(broken);
    this.close(session);
  }

  private close(session: Session): void {
    if (session.over) return;
    session.over = true;
    this.sessions.delete(session);
    const { node, incarnation } = session.responder;
    if (node.incarnation === incarnation) node.inbound = Math.max(0, node.inbound - 1);
  }

  // --- faults ------------------------------------------------------------------------------

  private scheduleFaults(): void {
    const windowMs = this.options.faultWindowMs;
    const faults = this.rng.int(1, 6);
    for (let f = 0; f < faults; f++) {
      const atMs = this.rng.int(0, windowMs - 1);
      if (this.rng.chance(0.5)) this.queue.schedule(atMs, () => this.partition());
      else this.queue.schedule(atMs, () => this.crashSomeone());
    }
  }

  private partition(): void {
    if (this.faultsOver) return;
    this.stats.partitions++;
    const before = this.nodes.map((n) => n.group);
    for (const node of this.nodes) node.group = this.rng.int(0, 1);
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a.index < b.index && before[a.index] === before[b.index] && a.group !== b.group) this.disconnect(a, b);
      }
    }
    this.queue.schedule(this.rng.int(300, 5000), () => this.heal());
  }

  private heal(): void {
    for (const node of this.nodes) node.group = 0;
    for (const node of this.nodes) if (this.isUp(node)) this.connectAll(node);
  }

  private crashSomeone(): void {
    if (this.faultsOver) return;
    const node = this.rng.pick(this.nodes);
    if (!this.isUp(node)) return;
    this.crash(node);
    this.queue.schedule(this.rng.int(100, 5000), () => {
      if (this.rng.chance(0.3)) node.skewMs -= this.rng.int(500, 3000); // clock set back across the restart
      void this.restart(node);
    });
  }

  private async endFaults(): Promise<void> {
    this.faultsOver = true;
    this.gossipLoss = 0;
    this.gossipDuplication = 0;
    this.frameLoss = 0;
    for (const node of this.nodes) node.skewMs = this.rng.int(-50, 50);
    this.heal();
    for (const node of this.nodes) await this.restart(node);
  }

  // --- the checker -------------------------------------------------------------------------

  private async check(): Promise<void> {
    const states: Map<string, string>[] = [];
    for (const node of this.nodes) {
      if (!node.replica) {
        this.violations.push(`node ${node.index} is down at the end`);
        return;
      }
      const state = new Map<string, string>();
      for await (const entry of node.disk.scanHash('')) {
        state.set(entry.key, `${versionText(entry.version)}=${entry.value === null ? 'tombstone' : toHex(entry.value)}`);
      }
      states.push(state);
    }
    const reference = states[0]!;
    this.stats.entries = reference.size;
    const root0 = toHex(this.nodes[0]!.replica!.root().digest);
    for (let i = 1; i < states.length; i++) {
      const diff = describeDifference(reference, states[i]!);
      if (diff) this.violations.push(`node ${i} differs from node 0: ${diff}`);
      const root = toHex(this.nodes[i]!.replica!.root().digest);
      if (root !== root0) this.violations.push(`node ${i} root ${root.slice(0, 12)} != node 0 root ${root0.slice(0, 12)}`);
    }
    for (const node of this.nodes) {
      for (const [key, version] of this.acked) {
        const held = (await node.disk.get(key))?.version;
        if (!held || compareVersions(held, version) < 0) {
          this.violations.push(
            `node ${node.index} lost acknowledged write ${key}@${versionText(version)} (holds ${held ? versionText(held) : 'nothing'})`,
          );
        }
      }
    }
  }
}

function versionText(version: Version): string {
  return `${hlcToString(version.hlc)}/${version.node.replace(/^0+(?=.)/, '')}`;
}

function describeDifference(a: Map<string, string>, b: Map<string, string>): string | undefined {
  for (const [key, value] of a) if (b.get(key) !== value) return `${key}: ${value} vs ${b.get(key) ?? 'missing'}`;
  for (const [key, value] of b) if (!a.has(key)) return `${key}: missing vs ${value}`;
  return undefined;
}

function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function runSimulation(options: SimOptions): Promise<SimReport> {
  return new Simulation(options).run();
}
