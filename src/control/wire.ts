/**
 * Protocol Buffers encoding of the ckv.v1 messages, by hand from a field table, for the CLI's
 * client. Why not protobufjs: loading it and parsing ckv.proto at run time cost a `ckv get`
 * ~50 ms of its ~240; this table costs nothing to load. The server keeps proto-loader (it
 * also feeds reflection), and test/unit/wire.test.ts checks this table against ckv.proto
 * field by field, and the bytes against protobufjs, so the two cannot drift apart.
 *
 * Decoded shapes match what proto-loader gives with the options in proto.ts: camelCase
 * names, 64-bit integers as decimal strings, defaults filled in (a missing message is null).
 * Bytes fields decode as views into the received buffer: no copy of a value.
 */

/** Scalar kinds; 'map' is map<string, uint64>, the only map in ckv.proto. */
type Scalar = 'string' | 'bytes' | 'bool' | 'uint32' | 'uint64' | 'int64' | 'map';

export interface Field {
  readonly name: string;
  readonly no: number;
  readonly type: Scalar | Schema;
  readonly repeated?: boolean;
}
export interface Schema {
  readonly message: string;
  readonly fields: readonly Field[];
}

const f = (no: number, name: string, type: Scalar | Schema, repeated = false): Field => ({ no, name, type, repeated });
const m = (message: string, ...fields: Field[]): Schema => ({ message, fields });

