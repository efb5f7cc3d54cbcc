/**
 * Membership: everything a node knows about the other nodes of its cluster, as a sans-IO
 * state machine. Events go in (a peer connected or disconnected, a membership message
 * arrived, a sync session ended, time passed); effects come out (start a sync session, dial
 * a peer, announce a message, persist our incarnation). The runtime (`src/net/cluster.ts` in
 * production, `test/sim/` in the simulator) carries effects out and passes the clock and the
 * rng in, so the simulator runs this same code.
 *
 * Members are keyed by node id (the writer id in versions); the transport's peer id is an
 * attribute, indexed for the transport's events. States:
 * - up: connected and speaking our cluster's protocols;
 * - left: it announced a clean stop (a leave) for its current incarnation;
 * - unreachable: disconnected without a leave;
 * - removed: an operator forgot it (`ckv peers forget`): hidden, and news from the
 *   incarnation it was forgotten in is ignored; a connection or a newer incarnation re-adds it.
 *
 * Incarnations (as memberlist's): a node's incarnation increases on every start and is
 * persisted by its runtime. Every membership message carries (incarnation, seq), seq
 * increasing with each message a node sends, so a repeat is a new message (gossip's seen-cache
 * drops identical bytes) and old news loses: a message not newer than the last one heard from
 * that node is ignored. If a node hears a leave of its own current incarnation (a message it
 * did not send in this life), it refutes it: it takes a higher incarnation and announces
 * itself alive.
 *
 * Trust: a message is only ever about its sender. The runtime proves the sender (the message
 * is signed by the peer's key, and the signer must be the peer id the message names);
 * membership further refuses a message whose node id is bound to another peer id that is up.
 * A peer's claim about another peer is never taken. A connected peer that keeps talking is
 * never left: a leave followed by any newer sign of life (an alive message, a connection, a
 * session we started after the leave and that completed) makes it up again. A session already
 * running when the leave came is no such sign: a stopping node finishes its sessions after
 * it announces its leave, and taking their end as life showed it up, then unreachable. Nor is
 * a session the peer started: it may have opened it just before its leave and we accepted it
 * just after (a new stream is negotiated while the leave travels on gossip's open stream).
 *
 * Scheduling (the SyncScheduler is owned here): when a peer connects, who syncs at once?
 * - a node that has not completed a session since it started (it is catching up) syncs with
 *   each connected peer at once, one session at a time: the first brings it everything, the
 *   next ones find it in sync, so missing entries cross the wire once;
 * - a peer that is new to us, or that restarted (a higher incarnation), is catching up: it
 *   pulls from us, we do not push at once;
 * - otherwise (a link healed between two running nodes) the smaller node id syncs at once.
 * While a node catches up from one peer it answers other peers' sessions with `busy`.
 * Then every `syncIntervalMs` (with jitter) one random up member is synced. Only members
 * that hold a partition in common with us (placement.ts) are synced with at all; under full
 * replication that is every member. In partitioned mode the runtime answers that question
 * from the layout (`sharesPartitions`, ownership.ts) and calls `partitionsChanged` when a
 * layout changes it: members that now share a partition join the rounds, the others leave
 * them (and a due member that no longer shares one is dropped, not synced).
 *
 * The layout (placement's input) is us plus every member not removed; its version rises with
 * every change of that set.
 *
 * Expiry: a member that is unreachable or left, not connected, and not heard of (no
 * connection, membership message, session or Hello) for `unreachableForgetMs` (default 24 h,
 * limits.ts) is dropped from the table during `tick()`, as if never known: dead nodes and
 * one-off hostile identities do not stay listed forever. If it comes back it is a new member.
 */
import { assert } from './errors.js';
import {
  clockOffsetSamplesMax,
  clockOffsetSamplesMin,
  membersMax,
  memberAnnounceAfterJoinMs,
  memberAnnounceIntervalMs,
  memberDialIntervalMs,
  memberUnreachableForgetMsDefault,
  syncBusyTieRetryMs,
} from './limits.js';
import { FullReplication, layoutOf, shareAnyPartition, type Layout, type Placement } from './placement.js';
import { SyncScheduler } from './scheduler.js';
import { WatermarkRefresh, type LaggingPeer, type WatermarkRefreshOptions } from './watermark-refresh.js';

export type MemberState = 'up' | 'left' | 'unreachable' | 'removed';
/** The states a listing shows: removed members are hidden. */
export type ListedState = Exclude<MemberState, 'removed'>;

