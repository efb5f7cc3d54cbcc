/**
 * Cluster layouts (the partitioned mode): the explicit, versioned list of nodes placement
 * chooses among, each with a weight, and K. A layout is an operator's decision (or a node's
 * automatic join), agreed through gossip; layout-history.ts keeps the active ones and moves
 * between them; rendezvous.ts turns one into owners.
 *
 * A layout is canonical: members sorted by node id, each once, weights integers, so two
 * nodes holding the same layout encode it to the same bytes and compute the same digest
 * (the first 8 bytes of SHA-256 of its encoding). Two different layouts of one version (two
 * nodes committed at once) are told apart by their digests: a conflict, which
 * layout-history.ts reports and resolves by a deterministic rule.
 *
 * Wire format (integers are unsigned LEB128 varints; text is a length-prefixed UTF-8 string):
 *
 *     message  = wireVersion:u8 type:u8 body
 *     layouts  = count:varint (1..layoutVersionsPerMessageMax) layout*    (versions ascending)
 *     layout   = version:varint replicas:varint (0 = all) members:varint (<= layoutMembersMax)
 *                (nodeId:text weight:varint)*                          (node ids ascending)
 *                removed:varint (<= layoutRemovedMax) (nodeId:text at:varint)*
 *                (wire version 2 only: node ids ascending, none a member, 1 <= at <= version)
 *     ack      = nodeId:text version:varint digest:8 bytes partitions:32 bytes flags:u8
 *                (partitions: a bitmap, bit (p & 7) of byte (p >> 3) set = partition p synced;
 *                flags: bit 0 = switched, every other bit must be 0)
 *
 * A layouts message carries a node's active layouts; an ack, one node's statement about
 * itself: "I know this layout (so I write to its owners too), I hold these partitions of it,
 * and (switched) I have seen all of it synced, so I read from it" (see layout-history.ts for
 * what is believed). Malformed bytes throw MalformedError and never a crash.
 */
import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter, toHex } from './bytes.js';
import { isNodeId } from './entry.js';
import { CkvError, MalformedError, assert } from './errors.js';
import { layoutMembersMax, layoutRemovedMax, layoutReplicasMax, layoutVersionsPerMessageMax, layoutWeightMax, nodeIdBytes } from './limits.js';
import { partitionCount, type Layout, type PartitionId } from './placement.js';

/**
 * A node removed from the layout (`ckv node remove`, `layout remove`, `node leave`) at layout
 * version `at`: the coordinator no longer joins it automatically, and the node, seeing itself
 * here, refuses to serve (its data is of an incarnation that was removed). Kept in every later
 * layout until an operator adds it again (`layout add` lifts it) or, past layoutRemovedMax, the
 * oldest removals are forgotten.
 */
export interface RemovedMember {
  readonly nodeId: string;
  readonly at: number;
}

/** A node of a layout, with its weight (0: a gateway, which owns nothing). */
export interface LayoutMember {
  readonly nodeId: string;
  readonly weight: number;
}

/** A layout of the partitioned mode: every node has a weight; K is a number or absent (all). */
export interface ClusterLayout extends Layout {
  readonly weights: Readonly<Record<string, number>>;
  /** Nodes removed and not added again, by node id (none a member). */
  readonly removed: readonly RemovedMember[];
  /** 8 bytes of SHA-256 of the encoding, hex: equal layouts have equal digests. */
  readonly digest: string;
}

/** The weight a node gets when none is given (a node of average capacity). */
export const layoutWeightDefault = 1;

/** An operator's layout change that cannot be made (bad weight, unknown node, nothing to commit...). */
export class LayoutChangeError extends CkvError {
  constructor(message: string) {
    super('ERR_LAYOUT_CHANGE', message);
    this.name = 'LayoutChangeError';
  }
}

/**
 * This node's `--replicas` disagrees with its cluster's layout: it says so and refuses to
 * serve rather than place keys where its peers do not look for them.
 */
export class ReplicasMismatchError extends CkvError {
  constructor(
    readonly configured: number | undefined,
    readonly cluster: number | undefined,
  ) {
    super(
      'ERR_REPLICAS_MISMATCH',
      `this node is configured with --replicas ${replicasText(configured)}, but its cluster's layout has ${replicasText(cluster)}: ` +
        `start it with --replicas ${replicasText(cluster)}, or change the cluster's K with a layout change first`,
    );
    this.name = 'ReplicasMismatchError';
  }
}

