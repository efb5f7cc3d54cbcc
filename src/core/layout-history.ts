/**
 * Layout history: which layouts (layout.ts) are active on this node, how a change is staged
 * and committed, how layouts received from peers merge, and when a change is complete. A
 * sans-IO state machine like membership.ts: the runtime passes in what it received and what
 * its own sync finished, and gossips what this returns.
 *
 * Active layouts. Normally one. A commit (or a newer layout from a peer) adds a version; while
 * several are active (v, v+1, ...):
 * - writes go to the owners of every active layout (`writeOwners`, their union), so a write
 *   acknowledged during the change is at the owners of the new layout too;
 * - reads of a partition come from the owners of the newest layout in which that partition is
 *   synced at every owner, otherwise from the oldest active layout (`readOwners`);
 * - the older layouts retire once a newer one is complete: every partition synced at every
 *   owner, and every node of it switched its reads to it (below).
 * Partition by partition reads move as their owners finish; writes stop going to old owners
 * only when every node reads from the new ones.
 *
 * Acks (LayoutAck): each node gossips, for each active layout, one statement about itself:
 * it knows the layout (any ack), which partitions of it it holds (synced from the older
 * layouts' owners), and whether it has switched (it has seen every partition synced at every
 * owner). Each statement only grows, so a repeat or an old copy changes nothing. Trust, as in
 * membership: an ack is only about its sender (an ack naming another node is refused) and
 * only about partitions the sender owns in that layout; an ack of a layout we do not hold
 * (another version, or another layout of the same version) counts for nothing. We retire a
 * layout from acks we checked, never because a peer says it retired.
 * - A node's sync for layout v starts only when every node of v knows v (`syncMayStart`):
 *   from then on every node writes to v's owners too, so the sync cannot miss a write. (A
 *   node removed in v, not part of it, is not waited for: a dead node must not block the
 *   change that removes it.)
 *
 * Layouts themselves are relayed by any node: a layout is the cluster's decision, not a claim
 * about a peer, and it travels on the cluster's authenticated gossip (the cluster key). What
 * a layout cannot do is complete a change: only the acks of its own nodes can.
 *
 * Versions and conflicts. Layouts are numbered; a layout older than the oldest active one is
 * old news and ignored. Two different layouts of one version (two nodes committed at once)
 * are a conflict: both are kept visible (`conflicts()`), and the one with the greater digest
 * wins everywhere, so every node converges on the same layout whatever the order it heard
 * them in. The loser's change is not applied: whoever made it sees the conflict and commits
 * it again on top (an automatic join retries by itself).
 *
 * Staging (what `ckv layout` will drive): add a node (with a weight), change a weight, remove
 * a node, set K; `commit` makes them the next version, `revert` drops them. Staged changes are
 * this node's alone (not gossiped) until committed. A commit is refused while
 * layoutVersionsActiveMax layouts are active, unless it only removes nodes: removing a dead
 * node is how a change it blocks (its sync can never start) is unblocked.
 */
import { assert } from './errors.js';
import {
  LayoutChangeError,
  bitmapHas,
  clusterLayoutOf,
  membersOf,
  partitionBitmapBytes,
  sameMembers,
  type ClusterLayout,
  type LayoutAck,
  type LayoutMember,
} from './layout.js';
import { isNodeId } from './entry.js';
import { layoutMembersMax, layoutRemovedMax, layoutReplicasMax, layoutVersionsActiveMax, layoutVersionsPerMessageMax, layoutWeightMax } from './limits.js';
import { assertPartition, partitionCount, type PartitionId, type Placement } from './placement.js';
import { RendezvousPlacement } from './rendezvous.js';

export interface LayoutHistoryOptions {
  /** This node's id: its own acks are kept under it. */
  self: string;
  /** Who owns what under one layout (default: a RendezvousPlacement). */
  placement?: Placement;
  /**
   * Only the simulator's canary sets this true: acks are then taken whoever sends them and
   * whatever partitions they name. The checker must catch a layout retired too early.
   */
  trustAnyAck?: boolean;
  /**
   * Only the simulator's canary sets this false: a same-version conflict then keeps whichever
   * layout this node had first, so nodes disagree for good. The checker must catch it.
   */
  resolveConflicts?: boolean;
}

