/**
 * The layout runtime's bytes: the signed gossip envelope that carries layouts, acks and join
 * requests between nodes (src/net/layout-service.ts), and the snapshot of a node's layout
 * history kept in its store (meta `layout-history`). Both reuse layout.ts's encoding of
 * layouts and acks, so a layout is encoded one way everywhere.
 *
 * Envelope (the signed body of a `layout` gossip message; integers are LEB128 varints):
 *
 *     body  = envelopeVersion:u8 (1) seq:varint parts:varint (1..layoutEnvelopePartsMax) part*
 *     part  = kind:u8 bytes:(length:varint byte*)       kind: 1 layout message, 2 join, 3 sizes (only append)
 *     join  = nodeId:text weight:varint replicas:varint (0 = all)
 *     sizes = nodeId:text count:varint (<= partitionCount) (partition:u8 keys:varint bytes:varint)*
 *             (partitions ascending; only those where the node holds rows)
 *
 * A layout message is layout.ts's (`layouts`: the sender's active layouts, or `ack`: the
 * sender's statement about itself). A join says "this node wants to be in the layout, with
 * this weight, and is configured with this K"; the coordinator commits joins. Sizes are the
 * sender's own rows per partition (keys, and bytes estimated), for the plan's sizes (`ckv layout`). `seq` rises
 * with every envelope a node sends, so a periodic repeat is a new gossip message (gossipsub
 * drops identical bytes as seen). The signature covers `layoutSignatureDomain` + body, so a
 * signature made for another purpose (a member message) never verifies as a layout one.
 *
 * Snapshot (what LayoutHistory.snapshot() returns, persisted after every change):
 *
 *     snapshot = snapshotVersion:u8 (2; 1 is still read) floor:varint
 *                layouts:bytes (a layouts message, or empty when there is none)
 *                acks:varint (<= layoutSnapshotAcksMax) (ack message bytes)*
 *                conflicts:varint (<= 16) (version:varint kept:bytes dropped:bytes)*
 *                (kept, dropped: a layouts message of one layout each)
 *                staged                                          (version 2 only)
 *     staged   = members:varint (<= layoutMembersMax) (nodeId:text change:varint)*
 *                replicas:varint
 *                (change: 0 = remove, w + 1 = weight w; node ids ascending;
 *                replicas: 0 = none staged, 1 = all, K + 1 = K)
 *
 * The staged part keeps an operator's staged (not applied) changes across a restart.
 *
 * Decoding bounds every count and size before allocating; anything malformed throws
 * MalformedError. Pure: no I/O.
 */
import { ByteReader, ByteWriter } from './bytes.js';
import { isNodeId } from './entry.js';
import { MalformedError } from './errors.js';
import { decodeLayoutMessage, encodeLayoutMessage, type ClusterLayout, type LayoutAck, type LayoutMessage } from './layout.js';
import type { LayoutConflict, LayoutHistorySnapshot, StagedChanges } from './layout-history.js';
import { layoutMembersMax, layoutReplicasMax, layoutVersionsPerMessageMax, layoutWeightMax, nodeIdBytes } from './limits.js';
import { partitionCount } from './placement.js';

/** The envelope's format version. Only append new versions. */
export const layoutEnvelopeVersion = 1;
/** Part kinds. Only append: the values are part of the protocol. */
export const LayoutPartKind = { message: 1, join: 2, sizes: 3 } as const;
/** Parts in one envelope: the active layouts, one ack per active layout, a join, the sizes. */
export const layoutEnvelopePartsMax = 2 * layoutVersionsPerMessageMax + 3;
/**
 * Bytes of one part, and of a whole envelope: a layouts message of 16 versions of 1024 nodes
 * is ~330 KiB; anything past these is refused before it is read.
 */
export const layoutPartBytesMax = 512 * 1024;
export const layoutEnvelopeBytesMax = 1024 * 1024;
/** Acks a snapshot holds: one per node per active layout. */
export const layoutSnapshotAcksMax = layoutMembersMax * layoutVersionsPerMessageMax;
/** Snapshot versions: 1 (no staged changes) is still read; 2 is written. */
const snapshotVersion = 2;
const snapshotVersionNoStaged = 1;
const snapshotConflictsMax = 16;

/** What the signature of a layout envelope covers before the body. */
export const layoutSignatureDomain = new TextEncoder().encode('ckv/layout-gossip/1\0');

/** A node's request to be in the layout. */
export interface LayoutJoin {
  readonly nodeId: string;
  readonly weight: number;
  /** Its --replicas (undefined: all): the coordinator joins only nodes that agree with the layout. */
  readonly replicas: number | undefined;
}

