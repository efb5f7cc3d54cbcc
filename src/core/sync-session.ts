/**
 * Anti-entropy sessions as sans-IO state machines: `SyncInitiator` and `SyncResponder`.
 *
 * Each `handle(frameBytes)` is an async generator of effects: `send` a frame, `apply` entries
 * from the peer (the driver merges them into the replica and only then pulls the next
 * effect), `done` with a result. The store is read through the injected `SyncContext`, so the
 * simulator drives this same code over memory stores and the node drives it over LevelDB and
 * libp2p streams. There are no timers here: the driver bounds a session's time.
 *
 * Protocol (frames in sync-frames.ts): the initiator sends its root; equal roots end the
 * session in one round trip. Otherwise the responder lists the root's children: for each, a
 * non-empty bit and a salted projection of its digest. The initiator compares with its own
 * tree and, per child: descends where both are non-empty and differ; pulls the whole subtree
 * where it is empty (so a new node streams everything without descending: when its root
 * count is 0 the responder sends all entries at once); pushes the whole subtree where the
 * responder is empty. At differing leaves the initiator sends, per entry, a key fingerprint
 * and the exact version; the responder sends back its entries that are newer (or that the
 * initiator lacks) and names the initiator's keys that are newer than its own, which the
 * initiator then pushes. So only winning versions travel, each once. One round trip a level:
 * depth + 2 round trips at most for a full descent, plus the final one-way push and Bye.
 * Values travel once, and only where they differ.
 *
 * Reading: a round may need thousands of leaves (a node that missed 10k writes differs in
 * ~9k of 65k leaves). A seek per leaf costs far more than reading the few entries there, so
 * each side reads the subtrees of a round through `coverOf`: one pass over the fewest ranges
 * that cost least (a subtree's whole range when its wanted parts would each need a seek),
 * skipping entries outside the wanted subtrees. The responder answers a Step in that one
 * pass, entries streamed out as found, keeping only versions to compute the needs.
 *
 * Catch-up by delta (docs/design-applied-sequence.md): the initiator's Hello says it reads
 * Position frames and may name `since`, a position of the responder's applied sequence it
 * holds everything up to (a watermark recorded by an earlier session). The responder first
 * sends its Position: its epoch and last seq together with its root, read in one synchronous
 * step, so "everything up to seq" is exactly that root. If `since` is in its epoch and not
 * ahead of it, the entries it applied after `since` (up to the Position's seq) follow: one
 * scan of its index, proportional to what the initiator missed. They are merged like any
 * entries, and the session goes on as usual (Children of the root, the descent), which stays
 * the ground truth: after a complete delta the level-1 digests match and the session ends
 * there; after a wrong or partial one (a peer that lost data, a bug) the descent repairs it.
 * The initiator reports the responder's position as held (`heldPosition`) only when its root
 * is the Position's root (InSync, or after the entries that preceded the first Children):
 * then it provably holds everything up to that seq, and the caller may record it as the
 * next `since`. A new initiator (empty) still gets everything in one scan of the entries.
 * Both streams go out as the store keeps the entries when it can (`scanSinceEncoded`,
 * `scanAllEncoded`: the stored bytes are the wire encoding), copied into frames without a
 * decode and an encode per entry; the receiver decodes and checks them as any frame.
 *
 * Restricted sessions (partitioned mode, docs/partitioned-mode.md): a context may name a
 * bitmap of partitions (`partitions`). The initiator's Hello carries it; the responder covers
 * the AND of it with its own (never more than it itself would sync with this peer) and says
 * so first, in a Partitions frame; the initiator narrows to that (a wider claim is malformed).
 * Both sides then read the tree through a PartitionView: subtrees of other partitions look
 * empty on both sides, so they compare equal and are never descended, pulled or pushed; and
 * every entry sent or received is checked against the bitmap: outside it, it is not sent, and
 * one received is dropped and counted (`entriesOutsidePartitions`, a protocol violation). The
 * roots compared at Hello are the views' roots, and only when both sides cover the same
 * bitmap (otherwise the descent decides). The delta catch-up is disabled for restricted
 * sessions: the responder sends no Position, the initiator asks for none and records no
 * watermark (a watermark means "everything up to seq", which a restricted session never
 * proves). An unrestricted context on both sides is the protocol above, byte for byte.
 */
import { compareVersions, keyHash, type Entry, type Version } from './entry.js';
import { MalformedError, assert } from './errors.js';
import {
  childDigestBytesDefault,
  controlFrameBytesMax,
  entriesFirstFrameBytesTarget,
  entriesFrameBytesTarget,
  fingerprintBytes,
  merkleFanout,
  scanSeekCostEntries,
  sessionRoundsMax,
  valueBytesMax as valueBytesMaxDefault,
} from './limits.js';
import { MerkleTree, Projector, digestsEqual, type MerkleView } from './merkle.js';
import { PartitionView, bitmapAnd, bitmapSubset, bitmapsEqual, fullBitmap } from './partition-view.js';
import { partitionHexDigits } from './placement.js';
import {
  FrameType,
  RefuseReason,
  UnsupportedVersionError,
  decodeFrame,
  encodeChildren,
  encodeEntriesFrameEncoded,
  encodeFrame,
  refuseReasonName,
  type ChildGroup,
  type ChildrenFrame,
  type DecodeOptions,
  type EntriesFrame,
  type Frame,
  type LeafNeed,
  type LeafSummary,
  type StepFrame,
  type SubtreeRef,
  type SyncPosition,
  type PositionFrame,
  type PartitionsFrame,
  summaryItemBytes,
} from './sync-frames.js';
import type { WallClockMs } from './ports.js';
import type { ReceivedEntries } from './received-entries.js';
import type { Store } from './store.js';
import { epochsEqual } from './sync-watermarks.js';