/** Two layouts of one version: `kept` won (the greater digest), `dropped` lost. */
export interface LayoutConflict {
  readonly version: number;
  readonly kept: ClusterLayout;
  readonly dropped: ClusterLayout;
}

/** What a change of the history did; the runtime gossips the layouts and acks if `changed`. */
export interface LayoutOutcome {
  /** The active layouts or our own acks changed: gossip them. */
  changed: boolean;
  /** Conflicts found by this change (each reported once). */
  conflicts: LayoutConflict[];
  /** Versions retired by this change, oldest first. */
  retired: number[];
}

/** Why an ack was refused (or taken). */
export type AckResult =
  /** Taken: it added to what we knew. */
  | 'accepted'
  /** Nothing new (a repeat or an older copy). */
  | 'duplicate'
  /** Of a retired version. */
  | 'old'
  /** Of a layout we do not hold (not yet heard of, or the loser of a conflict). */
  | 'unknown-layout'
  /** It names another node than its sender: nobody speaks for another. */
  | 'not-self'
  /** It claims partitions its node does not own in that layout. */
  | 'not-owner';

export interface StagedChanges {
  /** Node id -> its new weight, or 'remove'. */
  readonly members: ReadonlyMap<string, number | 'remove'>;
  /** The new K ('all' = every node of weight > 0), if staged. */
  readonly replicas: number | 'all' | undefined;
}

/** What a node persists of its history (and restores at start). */
export interface LayoutHistorySnapshot {
  readonly floor: number;
  readonly layouts: readonly ClusterLayout[];
  readonly acks: readonly LayoutAck[];
  readonly conflicts: readonly LayoutConflict[];
  /** The operator's staged (not yet applied) changes: kept across a restart. Absent: none. */
  readonly staged?: StagedChanges;
}

/** Conflicts kept for display: the most recent. */
const conflictsKeptMax = 16;

interface AckState {
  partitions: Uint8Array;
  switched: boolean;
}

const noChange = (): LayoutOutcome => ({ changed: false, conflicts: [], retired: [] });

export class LayoutHistory {
  readonly self: string;
  readonly placement: Placement;
  private readonly trustAnyAck: boolean;
  private readonly resolveConflicts: boolean;
  /** Active layouts, ascending versions; [0] is the oldest. Empty until the first layout. */
  private layouts: ClusterLayout[] = [];
  /** Versions below this are retired: old news. */
  private floor = 0;
  /** Acks per active layout (the object held in `layouts`), per node. */
  private readonly acks = new Map<ClusterLayout, Map<string, AckState>>();
  private conflictList: LayoutConflict[] = [];
  private stagedMembers = new Map<string, number | 'remove'>();
  private stagedReplicas: number | 'all' | undefined;
  /** Staged removals the layout does not record (a node's own hand-off); not persisted (committed at once). */
  private unrecordedRemovals = new Set<string>();

  constructor(options: LayoutHistoryOptions) {
    assert(isNodeId(options.self), `self ${options.self} is not a node id`);
    this.self = options.self;
    this.placement = options.placement ?? new RendezvousPlacement();
    this.trustAnyAck = options.trustAnyAck ?? false;
    this.resolveConflicts = options.resolveConflicts ?? true;
  }

  /** A history from what `snapshot` returned (the node's persisted state). */
  static restore(options: LayoutHistoryOptions, snapshot: LayoutHistorySnapshot): LayoutHistory {
    const history = new LayoutHistory(options);
    history.floor = snapshot.floor;
    history.conflictList = [...snapshot.conflicts];
    for (const layout of snapshot.layouts) {
      if (layout.version >= history.floor) history.take(layout, []);
    }
    // Our own disk: every ack on it was checked when it was taken.
    for (const ack of snapshot.acks) {
      const layout = history.layoutOf(ack.version, ack.digest);
      if (layout) history.merge(layout, ack.nodeId, ack.partitions, ack.switched);
    }
    history.advance();
    if (snapshot.staged) {
      history.stagedMembers = new Map(snapshot.staged.members);
      history.stagedReplicas = snapshot.staged.replicas;
    }
    return history;
  }