export const Version = m('Version', f(1, 'hlc', 'uint64'), f(2, 'node', 'string'), f(3, 'text', 'string'));
export const Entry = m('Entry', f(1, 'key', 'string'), f(2, 'value', 'bytes'), f(3, 'version', Version), f(4, 'deleted', 'bool'), f(60, 'partitionsMissing', 'uint32'), f(110, 'expiresAtMs', 'uint64'));
export const PutRequest = m(
  'PutRequest',
  f(1, 'key', 'string'),
  f(2, 'value', 'bytes'),
  f(3, 'ifVersion', 'string'),
  f(4, 'ifAbsent', 'bool'),
  f(5, 'delete', 'bool'),
  f(40, 'consistency', 'string'),
  f(110, 'ttlMs', 'uint64'),
);
export const PutReply = m('PutReply', f(1, 'version', Version), f(40, 'owners', 'string', true), f(41, 'acked', 'string', true));
export const GetRequest = m('GetRequest', f(1, 'key', 'string'), f(40, 'from', 'string'), f(41, 'allowPartial', 'bool'));
export const OwnerAnswer = m(
  'OwnerAnswer',
  f(1, 'nodeId', 'string'),
  f(2, 'found', 'bool'),
  f(3, 'version', Version),
  f(4, 'deleted', 'bool'),
  f(5, 'error', 'string'),
);
export const GetReply = m(
  'GetReply',
  f(1, 'found', 'bool'),
  f(2, 'value', 'bytes'),
  f(3, 'version', Version),
  f(4, 'deleted', 'bool'),
  f(40, 'from', 'string'),
  f(41, 'owners', 'string', true),
  f(42, 'asked', 'uint32'),
  f(43, 'answers', OwnerAnswer, true),
  f(110, 'expiresAtMs', 'uint64'),
);
export const DeleteRequest = m('DeleteRequest', f(1, 'key', 'string'), f(2, 'ifVersion', 'string'), f(120, 'consistency', 'string'));
export const DeleteReply = m('DeleteReply', f(1, 'version', Version));
export const ScanRequest = m(
  'ScanRequest',
  f(1, 'prefix', 'string'),
  f(2, 'startAfter', 'string'),
  f(3, 'limit', 'uint32'),
  f(4, 'withValues', 'bool'),
  f(5, 'includeDeleted', 'bool'),
  f(60, 'from', 'string'),
  f(61, 'allowPartial', 'bool'),
);
export const WatchRequest = m('WatchRequest', f(1, 'prefix', 'string'));
export const Change = m(
  'Change',
  f(1, 'key', 'string'),
  f(2, 'version', Version),
  f(3, 'origin', 'string'),
  f(4, 'deleted', 'bool'),
  f(5, 'valueBytes', 'uint64'),
  f(6, 'appliedAtMs', 'uint64'),
  f(110, 'expiresAtMs', 'uint64'),
);
export const StatusRequest = m('StatusRequest');
export const BootstrapAddress = m(
  'BootstrapAddress',
  f(1, 'address', 'string'),
  f(2, 'state', 'string'),
  f(3, 'peerId', 'string'),
  f(4, 'lastError', 'string'),
  f(5, 'sinceMs', 'uint64'),
  f(6, 'failures', 'uint64'),
);
export const PartitionedStatus = m(
  'PartitionedStatus',
  f(1, 'replicas', 'uint32'),
  f(2, 'layoutVersion', 'uint64'),
  f(3, 'activeVersions', 'uint64', true),
  f(4, 'partitionsOwned', 'uint32'),
  f(5, 'partitionsUnderReplicated', 'uint32'),
  f(6, 'rebalancePending', 'uint64'),
  f(7, 'rebalanceDone', 'uint64'),
  f(8, 'conflicts', 'uint32'),
  f(9, 'mismatch', 'string'),
  f(10, 'rebalanceBlockedBy', 'string', true),
  f(70, 'removedAt', 'uint64'),
);
// hints: delivery until acknowledged
export const DeliveryTarget = m(
  'DeliveryTarget',
  f(1, 'node', 'string'),
  f(2, 'rows', 'uint64'),
  f(3, 'bytes', 'uint64'),
  f(4, 'oldestAgeMs', 'uint64'),
  f(5, 'nextAttemptInMs', 'uint64'),
);
export const DeliveryStatus = m(
  'DeliveryStatus',
  f(1, 'pendingRows', 'uint64'),
  f(2, 'pendingBytes', 'uint64'),
  f(3, 'oldestAgeMs', 'uint64'),
  f(4, 'targets', DeliveryTarget, true),
);
export const GcState = m(
  'GcState',
  f(100, 'watermark', 'string'),
  f(101, 'watermarkAgeMs', 'int64'),
  f(102, 'holdsBack', 'string'),
  f(103, 'collector', 'string'),
  f(104, 'tombstones', 'uint64'),
  f(105, 'collectable', 'uint64'),
  f(106, 'collected', 'uint64'),
  f(107, 'openRounds', 'uint32'),
  f(108, 'lastRunAtMs', 'int64'),
  f(109, 'errors', 'string', true),
);
export const GcStatusRequest = m('GcStatusRequest');
export const GcRunRequest = m('GcRunRequest');
export const GcRunReply = m(
  'GcRunReply',
  f(100, 'gc', GcState),
  f(101, 'rounds', 'uint32'),
  f(102, 'roundsAbandoned', 'uint32'),
  f(103, 'deleted', 'uint64'),
  f(104, 'collectable', 'uint64'),
);
export const StatusReply = m(
  'StatusReply',
  f(1, 'nodeId', 'string'),
  f(2, 'peerId', 'string'),
  f(3, 'listenAddresses', 'string', true),
  f(4, 'cluster', 'string'),
  f(5, 'keyCount', 'uint64'),
  f(6, 'tombstoneCount', 'uint64'),
  f(7, 'bytesOnDisk', 'uint64'),
  f(8, 'merkleRoot', 'string'),
  f(9, 'hlcNow', Version),
  f(10, 'uptimeMs', 'uint64'),
  f(11, 'version', 'string'),
  f(12, 'dataDir', 'string'),
  f(13, 'counters', 'map'),
  f(14, 'httpUrl', 'string'),
  f(15, 'incarnation', 'uint64'),
  f(16, 'bootstrap', BootstrapAddress, true),
  f(17, 'clockWarning', 'string'),
  f(18, 'partitioned', PartitionedStatus),
  f(80, 'delivery', DeliveryStatus),
  f(100, 'gc', GcState),
);
export const PeersRequest = m('PeersRequest');
export const Peer = m(
  'Peer',
  f(1, 'peerId', 'string'),
  f(2, 'nodeId', 'string'),
  f(3, 'addresses', 'string', true),
  f(4, 'state', 'string'),
  f(5, 'lastSyncMs', 'uint64'),
  f(6, 'lastSyncResult', 'string'),
  f(7, 'clockOffsetMs', 'int64'),
  f(8, 'inSync', 'bool'),
  f(9, 'incarnation', 'uint64'),
);
export const PeersReply = m('PeersReply', f(1, 'peers', Peer, true));
export const HealthRequest = m('HealthRequest');
export const MemberHealth = m(
  'MemberHealth',
  f(1, 'nodeId', 'string'),
  f(2, 'peerId', 'string'),
  f(3, 'self', 'bool'),
  f(4, 'state', 'string'),
  f(5, 'reported', 'bool'),
  f(6, 'version', 'string'),
  f(7, 'incarnation', 'uint64'),
  f(8, 'keyCount', 'uint64'),
  f(9, 'tombstoneCount', 'uint64'),
  f(10, 'bytesOnDisk', 'uint64'),
  f(11, 'merkleRoot', 'string'),
  f(12, 'uptimeMs', 'uint64'),
  f(13, 'peersUp', 'uint64'),
  f(14, 'clockWarning', 'string'),
  f(15, 'clockOffsetMs', 'int64'),
  f(16, 'lastSyncMs', 'uint64'),
  f(17, 'lastSyncResult', 'string'),
  f(18, 'inSync', 'bool'),
  f(19, 'error', 'string'),
);
export const HealthReply = m('HealthReply', f(1, 'healthy', 'bool'), f(2, 'problems', 'string', true), f(3, 'members', MemberHealth, true), f(4, 'timeMs', 'uint64'));
export const HasKeyRequest = m('HasKeyRequest', f(1, 'key', 'string'));
export const HasKeyReply = m('HasKeyReply', f(1, 'found', 'bool'), f(2, 'version', Version), f(3, 'deleted', 'bool'));
export const WhereIsRequest = m('WhereIsRequest', f(1, 'key', 'string'), f(40, 'probe', 'bool'));
export const OwnerState = m('OwnerState', f(1, 'nodeId', 'string'), f(2, 'peerId', 'string'), f(3, 'up', 'bool'));
export const LayoutOwners = m('LayoutOwners', f(1, 'version', 'uint64'), f(2, 'owners', OwnerState, true));
export const Holder = m(
  'Holder',
  f(1, 'nodeId', 'string'),
  f(2, 'peerId', 'string'),
  f(3, 'version', Version),
  f(4, 'deleted', 'bool'),
  f(5, 'error', 'string'),
);
export const WhereIsReply = m(
  'WhereIsReply',
  f(1, 'holders', Holder, true),
  f(40, 'partitioned', 'bool'),
  f(41, 'partition', 'uint32'),
  f(42, 'layouts', LayoutOwners, true),
  f(43, 'readOwners', 'string', true),
);
export const SyncRequest = m('SyncRequest', f(1, 'peer', 'string'));
export const SyncProgress = m(
  'SyncProgress',
  f(1, 'peerId', 'string'),
  f(2, 'phase', 'string'),
  f(3, 'outcome', 'string'),
  f(4, 'rounds', 'uint32'),
  f(5, 'entriesSent', 'uint64'),
  f(6, 'entriesReceived', 'uint64'),
  f(7, 'bytesSent', 'uint64'),
  f(8, 'bytesReceived', 'uint64'),
  f(9, 'message', 'string'),
);
export const LeaveRequest = m('LeaveRequest');
export const LeaveReply = m('LeaveReply');
export const ForgetPeerRequest = m('ForgetPeerRequest', f(1, 'peerId', 'string'));
export const ForgetPeerReply = m('ForgetPeerReply', f(1, 'forgotten', 'bool'));
export const PutManyRequest = m('PutManyRequest', f(1, 'puts', PutRequest, true));
export const PutResult = m('PutResult', f(1, 'version', Version), f(2, 'error', 'string'), f(3, 'code', 'uint32'));
export const PutManyReply = m('PutManyReply', f(1, 'results', PutResult, true));
export const PutChunk = m(
  'PutChunk',
  f(1, 'key', 'string'),
  f(2, 'valueBytes', 'uint64'),
  f(3, 'data', 'bytes'),
  f(4, 'ifVersion', 'string'),
  f(5, 'ifAbsent', 'bool'),
  f(40, 'consistency', 'string'),
  f(110, 'ttlMs', 'uint64'),
);
export const GetChunk = m(
  'GetChunk',
  f(1, 'found', 'bool'),
  f(2, 'version', Version),
  f(3, 'deleted', 'bool'),
  f(4, 'valueBytes', 'uint64'),
  f(5, 'data', 'bytes'),
  f(40, 'from', 'string'),
  f(41, 'owners', 'string', true),
  f(42, 'asked', 'uint32'),
  f(43, 'answers', OwnerAnswer, true),
  f(110, 'expiresAtMs', 'uint64'),
);
export const ExportRequest = m('ExportRequest', f(1, 'prefix', 'string'), f(2, 'includeDeleted', 'bool'), f(60, 'from', 'string'), f(61, 'allowPartial', 'bool'));
export const EntryBatch = m('EntryBatch', f(1, 'entries', 'bytes'), f(2, 'count', 'uint32'), f(60, 'partitionsMissing', 'uint32'));
export const ImportReply = m(
  'ImportReply',
  f(1, 'applied', 'uint64'),
  f(2, 'notNewer', 'uint64'),
  f(3, 'refusedClock', 'uint64'),
  f(4, 'refusedInvalid', 'uint64'),
  f(5, 'refusedNotHeld', 'uint64'),
);