export interface SyncContext {
  readonly tree: MerkleTree;
  readonly store: Pick<Store, 'scanHash' | 'scanHashPrefixes' | 'scanSince' | 'scanSinceEncoded' | 'scanAllEncoded'>;
  readonly cluster: string;
  /** Initiator only: projection width it asks for (the responder follows Hello). */
  readonly childDigestBytes?: number;
  readonly valueBytesMax?: number;
  /** Initiator only: our wall clock, sent in Hello so the responder can measure our offset. */
  readonly wallClockMs?: WallClockMs;
  /**
   * Responder: this node's position now (epoch, last applied seq); read synchronously with
   * the tree's root, so the two describe the same state. Without it no Position is sent.
   */
  readonly position?: () => SyncPosition;
  /** Initiator: a position of the responder's that we hold everything up to (its watermark). */
  readonly since?: SyncPosition | undefined;
  /**
   * Initiator: whether the responder reads the Hello's positions extension (default true).
   * A responder of protocol 1.0.0 refuses a Hello with it, so toward such a peer the Hello
   * is the old one: no Position, no delta, the descent alone.
   */
  readonly positions?: boolean;
  /** Only the simulator's canary sets this: the responder leaves out the last entry of a delta. */
  readonly dropLastDeltaEntry?: boolean;
  /**
   * Only the simulator's encoding canary sets this: received entries keep the bytes they came
   * in as their encoding without the canonical check (DecodeOptions), so a store keeps padding.
   */
  readonly encodingsUnchecked?: boolean;
  /**
   * Partitioned mode: the partitions this side syncs with the peer (a bitmap, layout.ts; this
   * node's `ownership.sharedPartitions(peer)`). Initiator: sent in Hello. Responder: ANDed with
   * the Hello's. Undefined on both sides: every partition, today's unrestricted session.
   */
  readonly partitions?: Uint8Array | undefined;
}

export type SyncOutcome = 'in-sync' | 'synced' | 'incomplete' | 'refused';

export interface SyncResult {
  outcome: SyncOutcome;
  /** For 'refused': the reason name (busy, wrongCluster, ...), from either side. */
  refuseReason?: string;
  message?: string;
  /** Round trips the initiator waited for (Hello counts as one). */
  rounds: number;
  entriesSent: number;
  entriesReceived: number;
  /** Initiator: the responder's position (from its Position frame), if it sent one. */
  peerPosition?: SyncPosition;
  /** Initiator: that position, if our root was its root (we hold everything up to it): a watermark to record. */
  heldPosition?: SyncPosition;
  /** Whether entries after `since` were streamed (initiator: received; responder: sent), and how many. */
  delta?: { entries: number };
  /** A restricted session: the partitions it covered (what 'synced' or 'in-sync' is about). */
  partitions?: Uint8Array;
  /** A restricted session: entries the peer sent outside them, dropped (a protocol violation). */
  entriesOutsidePartitions?: number;
}

export type SyncEffect =
  | { kind: 'send'; frame: Uint8Array }
  /** A received frame's entries (those in the session's partitions), as their bytes (received-entries.ts). */
  | { kind: 'apply'; entries: ReceivedEntries }
  | { kind: 'done'; result: SyncResult };

/** A decoded Entries frame's entry count (without making its entries). */
function entryCount(frame: EntriesFrame): number {
  return frame.received?.length ?? frame.entries.length;
}

/** Budget of fingerprint bytes in one Step; leaves beyond it wait for the next round. */
const summaryBytesBudget = Math.floor(controlFrameBytesMax / 2);

function fingerprintSalt(salt: number): number {
  return (salt ^ 0x9e3779b9) >>> 0;
}

abstract class SessionBase {
  protected rounds = 0;
  protected entriesSent = 0;
  protected entriesReceived = 0;
  protected finished = false;
  protected width: number;
  protected readonly valueBytesMax: number;
  private readonly decodeOptions: DecodeOptions;
  /** What the session compares: the tree, or (restricted) a view of some of its partitions. */
  protected view: MerkleView;
  protected restriction: PartitionView | undefined;
  private outsidePartitions = 0;

  constructor(protected readonly ctx: SyncContext) {
    this.width = ctx.childDigestBytes ?? childDigestBytesDefault;
    this.valueBytesMax = ctx.valueBytesMax ?? valueBytesMaxDefault;
    this.decodeOptions = { encodingsUnchecked: ctx.encodingsUnchecked === true };
    this.view = ctx.tree;
    if (ctx.partitions !== undefined) this.restrict(ctx.partitions);
  }

