/**
 * The layout in a running partitioned node (`--replicas K`): owns the node's LayoutHistory
 * (src/core/layout-history.ts) and the LayoutOwnership over it that every other part asks,
 * keeps the history in the store, exchanges layouts, acks and join requests with peers over
 * gossip, and commits automatic joins. The decisions are pure (layout-history.ts,
 * layout-join.ts); this file carries them out.
 *
 * - Persistence: after every change (an operator's staged changes included),
 *   `history.snapshot()` is written to the store's meta `layout-history` (layout-wire.ts),
 *   writes in order, one at a time; at start it is restored (LayoutHistory.restore), staged
 *   changes and all. A persisted layout whose K differs from --replicas refuses the
 *   start (ReplicasMismatchError, `checkPersistedLayout`).
 * - Gossip: one signed envelope (layout-wire.ts) carries the active layouts, this node's own
 *   acks and, while it is not in the newest layout, its join request. The cluster signs it
 *   with the node's libp2p key and publishes it as a `layout` gossip message; a receiver
 *   checks the signature against the peer id it names (src/net/cluster.ts), then `receive`
 *   here takes layouts from anyone (a layout is the cluster's decision and can be relayed),
 *   but an ack or a join only if it names the node of the signing peer (membership maps peer
 *   id to node id; a peer not known yet is taken at its claim unless that node id is bound
 *   to another peer: `signerAs`): nobody speaks for another node. Refusals count
 *   `layout_rejected`.
 * - Re-announce: on every change (soon, coalesced), when a peer comes up, and periodically:
 *   every `announceFastMs` while something is in progress (no layout, several active, this
 *   node or a known requester not yet in the newest), else every `announceSlowMs`, so a node
 *   that missed a message catches up.
 * - Joins (layout-join.ts): the coordinator commits, batched, the joins of up nodes that asked;
 *   a lone first node makes version 1 after `layoutBootstrapWaitMs` (longer with bootstrap
 *   addresses or peers: `layoutBootstrapWaitPeersMs`). An operator's staged changes are kept
 *   aside while the coordinator commits, and put back.
 * - Mismatch: a newest layout whose K is not this node's --replicas is an error logged once,
 *   counted, shown in status; the node refuses to serve reads and writes (`refusal()`) until
 *   the layouts agree again.
 *
 * Before its first layout a node owns nothing: `holds` is false for every key, so it takes no
 * writes for keys it might not own (the write path forwards them to owners instead).
 */
import {
  LayoutChangeError,
  NodeRemovedError,
  bitmapHas,
  removedAt,
  replicasMismatch,
  type ClusterLayout,
  type LayoutMessage,
  type ReplicasMismatchError,
} from '../core/layout.js';
import { LayoutHistory, type LayoutOutcome } from '../core/layout-history.js';
import { coordinatorOf, joinsToCommit, shouldBootstrap } from '../core/layout-join.js';
import {
  decodeLayoutEnvelope,
  decodeLayoutSnapshot,
  encodeLayoutEnvelope,
  encodeLayoutSnapshot,
  type LayoutJoin,
  type LayoutPart,
  type PartitionSizesReport,
} from '../core/layout-wire.js';
import { layoutMembersMax } from '../core/limits.js';
import type { PartitionSizes } from '../core/layout-plan.js';
import { LayoutOwnership } from '../core/ownership.js';
import { partitionCount } from '../core/placement.js';
import type { Store } from '../core/store.js';
import { ByteReader, ByteWriter } from '../core/bytes.js';
import { CkvError } from '../core/errors.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import { layoutView, type LayoutView } from './layout-view.js';

/** An operator's layout change (`ckv layout add|weight|remove|replicas|apply|revert`). */
export type LayoutChange =
  | { action: 'add' | 'weight'; nodeId: string; weight: number }
  | { action: 'remove'; nodeId: string }
  | { action: 'replicas'; replicas: number | undefined }
  | { action: 'apply' | 'revert' };

/** A layout change as the control API carries it (node as given: node id or peer id; replicas 'all' or K). */
export interface LayoutChangeRequest {
  action: string;
  node: string;
  weight: number;
  replicas: string;
}