export const PurgeRequest = m('PurgeRequest', f(1, 'dryRun', 'bool'));
export const PurgeReply = m(
  'PurgeReply',
  f(1, 'partitions', 'uint32'),
  f(2, 'entries', 'uint64'),
  f(3, 'bytes', 'uint64'),
  f(4, 'blocked', 'uint32'),
  f(5, 'blockedBy', 'string', true),
);
export const BalanceRequest = m('BalanceRequest', f(1, 'singleLayout', 'bool'));
export const LayoutPulls = m('LayoutPulls', f(1, 'version', 'uint64'), f(2, 'partitions', 'uint32'));
export const BalanceProgress = m(
  'BalanceProgress',
  f(1, 'activeVersions', 'uint64', true),
  f(2, 'pending', LayoutPulls, true),
  f(3, 'pulled', 'uint64'),
  f(4, 'blockedBy', 'string', true),
  f(5, 'done', 'bool'),
);

// Partitioned mode: layouts (layout-runtime).
export const LayoutRequest = m('LayoutRequest');
export const LayoutChangeRequest = m('LayoutChangeRequest', f(1, 'action', 'string'), f(2, 'node', 'string'), f(3, 'weight', 'uint32'), f(4, 'replicas', 'string'));
export const RemoveNodeRequest = m('RemoveNodeRequest', f(1, 'node', 'string'));
export const LeaveClusterRequest = m('LeaveClusterRequest');
export const LayoutMemberView = m('LayoutMemberView', f(1, 'nodeId', 'string'), f(2, 'peerId', 'string'), f(3, 'weight', 'uint32'), f(4, 'partitions', 'uint32'), f(5, 'up', 'bool'));
export const LayoutRemovedView = m('LayoutRemovedView', f(1, 'nodeId', 'string'), f(2, 'at', 'uint64'));
export const ClusterLayoutView = m(
  'ClusterLayoutView',
  f(1, 'version', 'uint64'),
  f(2, 'replicas', 'uint32'),
  f(3, 'digest', 'string'),
  f(4, 'members', LayoutMemberView, true),
  f(70, 'removed', LayoutRemovedView, true),
);
export const ActiveLayoutView = m(
  'ActiveLayoutView',
  f(1, 'version', 'uint64'),
  f(2, 'digest', 'string'),
  f(3, 'nodes', 'uint32'),
  f(4, 'partitionsSynced', 'uint32'),
  f(5, 'partitionsPending', 'uint32'),
  f(6, 'syncStarted', 'bool'),
);
export const StagedLayoutChange = m('StagedLayoutChange', f(1, 'nodeId', 'string'), f(2, 'weight', 'uint32'), f(3, 'remove', 'bool'));
export const LayoutConflictView = m('LayoutConflictView', f(1, 'version', 'uint64'), f(2, 'kept', 'string'), f(3, 'dropped', 'string'));
export const LayoutPlanNode = m('LayoutPlanNode', f(1, 'nodeId', 'string'), f(2, 'partitionsBefore', 'uint32'), f(3, 'partitionsAfter', 'uint32'), f(4, 'gained', 'uint32'), f(5, 'lost', 'uint32'));
export const LayoutPlanTransfer = m('LayoutPlanTransfer', f(1, 'from', 'string', true), f(2, 'to', 'string'), f(3, 'partitions', 'uint32'), f(4, 'keys', 'uint64'), f(5, 'bytes', 'uint64'));
export const LayoutPlanMove = m(
  'LayoutPlanMove',
  f(1, 'partition', 'uint32'),
  f(2, 'from', 'string', true),
  f(3, 'to', 'string', true),
  f(4, 'gaining', 'string', true),
  f(5, 'keys', 'uint64'),
  f(6, 'bytes', 'uint64'),
);
export const LayoutPartitionView = m('LayoutPartitionView', f(1, 'partition', 'uint32'), f(2, 'owners', 'string', true), f(3, 'keys', 'uint64'), f(4, 'bytes', 'uint64'));
export const LayoutPlanView = m(
  'LayoutPlanView',
  f(1, 'fromVersion', 'uint64'),
  f(2, 'toVersion', 'uint64'),
  f(3, 'partitionsChanged', 'uint32'),
  f(4, 'replicasMoved', 'uint32'),
  f(5, 'replicasAfter', 'uint32'),
  f(6, 'nodes', LayoutPlanNode, true),
  f(70, 'keysMoved', 'uint64'),
  f(71, 'bytesMoved', 'uint64'),
  f(72, 'transfers', LayoutPlanTransfer, true),
  f(73, 'moves', LayoutPlanMove, true),
);
export const LayoutReply = m(
  'LayoutReply',
  f(1, 'replicas', 'uint32'),
  f(2, 'self', 'string'),
  f(3, 'current', ClusterLayoutView),
  f(4, 'active', ActiveLayoutView, true),
  f(5, 'staged', StagedLayoutChange, true),
  f(6, 'stagedReplicas', 'string'),
  f(7, 'stagedError', 'string'),
  f(8, 'conflicts', LayoutConflictView, true),
  f(9, 'plan', LayoutPlanView),
  f(10, 'planOf', 'string'),
  f(11, 'committedVersion', 'uint64'),
  f(70, 'partitions', LayoutPartitionView, true),
  f(71, 'sizesReporters', 'uint32'),
);