/** What is known about one other node. */
export interface MemberInfo {
  nodeId: string;
  peerId: string;
  /** The highest incarnation heard of; 0 until its first message or connection says. */
  incarnation: number;
  addresses: string[];
  state: ListedState;
  /** Time of the last change of state. */
  sinceMs: number;
  /** Time a session with it last ended; 0 = never. */
  lastSyncMs: number;
  lastSyncResult: string;
  /** Whether our roots were equal at the end of the last session. */
  inSync: boolean;
  /** Its wall clock minus ours, measured from its last sync Hello; 0 until measured. */
  clockOffsetMs: number;
  /** Entries it held at its last Hello to us (tombstones included); -1 = unknown. */
  entryCount: number;
}

/** Membership messages. Only append: the values are part of the protocol. */
export const MemberMessageType = { alive: 1, leave: 2 } as const;

/** A node's claim about itself; the runtime signs it and checks the signature of others'. */
export type MemberMessage =
  | { type: 'alive'; nodeId: string; peerId: string; incarnation: number; seq: number; addresses: string[] }
  | { type: 'leave'; nodeId: string; peerId: string; incarnation: number; seq: number };

export type MembershipEffect =
  /** Start a sync session with this member as initiator; report its end with `sessionEnded`. */
  | { kind: 'sync'; nodeId: string; peerId: string }
  /** Dial a member we are not connected to. */
  | { kind: 'dial'; peerId: string; addresses: string[] }
  /** Publish this message to the cluster. */
  | { kind: 'announce'; message: MemberMessage }
  /** Persist our incarnation before announcing it (a refutation raised it). */
  | { kind: 'persist-incarnation'; incarnation: number }
  /** Something an operator wants in the log. */
  | {
      kind: 'log';
      event: 'member up' | 'member down' | 'member left' | 'member refused' | 'member expired' | 'refuted leave';
      nodeId: string;
      peerId: string;
      detail?: string;
    };

export interface MembershipOptions {
  self: { nodeId: string; peerId: string; incarnation: number };
  /** Returns a float in [0, 1): jitter and the choice of a periodic sync partner. */
  rng: () => number;
  /** Periodic anti-entropy interval (default syncIntervalMsDefault). */
  syncIntervalMs?: number;
  /** How often we re-announce ourselves (default memberAnnounceIntervalMs). */
  announceIntervalMs?: number;
  /**
   * Only the simulator's canary sets this false: messages are then taken whatever their
   * incarnation, so a replayed old leave wins. The checker must catch it.
   */
  staleMessagesLose?: boolean;
  /** Who holds what (default FullReplication). */
  placement?: Placement;
  /**
   * Partitioned mode: whether this node and `nodeId` hold a partition in common now
   * (ownership.sharedPartitions non-empty). Default: asks `placement` over the membership's
   * layout (full replication: every member).
   */
  sharesPartitions?: (nodeId: string) => boolean;
  /**
   * A member unreachable or left, and not heard of for this long, is dropped from the table
   * (default memberUnreachableForgetMsDefault, 24 h).
   */
  unreachableForgetMs?: number;
  /**
   * Full replication: the replica's catch-up watermarks, so that those left lagging by a
   * burst of writes are proven again once it is over (watermark-refresh.ts): our applied seq
   * and the peers whose watermark lags by `entriesMin` or more. Absent (partitioned mode, which
   * has no deltas): no refresh.
   */
  watermarks?: { seqLast(): number; lagging(entriesMin: number): readonly string[] };
  /** Tuning of that refresh (tests, the simulator). */
  watermarkRefresh?: WatermarkRefreshOptions;
  /**
   * Periodic rounds during a burst of writes (only with `watermarks`, whose applied seq marks a
   * burst): defaults syncBurstEntriesMin and syncBurstRoundsDeferMax (limits.ts, scheduler.ts).
   * Tests and the simulator set them.
   */
  syncBurst?: { entriesMin?: number; roundsDeferMax?: number };
}

export type ForgetResult = 'forgotten' | 'connected' | 'unknown';

/** A connection identified as a member of our cluster. */
export interface ConnectedPeer {
  nodeId: string;
  peerId: string;
  /** Its incarnation if the transport told it (0 = unknown). */
  incarnation: number;
  addresses: string[];
}