/**
 * This node was removed from its cluster's layout (`ckv node remove`, `layout remove`, `node
 * leave`): its data is of an incarnation that was removed (keys deleted since may be live in
 * it), so it refuses to serve, and its data directory refuses to start, until `ckv purge --all`
 * empties it (and gives it a new identity: it joins as a new member).
 */
export class NodeRemovedError extends CkvError {
  constructor(
    readonly nodeId: string,
    readonly at: number,
  ) {
    super(
      'ERR_NODE_REMOVED',
      `this node (${nodeId}) was removed from the cluster at layout v${at}: stop it and run 'ckv purge --all --data-dir DIR' on its data directory ` +
        '(it then joins as a new member), or start it with a new data directory',
    );
    this.name = 'NodeRemovedError';
  }
}

export function replicasText(replicas: number | undefined): string {
  return replicas === undefined ? 'all' : String(replicas);
}

/** The error a node whose --replicas disagrees with its cluster's layout reports; undefined when they agree. */
export function replicasMismatch(configured: number | undefined, layout: Layout | undefined): ReplicasMismatchError | undefined {
  if (!layout || layout.replicas === configured) return undefined;
  return new ReplicasMismatchError(configured, layout.replicas);
}

/**
 * A canonical layout of these members. Throws LayoutChangeError on operator mistakes: a bad
 * node id, weight or K, a node listed twice, or no node of weight > 0.
 */
export function clusterLayoutOf(version: number, members: Iterable<LayoutMember>, replicas?: number, removedMembers: Iterable<RemovedMember> = []): ClusterLayout {
  if (!Number.isSafeInteger(version) || version < 1) throw new LayoutChangeError(`layout version ${version} is not a positive integer`);
  if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1 || replicas > layoutReplicasMax)) {
    throw new LayoutChangeError(`replicas must be 'all' or 1..${layoutReplicasMax}, not ${replicas}`);
  }
  const sorted = [...members].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  if (sorted.length > layoutMembersMax) throw new LayoutChangeError(`a layout holds at most ${layoutMembersMax} nodes, not ${sorted.length}`);
  const weights: Record<string, number> = {};
  for (const [i, member] of sorted.entries()) {
    if (!isNodeId(member.nodeId)) throw new LayoutChangeError(`${JSON.stringify(member.nodeId)} is not a node id (${nodeIdBytes * 2} hex digits)`);
    if (i > 0 && sorted[i - 1]!.nodeId === member.nodeId) throw new LayoutChangeError(`node ${member.nodeId} is listed twice`);
    if (!Number.isInteger(member.weight) || member.weight < 0 || member.weight > layoutWeightMax) {
      throw new LayoutChangeError(`node ${member.nodeId}: weight must be an integer 0..${layoutWeightMax}, not ${member.weight}`);
    }
    weights[member.nodeId] = member.weight;
  }
  if (!sorted.some((member) => member.weight > 0)) throw new LayoutChangeError('a layout needs at least one node of weight > 0 to own the data');
  const removed = [...removedMembers].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0)).map((r) => Object.freeze({ nodeId: r.nodeId, at: r.at }));
  if (removed.length > layoutRemovedMax) throw new LayoutChangeError(`a layout records at most ${layoutRemovedMax} removed nodes, not ${removed.length}`);
  for (const [i, r] of removed.entries()) {
    if (!isNodeId(r.nodeId)) throw new LayoutChangeError(`${JSON.stringify(r.nodeId)} is not a node id (${nodeIdBytes * 2} hex digits)`);
    if (i > 0 && removed[i - 1]!.nodeId === r.nodeId) throw new LayoutChangeError(`removed node ${r.nodeId} is listed twice`);
    if (weights[r.nodeId] !== undefined) throw new LayoutChangeError(`node ${r.nodeId} is both a member and removed`);
    if (!Number.isSafeInteger(r.at) || r.at < 1 || r.at > version) throw new LayoutChangeError(`node ${r.nodeId}: removed at version ${r.at}, not 1..${version}`);
  }
  const body = { version, nodes: sorted.map((member) => member.nodeId), weights, removed: Object.freeze(removed), ...(replicas === undefined ? {} : { replicas }) };
  const writer = new ByteWriter();
  writeLayoutBody(writer, body);
  const digest = toHex(createHash('sha256').update(writer.finish()).digest().subarray(0, layoutDigestBytes));
  return Object.freeze({ ...body, digest });
}

