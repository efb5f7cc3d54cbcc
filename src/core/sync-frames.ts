/**
 * Frames of the anti-entropy protocol (`/ckv/<cluster>/sync/1.0.0`), their binary encoding
 * and bounds. Every frame starts with u8 protocol version and u8 frame type. A frame that does
 * not decode, or claims more than the bounds below, throws MalformedError: the session ends
 * and the peer is counted as misbehaving; nothing it sent is applied.
 *
 * The exchange (I = initiator, R = responder; see sync-session.ts for the state machines):
 *   I -> R  Hello     cluster, depth, digest width, salt, root digest and count, wall clock,
 *                     [positions: I reads Position frames; since: the (epoch, seq) of R's it holds]
 *                     [partitions: the bitmap of partitions I syncs with R (partitioned mode)]
 *   R -> I  Partitions (partitioned mode: Hello had a bitmap, or R restricts its sessions) the
 *                     partitions this session covers: I's bitmap AND R's own; then no Position
 *   R -> I  Position  (only if I said `positions`) R's (epoch, seq) and root as of this Hello;
 *                     whether the entries R applied after `since` follow (a delta)
 *   R -> I  Entries*  (delta only) the entries R applied after `since`, up to the Position's seq
 *   R -> I  InSync    roots equal: done in one round trip
 *   R -> I  Refuse    busy, other cluster, unsupported version or depth, malformed input
 *   R -> I  Entries*  then Children: children of the root, or (I empty) everything, then none
 *   I -> R  Entries*  (I's subtrees R lacks, entries R asked for) then Step: descend, pull, leaf summaries
 *   R -> I  Entries*  (subtrees I pulled, leaf entries newer than I's) then Children: next level, needs
 * A leaf summary lists, per entry, a salted 4-byte fingerprint of the key and the exact
 * version, so each side sends only the versions that are strictly newer than the other's.
 *   ... one Step/Children round trip a level ...
 *   I -> R  Entries*  then Bye
 */
import { ByteReader, ByteWriter, fromHex, toHex } from './bytes.js';
import { hlcCounter, hlcPack, hlcWallMs } from './hlc.js';
import { writeEntry, type Entry, type Version } from './entry.js';
import { decodeReceivedEntries, type ReceivedEntries } from './received-entries.js';
import { MalformedError } from './errors.js';
import { partitionBitmapBytes } from './layout.js';
import {
  controlFrameBytesMax,
  fingerprintBytes,
  hlcCounterMax,
  hlcWallMsMax,
  merkleDepthMax,
  merkleFanout,
  nodeIdBytes,
  syncProtocolVersion,
} from './limits.js';

/** Frame types. Only append: the values are part of the protocol. */
export const FrameType = {
  hello: 1,
  refuse: 2,
  inSync: 3,
  children: 4,
  step: 5,
  entries: 6,
  bye: 7,
  position: 8,
  partitions: 9,
} as const;

/** Refusal reasons. Only append: the values are part of the protocol. */
export const RefuseReason = {
  busy: 1,
  wrongCluster: 2,
  unsupportedVersion: 3,
  malformed: 4,
  tooManyRounds: 5,
  unsupportedDepth: 6,
  stopping: 7,
} as const;
export type RefuseReasonCode = (typeof RefuseReason)[keyof typeof RefuseReason];

export function refuseReasonName(code: number): string {
  const name = Object.entries(RefuseReason).find(([, value]) => value === code)?.[0];
  return name ?? `unknown(${code})`;
}

/** A point in a node's applied sequence: its store epoch (16 bytes) and a seq in it. */
export interface SyncPosition {
  readonly epoch: Uint8Array;
  readonly seq: number;
}

export interface HelloFrame {
  type: typeof FrameType.hello;
  cluster: string;
  depth: number;
  childDigestBytes: number;
  salt: number;
  rootDigest: Uint8Array;
  rootCount: number;
  /** The initiator's wall clock when it sent Hello: the responder measures the clock offset. */
  wallMs: number;
  /**
   * Optional, after wallMs (a Hello without it is the older frame, still read): the initiator
   * reads Position frames, and if `since` is given, holds everything the responder had
   * applied up to that position (a watermark it recorded), so a delta from there suffices.
   */
  positions?: boolean;
  since?: SyncPosition | undefined;
  /**
   * Optional, after the positions extension (partitioned mode, protocol 1.2.0): the partitions
   * the initiator syncs with this responder (a bitmap of partitionBitmapBytes). Absent: all.
   */
  partitions?: Uint8Array | undefined;
}
/**
 * The responder's answer to a restricted session, its first frame: the partitions the session
 * covers (the Hello's bitmap, all if none, AND the responder's own for this peer).
 */