/** The change a request asks for; `resolve` turns a node id or peer id into a node id. Throws LayoutChangeError. */
export function parseLayoutChange(request: LayoutChangeRequest, resolve: (node: string) => string): LayoutChange {
  switch (request.action) {
    case 'add':
    case 'weight':
      return { action: request.action, nodeId: resolve(request.node), weight: request.weight };
    case 'remove':
      return { action: 'remove', nodeId: resolve(request.node) };
    case 'replicas': {
      if (request.replicas === 'all') return { action: 'replicas', replicas: undefined };
      const k = Number(request.replicas);
      if (!/^\d+$/.test(request.replicas) || !Number.isSafeInteger(k)) throw new LayoutChangeError(`replicas must be 'all' or a whole number, not ${JSON.stringify(request.replicas)}`);
      return { action: 'replicas', replicas: k };
    }
    case 'apply':
    case 'revert':
      return { action: request.action };
    default:
      throw new LayoutChangeError(`unknown layout action ${JSON.stringify(request.action)}: add, remove, weight, replicas, apply or revert`);
  }
}

/** The store meta key of the persisted history. */
export const layoutHistoryMeta = 'layout-history';
/**
 * The store meta key of this node's removal mark (the layout version it was removed at, a
 * varint): written when it sees itself removed, cleared only by `ckv purge --all`.
 */
export const layoutRemovedMeta = 'layout-removed';
/** How long a fresh node with no peers and no bootstrap address waits for a layout before making the first. */
export const layoutBootstrapWaitMs = 1_500;
/** The same with bootstrap addresses or peers: they may have a layout we have not heard yet. */
export const layoutBootstrapWaitPeersMs = 5_000;
/** Re-announce period while a change is in progress, and otherwise. */
export const announceFastMs = 2_000;
export const announceSlowMs = 15_000;
/** Coalesces announcements after changes; delays after a peer came up (its subscription must arrive first). */
const announceSoonMs = 50;
const announceAfterPeerMs = [500, 2_000];
/** How often the coordinator and the bootstrap rule are evaluated. */
const tickMs = 1_000;
/** Join requests remembered (one per node; the oldest dropped beyond this). */
const joinRequestsMax = 1024;

export interface LayoutServiceSettings {
  replicas: number;
  weight: number;
  autoJoin: boolean;
  /** Whether --bootstrap addresses were given (a longer bootstrap wait). */
  hasBootstrap: boolean;
}

export interface LayoutServiceComponents {
  self: string;
  store: Pick<Store, 'getMeta' | 'putMeta'>;
  counters: Counters;
  logger: Logger;
  /** Sign and publish an envelope body; resolves when it is handed to gossip (never throws). */
  publish(body: Uint8Array): Promise<void>;
  /** Whether any peer subscribes to the gossip topic (else a publish reaches nobody). */
  hasSubscribers(): boolean;
  /** The up members, this node included: node id -> peer id. */
  upMembers(): Map<string, string>;
  /** The node id of a known member with this peer id. */
  nodeIdOfPeer(peerId: string): string | undefined;
  /** The peer id a known member with this node id has. */
  peerIdOfNode(nodeId: string): string | undefined;
  /** Wall clock (ms) for the bootstrap wait. */
  now(): number;
  /** This node's rows per partition (only partitions it holds rows of), published for the plan's sizes. */
  partitionSizes?(): PartitionSizesReport['partitions'];
}

/**
 * The start is refused: this node (`self`) was removed (NodeRemovedError: its removal mark, or
 * its persisted layout records the removal), or the data directory's layout disagrees with
 * --replicas (ReplicasMismatchError).
 */
export async function checkPersistedLayout(store: Pick<Store, 'getMeta'>, replicas: number | undefined, self: string): Promise<void> {
  const mark = await store.getMeta(layoutRemovedMeta);
  if (mark) throw new NodeRemovedError(self, decodeRemovedMark(mark));
  const bytes = await store.getMeta(layoutHistoryMeta);
  if (!bytes) return;
  const newest = decodeLayoutSnapshot(bytes).layouts.at(-1);
  const at = removedAt(newest, self);
  if (at !== undefined) throw new NodeRemovedError(self, at);
  const mismatch = replicasMismatch(replicas, newest);
  if (mismatch) throw mismatch;
}