/** The members of a layout, in node id order. */
export function membersOf(layout: ClusterLayout): LayoutMember[] {
  return layout.nodes.map((nodeId) => ({ nodeId, weight: layout.weights[nodeId]! }));
}

/** The version at which `nodeId` was removed, if the layout records its removal. */
export function removedAt(layout: ClusterLayout | undefined, nodeId: string): number | undefined {
  return layout?.removed.find((r) => r.nodeId === nodeId)?.at;
}

/** Whether two layouts hold the same members, weights and K (versions and removal records aside). */
export function sameMembers(a: ClusterLayout, b: ClusterLayout): boolean {
  return (
    a.replicas === b.replicas &&
    a.nodes.length === b.nodes.length &&
    a.nodes.every((nodeId, i) => b.nodes[i] === nodeId && a.weights[nodeId] === b.weights[nodeId])
  );
}

/** Bytes of a layout digest on the wire and in acks. */
export const layoutDigestBytes = 8;

/** Bytes of a partition bitmap (one bit per partition). */
export const partitionBitmapBytes = partitionCount / 8;

/** Layout gossip messages. Only append: the values are part of the protocol. */
export const LayoutMessageType = { layouts: 1, ack: 2 } as const;

/**
 * The layout wire format's version. Only append new versions; old ones stay decodable
 * (version 1: layouts without the removed list).
 */
export const layoutWireVersion = 2;
const layoutWireVersionNoRemoved = 1;

/** One node's statement about itself: it holds (has synced) these partitions of this layout. */
export interface LayoutAck {
  readonly nodeId: string;
  readonly version: number;
  /** The digest of the layout it synced for: an ack of another layout of the same version counts for nothing. */
  readonly digest: string;
  /** partitionBitmapBytes bytes; bit p = partition p. */
  readonly partitions: Uint8Array;
  /** It has seen every partition of this layout synced at all its owners: its reads moved to it. */
  readonly switched: boolean;
}

/** Ack flag bits. Only append: the values are part of the protocol. */
export const LayoutAckFlag = { switched: 1 } as const;

export type LayoutMessage = { type: 'layouts'; layouts: ClusterLayout[] } | { type: 'ack'; ack: LayoutAck };

export function encodeLayoutMessage(message: LayoutMessage): Uint8Array {
  const writer = new ByteWriter();
  writer.u8(layoutWireVersion).u8(LayoutMessageType[message.type]);
  if (message.type === 'layouts') {
    assert(message.layouts.length >= 1 && message.layouts.length <= layoutVersionsPerMessageMax, `${message.layouts.length} layouts in one message`);
    writer.varint(message.layouts.length);
    for (const [i, layout] of message.layouts.entries()) {
      assert(i === 0 || message.layouts[i - 1]!.version < layout.version, 'layouts out of order');
      writeLayoutBody(writer, layout);
    }
  } else {
    const { ack } = message;
    assert(ack.partitions.byteLength === partitionBitmapBytes, 'a partition bitmap of the wrong size');
    writer.string(ack.nodeId).varint(ack.version).raw(fromHexDigest(ack.digest)).raw(ack.partitions);
    writer.u8(ack.switched ? LayoutAckFlag.switched : 0);
  }
  return writer.finish();
}