export interface PartitionsFrame {
  type: typeof FrameType.partitions;
  bitmap: Uint8Array;
}
/** The responder's place in its applied sequence and its root, both as of the Hello. */
export interface PositionFrame {
  type: typeof FrameType.position;
  position: SyncPosition;
  rootDigest: Uint8Array;
  rootCount: number;
  /** Entries applied after the Hello's `since`, up to `position.seq`, follow before anything else. */
  delta: boolean;
}
export interface RefuseFrame {
  type: typeof FrameType.refuse;
  reason: number;
  message: string;
}
export interface InSyncFrame {
  type: typeof FrameType.inSync;
}
/** The children of one parent: which are non-empty, and a projection of each non-empty one. */
export interface ChildGroup {
  parent: number;
  nonEmptyMask: number;
  projections: number[];
}
export interface LeafNeed {
  leaf: number;
  fingerprints: number[];
}
export interface ChildrenFrame {
  type: typeof FrameType.children;
  /** Level of the children listed (parents are at level - 1). */
  level: number;
  groups: ChildGroup[];
  /** Per leaf, key fingerprints from I's summary whose version is newer than R's: I sends those. */
  needs: LeafNeed[];
}
export interface SubtreeRef {
  level: number;
  index: number;
}
/** One entry of a leaf summary: a salted fingerprint of its key, and its exact version. */
export interface SummaryItem {
  keyFingerprint: number;
  version: Version;
}
export interface LeafSummary {
  leaf: number;
  items: SummaryItem[];
}
export interface StepFrame {
  type: typeof FrameType.step;
  /** Level of the parents in `descend`: R answers with their children at level + 1. */
  level: number;
  descend: number[];
  pull: SubtreeRef[];
  summaries: LeafSummary[];
}
export interface EntriesFrame {
  type: typeof FrameType.entries;
  /** Decoded frames: made from `received` when first read. */
  entries: Entry[];
  /**
   * Decoded frames only: per entry, its bytes in the frame (a view) when they are exactly
   * encodeEntry(entry), else undefined. The store keeps them as they are.
   */
  encodings?: (Uint8Array | undefined)[];
  /** Decoded frames only: the entries as their bytes in the frame (received-entries.ts). */
  received?: ReceivedEntries;
}
export interface ByeFrame {
  type: typeof FrameType.bye;
}
export type Frame = HelloFrame | RefuseFrame | InSyncFrame | ChildrenFrame | StepFrame | EntriesFrame | ByeFrame | PositionFrame | PartitionsFrame;

/** Bytes of a store epoch. */
export const epochBytes = 16;
/** Hello extension tags, in this order on the wire. Only append. */
const helloExtensionPositions = 1;
const helloExtensionPartitions = 2;

const clusterBytesMax = 256;
const listMax = merkleFanout ** merkleDepthMax;
const refuseMessageBytesMax = 1024;

export function encodeFrame(frame: Frame): Uint8Array {
  const w = new ByteWriter();
  w.u8(syncProtocolVersion).u8(frame.type);
  switch (frame.type) {
    case FrameType.hello:
      w.string(frame.cluster).u8(frame.depth).u8(frame.childDigestBytes).u32(frame.salt);
      w.raw(frame.rootDigest).varint(frame.rootCount).varint(frame.wallMs);
      if (frame.positions || frame.since) {
        w.u8(helloExtensionPositions).u8(frame.since ? 1 : 0);
        if (frame.since) w.raw(checkEpoch(frame.since.epoch)).varint(frame.since.seq);
      }
      if (frame.partitions) w.u8(helloExtensionPartitions).raw(checkBitmap(frame.partitions));
      break;
    case FrameType.partitions:
      w.raw(checkBitmap(frame.bitmap));
      break;
    case FrameType.position:
      w.raw(checkEpoch(frame.position.epoch)).varint(frame.position.seq);
      w.raw(frame.rootDigest).varint(frame.rootCount).u8(frame.delta ? 1 : 0);
      break;
    case FrameType.refuse:
      w.u8(frame.reason).string(frame.message.slice(0, 200));
      break;
    case FrameType.inSync:
    case FrameType.bye:
      break;
    case FrameType.children:
      // The projection width is fixed for the session by Hello; the writer needs it.
      throw new Error('encode children frames with encodeChildren');
    case FrameType.step:
      w.u8(frame.level);
      writeIndexList(w, frame.descend);
      w.varint(frame.pull.length);
      for (const ref of frame.pull) w.u8(ref.level).varint(ref.index);
      writeSummaries(w, frame.summaries);
      break;
    case FrameType.entries:
      w.varint(frame.entries.length);
      for (const entry of frame.entries) writeEntry(w, entry);
      break;
  }
  return w.finish();
}