  /** From now on, compare and move only the partitions of `bitmap`. */
  protected restrict(bitmap: Uint8Array): void {
    this.restriction = new PartitionView(this.ctx.tree, bitmap);
    this.view = this.restriction;
  }

  /**
   * The apply effect for a received Entries frame: its entries in the session's partitions
   * (the others are counted and dropped), as their bytes; none if nothing is left.
   */
  protected admit(frame: EntriesFrame): SyncEffect | undefined {
    const received = frame.received;
    assert(received !== undefined, 'a decoded Entries frame carries its received entries');
    const restriction = this.restriction;
    const entries = restriction === undefined ? received : received.filter((i) => restriction.has(received.keyHash(i)));
    this.outsidePartitions += received.length - entries.length;
    return entries.length > 0 ? { kind: 'apply', entries } : undefined;
  }

  get isDone(): boolean {
    return this.finished;
  }

  protected decode(bytes: Uint8Array): Frame {
    if (this.finished) throw new MalformedError('frame after the session ended');
    return decodeFrame(bytes, this.width, this.valueBytesMax, this.decodeOptions);
  }

  protected done(outcome: SyncOutcome, extra: Partial<SyncResult> = {}): SyncEffect {
    this.finished = true;
    const result: SyncResult = {
      outcome,
      rounds: this.rounds,
      entriesSent: this.entriesSent,
      entriesReceived: this.entriesReceived,
      ...(this.restriction === undefined
        ? {}
        : { partitions: this.restriction.bitmap.slice(), entriesOutsidePartitions: this.outsidePartitions }),
      ...extra,
    };
    return { kind: 'done', result };
  }

  protected refuse(reason: number, message: string): SyncEffect[] {
    return [
      { kind: 'send', frame: encodeFrame({ type: FrameType.refuse, reason, message }) },
      this.done('refused', { refuseReason: refuseReasonName(reason), message }),
    ];
  }

  /** Stream entries in frames of about entriesFrameBytesTarget. */
  protected async *sendEntries(source: AsyncIterable<Entry> | Iterable<Entry>): AsyncGenerator<SyncEffect> {
    let batch: Entry[] = [];
    let batchBytes = 0;
    const restriction = this.restriction;
    for await (const entry of source) {
      // Whatever was asked for, nothing outside the session's partitions leaves this node.
      if (restriction !== undefined && !restriction.has(keyHash(entry.key))) continue;
      batch.push(entry);
      batchBytes += entry.key.length + (entry.value?.byteLength ?? 0) + 24;
      if (batchBytes >= entriesFrameBytesTarget) {
        this.entriesSent += batch.length;
        yield { kind: 'send', frame: encodeFrame({ type: FrameType.entries, entries: batch }) };
        batch = [];
        batchBytes = 0;
      }
    }
    if (batch.length > 0) {
      this.entriesSent += batch.length;
      yield { kind: 'send', frame: encodeFrame({ type: FrameType.entries, entries: batch }) };
    }
  }

  /**
   * Stream entries already encoded (the store's bytes) in frames of about
   * entriesFrameBytesTarget, copied without decoding: an unrestricted delta or whole state.
   */
  protected async *sendEncoded(source: AsyncIterable<readonly Uint8Array[]>): AsyncGenerator<SyncEffect> {
    assert(this.restriction === undefined, 'encoded entries are streamed only in unrestricted sessions');
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    // The first frame is smaller: the receiver, which does most of a catch-up's work, starts
    // on it while the next ones are read.
    let frameBytesTarget = entriesFirstFrameBytesTarget;
    for await (const encoded of source) {
      for (const bytes of encoded) {
        batch.push(bytes);
        batchBytes += bytes.byteLength;
        if (batchBytes >= frameBytesTarget) {
          this.entriesSent += batch.length;
          yield { kind: 'send', frame: encodeEntriesFrameEncoded(batch) };
          batch = [];
          batchBytes = 0;
          frameBytesTarget = entriesFrameBytesTarget;
        }
      }
    }
    if (batch.length > 0) {
      this.entriesSent += batch.length;
      yield { kind: 'send', frame: encodeEntriesFrameEncoded(batch) };
    }
  }

  /** Our entries under `refs` (each once), read in one pass over their cover (`coverOf`). */
  protected async *scanSubtrees(refs: SubtreeRef[]): AsyncGenerator<Entry> {
    if (refs.length === 0) return;
    const wanted = refSets(refs);
    for await (const entry of this.ctx.store.scanHashPrefixes(prefixesOf(coverOf(this.view, refs)))) {
      const hash = keyHash(entry.key);
      if (under(wanted, ((hash[0]! << 16) | (hash[1]! << 8) | hash[2]!) >>> 0)) yield entry;
    }
  }