interface Member extends Omit<MemberInfo, 'state'> {
  state: MemberState;
  /** seq of the last message heard in `incarnation`; -1 = none. */
  seq: number;
  lastDialMs: number;
  /** The transport has a connection to it (a member that left may still be connected). */
  connected: boolean;
  /** clockOffsetMs was measured (from clockOffsetSamplesMin Hellos of this incarnation), not the initial 0. */
  offsetMeasured: boolean;
  /**
   * The last clockOffsetSamplesMax offsets measured (peer wall minus ours at arrival), and
   * the incarnation they belong to. A Hello that waited in a queue arrives late and reads
   * as "the peer is behind" by the wait; a wait never makes it read ahead. So the greatest
   * recent sample is the one least distorted by delay, and clockOffsetMs is that: one
   * delayed Hello on a loaded machine no longer makes us look ahead of our peers (and refuse
   * writes). A new incarnation (a restart, perhaps with its clock changed) starts afresh.
   */
  offsetSamples: number[];
  offsetSamplesIncarnation: number;
  /** When we last heard of it: a connection or disconnection, a message taken, a session, a Hello. */
  heardMs: number;
}

export class Membership {
  private readonly members = new Map<string, Member>();
  private readonly byPeer = new Map<string, string>();
  private readonly scheduler: SyncScheduler;
  private readonly self: { nodeId: string; peerId: string; incarnation: number };
  private readonly announceIntervalMs: number;
  private readonly staleMessagesLose: boolean;
  private readonly unreachableForgetMs: number;
  private seq = 0;
  private addresses: string[] = [];
  /** True until a session (either role) completes: the node is catching up. */
  private catchingUp = true;
  /** Members whose session we skipped while they synced with us: synced with once theirs ends. */
  private readonly syncAfterServed = new Set<string>();
  /** Members we started a session with, since they came up, only to record their watermark. */
  private readonly watermarkAsked = new Set<string>();
  private readonly watermarks: MembershipOptions['watermarks'];
  private readonly watermarkRefresh: WatermarkRefresh;
  private nextAnnounceAtMs: number;
  private readonly placement: Placement;
  private readonly sharesPartitionsWith: ((nodeId: string) => boolean) | undefined;
  private layoutVersion = 1;
  private cachedLayout: Layout | undefined;
  /** clockAheadOfPeersMs, until an offset or the set of up members changes. */
  private cachedAheadMs: number | undefined;

  constructor(options: MembershipOptions, nowMs: number) {
    this.self = { ...options.self };
    this.placement = options.placement ?? new FullReplication();
    this.sharesPartitionsWith = options.sharesPartitions;
    this.announceIntervalMs = options.announceIntervalMs ?? memberAnnounceIntervalMs;
    this.staleMessagesLose = options.staleMessagesLose ?? true;
    this.unreachableForgetMs = options.unreachableForgetMs ?? memberUnreachableForgetMsDefault;
    this.watermarks = options.watermarks;
    this.watermarkRefresh = new WatermarkRefresh(options.watermarkRefresh);
    // Nothing is applied before the membership runs (no peer yet): our seq now is a still look.
    if (this.watermarks) this.watermarkRefresh.start(nowMs, this.watermarks.seqLast());
    assert(this.unreachableForgetMs > 0, 'unreachableForgetMs must be positive');
    this.scheduler = new SyncScheduler(
      {
        rng: options.rng,
        urgentSessionsMax: 1,
        ...(options.syncIntervalMs ? { intervalMs: options.syncIntervalMs } : {}),
        ...(options.syncBurst?.entriesMin === undefined ? {} : { burstEntriesMin: options.syncBurst.entriesMin }),
        ...(options.syncBurst?.roundsDeferMax === undefined ? {} : { burstRoundsDeferMax: options.syncBurst.roundsDeferMax }),
      },
      nowMs,
    );
    this.nextAnnounceAtMs = nowMs + this.announceIntervalMs;
  }

  /** Periodic sync rounds put off during bursts of writes since the start (scheduler.ts). */
  get syncRoundsDeferred(): number {
    return this.scheduler.roundsDeferredTotal;
  }

  /** Periodic sync rounds that came due since the start, run or put off. */
  get syncRoundsDue(): number {
    return this.scheduler.roundsDueTotal;
  }

  get incarnation(): number {
    return this.self.incarnation;
  }

  get isCatchingUp(): boolean {
    return this.catchingUp;
  }

  /**
   * Whether to serve a session a peer starts now. Not while we catch up from another peer:
   * a second sender would push the same missing entries again. The peer is told `busy`,
   * backs off, and by its retry finds us in sync.
   */
  acceptsInbound(): boolean {
    return !(this.catchingUp && this.scheduler.urgentSessionsInFlight > 0);
  }