  snapshot(): LayoutHistorySnapshot {
    const acks: LayoutAck[] = [];
    for (const layout of this.layouts) {
      for (const [nodeId, state] of this.acksOf(layout)) {
        acks.push({ nodeId, version: layout.version, digest: layout.digest, partitions: state.partitions.slice(), switched: state.switched });
      }
    }
    return { floor: this.floor, layouts: [...this.layouts], acks, conflicts: [...this.conflictList], staged: this.staged() };
  }

  // ---- reading -------------------------------------------------------------------------

  /** The active layouts, oldest first (an array this history never mutates). */
  active(): readonly ClusterLayout[] {
    return this.layouts;
  }

  /** The newest layout (what placement moves toward), if any. */
  newest(): ClusterLayout | undefined {
    return this.layouts[this.layouts.length - 1];
  }

  /** Versions below this are retired. */
  retiredBelow(): number {
    return this.floor;
  }

  /** Same-version conflicts seen (the most recent conflictsKeptMax). */
  conflicts(): readonly LayoutConflict[] {
    return this.conflictList;
  }

  /** The nodes a write of a key in `partition` goes to: the owners in every active layout, sorted. */
  writeOwners(partition: PartitionId): string[] {
    assertPartition(partition);
    const owners = new Set<string>();
    for (const layout of this.layouts) for (const nodeId of this.placement.ownersOf(partition, layout)) owners.add(nodeId);
    return [...owners].sort();
  }

  /**
   * The nodes a read of a key in `partition` asks: the owners in the newest layout in which
   * the partition is synced at every owner, else in the oldest active layout.
   */
  readOwners(partition: PartitionId): readonly string[] {
    assertPartition(partition);
    for (let i = this.layouts.length - 1; i >= 1; i--) {
      if (this.partitionSynced(this.layouts[i]!, partition)) return this.placement.ownersOf(partition, this.layouts[i]!);
    }
    const oldest = this.layouts[0];
    return oldest ? this.placement.ownersOf(partition, oldest) : [];
  }

  /** Whether every owner of `partition` in `layout` acked it. */
  partitionSynced(layout: ClusterLayout, partition: PartitionId): boolean {
    return this.syncedIn(this.acksOf(layout), layout, partition);
  }

  private syncedIn(acks: Map<string, AckState>, layout: ClusterLayout, partition: PartitionId): boolean {
    return this.placement.ownersOf(partition, layout).every((nodeId) => {
      const state = acks.get(nodeId);
      return state !== undefined && bitmapHas(state.partitions, partition);
    });
  }

  /** Whether every partition of `layout` is synced at every owner. */
  layoutSynced(layout: ClusterLayout): boolean {
    const acks = this.acksOf(layout);
    for (let p = 0; p < partitionCount; p++) if (!this.syncedIn(acks, layout, p)) return false;
    return true;
  }

  /**
   * Whether this node may start syncing its partitions of `version`: every node of that
   * layout has said it knows it (so every write from now on reaches its owners too).
   */
  syncMayStart(version: number): boolean {
    const layout = this.layouts.find((l) => l.version === version);
    if (!layout) return false;
    const acks = this.acksOf(layout);
    return layout.nodes.every((nodeId) => acks.has(nodeId));
  }

  /** The partitions this node owns in `version` and has not acked yet. */
  unsyncedPartitions(version: number): PartitionId[] {
    const layout = this.layouts.find((l) => l.version === version);
    if (!layout) return [];
    const own = this.acksOf(layout).get(this.self);
    const partitions: PartitionId[] = [];
    for (let p = 0; p < partitionCount; p++) {
      if (this.placement.ownersOf(p, layout).includes(this.self) && !(own && bitmapHas(own.partitions, p))) partitions.push(p);
    }
    return partitions;
  }

  /** Our own ack of each active layout: what the runtime gossips (on change and periodically). */
  ownAcks(): LayoutAck[] {
    const acks: LayoutAck[] = [];
    for (const layout of this.layouts) {
      const state = this.acksOf(layout).get(this.self);
      if (state) acks.push({ nodeId: this.self, version: layout.version, digest: layout.digest, partitions: state.partitions.slice(), switched: state.switched });
    }
    return acks;
  }