  /** Our entries, with their key hashes, in each of `leaves`, read in one pass over their cover. */
  protected async leafEntries(leaves: number[]): Promise<Map<number, { entry: Entry; hash: Uint8Array }[]>> {
    const tree = this.view;
    const byLeaf = new Map<number, { entry: Entry; hash: Uint8Array }[]>(leaves.map((leaf) => [leaf, []]));
    if (leaves.length === 0) return byLeaf;
    const cover = coverOf(tree, leaves.map((index) => ({ level: tree.depth, index })));
    for await (const entry of this.ctx.store.scanHashPrefixes(prefixesOf(cover))) {
      const hash = keyHash(entry.key);
      byLeaf.get(tree.leafOf(hash))?.push({ entry, hash });
    }
    return byLeaf;
  }
}

export class SyncInitiator extends SessionBase {
  private readonly projector: Projector;
  private readonly fingerprints: Projector;
  private readonly roundsMax: number;
  private started = false;
  /** Level of the children the next Children frame must list, and which parents we asked. */
  private expectLevel = 1;
  private askedParents = new Set<number>([0]);
  /** Our entries, by key fingerprint, for the leaves summarized in the last Step. */
  private summarized = new Map<number, Map<number, Entry>>();
  private deferredLeaves: number[] = [];
  private framesSeen = 0;
  /** The responder's Position frame, if it sent one (first, at most once). */
  private positionFrame: PositionFrame | undefined;
  /** Entries frames now are the delta (after a Position with delta, before any other frame). */
  private deltaOpen = false;
  private deltaEntries = 0;
  private firstChildren = true;
  private heldPeerPosition = false;

  constructor(ctx: SyncContext, readonly salt: number) {
    super(ctx);
    assert(this.width >= 1 && this.width <= 4, 'child digest width');
    this.projector = new Projector(salt >>> 0, this.width);
    this.fingerprints = new Projector(fingerprintSalt(salt), fingerprintBytes);
    this.roundsMax = sessionRoundsMax(ctx.tree.depth);
  }

  async *start(): AsyncGenerator<SyncEffect> {
    assert(!this.started, 'session started twice');
    this.started = true;
    this.rounds = 1;
    const tree = this.view;
    const restricted = this.ctx.partitions !== undefined;
    yield {
      kind: 'send',
      frame: encodeFrame({
        type: FrameType.hello,
        cluster: this.ctx.cluster,
        depth: tree.depth,
        childDigestBytes: this.width,
        salt: this.salt >>> 0,
        rootDigest: tree.rootDigest.slice(),
        rootCount: tree.rootCount,
        wallMs: Math.max(0, Math.floor(this.ctx.wallClockMs?.() ?? 0)),
        // A restricted session asks for no Position: it proves no watermark (see the top).
        ...(this.ctx.positions === false || restricted ? {} : { positions: true, since: this.ctx.since }),
        ...(restricted ? { partitions: this.ctx.partitions } : {}),
      }),
    };
  }

  async *handle(bytes: Uint8Array): AsyncGenerator<SyncEffect> {
    const frame = this.decode(bytes);
    const first = this.framesSeen++ === 0;
    if (frame.type !== FrameType.entries && frame.type !== FrameType.position) this.deltaOpen = false;
    switch (frame.type) {
      case FrameType.partitions:
        this.onPartitions(frame, first);
        return;
      case FrameType.position:
        this.onPosition(frame, first);
        return;
      case FrameType.refuse:
        yield this.done('refused', { refuseReason: refuseReasonName(frame.reason), message: frame.message });
        return;
      case FrameType.inSync:
        // The responder found its root equal to ours when it read its position: we hold it.
        yield this.done('in-sync', this.positionResult(this.peerPosition !== undefined));
        return;
      case FrameType.entries: {
        this.entriesReceived += entryCount(frame);
        if (this.deltaOpen) this.deltaEntries += entryCount(frame);
        const apply = this.admit(frame);
        if (apply) yield apply;
        return;
      }
      case FrameType.children:
        if (this.firstChildren) {
          // Everything received before (a delta, or a new node's whole state) is merged (the
          // driver settles applies first): if our root is now the Position's, we hold it.
          this.firstChildren = false;
          const position = this.positionFrame;
          this.heldPeerPosition =
            position !== undefined && position.rootCount === this.ctx.tree.rootCount && digestsEqual(position.rootDigest, this.ctx.tree.rootDigest);
        }
        yield* this.onChildren(frame);
        return;
      default:
        throw new MalformedError(`initiator got unexpected frame type ${frame.type}`);
    }
  }

  get peerPosition(): SyncPosition | undefined {
    return this.positionFrame?.position;
  }

  /** Whether the responder said a delta follows its Position. */
  get deltaAnnounced(): boolean {
    return this.positionFrame?.delta ?? false;
  }

  /**
   * A Partitions frame comes first, once: the partitions the responder covers, never more than
   * ours (without a bitmap of our own, any: it only narrows the session).
   */
  private onPartitions(frame: PartitionsFrame, first: boolean): void {
    if (!first) throw new MalformedError('partitions frame after the first frame');
    if (this.ctx.partitions !== undefined && !bitmapSubset(frame.bitmap, this.ctx.partitions)) {
      throw new MalformedError('the responder covers partitions this node did not ask for');
    }
    if (this.ctx.tree.depth < partitionHexDigits) throw new MalformedError('a restricted session on a tree without partitions');
    this.restrict(frame.bitmap);
  }