/** Which side of an rpc streams: none (unary), the requests, the replies, or both. */
export type Streaming = 'unary' | 'requests' | 'replies' | 'both';

interface Rpc {
  readonly request: Schema;
  readonly reply: Schema;
  readonly streaming: Streaming;
}
const rpc = (request: Schema, reply: Schema, streaming: Streaming = 'unary'): Rpc => ({ request, reply, streaming });

/**
 * Every rpc of service ckv.v1.Kv with its request and reply messages and which side streams
 * (the client encodes and decodes with it; the server's definition, ./service.ts, is made from it).
 */
export const methods = {
  Put: rpc(PutRequest, PutReply),
  Get: rpc(GetRequest, GetReply),
  Delete: rpc(DeleteRequest, DeleteReply),
  Scan: rpc(ScanRequest, Entry, 'replies'),
  Watch: rpc(WatchRequest, Change, 'replies'),
  Status: rpc(StatusRequest, StatusReply),
  Peers: rpc(PeersRequest, PeersReply),
  HasKey: rpc(HasKeyRequest, HasKeyReply),
  WhereIs: rpc(WhereIsRequest, WhereIsReply),
  Sync: rpc(SyncRequest, SyncProgress, 'replies'),
  Leave: rpc(LeaveRequest, LeaveReply),
  ForgetPeer: rpc(ForgetPeerRequest, ForgetPeerReply),
  PutMany: rpc(PutManyRequest, PutManyReply),
  PutStream: rpc(PutChunk, PutReply, 'requests'),
  GetStream: rpc(GetRequest, GetChunk, 'replies'),
  PutPipeline: rpc(PutRequest, PutManyReply, 'both'),
  Health: rpc(HealthRequest, HealthReply),
  Export: rpc(ExportRequest, EntryBatch, 'replies'),
  Import: rpc(EntryBatch, ImportReply),
  Purge: rpc(PurgeRequest, PurgeReply, 'replies'),
  Balance: rpc(BalanceRequest, BalanceProgress, 'replies'),
  // partitioned mode: layout-runtime
  Layout: rpc(LayoutRequest, LayoutReply),
  LayoutChange: rpc(LayoutChangeRequest, LayoutReply),
  RemoveNode: rpc(RemoveNodeRequest, LayoutReply),
  LeaveCluster: rpc(LeaveClusterRequest, LayoutReply),
  // tombstone GC
  GcStatus: rpc(GcStatusRequest, GcState),
  GcRun: rpc(GcRunRequest, GcRunReply),
} as const satisfies Record<string, Rpc>;
export type Method = keyof typeof methods;