  /** The nodes whose acks we hold for `version` (for display and tests). */
  ackOf(version: number, nodeId: string): { partitions: Uint8Array; switched: boolean } | undefined {
    const layout = this.layouts.find((l) => l.version === version);
    const state = layout && this.acksOf(layout).get(nodeId);
    return state && { partitions: state.partitions.slice(), switched: state.switched };
  }

  // ---- receiving -----------------------------------------------------------------------

  /** Layouts received from a peer (decoded). Newer versions become active; conflicts resolve. */
  receiveLayouts(layouts: readonly ClusterLayout[]): LayoutOutcome {
    const conflicts: LayoutConflict[] = [];
    let changed = false;
    for (const layout of layouts) changed = this.take(layout, conflicts) || changed;
    if (!changed && conflicts.length === 0) return noChange();
    const { retired, switched } = this.advance();
    return { changed: changed || switched || retired.length > 0, conflicts, retired };
  }

  /** An ack received from `sender` (the node the runtime proved sent it). */
  receiveAck(sender: string, ack: LayoutAck): { result: AckResult; outcome: LayoutOutcome } {
    const refuse = (result: AckResult) => ({ result, outcome: noChange() });
    if (!this.trustAnyAck && ack.nodeId !== sender) return refuse('not-self');
    if (ack.version < this.floor) return refuse('old');
    const layout = this.layoutOf(ack.version, ack.digest);
    if (!layout) return refuse('unknown-layout');
    assert(ack.partitions.byteLength === partitionBitmapBytes, 'a decoded ack with a bitmap of the wrong size');
    if (!this.trustAnyAck) {
      for (let byte = 0; byte < partitionBitmapBytes; byte++) {
        if (ack.partitions[byte] === 0) continue;
        for (let p = byte * 8; p < byte * 8 + 8; p++) {
          if (bitmapHas(ack.partitions, p) && !this.placement.ownersOf(p, layout).includes(ack.nodeId)) return refuse('not-owner');
        }
      }
    }
    if (!this.merge(layout, ack.nodeId, ack.partitions, ack.switched)) return refuse('duplicate');
    const { retired, switched } = this.advance();
    return { result: 'accepted', outcome: { changed: switched || retired.length > 0, conflicts: [], retired } };
  }

  /**
   * This node's sync of these partitions of layout `version` finished: it holds what the
   * older layouts' owners held. Asserts the runtime only syncs partitions it owns, of an
   * active layout, once `syncMayStart`.
   */
  acknowledge(version: number, partitions: Iterable<PartitionId>): LayoutOutcome {
    const layout = this.layouts.find((l) => l.version === version);
    assert(layout, `acknowledge of layout ${version}, which is not active`);
    assert(this.syncMayStart(version), `acknowledge of layout ${version} before every node knows it`);
    const bitmap = new Uint8Array(partitionBitmapBytes);
    for (const p of partitions) {
      assertPartition(p);
      assert(this.placement.ownersOf(p, layout).includes(this.self), `acknowledge of partition ${p}, which this node does not own in layout ${version}`);
      bitmap[p >> 3]! |= 1 << (p & 7);
    }
    const changed = this.merge(layout, this.self, bitmap, false);
    const { retired } = this.advance();
    return { changed: changed || retired.length > 0, conflicts: [], retired };
  }

  // ---- staging -------------------------------------------------------------------------

  /** Stage adding `nodeId` (or changing its weight). */
  stageAdd(nodeId: string, weight = 1): void {
    if (!isNodeId(nodeId)) throw new LayoutChangeError(`${JSON.stringify(nodeId)} is not a node id`);
    if (!Number.isInteger(weight) || weight < 0 || weight > layoutWeightMax) {
      throw new LayoutChangeError(`weight must be an integer 0..${layoutWeightMax}, not ${weight}`);
    }
    this.checkStagedRoom(nodeId);
    this.stagedMembers.set(nodeId, weight);
  }