  /** A Position comes first, once; a delta only if we named `since` (a peer's claim is checked, not trusted). */
  private onPosition(frame: PositionFrame, first: boolean): void {
    if (!first) throw new MalformedError('position frame after the first frame');
    if (frame.delta && this.ctx.since === undefined) throw new MalformedError('delta without a since');
    if (frame.delta && !epochsEqual(frame.position.epoch, this.ctx.since!.epoch)) throw new MalformedError('delta from another epoch');
    this.positionFrame = frame;
    this.deltaOpen = frame.delta;
  }

  private positionResult(held: boolean): Partial<SyncResult> {
    const extra: Partial<SyncResult> = {};
    const position = this.positionFrame;
    if (position === undefined) return extra;
    extra.peerPosition = position.position;
    if (held) extra.heldPosition = position.position;
    if (position.delta) extra.delta = { entries: this.deltaEntries };
    return extra;
  }

  private async *onChildren(frame: ChildrenFrame): AsyncGenerator<SyncEffect> {
    const level = frame.level;
    if (level !== this.expectLevel) throw new MalformedError(`children of level ${level}, expected ${this.expectLevel}`);
    const descend: number[] = [];
    const pull: SubtreeRef[] = [];
    const push: SubtreeRef[] = [];
    const differingLeaves = this.deferredLeaves;
    this.deferredLeaves = [];
    for (const group of frame.groups) {
      if (!this.askedParents.has(group.parent)) throw new MalformedError(`children of parent ${group.parent} not asked for`);
      this.compareGroup(level, group, descend, pull, push, differingLeaves);
    }
    const pushEntries = this.entriesForNeeds(frame.needs);
    this.summarized.clear();

    const summaries = await this.summarize(differingLeaves);
    yield* this.sendEntries(concat(pushEntries, this.scanSubtrees(push)));

    const nothingLeft = descend.length === 0 && pull.length === 0 && summaries.length === 0;
    if (nothingLeft || this.rounds >= this.roundsMax) {
      yield { kind: 'send', frame: encodeFrame({ type: FrameType.bye }) };
      yield this.done(nothingLeft ? 'synced' : 'incomplete', this.positionResult(this.heldPeerPosition));
      return;
    }
    this.rounds++;
    this.askedParents = new Set(descend);
    this.expectLevel = level + 1;
    const step: StepFrame = { type: FrameType.step, level, descend, pull, summaries };
    yield { kind: 'send', frame: encodeFrame(step) };
  }

  private compareGroup(
    level: number,
    group: ChildGroup,
    descend: number[],
    pull: SubtreeRef[],
    push: SubtreeRef[],
    differingLeaves: number[],
  ): void {
    const tree = this.view;
    let next = 0;
    for (let c = 0; c < merkleFanout; c++) {
      const child = group.parent * merkleFanout + c;
      const theirs = (group.nonEmptyMask & (1 << c)) !== 0;
      const ours = tree.count(level, child) > 0;
      const projection = theirs ? group.projections[next++] : undefined;
      if (!theirs && !ours) continue;
      if (!ours) pull.push({ level, index: child });
      else if (!theirs) push.push({ level, index: child });
      else if (this.projector.project(tree.digest(level, child)) !== projection) {
        (level === tree.depth ? differingLeaves : descend).push(child);
      }
    }
  }

  private entriesForNeeds(needs: LeafNeed[]): Entry[] {
    const entries: Entry[] = [];
    for (const need of needs) {
      const byFingerprint = this.summarized.get(need.leaf);
      if (byFingerprint === undefined) throw new MalformedError(`need for leaf ${need.leaf} not summarized`);
      for (const fp of need.fingerprints) {
        const entry = byFingerprint.get(fp);
        if (entry !== undefined) entries.push(entry);
      }
    }
    return entries;
  }

  private async summarize(leaves: number[]): Promise<LeafSummary[]> {
    const summaries: LeafSummary[] = [];
    let bytes = 0;
    leaves.sort((a, b) => a - b);
    // Choose the leaves that fit the budget by the tree's counts, then read only those.
    let take = 0;
    for (; take < leaves.length; take++) {
      bytes += 4 + this.view.count(this.view.depth, leaves[take]!) * summaryItemBytes;
      if (bytes > summaryBytesBudget && take > 0) break;
    }
    this.deferredLeaves = leaves.slice(take);
    const chosen = leaves.slice(0, take);
    const ours = await this.leafEntries(chosen);
    for (const leaf of chosen) {
      const entries = ours.get(leaf)!;
      const byFingerprint = new Map<number, Entry>();
      for (const { entry, hash } of entries) byFingerprint.set(this.fingerprints.project(hash), entry);
      this.summarized.set(leaf, byFingerprint);
      const items = [...byFingerprint].map(([keyFingerprint, entry]) => ({ keyFingerprint, version: entry.version }));
      summaries.push({ leaf, items });
    }
    return summaries;
  }
}

export interface ResponderOptions {
  /** Refuse the session on Hello with this reason (the driver decides: busy, stopping). */
  refuse?: { reason: number; message: string };
}