/** Every message above, for the consistency test against ckv.proto. */
export const allSchemas: readonly Schema[] = [
  Version, Entry, PutRequest, PutReply, GetRequest, GetReply, DeleteRequest, DeleteReply, ScanRequest, WatchRequest,
  Change, StatusRequest, StatusReply, BootstrapAddress, PeersRequest, Peer, PeersReply, HasKeyRequest, HasKeyReply, WhereIsRequest,
  Holder, WhereIsReply, SyncRequest, SyncProgress, LeaveRequest, LeaveReply, ForgetPeerRequest, ForgetPeerReply,
  PutManyRequest, PutResult, PutManyReply, PutChunk, GetChunk, HealthRequest, MemberHealth, HealthReply, ExportRequest, EntryBatch, ImportReply,
  OwnerAnswer, OwnerState, LayoutOwners,
  // partitioned mode: layout-runtime
  PartitionedStatus, LayoutRequest, LayoutChangeRequest, RemoveNodeRequest, LeaveClusterRequest, LayoutReply, ClusterLayoutView,
  LayoutMemberView, ActiveLayoutView, StagedLayoutChange, LayoutConflictView, LayoutPlanView, LayoutPlanNode,
  // partitioned mode: partition-sync
  PurgeRequest, PurgeReply, BalanceRequest, LayoutPulls, BalanceProgress,
  // hints
  DeliveryStatus, DeliveryTarget,
  // partitioned mode: p-layout
  LayoutRemovedView, LayoutPlanTransfer, LayoutPlanMove, LayoutPartitionView,
  // tombstone GC
  GcState, GcStatusRequest, GcRunRequest, GcRunReply,
];

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