/** The layout version a removal mark holds; throws MalformedError on anything but one varint. */
export function decodeRemovedMark(bytes: Uint8Array): number {
  const reader = new ByteReader(bytes);
  const at = reader.varint();
  reader.end();
  return at;
}

export class LayoutService {
  readonly history: LayoutHistory;
  readonly ownership: LayoutOwnership;
  private readonly listeners = new Set<() => void>();
  private readonly joinRequests = new Map<string, LayoutJoin>();
  /** Each node's latest reported partition sizes (by node id; the least recently reported dropped past layoutMembersMax). */
  private readonly sizes = new Map<string, PartitionSizesReport['partitions']>();
  private mismatchError: ReplicasMismatchError | undefined;
  /** Set (for good: until `ckv purge --all`) once this node sees itself removed from the layout. */
  private removedError: NodeRemovedError | undefined;
  private persisting: Promise<void> = Promise.resolve();
  private seq: number;
  private readonly startedAtMs: number;
  private tickTimer: NodeJS.Timeout | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private announceAtMs = Infinity;
  private stopped = false;
  /**
   * This node handed off (`ckv node leave`): it no longer asks to join (else the coordinator
   * would add it straight back), until a restart. A node removed by an operator while it runs
   * (a network split ended) asks again, and the coordinator adds it back: to keep a node out,
   * stop it, or start it with --no-auto-join.
   */
  private leaving = false;

  private constructor(
    private readonly settings: LayoutServiceSettings,
    private readonly components: LayoutServiceComponents,
    history: LayoutHistory,
  ) {
    this.history = history;
    this.ownership = new LayoutOwnership(history, { onChange: (outcome) => this.changed(outcome) });
    this.startedAtMs = components.now();
    // Rises with every envelope and across restarts (wall ms), so repeats are new gossip messages.
    this.seq = components.now();
    this.checkMismatch();
  }

  /** Restores the persisted history; refuses (ReplicasMismatchError) one whose K disagrees with --replicas. */
  static async open(settings: LayoutServiceSettings, components: LayoutServiceComponents): Promise<LayoutService> {
    await checkPersistedLayout(components.store, settings.replicas, components.self);
    const bytes = await components.store.getMeta(layoutHistoryMeta);
    const options = { self: components.self };
    const history = bytes ? LayoutHistory.restore(options, decodeLayoutSnapshot(bytes)) : new LayoutHistory(options);
    return new LayoutService(settings, components, history);
  }

  start(): void {
    this.tickTimer = setInterval(() => this.tick(), tickMs);
    this.tickTimer.unref();
    this.announceIn(announceSoonMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tickTimer);
    clearTimeout(this.announceTimer);
    await this.persisting;
  }

  /** Told on every change of the active layouts or acks. Returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Why this node refuses to serve (its K disagrees with the cluster's layout), if it does. */
  refusal(): NodeRemovedError | ReplicasMismatchError | undefined {
    return this.removedError ?? this.mismatchError;
  }

  get replicas(): number {
    return this.settings.replicas;
  }

  /** A peer came up: tell it what we know once its subscription has arrived. */
  peerUp(): void {
    for (const ms of announceAfterPeerMs) this.announceIn(ms);
  }

  /** An envelope from `signerPeerId` whose signature the cluster checked. */
  receive(signerPeerId: string, body: Uint8Array): void {
    if (this.stopped) return;
    let parts: readonly LayoutPart[];
    try {
      parts = decodeLayoutEnvelope(body).parts;
    } catch (error) {
      this.reject('malformed', signerPeerId, error);
      return;
    }
    for (const part of parts) {
      if (part.kind === 'join') {
        const signer = this.signerAs(signerPeerId, part.join.nodeId);
        if (signer === undefined) {
          this.reject('join for another node', signerPeerId);
          continue;
        }
        if (removedAt(this.history.newest(), signer) !== undefined) {
          // Removed: not joined back automatically (an operator's `layout add` lifts the removal).
          this.components.counters.add('layout_join_removed');
          continue;
        }
        if (this.joinRequests.size >= joinRequestsMax && !this.joinRequests.has(signer)) {
          this.joinRequests.delete(this.joinRequests.keys().next().value!);
        }
        this.joinRequests.set(signer, part.join);
        continue;
      }
      if (part.kind === 'sizes') {
        const signer = this.signerAs(signerPeerId, part.sizes.nodeId);
        if (signer === undefined) {
          this.reject('sizes for another node', signerPeerId);
          continue;
        }
        this.sizes.delete(signer);
        if (this.sizes.size >= layoutMembersMax) this.sizes.delete(this.sizes.keys().next().value!);
        this.sizes.set(signer, part.sizes.partitions);
        continue;
      }
      this.receiveMessage(part.message, signerPeerId);
    }
  }