export class SyncResponder extends SessionBase {
  /** From the peer's Hello, once received: its wall clock (0 if it did not say) and entry count. */
  peerWallMs: number | undefined;
  peerEntryCount: number | undefined;
  private projector: Projector | undefined;
  private fingerprints: Projector | undefined;
  private readonly roundsMax: number;
  private deltaSent = false;
  private deltaEntriesSent = 0;

  constructor(ctx: SyncContext, private readonly options: ResponderOptions = {}) {
    super(ctx);
    this.roundsMax = sessionRoundsMax(ctx.tree.depth);
  }

  async *handle(bytes: Uint8Array): AsyncGenerator<SyncEffect> {
    let frame: Frame;
    try {
      frame = this.decode(bytes);
    } catch (error) {
      // Only a Hello in another version gets a polite refusal; mid-session it is malformed.
      if (error instanceof UnsupportedVersionError && this.projector === undefined) {
        yield* this.refuse(RefuseReason.unsupportedVersion, error.message);
        return;
      }
      throw error;
    }
    if (this.projector === undefined) {
      if (frame.type !== FrameType.hello) throw new MalformedError(`expected hello, got frame type ${frame.type}`);
      yield* this.onHello(frame);
      return;
    }
    switch (frame.type) {
      case FrameType.entries: {
        this.entriesReceived += entryCount(frame);
        const apply = this.admit(frame);
        if (apply) yield apply;
        return;
      }
      case FrameType.step:
        yield* this.onStep(frame);
        return;
      case FrameType.bye:
        yield this.done('synced');
        return;
      default:
        throw new MalformedError(`responder got unexpected frame type ${frame.type}`);
    }
  }

  private async *onHello(hello: Extract<Frame, { type: 1 }>): AsyncGenerator<SyncEffect> {
    const tree = this.ctx.tree;
    this.rounds = 1;
    this.peerWallMs = hello.wallMs;
    this.peerEntryCount = hello.rootCount;
    if (this.options.refuse) {
      yield* this.refuse(this.options.refuse.reason, this.options.refuse.message);
      return;
    }
    if (hello.cluster !== this.ctx.cluster) {
      yield* this.refuse(RefuseReason.wrongCluster, `this node is in cluster '${this.ctx.cluster}', not '${hello.cluster}'`);
      return;
    }
    if (hello.depth !== tree.depth) {
      yield* this.refuse(RefuseReason.unsupportedDepth, `this node's Merkle depth is ${tree.depth}, not ${hello.depth}`);
      return;
    }
    if (hello.childDigestBytes < 1 || hello.childDigestBytes > 4) {
      yield* this.refuse(RefuseReason.malformed, `digest width ${hello.childDigestBytes} is not 1..4`);
      return;
    }
    // A restricted session covers the Hello's partitions AND ours for this peer, and says so.
    // The Hello's root is comparable with ours only when that is exactly the Hello's bitmap.
    let sameBitmap = true;
    if (hello.partitions !== undefined || this.ctx.partitions !== undefined) {
      if (tree.depth < partitionHexDigits) {
        yield* this.refuse(RefuseReason.unsupportedDepth, `a restricted session needs a Merkle depth of ${partitionHexDigits} or more`);
        return;
      }
      const asked = hello.partitions ?? fullBitmap();
      const covered = bitmapAnd(asked, this.ctx.partitions ?? fullBitmap());
      sameBitmap = bitmapsEqual(asked, covered);
      this.restrict(covered);
      yield { kind: 'send', frame: encodeFrame({ type: FrameType.partitions, bitmap: covered }) };
    }
    const view = this.view;
    // Our position and root in one synchronous step (no await since the checks above): the
    // position's seq names exactly the state this root describes. None for a restricted session.
    const position = hello.positions && this.ctx.position && this.restriction === undefined ? this.ctx.position() : undefined;
    const inSync = sameBitmap && hello.rootCount === view.rootCount && digestsEqual(hello.rootDigest, view.rootDigest);
    const since = hello.since;
    // A delta only from a point of our own history (same epoch, not past our seq), and not
    // for an empty initiator: the whole state is cheaper as one scan of the entries.
    const delta =
      position !== undefined && !inSync && since !== undefined && hello.rootCount > 0 && epochsEqual(since.epoch, position.epoch) && since.seq <= position.seq;
    if (position !== undefined) {
      const frame: PositionFrame = { type: FrameType.position, position, rootDigest: tree.rootDigest.slice(), rootCount: tree.rootCount, delta };
      yield { kind: 'send', frame: encodeFrame(frame) };
    }
    if (inSync) {
      yield { kind: 'send', frame: encodeFrame({ type: FrameType.inSync }) };
      yield this.done('in-sync');
      return;
    }
    this.width = hello.childDigestBytes;
    this.projector = new Projector(hello.salt, this.width);
    this.fingerprints = new Projector(fingerprintSalt(hello.salt), fingerprintBytes);
    if (delta) {
      // The entries we applied after `since`, in seq order, then the descent as usual.
      const before = this.entriesSent;
      // As stored when the store can (no decode and re-encode an entry); the canary needs entries.
      const { store } = this.ctx;
      if (store.scanSinceEncoded !== undefined && !this.ctx.dropLastDeltaEntry) yield* this.sendEncoded(store.scanSinceEncoded(since!.seq, position!.seq));
      else yield* this.sendEntries(this.deltaSource(since!.seq, position!.seq));
      this.deltaEntriesSent = this.entriesSent - before;
      this.deltaSent = true;
    }
    if (hello.rootCount === 0) {
      // A new node: stream everything (of the session's partitions), no descent; an empty
      // Children frame ends its round.
      const restriction = this.restriction;
      const { store } = this.ctx;
      if (restriction === undefined) yield* store.scanAllEncoded !== undefined ? this.sendEncoded(store.scanAllEncoded()) : this.sendEntries(store.scanHash(''));
      else {
        const prefixes = bitmapPrefixes(restriction.bitmap);
        if (prefixes.length > 0) yield* this.sendEntries(this.ctx.store.scanHashPrefixes(prefixes));
      }
      yield { kind: 'send', frame: encodeChildren({ type: FrameType.children, level: 1, groups: [], needs: [] }, this.width) };
      return;
    }
    yield { kind: 'send', frame: this.children(1, [0], []) };
  }