  /**
   * Stage removing `nodeId` from the layout (a dead node, or one handing off). `record`: the
   * layout records the removal (layout.ts `removed`: no automatic rejoin, the node refuses to
   * serve); false for a node's own hand-off (`node leave`), which may rejoin when restarted.
   */
  stageRemove(nodeId: string, record = true): void {
    const inLayout = this.newest()?.weights[nodeId] !== undefined;
    if (!inLayout) {
      if (typeof this.stagedMembers.get(nodeId) === 'number') {
        this.stagedMembers.delete(nodeId);
        return;
      }
      throw new LayoutChangeError(`node ${nodeId} is not in the layout`);
    }
    this.checkStagedRoom(nodeId);
    this.stagedMembers.set(nodeId, 'remove');
    if (record) this.unrecordedRemovals.delete(nodeId);
    else this.unrecordedRemovals.add(nodeId);
  }

  /** Staged member changes are bounded like a layout's members (they are persisted and restored). */
  private checkStagedRoom(nodeId: string): void {
    if (this.stagedMembers.size >= layoutMembersMax && !this.stagedMembers.has(nodeId)) {
      throw new LayoutChangeError(`at most ${layoutMembersMax} member changes can be staged: apply or revert them first`);
    }
  }

  /** Stage a new K (undefined: every node of weight > 0). */
  stageReplicas(replicas: number | undefined): void {
    if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1 || replicas > layoutReplicasMax)) {
      throw new LayoutChangeError(`replicas must be 'all' or 1..${layoutReplicasMax}, not ${replicas}`);
    }
    this.stagedReplicas = replicas ?? 'all';
  }

  staged(): StagedChanges {
    return { members: new Map(this.stagedMembers), replicas: this.stagedReplicas };
  }

  /** The layout a commit would make now (throws LayoutChangeError if it could not). */
  preview(): ClusterLayout {
    const newest = this.newest();
    const members = new Map<string, number>((newest ? membersOf(newest) : []).map((m) => [m.nodeId, m.weight]));
    for (const [nodeId, change] of this.stagedMembers) {
      if (change === 'remove') members.delete(nodeId);
      else members.set(nodeId, change);
    }
    const replicas = this.stagedReplicas === undefined ? newest?.replicas : this.stagedReplicas === 'all' ? undefined : this.stagedReplicas;
    const list: LayoutMember[] = [...members].map(([nodeId, weight]) => ({ nodeId, weight }));
    const version = (newest?.version ?? this.floor) + 1;
    // Removals are recorded (at this version); an add lifts a recorded one; past the bound the oldest are forgotten.
    const removed = new Map<string, number>((newest?.removed ?? []).map((r) => [r.nodeId, r.at]));
    for (const [nodeId, change] of this.stagedMembers) {
      if (change !== 'remove') removed.delete(nodeId);
      else if (!this.unrecordedRemovals.has(nodeId)) removed.set(nodeId, version);
    }
    const kept = [...removed].sort(([, a], [, b]) => b - a).slice(0, layoutRemovedMax);
    return clusterLayoutOf(version, list, replicas, kept.map(([nodeId, at]) => ({ nodeId, at })));
  }

  /** Drop the staged changes. */
  revert(): void {
    this.stagedMembers = new Map();
    this.stagedReplicas = undefined;
    this.unrecordedRemovals = new Set();
  }

  /**
   * Make the staged changes the next version, active at once (and to be gossiped). Throws
   * LayoutChangeError if nothing would change, the result is not a valid layout, or
   * layoutVersionsActiveMax layouts are already active.
   */
  commit(): { layout: ClusterLayout; outcome: LayoutOutcome } {
    const layout = this.preview();
    const newest = this.newest();
    // A commit that only removes nodes is the way out of a change blocked by a dead node, so
    // it may go past layoutVersionsActiveMax (never past what one message carries).
    const onlyRemoves = newest !== undefined && layout.replicas === newest.replicas && layout.nodes.every((n) => newest.weights[n] === layout.weights[n]);
    const activeMax = onlyRemoves ? layoutVersionsPerMessageMax : layoutVersionsActiveMax;
    if (this.layouts.length >= activeMax) {
      throw new LayoutChangeError(
        `${this.layouts.length} layouts are active (versions ${this.layouts.map((l) => l.version).join(', ')}): wait until data has moved to the newest before another change`,
      );
    }
    if (newest && sameMembers(newest, layout)) throw new LayoutChangeError('nothing to commit: the staged changes leave the layout as it is');
    const conflicts: LayoutConflict[] = [];
    assert(this.take(layout, conflicts), 'a committed layout was not taken');
    assert(conflicts.length === 0, 'a commit conflicted with a version we held');
    this.revert();
    const { retired } = this.advance();
    return { layout, outcome: { changed: true, conflicts, retired } };
  }

  // ---- internals -----------------------------------------------------------------------

  private acksOf(layout: ClusterLayout): Map<string, AckState> {
    let acks = this.acks.get(layout);
    if (!acks) {
      assert(this.layouts.includes(layout), 'acks of a layout that is not active');
      acks = new Map();
      this.acks.set(layout, acks);
    }
    return acks;
  }

  private layoutOf(version: number, digest: string): ClusterLayout | undefined {
    return this.layouts.find((l) => l.version === version && l.digest === digest);
  }

  /** ORs an ack into what we hold; whether it added anything. */
  private merge(layout: ClusterLayout, nodeId: string, partitions: Uint8Array, switched: boolean): boolean {
    const acks = this.acksOf(layout);
    const state = acks.get(nodeId);
    if (!state) {
      acks.set(nodeId, { partitions: partitions.slice(), switched });
      return true;
    }
    let changed = false;
    for (let i = 0; i < partitionBitmapBytes; i++) {
      const merged = state.partitions[i]! | partitions[i]!;
      if (merged !== state.partitions[i]) {
        state.partitions[i] = merged;
        changed = true;
      }
    }
    if (switched && !state.switched) {
      state.switched = true;
      changed = true;
    }
    return changed;
  }

  /** Takes one layout; whether the active set changed. Conflicts found are pushed. */
  private take(layout: ClusterLayout, conflicts: LayoutConflict[]): boolean {
    if (layout.version < this.floor) return false;
    const index = this.layouts.findIndex((l) => l.version === layout.version);
    if (index >= 0) {
      const held = this.layouts[index]!;
      if (held.digest === layout.digest) return false;
      const kept = this.resolveConflicts && layout.digest > held.digest ? layout : held;
      const dropped = kept === layout ? held : layout;
      if (!this.conflictList.some((c) => c.version === layout.version && c.dropped.digest === dropped.digest)) {
        const conflict = { version: layout.version, kept, dropped };
        this.conflictList = [...this.conflictList, conflict].slice(-conflictsKeptMax);
        conflicts.push(conflict);
      }
      if (kept === held) return false;
      this.acks.delete(held);
      this.layouts = this.layouts.map((l) => (l === held ? layout : l));
    } else {
      // A new array, never a mutation: what active() returned earlier stays as it was.
      this.layouts = [...this.layouts, layout].sort((a, b) => a.version - b.version);
    }
    // We know it now: say so (an empty ack), so syncs toward it may start.
    this.merge(layout, this.self, new Uint8Array(partitionBitmapBytes), false);
    return true;
  }

  /**
   * Switches and retirements that the acks now allow. We switch to a layout once we see it
   * synced; the layouts older than the newest complete one (synced, and every node of it
   * switched) retire. Returns the versions retired, and whether our own ack changed (we
   * switched): either is news to gossip.
   */
  private advance(): { retired: number[]; switched: boolean } {
    let switched = false;
    const synced = this.layouts.map((layout, i) => i > 0 && this.layoutSynced(layout));
    for (const [i, layout] of this.layouts.entries()) {
      const own = this.acksOf(layout).get(this.self);
      if (synced[i] && own && !own.switched) {
        own.switched = true;
        switched = true;
      }
    }
    for (let i = this.layouts.length - 1; i >= 1; i--) {
      const layout = this.layouts[i]!;
      const acks = this.acksOf(layout);
      if (!synced[i] || !layout.nodes.every((nodeId) => acks.get(nodeId)?.switched)) continue;
      const retired = this.layouts.slice(0, i);
      for (const old of retired) this.acks.delete(old);
      this.layouts = this.layouts.slice(i);
      this.floor = layout.version;
      return { retired: retired.map((l) => l.version), switched };
    }
    return { retired: [], switched };
  }
}