  /**
   * The node id the signing peer speaks as, when it claims `claimed`: a known member's own node
   * id (so a claim about another node is refused); for a peer membership does not know yet (a
   * node we are not connected to: partitioned nodes meet only those they share partitions
   * with), its claim, unless that node id is a known member's with another peer id. The same
   * trust as membership's, which takes a peer's own claim of its node id; what is refused is
   * speaking for a node bound to another peer. Undefined when refused.
   */
  private signerAs(signerPeerId: string, claimed: string): string | undefined {
    const known = this.components.nodeIdOfPeer(signerPeerId);
    if (known !== undefined) return known === claimed ? known : undefined;
    const bound = this.components.peerIdOfNode(claimed);
    if (bound !== undefined && bound !== signerPeerId) return undefined;
    this.components.counters.add('layout_unknown_sender');
    return claimed;
  }

  private receiveMessage(message: LayoutMessage, signerPeerId: string): void {
    if (message.type === 'layouts') {
      this.changed(this.history.receiveLayouts(message.layouts));
      return;
    }
    const signer = this.signerAs(signerPeerId, message.ack.nodeId);
    if (signer === undefined) {
      this.reject('ack not-self', signerPeerId);
      return;
    }
    const { result, outcome } = this.history.receiveAck(signer, message.ack);
    if (result === 'not-self' || result === 'not-owner') this.reject(`ack ${result}`, signerPeerId);
    else this.changed(outcome);
  }

  private reject(why: string, peerId: string, error?: unknown): void {
    this.components.counters.add('layout_rejected');
    this.components.logger.info('layout message rejected', { peer: peerId, why, ...(error ? { error } : {}) });
  }

  /**
   * Commit the staged changes (an operator's, or the coordinator's); persisted and gossiped.
   * Throws LayoutChangeError when they cannot be committed.
   */
  commit(): ClusterLayout {
    const { layout, outcome } = this.history.commit();
    this.components.counters.add('layout_committed');
    this.components.logger.info('layout committed', { version: layout.version, nodes: layout.nodes.length, replicas: layout.replicas ?? 'all' });
    this.changed(outcome);
    return layout;
  }