  /** Every member not removed, by node id. */
  list(): MemberInfo[] {
    return [...this.members.values()]
      .filter((m) => m.state !== 'removed')
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1))
      .map((m) => publicView(m));
  }

  get(nodeOrPeerId: string): MemberInfo | undefined {
    const member = this.find(nodeOrPeerId);
    return member && member.state !== 'removed' ? publicView(member) : undefined;
  }

  /** Us and every member not removed, for placement. */
  layout(): Layout {
    if (!this.cachedLayout) {
      const nodes = [this.self.nodeId];
      for (const member of this.members.values()) if (member.state !== 'removed') nodes.push(member.nodeId);
      this.cachedLayout = layoutOf(this.layoutVersion, nodes);
    }
    return this.cachedLayout;
  }

  /** Peer ids of the members that are up. */
  upPeerIds(): string[] {
    return this.list()
      .filter((m) => m.state === 'up')
      .map((m) => m.peerId);
  }

  /** Where we listen, for our alive messages. */
  setAddresses(addresses: string[]): void {
    this.addresses = [...addresses];
  }

  // --- transport events -----------------------------------------------------------------------

  connected(peer: ConnectedPeer, nowMs: number): MembershipEffect[] {
    if (peer.nodeId === this.self.nodeId) return [];
    const effects: MembershipEffect[] = [];
    let member = this.members.get(peer.nodeId);
    if (member && member.peerId !== peer.peerId) {
      if (member.state === 'up') {
        // Two peers claim one node id: keep the one we know; the other is refused.
        return [{ kind: 'log', event: 'member refused', nodeId: peer.nodeId, peerId: peer.peerId, detail: `node id already bound to up peer ${member.peerId}` }];
      }
      this.byPeer.delete(member.peerId);
      member.peerId = peer.peerId;
    }
    const isNew = member === undefined || member.state === 'removed';
    const restarted = member !== undefined && peer.incarnation > member.incarnation;
    if (!member) member = this.add(peer.nodeId, peer.peerId, nowMs);
    this.byPeer.set(peer.peerId, peer.nodeId);
    if (peer.incarnation > member.incarnation) {
      member.incarnation = peer.incarnation;
      member.seq = -1;
    }
    if (peer.addresses.length > 0) member.addresses = [...peer.addresses];
    member.connected = true;
    member.heardMs = nowMs;
    const wasUp = member.state === 'up';
    this.setState(member, 'up', nowMs);
    if (!wasUp) {
      effects.push({ kind: 'log', event: 'member up', nodeId: member.nodeId, peerId: member.peerId });
      // Announce ourselves soon whatever we share with it: that is how members meet.
      this.nextAnnounceAtMs = Math.min(this.nextAnnounceAtMs, nowMs + memberAnnounceAfterJoinMs);
      if (!this.shares(member.nodeId)) return effects;
      if (this.catchingUp) this.scheduler.peerConnected(member.nodeId);
      else if (isNew || restarted) this.scheduler.peerKnown(member.nodeId); // it catches up from us
      else if (this.self.nodeId < member.nodeId) this.scheduler.peerConnected(member.nodeId);
      else this.scheduler.peerKnown(member.nodeId);
    }
    return effects;
  }

  disconnected(peerId: string, nowMs: number): MembershipEffect[] {
    const member = this.findByPeer(peerId);
    if (!member || !member.connected) return [];
    member.connected = false;
    member.heardMs = nowMs;
    if (member.state !== 'up') return [];
    this.scheduler.peerDisconnected(member.nodeId);
    this.syncAfterServed.delete(member.nodeId);
    this.watermarkAsked.delete(member.nodeId);
    this.setState(member, 'unreachable', nowMs);
    return [{ kind: 'log', event: 'member down', nodeId: member.nodeId, peerId }];
  }

  /**
   * A membership message whose signature the runtime checked: `signer` is the peer id that
   * signed it, and must be the peer the message is about.
   */
  message(message: MemberMessage, signer: string, nowMs: number): MembershipEffect[] {
    if (signer !== message.peerId) return [];
    if (message.nodeId === this.self.nodeId) return this.aboutSelf(message);
    let member = this.members.get(message.nodeId);
    if (member && member.peerId !== message.peerId) {
      if (member.state === 'up') return [{ kind: 'log', event: 'member refused', nodeId: message.nodeId, peerId: message.peerId, detail: `node id already bound to up peer ${member.peerId}` }];
      this.byPeer.delete(member.peerId);
      member.peerId = message.peerId;
      this.byPeer.set(message.peerId, message.nodeId);
    }
    if (member && this.staleMessagesLose && !newer(message, member)) return [];
    if (member?.state === 'removed' && message.incarnation <= member.incarnation) return [];
    if (!member) {
      if (message.type === 'leave') return []; // news of a stranger's departure: nothing to do
      member = this.add(message.nodeId, message.peerId, nowMs);
      this.byPeer.set(message.peerId, message.nodeId);
    }
    if (message.incarnation !== member.incarnation) {
      member.seq = -1;
      // It restarted (or is new): dial it now, whatever the rate limit says of its last life,
      // and tell it soon where we are, so it meets everyone without waiting for our next round.
      member.lastDialMs = 0;
      if (message.type === 'alive') this.nextAnnounceAtMs = Math.min(this.nextAnnounceAtMs, nowMs + memberAnnounceAfterJoinMs);
    }
    member.heardMs = nowMs;
    member.incarnation = Math.max(member.incarnation, message.incarnation);
    member.seq = Math.max(member.seq, message.seq);
    if (message.type === 'leave') {
      if (member.state === 'left') return [];
      this.scheduler.peerDisconnected(member.nodeId);
      this.setState(member, 'left', nowMs);
      return [{ kind: 'log', event: 'member left', nodeId: member.nodeId, peerId: member.peerId }];
    }
    if (message.addresses.length > 0) member.addresses = [...message.addresses];
    if (member.state === 'left' && member.connected) {
      // It said goodbye, yet still talks over a live connection: it is up.
      this.setState(member, 'up', nowMs);
      this.scheduler.peerKnown(member.nodeId);
      return [{ kind: 'log', event: 'member up', nodeId: member.nodeId, peerId: member.peerId }];
    }
    if (member.state !== 'up' && nowMs - member.lastDialMs >= memberDialIntervalMs && member.addresses.length > 0) {
      member.lastDialMs = nowMs;
      if (member.state === 'removed') this.setState(member, 'unreachable', nowMs);
      return [{ kind: 'dial', peerId: member.peerId, addresses: [...member.addresses] }];
    }
    return [];
  }

  /** We are stopping cleanly: the leave to announce (its seq is the next one). */
  leave(): MembershipEffect[] {
    return [{ kind: 'announce', message: { type: 'leave', ...this.selfRef(), seq: this.seq++ } }];
  }

  // --- sync sessions --------------------------------------------------------------------------

  /**
   * A session this node started (from a 'sync' effect) ended. `ok`: in sync or synced;
   * `startedMs`: when it started, on the clock `nowMs` is read from. Two outcomes leave this
   * node without the catch-up watermark only its own sessions record (Replica.recordSession),
   * so the session is made again soon instead of at a random periodic round:
   * - `skipped`: it did not run because the member was syncing with us at that moment (the
   *   runtime's rule): it runs once that session ends (sessionServed);
   * - `refusedBusy`: the member answered `busy` (catching up itself, or serving its limit):
   *   it runs once the member's backoff has passed; if our node id is the smaller, after
   *   `syncBusyTieRetryMs` the first time (two nodes catching up that refused each other:
   *   one of them must go first, and the other's session has ended by then).
   * At a cluster's start every pair of nodes, both catching up, opened sessions with each
   * other at once and both were refused; a restart's catch-up from a member without a
   * watermark then descended the tree instead of streaming a delta (10k missed writes: ~0.9 s
   * against ~0.5 s, docs/measurements.md).
   */
  sessionEnded(
    nodeId: string,
    report: { ok: boolean; result: string; inSync: boolean; startedMs: number; skipped?: boolean; refusedBusy?: boolean },
    nowMs: number,
  ): MembershipEffect[] {
    this.scheduler.report(nodeId, report.ok, nowMs);
    if (report.skipped) this.syncAfterServed.add(nodeId);
    // Both refused each other (both catching up): the smaller node id goes first, soon.
    if (report.refusedBusy) this.scheduler.retryWhenDue(nodeId, this.self.nodeId < nodeId ? { nowMs, withinMs: syncBusyTieRetryMs } : undefined);
    if (report.ok) this.catchingUp = false;
    return this.recordSync(nodeId, report.result, report.inSync, report.startedMs, nowMs);
  }

  /**
   * A session a peer started with us ended. Returns
   * whether a session with it is now due: the runtime ticks then. Due when
   * - we skipped one meanwhile (see sessionEnded): now in sync, one round trip;
   * - it succeeded and we hold no catch-up watermark for the peer (`watermarkHeld` false: the
   *   runtime knows, under full replication; undefined where there are none). Only sessions
   *   a node starts record a watermark, and when two nodes connect only one of them starts
   *   one (the other serves it), so a node could run for a while with none for some of its
   *   peers and, restarted then, catch up from such a peer by descending the tree (~2x the
   *   time of a delta, docs/measurements.md). The session back finds the roots equal (one
   *   round trip, ~120 bytes) and records it. Once per member while it is up: a peer that
   *   cannot give us a position (an older version) is not asked after every session.
   */
  sessionServed(peerId: string, report: { ok: boolean; result: string; watermarkHeld?: boolean }, nowMs: number): boolean {
    const member = this.findByPeer(peerId);
    if (!member) return false;
    if (report.ok) {
      this.catchingUp = false;
      // No sign of life for a left member: the peer may have opened it just before its leave,
      // and the stream reached us after the leave (libp2p negotiates a new stream while gossip's
      // stream carries the leave at once). Only what we start, or an alive message, revives it.
      this.recordSync(member.nodeId, report.result, true, undefined, nowMs);
    }
    if (member.state !== 'up') {
      this.syncAfterServed.delete(member.nodeId);
      return false;
    }
    const skipped = this.syncAfterServed.delete(member.nodeId);
    const forWatermark = report.ok && report.watermarkHeld === false && !this.watermarkAsked.has(member.nodeId) && this.shares(member.nodeId);
    if (forWatermark) this.watermarkAsked.add(member.nodeId);
    if (!skipped && !forWatermark) return false;
    this.scheduler.requestNow(member.nodeId);
    return true;
  }

  /** The peer's Hello: its wall clock (for the offset) and its entry count. */
  hello(peerId: string, peerWallMs: number, entryCount: number, nowMs: number): void {
    const member = this.findByPeer(peerId);
    if (!member) return;
    member.heardMs = nowMs;
    if (peerWallMs > 0) {
      if (member.offsetSamplesIncarnation !== member.incarnation) {
        member.offsetSamples = [];
        member.offsetSamplesIncarnation = member.incarnation;
      }
      member.offsetSamples.push(Math.round(peerWallMs - nowMs));
      if (member.offsetSamples.length > clockOffsetSamplesMax) member.offsetSamples.shift();
      member.clockOffsetMs = Math.max(...member.offsetSamples);
      member.offsetMeasured = member.offsetSamples.length >= clockOffsetSamplesMin;
      this.cachedAheadMs = undefined;
    }
    member.entryCount = entryCount;
  }

  /**
   * How far our wall clock is ahead of the up members' (the lower median of their measured
   * offsets, negated); 0 when none is measured. Past the drift limit our writes would be
   * refused by them: the replica refuses them first (Replica.clockAhead).
   */
  clockAheadOfPeersMs(): number {
    // Every local write asks: computed once per change of an offset or of who is up.
    if (this.cachedAheadMs === undefined) {
      const aheads = [...this.members.values()]
        .filter((m) => m.state === 'up' && m.offsetMeasured)
        .map((m) => 0 - m.clockOffsetMs) // not -x: -0 would read as a number apart from 0
        .sort((a, b) => a - b);
      // The lower median: with an even count, half the peers agreeing with us is not "ahead".
      this.cachedAheadMs = aheads.length === 0 ? 0 : aheads[Math.floor((aheads.length - 1) / 2)]!;
    }
    return this.cachedAheadMs;
  }

  /**
   * The partitions members share with us changed (partitioned mode: a new layout, or one
   * retired): up members that now share one join the periodic rounds, the others leave them.
   */
  partitionsChanged(): void {
    for (const member of this.members.values()) {
      if (member.state !== 'up') continue;
      if (this.shares(member.nodeId)) this.scheduler.peerKnown(member.nodeId);
      else this.scheduler.peerDisconnected(member.nodeId);
    }
  }

  private shares(nodeId: string): boolean {
    return this.sharesPartitionsWith ? this.sharesPartitionsWith(nodeId) : shareAnyPartition(this.placement, this.layout(), this.self.nodeId, nodeId);
  }

  /** Sync with this member as soon as possible (a value announced newer than ours). */
  requestSync(nodeOrPeerId: string): void {
    const member = this.find(nodeOrPeerId);
    if (member?.state === 'up') this.scheduler.requestNow(member.nodeId);
  }

  /** Drop a member that is not up; a connected one is refused. */
  forget(nodeOrPeerId: string, nowMs: number): ForgetResult {
    const member = this.find(nodeOrPeerId);
    if (!member || member.state === 'removed') return 'unknown';
    if (member.connected) return 'connected';
    this.scheduler.peerDisconnected(member.nodeId);
    this.setState(member, 'removed', nowMs);
    return 'forgotten';
  }

  // --- time -----------------------------------------------------------------------------------

  /** Everything due at `nowMs`: sessions to start, our periodic alive; members long gone are dropped. */
  tick(nowMs: number): MembershipEffect[] {
    const effects: MembershipEffect[] = this.expire(nowMs);
    if (this.watermarks) {
      for (const nodeId of this.watermarkRefresh.due(nowMs, this.watermarks.seqLast(), this.laggingWatermarks())) this.scheduler.requestNow(nodeId);
    }
    // Full replication: the applied seq lets a periodic round due mid-burst wait (scheduler.ts).
    const appliedSeq = this.watermarks?.seqLast();
    for (let nodeId = this.scheduler.takeDue(nowMs, appliedSeq); nodeId !== undefined; nodeId = this.scheduler.takeDue(nowMs, appliedSeq)) {
      const member = this.members.get(nodeId);
      assert(member && member.state === 'up', `scheduler chose ${nodeId}, which is not an up member`);
      if (this.sharesPartitionsWith && !this.sharesPartitionsWith(nodeId)) {
        // A layout changed since it was scheduled: nothing in common to sync any more.
        this.scheduler.peerDisconnected(nodeId);
        continue;
      }
      effects.push({ kind: 'sync', nodeId, peerId: member.peerId });
    }
    if (nowMs >= this.nextAnnounceAtMs) {
      this.nextAnnounceAtMs = nowMs + this.announceIntervalMs;
      effects.push({ kind: 'announce', message: { type: 'alive', ...this.selfRef(), seq: this.seq++, addresses: [...this.addresses] } });
    }
    return effects;
  }

  /** When the runtime should call `tick` next. */
  wakeAtMs(nowMs: number): number {
    const watermarks = this.watermarks;
    const refreshAtMs = watermarks ? this.watermarkRefresh.wakeAtMs(nowMs, watermarks.seqLast(), this.laggingWatermarks()) : Number.POSITIVE_INFINITY;
    return Math.min(this.scheduler.wakeAtMs(nowMs), this.nextAnnounceAtMs, refreshAtMs);
  }

  /** Up members we share data with whose catch-up watermark lags (see MembershipOptions.watermarks). */
  private laggingWatermarks(): LaggingPeer[] {
    const lagging: LaggingPeer[] = [];
    for (const nodeId of this.watermarks!.lagging(this.watermarkRefresh.lagEntriesMin)) {
      const member = this.members.get(nodeId);
      if (member?.state === 'up' && this.shares(nodeId)) lagging.push({ nodeId, upSinceMs: member.sinceMs });
    }
    return lagging;
  }

  // --- internals ------------------------------------------------------------------------------

  /** Drops members unreachable or left, not connected, and not heard of for unreachableForgetMs. */
  private expire(nowMs: number): MembershipEffect[] {
    const effects: MembershipEffect[] = [];
    for (const member of this.members.values()) {
      if (member.state !== 'unreachable' && member.state !== 'left') continue;
      if (member.connected || nowMs - Math.max(member.heardMs, member.sinceMs) < this.unreachableForgetMs) continue;
      this.drop(member);
      effects.push({
        kind: 'log',
        event: 'member expired',
        nodeId: member.nodeId,
        peerId: member.peerId,
        detail: `${member.state}, not heard of for ${Math.round((nowMs - member.heardMs) / 60_000)} min`,
      });
    }
    return effects;
  }

  /** Removes a member from the table entirely (not `removed`: nothing about it is kept). */
  private drop(member: Member): void {
    this.scheduler.peerDisconnected(member.nodeId);
    if (member.state !== 'removed') this.layoutChanged();
    this.members.delete(member.nodeId);
    if (this.byPeer.get(member.peerId) === member.nodeId) this.byPeer.delete(member.peerId);
  }

  private aboutSelf(message: MemberMessage): MembershipEffect[] {
    // Our own message from this life comes back to us through gossip: nothing to do. A leave
    // of our current incarnation that we did not send (we are running) is refuted.
    if (message.type !== 'leave' || message.incarnation < this.self.incarnation) return [];
    if (message.incarnation === this.self.incarnation && message.seq < this.seq) return [];
    this.self.incarnation = message.incarnation + 1;
    this.seq = 0;
    return [
      { kind: 'log', event: 'refuted leave', nodeId: this.self.nodeId, peerId: this.self.peerId, detail: `incarnation ${message.incarnation}` },
      { kind: 'persist-incarnation', incarnation: this.self.incarnation },
      { kind: 'announce', message: { type: 'alive', ...this.selfRef(), seq: this.seq++, addresses: [...this.addresses] } },
    ];
  }

  private selfRef(): { nodeId: string; peerId: string; incarnation: number } {
    return { nodeId: this.self.nodeId, peerId: this.self.peerId, incarnation: this.self.incarnation };
  }

  /**
   * `startedMs`: when a session we started began; undefined for one a peer started (no sign of
   * life). Returns the log of a left member seen up again.
   */
  private recordSync(nodeId: string, result: string, inSync: boolean, startedMs: number | undefined, nowMs: number): MembershipEffect[] {
    const member = this.members.get(nodeId);
    if (!member) return [];
    member.heardMs = nowMs;
    member.lastSyncMs = nowMs;
    member.lastSyncResult = result;
    member.inSync = inSync;
    // sinceMs of a left member is when its leave came. A session that was running then is no
    // news: a stopping node serves its last sessions after its leave.
    if (member.state === 'left' && member.connected && startedMs !== undefined && startedMs > member.sinceMs) {
      // It said goodbye but a session we began later just completed over a live connection.
      this.setState(member, 'up', nowMs);
      this.scheduler.peerKnown(member.nodeId);
      return [{ kind: 'log', event: 'member up', nodeId: member.nodeId, peerId: member.peerId }];
    }
    return [];
  }

  private find(nodeOrPeerId: string): Member | undefined {
    return this.members.get(nodeOrPeerId) ?? this.findByPeer(nodeOrPeerId);
  }

  private findByPeer(peerId: string): Member | undefined {
    const nodeId = this.byPeer.get(peerId);
    return nodeId === undefined ? undefined : this.members.get(nodeId);
  }

  private add(nodeId: string, peerId: string, nowMs: number): Member {
    if (this.members.size >= membersMax) this.evictOne();
    const member: Member = {
      nodeId,
      peerId,
      incarnation: 0,
      seq: -1,
      addresses: [],
      state: 'unreachable',
      sinceMs: nowMs,
      lastSyncMs: 0,
      lastSyncResult: '',
      inSync: false,
      clockOffsetMs: 0,
      entryCount: -1,
      lastDialMs: 0,
      connected: false,
      offsetMeasured: false,
      offsetSamples: [],
      offsetSamplesIncarnation: 0,
      heardMs: nowMs,
    };
    this.members.set(nodeId, member);
    this.layoutChanged();
    return member;
  }

  private setState(member: Member, state: MemberState, nowMs: number): void {
    if (member.state === state) return;
    if (member.state === 'removed' || state === 'removed') this.layoutChanged();
    if (member.state === 'up' || state === 'up') this.cachedAheadMs = undefined;
    member.sinceMs = nowMs;
    member.state = state;
    // A look at our applied seq as the member comes up: a burst that begins later then counts
    // as begun after it (the member sees all of it), even with no other look in between.
    if (state === 'up' && this.watermarks) this.watermarkRefresh.look(nowMs, this.watermarks.seqLast());
  }

  private layoutChanged(): void {
    this.layoutVersion++;
    this.cachedLayout = undefined;
  }

  /** Past membersMax: drop the member that has been away longest (removed ones first). */
  private evictOne(): void {
    let oldest: Member | undefined;
    for (const member of this.members.values()) {
      if (member.state === 'up') continue;
      const rank = (m: Member): number => (m.state === 'removed' ? 0 : 1);
      if (!oldest || rank(member) < rank(oldest) || (rank(member) === rank(oldest) && member.sinceMs < oldest.sinceMs)) oldest = member;
    }
    if (oldest) this.drop(oldest);
  }
}

/** Whether a message is news: a later incarnation, or a later seq in the same one. */
function newer(message: MemberMessage, member: Member): boolean {
  if (message.incarnation !== member.incarnation) return message.incarnation > member.incarnation;
  return message.seq > member.seq;
}

function publicView(member: Member): MemberInfo {
  const {
    seq: _seq,
    lastDialMs: _lastDialMs,
    connected: _connected,
    offsetMeasured: _measured,
    offsetSamples: _samples,
    offsetSamplesIncarnation: _samplesIncarnation,
    heardMs: _heardMs,
    state,
    ...info
  } = member;
  assert(state !== 'removed', 'a removed member is never listed');
  return { ...info, state, addresses: [...info.addresses] };
}