/**
 * An Entries frame from entries already in their canonical encoding (writeEntry's bytes, as
 * the store keeps them): the same bytes as encodeFrame of the decoded entries, made by one
 * copy each. The caller vouches for the encodings (they come from its own store).
 */
export function encodeEntriesFrameEncoded(encoded: readonly Uint8Array[]): Uint8Array {
  const head = new ByteWriter().u8(syncProtocolVersion).u8(FrameType.entries).varint(encoded.length).finish();
  let total = head.byteLength;
  for (const bytes of encoded) total += bytes.byteLength;
  const frame = new Uint8Array(total);
  frame.set(head, 0);
  let at = head.byteLength;
  for (const bytes of encoded) {
    frame.set(bytes, at);
    at += bytes.byteLength;
  }
  return frame;
}

export function encodeChildren(frame: ChildrenFrame, width: number): Uint8Array {
  const w = new ByteWriter();
  w.u8(syncProtocolVersion).u8(FrameType.children).u8(frame.level);
  w.varint(frame.groups.length);
  let previous = 0;
  for (const group of frame.groups) {
    w.varint(group.parent - previous);
    previous = group.parent;
    w.u16(group.nonEmptyMask);
    for (const projection of group.projections) writeProjection(w, projection, width);
  }
  writeFingerprintLists(w, frame.needs);
  return w.finish();
}

/** Only the simulator's encoding canary sets this (SyncContext.encodingsUnchecked). */
export interface DecodeOptions {
  /** Every entry's bytes become its encoding, canonical or not: a store then keeps a peer's padding. */
  readonly encodingsUnchecked?: boolean;
}

/**
 * Decode one frame. `width` is the session's projection width (from Hello; ignored for Hello
 * itself), `valueBytesMax` bounds entry values. Throws MalformedError. An Entries frame's
 * entries come with their encodings (views of `bytes`: the caller must not reuse its memory).
 */