  /** Every change of the history ends here: persist, check K, tell listeners, gossip soon. */
  private changed(outcome: LayoutOutcome): void {
    for (const conflict of outcome.conflicts) {
      this.components.logger.warn('layout conflict', { version: conflict.version, kept: conflict.kept.digest, dropped: conflict.dropped.digest });
    }
    if (outcome.retired.length > 0) this.components.logger.info('layouts retired', { versions: outcome.retired.join(',') });
    if (!outcome.changed && outcome.conflicts.length === 0 && outcome.retired.length === 0) return;
    this.persist();
    this.checkMismatch();
    this.checkRemoved();
    // A request is answered once its node is in: a later removal (node leave, node remove) must
    // not be undone by an old request; a node that wants back in asks again.
    const newest = this.history.newest();
    if (newest) for (const nodeId of newest.nodes) this.joinRequests.delete(nodeId);
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (error) {
        this.components.logger.warn('layout listener failed', { error });
      }
    }
    this.announceIn(announceSoonMs);
  }

  private persist(): void {
    const bytes = encodeLayoutSnapshot(this.history.snapshot());
    this.persisting = this.persisting
      .then(() => this.components.store.putMeta(layoutHistoryMeta, bytes))
      .catch((error: unknown) => this.components.logger.warn('layout history not persisted', { error }));
  }

  /**
   * This node sees itself removed from the newest layout (not by its own `node leave`): it
   * refuses to serve from now on, and marks its data directory so that it refuses to start
   * until `ckv purge --all`. The mark stays even if the removal is lifted later: the data is
   * still of the removed incarnation.
   */
  private checkRemoved(): void {
    if (this.removedError) return;
    const at = removedAt(this.history.newest(), this.components.self);
    if (at === undefined) return;
    this.removedError = new NodeRemovedError(this.components.self, at);
    this.components.counters.add('layout_self_removed');
    this.components.logger.error('removed from the cluster: refusing to serve', { version: at });
    const mark = new ByteWriter().varint(at).finish();
    this.persisting = this.persisting
      .then(() => this.components.store.putMeta(layoutRemovedMeta, mark))
      .catch((error: unknown) => this.components.logger.warn('removal mark not persisted', { error }));
  }

  private checkMismatch(): void {
    const mismatch = replicasMismatch(this.settings.replicas, this.history.newest());
    if (mismatch && !this.mismatchError) {
      this.components.counters.add('layout_replicas_mismatch');
      this.components.logger.error('replicas mismatch: refusing to serve', { error: mismatch.message });
    } else if (!mismatch && this.mismatchError) {
      this.components.logger.info('replicas agree again: serving');
    }
    this.mismatchError = mismatch;
  }

  // --- timers ---------------------------------------------------------------------------------

  private tick(): void {
    if (this.stopped) return;
    try {
      this.joinOrBootstrap();
    } catch (error) {
      // A commit refused now (too many active layouts...) is tried again on a later tick.
      if (!(error instanceof CkvError)) throw error;
      this.components.logger.info('automatic layout commit deferred', { error });
    }
  }

  private joinOrBootstrap(): void {
    if (this.mismatchError || this.removedError) return;
    const { self } = this.components;
    const up = new Set(this.components.upMembers().keys());
    up.delete(self);
    const newest = this.history.newest();
    if (!newest) {
      const waitMs = this.settings.hasBootstrap || up.size > 0 ? layoutBootstrapWaitPeersMs : layoutBootstrapWaitMs;
      const waited = this.components.now() - this.startedAtMs >= waitMs;
      const { replicas, weight, autoJoin } = this.settings;
      if (shouldBootstrap({ self, hasLayout: false, autoJoin, weight, replicas, waited, requests: this.joinRequests.values(), up })) {
        this.commitAside([{ nodeId: self, weight }], replicas);
      }
      return;
    }
    up.add(self);
    if (coordinatorOf(newest, up) !== self) return;
    const joins = joinsToCommit(newest, this.joinRequests.values(), up);
    if (joins.length > 0) this.commitAside(joins, undefined);
  }

  /** Commit these joins (and K for the first layout), keeping an operator's staged changes aside. */
  private commitAside(joins: { nodeId: string; weight: number }[], replicas: number | undefined): void {
    const layout = this.commitOnly(() => {
      for (const join of joins) this.history.stageAdd(join.nodeId, join.weight);
      if (replicas !== undefined) this.history.stageReplicas(replicas);
    });
    this.components.logger.info('layout joins committed', { version: layout.version, joined: joins.map((j) => j.nodeId).join(',') });
  }

  /** Commit exactly what `stage` stages, keeping an operator's staged changes aside and putting them back. */
  private commitOnly(stage: () => void): ClusterLayout {
    const staged = this.history.staged();
    this.history.revert();
    try {
      stage();
      return this.commit();
    } finally {
      this.history.revert();
      for (const [nodeId, change] of staged.members) {
        try {
          if (change === 'remove') this.history.stageRemove(nodeId);
          else this.history.stageAdd(nodeId, change);
        } catch {
          // no longer applicable (the node left the layout meanwhile): dropped
        }
      }
      if (staged.replicas !== undefined) this.history.stageReplicas(staged.replicas === 'all' ? undefined : staged.replicas);
      this.persist();
    }
  }

  private inProgress(): boolean {
    const newest = this.history.newest();
    if (!newest || this.history.active().length > 1) return true;
    if (newest.weights[this.components.self] === undefined) return true;
    // An up node that asked to join and is not in yet (one that went away does not keep us fast).
    const up = this.components.upMembers();
    for (const [nodeId, join] of this.joinRequests) if (newest.weights[nodeId] === undefined && join.replicas === newest.replicas && up.has(nodeId)) return true;
    return false;
  }

  private announceIn(ms: number): void {
    if (this.stopped) return;
    const at = this.components.now() + ms;
    if (at >= this.announceAtMs) return;
    clearTimeout(this.announceTimer);
    this.announceAtMs = at;
    this.announceTimer = setTimeout(() => void this.announce(), ms);
    this.announceTimer.unref();
  }

  private async announce(): Promise<void> {
    this.announceAtMs = Infinity;
    if (this.stopped) return;
    this.announceIn(this.inProgress() ? announceFastMs : announceSlowMs);
    if (!this.components.hasSubscribers()) return;
    const parts: LayoutPart[] = [];
    const active = this.history.active();
    if (active.length > 0) parts.push({ kind: 'message', message: { type: 'layouts', layouts: [...active] } });
    for (const ack of this.history.ownAcks()) parts.push({ kind: 'message', message: { type: 'ack', ack } });
    const newest = this.history.newest();
    if (this.settings.autoJoin && !this.leaving && !this.mismatchError && !this.removedError && newest?.weights[this.components.self] === undefined) {
      parts.push({ kind: 'join', join: { nodeId: this.components.self, weight: this.settings.weight, replicas: this.settings.replicas } });
    }
    const sizes = this.components.partitionSizes?.() ?? [];
    if (sizes.length > 0) parts.push({ kind: 'sizes', sizes: { nodeId: this.components.self, partitions: sizes } });
    if (parts.length === 0) return;
    this.seq = Math.max(this.seq + 1, this.components.now());
    await this.components.publish(encodeLayoutEnvelope({ seq: this.seq, parts }));
  }

  // --- operator changes (ckv layout, node remove, node leave) ----------------------------------

  /** What `ckv layout` shows. */
  view(committedVersion = 0): LayoutView {
    return layoutView(this.history, this.settings.replicas, this.components.upMembers(), committedVersion, this.partitionSizes());
  }

  /**
   * Each partition's size for the plan: the largest any node reported (this node's measured
   * now), so a partition counts as whole even where a holder is still pulling it.
   */
  private partitionSizes(): PartitionSizes & { reporters: number } {
    const keys = new Array<number>(partitionCount).fill(0);
    const bytes = new Array<number>(partitionCount).fill(0);
    const reports = new Map(this.sizes);
    reports.set(this.components.self, this.components.partitionSizes?.() ?? []);
    for (const report of reports.values()) {
      for (const p of report) {
        keys[p.partition] = Math.max(keys[p.partition]!, p.keys);
        bytes[p.partition] = Math.max(bytes[p.partition]!, p.bytes);
      }
    }
    return { keys, bytes, reporters: [...reports.values()].filter((r) => r.length > 0).length };
  }

  /** Stage a change, or apply (commit) or revert the staged ones. Throws LayoutChangeError. */
  async change(change: LayoutChange): Promise<LayoutView> {
    const view = this.stageOrApply(change);
    // Staged changes are part of the persisted history: a restart keeps them (on disk before the reply).
    if (change.action !== 'apply') this.persist();
    await this.persisting;
    return view;
  }

  private stageOrApply(change: LayoutChange): LayoutView {
    switch (change.action) {
      case 'add':
      case 'weight':
        if (change.action === 'weight' && this.history.newest()?.weights[change.nodeId] === undefined && typeof this.history.staged().members.get(change.nodeId) !== 'number') {
          throw new LayoutChangeError(`node ${change.nodeId} is not in the layout: add it with 'ckv layout add ${change.nodeId} --weight ${change.weight}'`);
        }
        this.history.stageAdd(change.nodeId, change.weight);
        return this.view();
      case 'remove':
        this.history.stageRemove(change.nodeId);
        return this.view();
      case 'replicas':
        this.history.stageReplicas(change.replicas);
        return this.view();
      case 'revert':
        this.history.revert();
        return this.view();
      case 'apply': {
        const staged = this.history.staged();
        if (staged.members.size === 0 && staged.replicas === undefined) throw new LayoutChangeError("nothing staged to apply: stage changes first ('ckv layout add|remove|weight|replicas')");
        return this.view(this.commit().version);
      }
    }
  }

  /** Stage and commit the removal of `nodeId`, which must not be up (`up` says): a dead node's partitions go to survivors. */
  removeNode(nodeId: string, up: boolean): LayoutView {
    if (nodeId === this.components.self || up) {
      throw new LayoutChangeError(`node ${nodeId} is up: a running node hands its data off itself ('ckv node leave' on it); 'node remove' is for a node that is down`);
    }
    if (this.history.newest()?.weights[nodeId] === undefined) throw new LayoutChangeError(`node ${nodeId} is not in the layout`);
    return this.view(this.commitOnly(() => this.history.stageRemove(nodeId)).version);
  }

  /** Commit this node's own removal (its partitions move to the others); it then waits and stops (the CLI drives that). */
  leave(): LayoutView {
    const newest = this.history.newest();
    if (newest?.weights[this.components.self] === undefined) {
      throw new LayoutChangeError('this node is not in the layout: there is nothing to hand off (stop it with ckv node stop)');
    }
    if (newest.nodes.length === 1) throw new LayoutChangeError('this node is the only one in the layout: nobody could take its data');
    this.leaving = true;
    // Not recorded as a removal: a node that handed off may join again when restarted.
    return this.view(this.commitOnly(() => this.history.stageRemove(this.components.self, false)).version);
  }

  // --- views ----------------------------------------------------------------------------------

  /** The partitioned part of the node's status. */
  status(upNodeIds: ReadonlySet<string>): PartitionedStatus {
    const active = this.history.active();
    const newest = this.history.newest();
    const { self } = this.components;
    let owned = 0;
    let underReplicated = 0;
    let pending = 0;
    let done = 0;
    if (newest) {
      const placement = this.history.placement;
      const k = newest.replicas === undefined ? Infinity : newest.replicas;
      const eligible = newest.nodes.filter((n) => (newest.weights[n] ?? 0) > 0).length;
      for (let p = 0; p < partitionCount; p++) {
        const owners = placement.ownersOf(p, newest);
        if (owners.includes(self)) owned++;
        const upOwners = owners.filter((n) => n === self || upNodeIds.has(n)).length;
        if (upOwners < Math.min(k, eligible)) underReplicated++;
        if (active.length > 1) {
          for (const owner of owners) {
            const ack = this.history.ackOf(newest.version, owner);
            if (ack && bitmapHas(ack.partitions, p)) done++;
            else pending++;
          }
        }
      }
    }
    return {
      replicas: this.settings.replicas,
      layoutVersion: newest?.version ?? 0,
      activeVersions: active.map((l) => l.version),
      partitionsOwned: owned,
      partitionsUnderReplicated: underReplicated,
      rebalance: { pending, done },
      conflicts: this.history.conflicts().length,
      mismatch: this.mismatchError?.message ?? '',
      removedAt: this.removedError?.at ?? 0,
    };
  }
}

export interface PartitionedStatus {
  /** This node's --replicas. */
  replicas: number;
  /** The newest layout's version; 0 before the first. */
  layoutVersion: number;
  /** Every active layout's version, oldest first (several during a change). */
  activeVersions: number[];
  /** Partitions this node owns in the newest layout. */
  partitionsOwned: number;
  /** Partitions of the newest layout with fewer than K owners up. */
  partitionsUnderReplicated: number;
  /** During a change: partition-replicas of the newest layout synced (done) and not yet (pending). */
  rebalance: { pending: number; done: number; blockedBy?: string[] };
  /** Same-version conflicts seen (kept for display). */
  conflicts: number;
  /** Why this node refuses to serve (its --replicas disagrees with the layout), or ''. */
  mismatch: string;
  /** The layout version this node was removed at (it refuses to serve), or 0. */
  removedAt: number;
}