/** Decodes a layout message from a peer; throws MalformedError on anything but a well-formed one. */
export function decodeLayoutMessage(bytes: Uint8Array): LayoutMessage {
  const reader = new ByteReader(bytes);
  const wireVersion = reader.u8();
  if (wireVersion !== layoutWireVersion && wireVersion !== layoutWireVersionNoRemoved) {
    throw new MalformedError(`layout wire version ${wireVersion}; this node reads ${layoutWireVersionNoRemoved} and ${layoutWireVersion}`);
  }
  const type = reader.u8();
  let message: LayoutMessage;
  if (type === LayoutMessageType.layouts) {
    const count = reader.bounded(layoutVersionsPerMessageMax, 'layouts in a message');
    if (count === 0) throw new MalformedError('a layouts message with no layout');
    const layouts: ClusterLayout[] = [];
    for (let i = 0; i < count; i++) {
      const layout = readLayout(reader, wireVersion === layoutWireVersion);
      if (i > 0 && layouts[i - 1]!.version >= layout.version) throw new MalformedError('layouts not in ascending version order');
      layouts.push(layout);
    }
    message = { type: 'layouts', layouts };
  } else if (type === LayoutMessageType.ack) {
    const nodeId = reader.string(nodeIdBytes * 2, 'node id');
    if (!isNodeId(nodeId)) throw new MalformedError('an ack from a malformed node id');
    const version = readVersionNumber(reader);
    const digest = toHex(reader.raw(layoutDigestBytes));
    const partitions = reader.raw(partitionBitmapBytes).slice();
    const flags = reader.u8();
    if ((flags & ~LayoutAckFlag.switched) !== 0) throw new MalformedError(`unknown ack flags ${flags}`);
    message = { type: 'ack', ack: { nodeId, version, digest, partitions, switched: (flags & LayoutAckFlag.switched) !== 0 } };
  } else {
    throw new MalformedError(`unknown layout message type ${type}`);
  }
  reader.end();
  return message;
}

function writeLayoutBody(writer: ByteWriter, layout: Layout & { removed: readonly RemovedMember[] }): void {
  writer.varint(layout.version).varint(layout.replicas ?? 0).varint(layout.nodes.length);
  for (const nodeId of layout.nodes) writer.string(nodeId).varint(layout.weights?.[nodeId] ?? layoutWeightDefault);
  writer.varint(layout.removed.length);
  for (const r of layout.removed) writer.string(r.nodeId).varint(r.at);
}

function readVersionNumber(reader: ByteReader): number {
  const version = reader.varint();
  if (version < 1 || !Number.isSafeInteger(version)) throw new MalformedError(`layout version ${version}`);
  return version;
}

function readLayout(reader: ByteReader, withRemoved: boolean): ClusterLayout {
  const version = readVersionNumber(reader);
  const replicas = reader.bounded(layoutReplicasMax, 'replicas');
  const count = reader.bounded(layoutMembersMax, 'layout members');
  const members: LayoutMember[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = reader.string(nodeIdBytes * 2, 'node id');
    const weight = reader.bounded(layoutWeightMax, 'weight');
    if (!isNodeId(nodeId)) throw new MalformedError('a layout member with a malformed node id');
    if (i > 0 && members[i - 1]!.nodeId >= nodeId) throw new MalformedError('layout members not in ascending node id order');
    members.push({ nodeId, weight });
  }
  const removed: RemovedMember[] = [];
  const removedCount = withRemoved ? reader.bounded(layoutRemovedMax, 'removed nodes') : 0;
  for (let i = 0; i < removedCount; i++) {
    const nodeId = reader.string(nodeIdBytes * 2, 'node id');
    const at = readVersionNumber(reader);
    if (!isNodeId(nodeId)) throw new MalformedError('a removed node with a malformed node id');
    if (i > 0 && removed[i - 1]!.nodeId >= nodeId) throw new MalformedError('removed nodes not in ascending node id order');
    removed.push({ nodeId, at });
  }
  try {
    return clusterLayoutOf(version, members, replicas === 0 ? undefined : replicas, removed);
  } catch (error) {
    if (error instanceof LayoutChangeError) throw new MalformedError(`a malformed layout: ${error.message}`);
    throw error;
  }
}

function fromHexDigest(digest: string): Uint8Array {
  assert(/^[0-9a-f]{16}$/.test(digest), `layout digest ${digest}`);
  return Uint8Array.from(Buffer.from(digest, 'hex'));
}

/** A bitmap with these partitions set. */
export function partitionBitmap(partitions: Iterable<PartitionId>): Uint8Array {
  const bitmap = new Uint8Array(partitionBitmapBytes);
  for (const p of partitions) bitmap[p >> 3]! |= 1 << (p & 7);
  return bitmap;
}

export function bitmapHas(bitmap: Uint8Array, partition: PartitionId): boolean {
  return (bitmap[partition >> 3]! & (1 << (partition & 7))) !== 0;
}

/** The partitions set in a bitmap, ascending. */
export function bitmapPartitions(bitmap: Uint8Array): PartitionId[] {
  const partitions: PartitionId[] = [];
  for (let p = 0; p < partitionCount; p++) if (bitmapHas(bitmap, p)) partitions.push(p);
  return partitions;
}