// ---- encoding: a list of parts, joined once, so a large bytes field is copied exactly once.

const wireVarint = 0;
const wireLength = 2;

class Parts {
  readonly list: Uint8Array[] = [];
  private scratch = Buffer.allocUnsafe(256);
  private used = 0;

  private room(n: number): void {
    if (this.scratch.length - this.used >= n) return;
    this.flush();
    this.scratch = Buffer.allocUnsafe(Math.max(256, n));
  }
  private flush(): void {
    if (this.used === 0) return;
    this.list.push(this.scratch.subarray(0, this.used));
    this.scratch = this.scratch.subarray(this.used);
    this.used = 0;
  }
  varint(value: bigint | number): void {
    this.room(10);
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.scratch[this.used++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.scratch[this.used++] = Number(v);
  }
  /** A non-negative safe integer, without BigInt. */
  numberVarint(value: number): void {
    this.room(10);
    while (value >= 0x80) {
      this.scratch[this.used++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.scratch[this.used++] = value;
  }
  smallVarint(value: number): void {
    if (value > 0x0fffffff) return this.varint(value);
    this.room(5);
    while (value >= 0x80) {
      this.scratch[this.used++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.scratch[this.used++] = value;
  }
  raw(bytes: Uint8Array): void {
    if (bytes.byteLength <= 64) {
      this.room(bytes.byteLength);
      this.scratch.set(bytes, this.used);
      this.used += bytes.byteLength;
      return;
    }
    this.flush();
    this.list.push(bytes);
  }
  finish(): Uint8Array[] {
    this.flush();
    return this.list;
  }
}

function tag(parts: Parts, no: number, wireType: number): void {
  parts.smallVarint((no << 3) | wireType);
}

function lengthOf(list: readonly Uint8Array[]): number {
  let n = 0;
  for (const part of list) n += part.byteLength;
  return n;
}

function encodeInto(parts: Parts, schema: Schema, value: Record<string, unknown>): void {
  for (const field of schema.fields) {
    const v = value[field.name];
    if (v === undefined || v === null) continue;
    const values = field.repeated ? (v as unknown[]) : [v];
    for (const item of values) encodeField(parts, field, item);
  }
}

function encodeField(parts: Parts, field: Field, v: unknown): void {
  const type = field.type;
  if (typeof type === 'object') {
    const inner = encodeParts(type, v as Record<string, unknown>);
    tag(parts, field.no, wireLength);
    parts.smallVarint(lengthOf(inner));
    for (const part of inner) parts.raw(part);
    return;
  }
  // Values of another type are coerced as protobufjs's fromObject does (the server's replies
  // went through it before ./service.ts): String() for a string field, truthiness for a bool,
  // `>>> 0` for a uint32, a fraction dropped from a 64-bit integer.
  switch (type) {
    case 'string':
    case 'bytes': {
      const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : type === 'string' && !(v instanceof Uint8Array) ? Buffer.from(String(v), 'utf8') : (v as Uint8Array);
      if (bytes.byteLength === 0 && !field.repeated) return; // proto3 default: not sent
      tag(parts, field.no, wireLength);
      parts.smallVarint(bytes.byteLength);
      parts.raw(bytes);
      return;
    }
    case 'bool':
      if (!v) return;
      tag(parts, field.no, wireVarint);
      parts.smallVarint(1);
      return;
    case 'uint32': {
      const n = (typeof v === 'number' ? v : Number(v)) >>> 0;
      if (n === 0) return;
      tag(parts, field.no, wireVarint);
      parts.numberVarint(n);
      return;
    }
    case 'uint64':
    case 'int64': {
      const n = integerOf(v);
      if (n === 0 || n === 0n) return;
      tag(parts, field.no, wireVarint);
      if (typeof n === 'number') parts.numberVarint(n);
      else parts.varint(n);
      return;
    }
    case 'map':
      // As protobufjs writes a map entry: its key and its value, even when empty or zero.
      for (const [key, count] of Object.entries(v as Record<string, string | number>)) {
        const keyBytes = Buffer.from(key, 'utf8');
        const n = integerOf(count);
        const valueBytes = typeof n === 'number' ? varintBytes(n) : varintBytes(BigInt.asUintN(64, n));
        tag(parts, field.no, wireLength);
        parts.smallVarint(1 + varintBytes(keyBytes.byteLength) + keyBytes.byteLength + 1 + valueBytes);
        tag(parts, 1, wireLength);
        parts.smallVarint(keyBytes.byteLength);
        parts.raw(keyBytes);
        tag(parts, 2, wireVarint);
        if (typeof n === 'number') parts.numberVarint(n);
        else parts.varint(n);
      }
      return;
  }
}

/**
 * A 64-bit integer field's value: a number when a double holds it exactly (counts,
 * milliseconds: no BigInt), else a bigint. NaN is 0 and a fraction is dropped, as protobufjs does.
 */
function integerOf(v: unknown): number | bigint {
  const n = typeof v === 'number' ? (Number.isNaN(v) ? 0 : Math.trunc(v)) : typeof v === 'string' && v.length <= 15 && decimalDigits.test(v) ? Number(v) : undefined;
  if (n !== undefined && n >= 0 && n <= Number.MAX_SAFE_INTEGER) return n === 0 ? 0 : n; // -0 is 0
  return typeof v === 'bigint' ? v : BigInt(n ?? (v as string));
}

/** How many bytes the varint of `n` (non-negative) takes. */
function varintBytes(n: number | bigint): number {
  let bytes = 1;
  if (typeof n === 'number') {
    for (; n >= 0x80; bytes++) n = Math.floor(n / 0x80);
  } else {
    for (; n >= 0x80n; bytes++) n >>= 7n;
  }
  return bytes;
}

/** Up to 15 decimal digits: a string a double holds exactly. */
const decimalDigits = /^[0-9]+$/;

const MapEntry = m('MapEntry', f(1, 'key', 'string'), f(2, 'value', 'uint64'));

function encodeParts(schema: Schema, value: Record<string, unknown>): Uint8Array[] {
  const parts = new Parts();
  encodeInto(parts, schema, value);
  return parts.finish();
}

/** One message, as the list of its byte parts (joined by the caller, with its own framing). */
export function encodeMessage(schema: Schema, value: object): { parts: Uint8Array[]; bytes: number } {
  const parts = encodeParts(schema, value as Record<string, unknown>);
  return { parts, bytes: lengthOf(parts) };
}

/** One message as one buffer. */
export function encode(schema: Schema, value: object): Buffer {
  const { parts, bytes } = encodeMessage(schema, value);
  return Buffer.concat(parts, bytes);
}

// ---- decoding

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const byte = this.buf[this.pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new WireError('varint longer than 10 bytes');
  }
  /** A varint as a number when it fits 49 bits (7 bytes: a double holds it exactly), else as varint() does. */
  varintNumber(): number | bigint {
    const start = this.pos;
    let result = 0;
    for (let shift = 0; shift < 49; shift += 7) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const byte = this.buf[this.pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
    }
    this.pos = start;
    return this.varint();
  }
  /** A varint known to be small (tags, lengths): numbers only. */
  smallVarint(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const byte = this.buf[this.pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
    }
    throw new WireError('length or tag out of range');
  }
  length(): number {
    const n = this.smallVarint();
    if (n > this.end - this.pos) throw new WireError('length past the end of the message');
    return n;
  }
  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const n = this.length(); // not `pos += length()`: that would add to the pos read before the length
        this.pos += n;
        return;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new WireError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new WireError('truncated field');
  }
}

/**
 * What decoding needs of a schema, worked out once: each field by number with the wire type it
 * must come in, and each field's default (a fresh array or map, or a constant: proto-loader's
 * defaults, a missing message null).
 */
interface DecodePlan {
  readonly byNumber: readonly (Field | undefined)[];
  readonly wireTypeOf: readonly number[];
  readonly fields: readonly Field[];
  readonly constants: readonly unknown[];
}

/** Shared by every decoded message that lacks the field: a zero-length Buffer has no byte to change. */
const noBytes = Buffer.alloc(0);
const freshArray = Symbol('array');
const freshMap = Symbol('map');

function defaultOf(field: Field): unknown {
  if (field.repeated) return freshArray;
  if (typeof field.type === 'object') return null;
  switch (field.type) {
    case 'string':
      return '';
    case 'bytes':
      return noBytes;
    case 'bool':
      return false;
    case 'uint32':
      return 0;
    case 'map':
      return freshMap;
    default:
      return '0';
  }
}

const plans = new WeakMap<Schema, DecodePlan>();
function planOf(schema: Schema): DecodePlan {
  let plan = plans.get(schema);
  if (!plan) {
    const byNumber: (Field | undefined)[] = [];
    const wireTypeOf: number[] = [];
    for (const field of schema.fields) {
      byNumber[field.no] = field;
      wireTypeOf[field.no] = typeof field.type === 'object' || field.type === 'string' || field.type === 'bytes' || field.type === 'map' ? wireLength : wireVarint;
    }
    plan = { byNumber, wireTypeOf, fields: schema.fields, constants: schema.fields.map(defaultOf) };
    plans.set(schema, plan);
  }
  return plan;
}

function decodeRange(schema: Schema, reader: Reader): Record<string, unknown> {
  const plan = planOf(schema);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < plan.fields.length; i++) {
    const constant = plan.constants[i];
    out[plan.fields[i]!.name] = constant === freshArray ? [] : constant === freshMap ? {} : constant;
  }
  while (reader.pos < reader.end) {
    const key = reader.smallVarint();
    const no = Math.floor(key / 8);
    const wireType = key & 7;
    const field = plan.byNumber[no];
    if (field === undefined || wireType !== plan.wireTypeOf[no]) {
      reader.skip(wireType); // unknown or newer field: proto3 skips it
      continue;
    }
    const value = decodeValue(field, reader);
    if (field.type === 'map') {
      const entry = value as { key: string; value: string };
      (out[field.name] as Record<string, string>)[entry.key] = entry.value;
    } else if (field.repeated) (out[field.name] as unknown[]).push(value);
    else out[field.name] = value;
  }
  if (reader.pos !== reader.end) throw new WireError('field past the end of the message');
  return out;
}

function decodeValue(field: Field, reader: Reader): unknown {
  const type = field.type;
  if (typeof type === 'object' || type === 'map') {
    const n = reader.length();
    const inner = new Reader(reader.buf, reader.pos, reader.pos + n);
    reader.pos += n;
    return decodeRange(typeof type === 'object' ? type : MapEntry, inner);
  }
  switch (type) {
    case 'string': {
      const n = reader.length();
      reader.pos += n;
      return reader.buf.toString('utf8', reader.pos - n, reader.pos);
    }
    case 'bytes': {
      const n = reader.length();
      reader.pos += n;
      return reader.buf.subarray(reader.pos - n, reader.pos);
    }
    case 'bool': {
      const n = reader.varintNumber();
      return n !== 0 && n !== 0n;
    }
    case 'uint32': {
      const n = reader.varintNumber();
      return typeof n === 'number' ? n >>> 0 : Number(BigInt.asUintN(32, n));
    }
    case 'uint64': {
      const n = reader.varintNumber();
      return typeof n === 'number' ? String(n) : n.toString();
    }
    case 'int64': {
      const n = reader.varintNumber();
      return typeof n === 'number' ? String(n) : BigInt.asIntN(64, n).toString();
    }
  }
}

/** Decodes one message; throws WireError on malformed input (never reads past `bytes`). */
export function decode<T = Record<string, unknown>>(schema: Schema, bytes: Buffer): T {
  return decodeRange(schema, new Reader(bytes, 0, bytes.byteLength)) as T;
}