  private async *deltaSource(seqAfter: number, seqUpTo: number): AsyncGenerator<Entry> {
    let held: Entry | undefined;
    for await (const { entry } of this.ctx.store.scanSince(seqAfter, seqUpTo)) {
      // The canary holds each entry back one step and drops the last.
      if (this.ctx.dropLastDeltaEntry) {
        if (held !== undefined) yield held;
        held = entry;
      } else yield entry;
    }
  }

  protected override done(outcome: SyncOutcome, extra: Partial<SyncResult> = {}): SyncEffect {
    return super.done(outcome, this.deltaSent ? { delta: { entries: this.deltaEntriesSent }, ...extra } : extra);
  }

  private async *onStep(step: StepFrame): AsyncGenerator<SyncEffect> {
    const depth = this.ctx.tree.depth;
    this.rounds++;
    if (this.rounds > this.roundsMax) {
      yield* this.refuse(RefuseReason.tooManyRounds, `session exceeded ${this.roundsMax} rounds`);
      return;
    }
    if (step.level < 1 || step.level > depth) throw new MalformedError(`step level ${step.level}`);
    if (step.level === depth && step.descend.length > 0) throw new MalformedError('descend below the leaves');
    for (const parent of step.descend) checkIndex(step.level, parent);
    for (const ref of step.pull) {
      if (ref.level < 1 || ref.level > depth) throw new MalformedError(`pull level ${ref.level}`);
      checkIndex(ref.level, ref.index);
    }
    let previousLeaf = -1;
    for (const summary of step.summaries) {
      checkIndex(depth, summary.leaf);
      if (summary.leaf <= previousLeaf) throw new MalformedError('summary leaves out of order');
      previousLeaf = summary.leaf;
    }
    const needs: LeafNeed[] = [];
    yield* this.sendEntries(this.answerStep(step, needs));
    yield { kind: 'send', frame: this.children(step.level + 1, step.descend, needs) };
  }

  /**
   * The entries a Step asks for, read in one pass (over the cover of its summarized leaves and
   * pulled subtrees) and yielded as found, so they stream out while the pass goes on: every
   * entry under a pulled subtree, and in each summarized leaf our entries the initiator lacks
   * or holds an older version of. Then fills `needs`: the initiator's entries that are newer
   * than ours or that we lack, leaf by leaf. Each key is hashed once; only versions are kept.
   */
  private async *answerStep(step: StepFrame, needs: LeafNeed[]): AsyncGenerator<Entry> {
    const tree = this.ctx.tree;
    const depth = tree.depth;
    const pulled = refSets(step.pull);
    const theirs = new Map<number, Map<number, Version>>();
    const ours = new Map<number, Map<number, Version>>();
    for (const summary of step.summaries) {
      const items = new Map<number, Version>();
      for (const item of summary.items) items.set(item.keyFingerprint, item.version);
      theirs.set(summary.leaf, items);
      ours.set(summary.leaf, new Map());
    }
    const refs: SubtreeRef[] = step.summaries.map((summary) => ({ level: depth, index: summary.leaf }));
    refs.push(...step.pull);
    for await (const entry of this.ctx.store.scanHashPrefixes(prefixesOf(coverOf(this.view, refs)))) {
      const hash = keyHash(entry.key);
      const top = ((hash[0]! << 16) | (hash[1]! << 8) | hash[2]!) >>> 0;
      if (under(pulled, top)) {
        yield entry;
        continue;
      }
      const leaf = top >>> (24 - 4 * depth);
      const theirItems = theirs.get(leaf);
      if (theirItems === undefined) continue; // read only because the cover is wider
      const fp = this.fingerprints!.project(hash);
      ours.get(leaf)!.set(fp, entry.version);
      const their = theirItems.get(fp);
      if (their === undefined || compareVersions(entry.version, their) > 0) yield entry;
    }
    const restriction = this.restriction;
    for (const summary of step.summaries) {
      // A leaf outside the session's partitions: nothing to ask for (a hostile Step's).
      if (restriction !== undefined && !restriction.hasPartition(summary.leaf >>> (4 * (depth - partitionHexDigits)))) continue;
      const ourItems = ours.get(summary.leaf)!;
      const newer: number[] = [];
      for (const item of summary.items) {
        const our = ourItems.get(item.keyFingerprint);
        if (our === undefined || compareVersions(item.version, our) > 0) newer.push(item.keyFingerprint);
      }
      if (newer.length > 0) needs.push({ leaf: summary.leaf, fingerprints: newer });
    }
  }