/** A node's own rows per partition: keys (tombstones included) and bytes (an estimate). */
export interface PartitionSizesReport {
  readonly nodeId: string;
  /** Partitions ascending, each once; only those it holds rows of. */
  readonly partitions: readonly { partition: number; keys: number; bytes: number }[];
}

export type LayoutPart = { kind: 'message'; message: LayoutMessage } | { kind: 'join'; join: LayoutJoin } | { kind: 'sizes'; sizes: PartitionSizesReport };

export interface LayoutEnvelope {
  readonly seq: number;
  readonly parts: readonly LayoutPart[];
}

export function encodeLayoutEnvelope(envelope: LayoutEnvelope): Uint8Array {
  if (envelope.parts.length < 1 || envelope.parts.length > layoutEnvelopePartsMax) throw new RangeError(`${envelope.parts.length} parts in a layout envelope`);
  const w = new ByteWriter();
  w.u8(layoutEnvelopeVersion).varint(envelope.seq).varint(envelope.parts.length);
  for (const part of envelope.parts) {
    if (part.kind === 'message') {
      w.u8(LayoutPartKind.message).bytes(encodeLayoutMessage(part.message));
    } else if (part.kind === 'sizes') {
      w.u8(LayoutPartKind.sizes).bytes(encodeSizes(part.sizes));
    } else {
      const inner = new ByteWriter();
      inner.string(part.join.nodeId).varint(part.join.weight).varint(part.join.replicas ?? 0);
      w.u8(LayoutPartKind.join).bytes(inner.finish());
    }
  }
  return w.finish();
}

export function decodeLayoutEnvelope(body: Uint8Array): LayoutEnvelope {
  if (body.byteLength > layoutEnvelopeBytesMax) throw new MalformedError(`a layout envelope of ${body.byteLength} bytes`);
  const r = new ByteReader(body);
  const version = r.u8();
  if (version !== layoutEnvelopeVersion) throw new MalformedError(`layout envelope version ${version}; this node reads ${layoutEnvelopeVersion}`);
  const seq = r.varint();
  const count = r.bounded(layoutEnvelopePartsMax, 'layout envelope parts');
  if (count === 0) throw new MalformedError('a layout envelope with no part');
  const parts: LayoutPart[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.u8();
    const bytes = r.bytes(layoutPartBytesMax, 'layout part');
    if (kind === LayoutPartKind.message) parts.push({ kind: 'message', message: decodeLayoutMessage(bytes) });
    else if (kind === LayoutPartKind.join) parts.push({ kind: 'join', join: decodeJoin(bytes) });
    else if (kind === LayoutPartKind.sizes) parts.push({ kind: 'sizes', sizes: decodeSizes(bytes) });
    else throw new MalformedError(`unknown layout part kind ${kind}`);
  }
  r.end();
  return { seq, parts };
}

function decodeJoin(bytes: Uint8Array): LayoutJoin {
  const r = new ByteReader(bytes);
  const nodeId = r.string(nodeIdBytes * 2, 'node id');
  if (!isNodeId(nodeId)) throw new MalformedError('a join from a malformed node id');
  const weight = r.bounded(layoutWeightMax, 'weight');
  const replicas = r.bounded(layoutReplicasMax, 'replicas');
  r.end();
  return { nodeId, weight, replicas: replicas === 0 ? undefined : replicas };
}

function encodeSizes(sizes: PartitionSizesReport): Uint8Array {
  const w = new ByteWriter();
  w.string(sizes.nodeId).varint(sizes.partitions.length);
  for (const [i, p] of sizes.partitions.entries()) {
    if (p.partition < 0 || p.partition >= partitionCount || (i > 0 && sizes.partitions[i - 1]!.partition >= p.partition)) throw new RangeError('partition sizes out of order');
    w.u8(p.partition).varint(p.keys).varint(p.bytes);
  }
  return w.finish();
}

function decodeSizes(bytes: Uint8Array): PartitionSizesReport {
  const r = new ByteReader(bytes);
  const nodeId = r.string(nodeIdBytes * 2, 'node id');
  if (!isNodeId(nodeId)) throw new MalformedError('sizes from a malformed node id');
  const count = r.bounded(partitionCount, 'partition sizes');
  const partitions: { partition: number; keys: number; bytes: number }[] = [];
  for (let i = 0; i < count; i++) {
    const partition = r.u8();
    if (i > 0 && partitions[i - 1]!.partition >= partition) throw new MalformedError('partition sizes not in ascending partition order');
    partitions.push({ partition, keys: r.varint(), bytes: r.varint() });
  }
  r.end();
  return { nodeId, partitions };
}