export function decodeFrame(bytes: Uint8Array, width: number, valueBytesMax: number, options: DecodeOptions = {}): Frame {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== syncProtocolVersion) {
    // A Refuse can still be produced by the caller from this; the type is unknown territory.
    throw new UnsupportedVersionError(version);
  }
  const type = r.u8();
  if (type !== FrameType.entries && bytes.byteLength > controlFrameBytesMax) {
    throw new MalformedError(`frame of ${bytes.byteLength} bytes exceeds ${controlFrameBytesMax}`);
  }
  let frame: Frame;
  switch (type) {
    case FrameType.hello: {
      const cluster = r.string(clusterBytesMax, 'cluster name');
      const depth = r.u8();
      const childDigestBytes = r.u8();
      const salt = r.u32();
      const rootDigest = r.raw(32).slice();
      const rootCount = r.varint();
      const wallMs = r.bounded(hlcWallMsMax, 'wall ms');
      frame = { type, cluster, depth, childDigestBytes, salt, rootDigest, rootCount, wallMs };
      // Extensions, each at most once, in the order of their tags.
      let previousTag = 0;
      while (r.remaining > 0) {
        const tag = r.u8();
        if (tag <= previousTag) throw new MalformedError(`hello extension ${tag} out of order`);
        previousTag = tag;
        if (tag === helloExtensionPositions) {
          frame.positions = true;
          const hasSince = r.u8();
          if (hasSince > 1) throw new MalformedError(`hello since flag ${hasSince}`);
          if (hasSince === 1) frame.since = { epoch: r.raw(epochBytes).slice(), seq: r.bounded(Number.MAX_SAFE_INTEGER, 'since seq') };
        } else if (tag === helloExtensionPartitions) {
          frame.partitions = r.raw(partitionBitmapBytes).slice();
        } else throw new MalformedError(`unknown hello extension ${tag}`);
      }
      break;
    }
    case FrameType.partitions:
      frame = { type, bitmap: r.raw(partitionBitmapBytes).slice() };
      break;
    case FrameType.position: {
      const epoch = r.raw(epochBytes).slice();
      const seq = r.bounded(Number.MAX_SAFE_INTEGER, 'position seq');
      const rootDigest = r.raw(32).slice();
      const rootCount = r.varint();
      const delta = r.u8();
      if (delta > 1) throw new MalformedError(`position delta flag ${delta}`);
      frame = { type, position: { epoch, seq }, rootDigest, rootCount, delta: delta === 1 };
      break;
    }
    case FrameType.refuse:
      frame = { type, reason: r.u8(), message: r.string(refuseMessageBytesMax, 'refuse message') };
      break;
    case FrameType.inSync:
    case FrameType.bye:
      frame = { type };
      break;
    case FrameType.children: {
      const level = r.u8();
      const groupCount = r.bounded(listMax, 'group count');
      const groups: ChildGroup[] = [];
      let parent = 0;
      for (let g = 0; g < groupCount; g++) {
        parent += r.varint();
        const nonEmptyMask = r.u16();
        const projections: number[] = [];
        for (let c = 0; c < merkleFanout; c++) {
          if (nonEmptyMask & (1 << c)) projections.push(readProjection(r, width));
        }
        groups.push({ parent, nonEmptyMask, projections });
      }
      frame = { type, level, groups, needs: readFingerprintLists(r) };
      break;
    }
    case FrameType.step: {
      const level = r.u8();
      const descend = readIndexList(r);
      const pullCount = r.bounded(listMax, 'pull count');
      const pull: SubtreeRef[] = [];
      for (let i = 0; i < pullCount; i++) pull.push({ level: r.u8(), index: r.varint() });
      frame = { type, level, descend, pull, summaries: readSummaries(r) };
      break;
    }
    case FrameType.entries: {
      const count = r.bounded(bytes.byteLength, 'entry count');
      const { entries: received, end } = decodeReceivedEntries(bytes, r.position, count, valueBytesMax, options.encodingsUnchecked === true);
      r.skip(end - r.position);
      let made: Entry[] | undefined;
      frame = {
        type,
        received,
        get entries() {
          return (made ??= received.entries());
        },
        get encodings() {
          return received.encodings();
        },
      };
      break;
    }
    default:
      throw new MalformedError(`unknown frame type ${type}`);
  }
  r.end();
  return frame;
}

function checkBitmap(bitmap: Uint8Array): Uint8Array {
  if (bitmap.byteLength !== partitionBitmapBytes) throw new Error(`a partition bitmap is ${partitionBitmapBytes} bytes, not ${bitmap.byteLength}`);
  return bitmap;
}

function checkEpoch(epoch: Uint8Array): Uint8Array {
  if (epoch.byteLength !== epochBytes) throw new Error(`an epoch is ${epochBytes} bytes, not ${epoch.byteLength}`);
  return epoch;
}

export class UnsupportedVersionError extends MalformedError {
  constructor(readonly version: number) {
    super(`unsupported sync protocol version ${version}`);
    this.name = 'UnsupportedVersionError';
  }
}

function writeProjection(w: ByteWriter, projection: number, width: number): void {
  for (let i = width - 1; i >= 0; i--) w.u8(Math.floor(projection / 256 ** i) & 0xff);
}

function readProjection(r: ByteReader, width: number): number {
  let value = 0;
  for (let i = 0; i < width; i++) value = value * 256 + r.u8();
  return value;
}

/** Sorted indices, delta-coded: neighbouring subtrees cost a byte each. */
function writeIndexList(w: ByteWriter, indices: number[]): void {
  w.varint(indices.length);
  let previous = 0;
  for (const index of indices) {
    w.varint(index - previous);
    previous = index;
  }
}

function readIndexList(r: ByteReader): number[] {
  const count = r.bounded(listMax, 'index count');
  const indices: number[] = [];
  let previous = 0;
  for (let i = 0; i < count; i++) {
    previous += r.varint();
    indices.push(previous);
  }
  return indices;
}