  private children(level: number, parents: number[], needs: LeafNeed[]): Uint8Array {
    const tree = this.view;
    const groups: ChildGroup[] = [];
    for (const parent of parents) {
      let nonEmptyMask = 0;
      const projections: number[] = [];
      for (let c = 0; c < merkleFanout; c++) {
        const child = parent * merkleFanout + c;
        if (tree.count(level, child) === 0) continue;
        nonEmptyMask |= 1 << c;
        projections.push(this.projector!.project(tree.digest(level, child)));
      }
      groups.push({ parent, nonEmptyMask, projections });
    }
    const frame: ChildrenFrame = { type: FrameType.children, level, groups, needs };
    return encodeChildren(frame, this.width);
  }
}

/**
 * The ranges to read for the entries under `refs` (subtrees at levels 1..depth, indices
 * valid): each ref itself, or an ancestor (level 1 at the highest) whose whole range costs
 * less to read (one seek, `seekCostEntries`, plus one per entry it holds) than its wanted
 * descendants read one seek each. A ref under another ref is dropped (read once). In hash
 * order, none overlapping, as `Store.scanHashPrefixes` wants. Many differing leaves thus
 * become a few sequential scans instead of a seek each; a few stay a seek each.
 */
export function coverOf(tree: MerkleView, refs: readonly SubtreeRef[], seekCostEntries = scanSeekCostEntries): SubtreeRef[] {
  /** A subtree to read whole (`parts` undefined) or through the parts under it. */
  interface Item {
    level: number;
    index: number;
    cost: number;
    parts: Item[] | undefined;
  }
  const wantedAt = new Map<number, Item[]>();
  for (const ref of refs) {
    let items = wantedAt.get(ref.level);
    if (items === undefined) wantedAt.set(ref.level, (items = []));
    items.push({ level: ref.level, index: ref.index, cost: seekCostEntries + tree.count(ref.level, ref.index), parts: undefined });
  }
  let carried = new Map<number, Item>();
  for (let level = tree.depth; level >= 1; level--) {
    // A wanted ref replaces whatever was carried up from under it.
    for (const item of wantedAt.get(level) ?? []) carried.set(item.index, item);
    const items = [...carried.values()].sort((a, b) => a.index - b.index);
    if (level === 1) {
      const out: SubtreeRef[] = [];
      const flatten = (item: Item): void => {
        if (item.parts === undefined) out.push({ level: item.level, index: item.index });
        else for (const part of item.parts) flatten(part);
      };
      for (const item of items) flatten(item);
      return out;
    }
    const parents = new Map<number, Item>();
    for (const item of items) {
      const index = Math.floor(item.index / merkleFanout);
      const parent = parents.get(index);
      if (parent === undefined) parents.set(index, { level: level - 1, index, cost: item.cost, parts: [item] });
      else {
        parent.cost += item.cost;
        parent.parts!.push(item);
      }
    }
    for (const parent of parents.values()) {
      const whole = seekCostEntries + tree.count(level - 1, parent.index);
      if (whole < parent.cost) {
        parent.cost = whole;
        parent.parts = undefined;
      }
    }
    carried = parents;
  }
  return [];
}

/** The hash prefixes of the partitions of a bitmap, in order. */
function bitmapPrefixes(bitmap: Uint8Array): string[] {
  const prefixes: string[] = [];
  for (let p = 0; p < 8 * bitmap.byteLength; p++) {
    if (bitmap[p >> 3]! & (1 << (p & 7))) prefixes.push(MerkleTree.hashPrefix(partitionHexDigits, p));
  }
  return prefixes;
}

function prefixesOf(refs: readonly SubtreeRef[]): string[] {
  return refs.map((ref) => MerkleTree.hashPrefix(ref.level, ref.index));
}

/** Subtree indices by level, for `under`. */
function refSets(refs: readonly SubtreeRef[]): Map<number, Set<number>> {
  const sets = new Map<number, Set<number>>();
  for (const ref of refs) {
    let set = sets.get(ref.level);
    if (set === undefined) sets.set(ref.level, (set = new Set()));
    set.add(ref.index);
  }
  return sets;
}

/** Whether a key whose hash starts with the 24 bits `top` lies under one of `sets`' subtrees. */
function under(sets: Map<number, Set<number>>, top: number): boolean {
  for (const [level, set] of sets) if (set.has(top >>> (24 - 4 * level))) return true;
  return false;
}

function checkIndex(level: number, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= merkleFanout ** level) {
    throw new MalformedError(`node ${index} does not exist at level ${level}`);
  }
}

async function* concat<T>(...sources: (Iterable<T> | AsyncIterable<T>)[]): AsyncGenerator<T> {
  for (const source of sources) yield* source;
}