/** The bytes a layout envelope's signature covers. */
export function layoutSignedBytes(body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(layoutSignatureDomain.byteLength + body.byteLength);
  bytes.set(layoutSignatureDomain, 0);
  bytes.set(body, layoutSignatureDomain.byteLength);
  return bytes;
}

export function encodeLayoutSnapshot(snapshot: LayoutHistorySnapshot): Uint8Array {
  const w = new ByteWriter();
  w.u8(snapshotVersion).varint(snapshot.floor);
  const layouts = snapshot.layouts.slice(-layoutVersionsPerMessageMax);
  w.bytes(layouts.length > 0 ? encodeLayoutMessage({ type: 'layouts', layouts: [...layouts] }) : new Uint8Array(0));
  const acks = snapshot.acks.slice(0, layoutSnapshotAcksMax);
  w.varint(acks.length);
  for (const ack of acks) w.bytes(encodeLayoutMessage({ type: 'ack', ack }));
  const conflicts = snapshot.conflicts.slice(-snapshotConflictsMax);
  w.varint(conflicts.length);
  for (const conflict of conflicts) {
    w.varint(conflict.version).bytes(encodeLayoutMessage({ type: 'layouts', layouts: [conflict.kept] }));
    w.bytes(encodeLayoutMessage({ type: 'layouts', layouts: [conflict.dropped] }));
  }
  writeStaged(w, snapshot.staged ?? { members: new Map(), replicas: undefined });
  return w.finish();
}

function writeStaged(w: ByteWriter, staged: StagedChanges): void {
  const members = [...staged.members].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, layoutMembersMax);
  w.varint(members.length);
  for (const [nodeId, change] of members) w.string(nodeId).varint(change === 'remove' ? 0 : change + 1);
  w.varint(staged.replicas === undefined ? 0 : staged.replicas === 'all' ? 1 : staged.replicas + 1);
}

function readStaged(r: ByteReader): StagedChanges {
  const count = r.bounded(layoutMembersMax, 'staged members');
  const members = new Map<string, number | 'remove'>();
  let previous = '';
  for (let i = 0; i < count; i++) {
    const nodeId = r.string(nodeIdBytes * 2, 'node id');
    if (!isNodeId(nodeId)) throw new MalformedError('a staged change of a malformed node id');
    if (nodeId <= previous) throw new MalformedError('staged changes not in ascending node id order');
    previous = nodeId;
    const change = r.bounded(layoutWeightMax + 1, 'staged weight');
    members.set(nodeId, change === 0 ? 'remove' : change - 1);
  }
  const replicas = r.bounded(layoutReplicasMax + 1, 'staged replicas');
  return { members, replicas: replicas === 0 ? undefined : replicas === 1 ? 'all' : replicas - 1 };
}

export function decodeLayoutSnapshot(bytes: Uint8Array): LayoutHistorySnapshot {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== snapshotVersion && version !== snapshotVersionNoStaged) {
    throw new MalformedError(`layout snapshot version ${version}; this node reads ${snapshotVersionNoStaged} and ${snapshotVersion}`);
  }
  const floor = r.varint();
  const layoutBytes = r.bytes(layoutPartBytesMax, 'layouts');
  const layouts = layoutBytes.byteLength === 0 ? [] : layoutsOf(layoutBytes);
  const ackCount = r.bounded(layoutSnapshotAcksMax, 'acks');
  const acks: LayoutAck[] = [];
  for (let i = 0; i < ackCount; i++) {
    const message = decodeLayoutMessage(r.bytes(4096, 'ack'));
    if (message.type !== 'ack') throw new MalformedError('a snapshot ack that is not an ack');
    acks.push(message.ack);
  }
  const conflictCount = r.bounded(snapshotConflictsMax, 'conflicts');
  const conflicts: LayoutConflict[] = [];
  for (let i = 0; i < conflictCount; i++) {
    const conflictVersion = r.varint();
    const kept = layoutsOf(r.bytes(layoutPartBytesMax, 'layout'))[0]!;
    const dropped = layoutsOf(r.bytes(layoutPartBytesMax, 'layout'))[0]!;
    conflicts.push({ version: conflictVersion, kept, dropped });
  }
  const staged = version === snapshotVersionNoStaged ? undefined : readStaged(r);
  r.end();
  return { floor, layouts, acks, conflicts, ...(staged ? { staged } : {}) };
}

function layoutsOf(bytes: Uint8Array): ClusterLayout[] {
  const message = decodeLayoutMessage(bytes);
  if (message.type !== 'layouts') throw new MalformedError('snapshot layouts that are not a layouts message');
  return message.layouts;
}