/**
 * Upper bound of one summary item on the wire, used for budgets and decode bounds: key
 * fingerprint, node index varint, millisecond-delta varint, counter varint.
 */
export const summaryItemBytes = fingerprintBytes + 3 + 8 + 3;
/** Lower bound of one item, so a claimed count cannot exceed what the frame can hold. */
const summaryItemBytesMin = fingerprintBytes + 3;
const summaryNodesMax = 4096;

/**
 * Leaf summaries of one Step, compactly: the distinct node ids once (a table), the smallest
 * wall-ms once, then per item its key fingerprint, node index, ms above the base and the HLC
 * counter as varints: ~10 bytes an item instead of 20, most of the cost of a catch-up's
 * metadata. The versions decode exactly.
 */
function writeSummaries(w: ByteWriter, summaries: LeafSummary[]): void {
  const nodes = new Map<string, number>();
  let baseMs = Number.MAX_SAFE_INTEGER;
  for (const summary of summaries) {
    for (const item of summary.items) {
      if (!nodes.has(item.version.node)) nodes.set(item.version.node, nodes.size);
      baseMs = Math.min(baseMs, hlcWallMs(item.version.hlc));
    }
  }
  w.varint(nodes.size);
  for (const node of nodes.keys()) w.raw(fromHex(node));
  w.varint(nodes.size === 0 ? 0 : baseMs);
  w.varint(summaries.length);
  let previous = 0;
  for (const summary of summaries) {
    w.varint(summary.leaf - previous);
    previous = summary.leaf;
    w.varint(summary.items.length);
    for (const item of summary.items) {
      writeProjection(w, item.keyFingerprint, fingerprintBytes);
      w.varint(nodes.get(item.version.node)!);
      w.varint(hlcWallMs(item.version.hlc) - baseMs);
      w.varint(hlcCounter(item.version.hlc));
    }
  }
}

function readSummaries(r: ByteReader): LeafSummary[] {
  const nodeCount = r.bounded(summaryNodesMax, 'summary node count');
  const nodes: string[] = [];
  for (let i = 0; i < nodeCount; i++) nodes.push(toHex(r.raw(nodeIdBytes)));
  const baseMs = r.bounded(hlcWallMsMax, 'summary base ms');
  const count = r.bounded(listMax, 'leaf count');
  const summaries: LeafSummary[] = [];
  let leaf = 0;
  for (let i = 0; i < count; i++) {
    leaf += r.varint();
    const n = r.bounded(Math.floor(r.remaining / summaryItemBytesMin), 'summary item count');
    const items: SummaryItem[] = [];
    for (let j = 0; j < n; j++) {
      const keyFingerprint = readProjection(r, fingerprintBytes);
      const node = nodes[r.bounded(nodeCount - 1, 'summary node index')];
      if (node === undefined) throw new MalformedError('summary item names no node');
      const wallMs = baseMs + r.bounded(hlcWallMsMax - baseMs, 'summary ms delta');
      const counter = r.bounded(hlcCounterMax, 'summary counter');
      items.push({ keyFingerprint, version: { hlc: hlcPack(wallMs, counter), node } });
    }
    summaries.push({ leaf, items });
  }
  return summaries;
}

function writeFingerprintLists(w: ByteWriter, lists: { leaf: number; fingerprints: number[] }[]): void {
  w.varint(lists.length);
  let previous = 0;
  for (const list of lists) {
    w.varint(list.leaf - previous);
    previous = list.leaf;
    w.varint(list.fingerprints.length);
    for (const fp of list.fingerprints) writeProjection(w, fp, fingerprintBytes);
  }
}

function readFingerprintLists(r: ByteReader): LeafNeed[] {
  const count = r.bounded(listMax, 'leaf count');
  const lists: LeafNeed[] = [];
  let leaf = 0;
  for (let i = 0; i < count; i++) {
    leaf += r.varint();
    const n = r.bounded(controlFrameBytesMax / fingerprintBytes, 'fingerprint count');
    const fingerprints: number[] = [];
    for (let j = 0; j < n; j++) fingerprints.push(readProjection(r, fingerprintBytes));
    lists.push({ leaf, fingerprints });
  }
  return lists;
}
