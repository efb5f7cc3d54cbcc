/**
 * ckv.proto through protobufjs: the API's single source, read from src/control/ (also from
 * dist/), or, once built, from its JSON form (dist/src/control/ckv.proto.json, protobufjs's
 * `Root.toJSON()`, written by scripts/bundle.mjs at build time) unless ckv.proto is newer.
 *
 * `kvService()` is the service definition proto-loader would make (its serializers, with the
 * same options: camelCase fields, 64-bit integers as decimal strings, defaults set), without
 * the descriptors proto-loader also builds for every message. Nothing in a running node uses
 * it any more (the server registers ./service.ts, wire.ts's codecs): it is the reference
 * test/unit/wire.test.ts checks those codecs against. Server reflection loads the descriptors
 * with proto-loader on its first call (./proto-loader.ts). The wire shapes below are the
 * types both sides use.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { channelOptions, kvServiceName } from './service.js';

const here = dirname(fileURLToPath(import.meta.url));
/** src/control/ckv.proto, found from src/control or dist/src/control (or dist/src/cli, the bundle). */
export const protoPath = [join(here, 'ckv.proto'), join(here, '..', '..', '..', 'src', 'control', 'ckv.proto')].find(
  (p) => existsSync(p),
)!;
/** ckv.proto as protobufjs JSON, made at build time; found from dist/src/control or dist/src/cli (the bundle). */
const protoJsonPath = join(here, '..', 'control', 'ckv.proto.json');

export { channelOptions, kvServiceName };

/** proto-loader's options for ckv.proto (the same serializers, here and in ./proto-loader.ts). */
export const loaderOptions = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** ckv.proto parsed as proto-loader parses it (field names in camelCase). */
export function parseKvProto(): protobuf.Root {
  return new protobuf.Root().loadSync(protoPath, { keepCase: loaderOptions.keepCase });
}

/** The built JSON form of ckv.proto, unless it was not built or ckv.proto changed since (then undefined). */
export function builtKvProtoJson(): protobuf.INamespace | undefined {
  const built = statSync(protoJsonPath, { throwIfNoEntry: false });
  if (!built || built.mtimeMs < statSync(protoPath).mtimeMs) return undefined;
  return JSON.parse(readFileSync(protoJsonPath, 'utf8')) as protobuf.INamespace;
}

function kvRoot(): protobuf.Root {
  const json = builtKvProtoJson();
  const root = json ? protobuf.Root.fromJSON(json) : parseKvProto();
  root.resolveAll();
  return root;
}

/** proto-loader's serializer (createSerializer): fromObject, then encode. */
function serializer(type: protobuf.Type): (value: object) => Buffer {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
}

/** proto-loader's deserializer (createDeserializer): decode, then toObject with the loader's options. */
function deserializer(type: protobuf.Type): (bytes: Buffer) => object {
  return (bytes) => type.toObject(type.decode(bytes), loaderOptions);
}

let cachedService: grpc.ServiceDefinition | undefined;

/** Service ckv.v1.Kv for grpc.Server.addService: each rpc as proto-loader defines it, minus the descriptors. */
export function kvService(): grpc.ServiceDefinition {
  if (!cachedService) {
    const service = kvRoot().lookupService(kvServiceName);
    const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const method of service.methodsArray) {
      const request = method.resolvedRequestType!;
      const response = method.resolvedResponseType!;
      definition[method.name] = {
        path: `/${kvServiceName}/${method.name}`,
        requestStream: method.requestStream === true,
        responseStream: method.responseStream === true,
        requestSerialize: serializer(request),
        requestDeserialize: deserializer(request),
        responseSerialize: serializer(response),
        responseDeserialize: deserializer(response),
        // proto-loader's camelCase of the PascalCase rpc names: Put -> put, PutMany -> putMany.
        originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
      };
    }
    cachedService = definition;
  }
  return cachedService;
}

/** Wire shapes (proto-loader: camelCase fields, 64-bit integers as decimal strings). */
export interface VersionMessage {
  hlc: string;
  node: string;
  text: string;
}
export interface EntryMessage {
  key: string;
  value: Buffer;
  version: VersionMessage | null;
  deleted: boolean;
  /** A value with a TTL: when it expires (wall ms, decimal); '0': never. */
  expiresAtMs: string;
  /** Partitioned mode with allow_partial: a last message (no key) naming partitions no owner answered for. */
  partitionsMissing: number;
}
export interface ChangeMessage {
  key: string;
  version: VersionMessage | null;
  origin: string;
  deleted: boolean;
  valueBytes: string;
  appliedAtMs: string;
  /** A value with a TTL: when it expires (wall ms, decimal); '0': never. */
  expiresAtMs: string;
}
export interface StatusMessage {
  nodeId: string;
  peerId: string;
  listenAddresses: string[];
  cluster: string;
  keyCount: string;
  tombstoneCount: string;
  bytesOnDisk: string;
  merkleRoot: string;
  hlcNow: VersionMessage | null;
  uptimeMs: string;
  version: string;
  dataDir: string;
  counters: Record<string, string>;
  /** The status page's URL; '' when the node runs with --http off. */
  httpUrl: string;
  incarnation: string;
  clockWarning: string;
  /** Each --bootstrap address: connected, or why not (empty without --bootstrap). */
  bootstrap: BootstrapMessage[];
  /** Partitioned mode only; null in full-replication mode. */
  partitioned: PartitionedStatusMessage | null;
  /** Partitioned mode only: pending deliveries (hints); null in full-replication mode. */
  delivery: DeliveryStatusMessage | null;
  /** Tombstone GC (`ckv gc`); null from a node without it. */
  gc: GcStateMessage | null;
}
export interface GcStateMessage {
  watermark: string;
  watermarkAgeMs: string;
  holdsBack: string;
  collector: string;
  tombstones: string;
  collectable: string;
  collected: string;
  openRounds: number;
  lastRunAtMs: string;
  errors: string[];
}
export interface GcRunReplyMessage {
  gc: GcStateMessage | null;
  rounds: number;
  roundsAbandoned: number;
  deleted: string;
  collectable: string;
}
export interface DeliveryStatusMessage {
  pendingRows: string;
  pendingBytes: string;
  oldestAgeMs: string;
  targets: { node: string; rows: string; bytes: string; oldestAgeMs: string; nextAttemptInMs: string }[];
}
export interface PartitionedStatusMessage {
  replicas: number;
  layoutVersion: string;
  activeVersions: string[];
  partitionsOwned: number;
  partitionsUnderReplicated: number;
  rebalancePending: string;
  rebalanceDone: string;
  conflicts: number;
  mismatch: string;
  rebalanceBlockedBy: string[];
  /** The layout version this node was removed at; '0' if it was not. */
  removedAt: string;
}
export interface BootstrapMessage {
  address: string;
  /** dialing, connected, failing, foreign */
  state: string;
  peerId: string;
  lastError: string;
  sinceMs: string;
  failures: string;
}
export interface PeerMessage {
  peerId: string;
  nodeId: string;
  addresses: string[];
  state: string;
  lastSyncMs: string;
  lastSyncResult: string;
  clockOffsetMs: string;
  inSync: boolean;
  incarnation: string;
}
export interface MemberHealthMessage {
  nodeId: string;
  peerId: string;
  self: boolean;
  state: string;
  reported: boolean;
  version: string;
  incarnation: string;
  keyCount: string;
  tombstoneCount: string;
  bytesOnDisk: string;
  merkleRoot: string;
  uptimeMs: string;
  peersUp: string;
  clockWarning: string;
  clockOffsetMs: string;
  lastSyncMs: string;
  lastSyncResult: string;
  inSync: boolean;
  error: string;
}
export interface HealthReplyMessage {
  healthy: boolean;
  problems: string[];
  members: MemberHealthMessage[];
  timeMs: string;
}
export interface HolderMessage {
  nodeId: string;
  peerId: string;
  version: VersionMessage | null;
  deleted: boolean;
  error: string;
}
export interface PurgeReplyMessage {
  partitions: number;
  entries: string;
  bytes: string;
  blocked: number;
  blockedBy: string[];
}
export interface BalanceProgressMessage {
  activeVersions: string[];
  pending: { version: string; partitions: number }[];
  pulled: string;
  blockedBy: string[];
  done: boolean;
}
export interface SyncProgressMessage {
  peerId: string;
  phase: string;
  outcome: string;
  rounds: number;
  entriesSent: string;
  entriesReceived: string;
  bytesSent: string;
  bytesReceived: string;
  message: string;
}

// --- partitioned mode: layouts (layout-runtime) ---
export interface LayoutMemberMessage {
  nodeId: string;
  peerId: string;
  weight: number;
  partitions: number;
  up: boolean;
}
export interface LayoutReplyMessage {
  replicas: number;
  self: string;
  current: { version: string; replicas: number; digest: string; members: LayoutMemberMessage[]; removed: { nodeId: string; at: string }[] } | null;
  active: { version: string; digest: string; nodes: number; partitionsSynced: number; partitionsPending: number; syncStarted: boolean }[];
  staged: { nodeId: string; weight: number; remove: boolean }[];
  stagedReplicas: string;
  stagedError: string;
  conflicts: { version: string; kept: string; dropped: string }[];
  plan: {
    fromVersion: string;
    toVersion: string;
    partitionsChanged: number;
    replicasMoved: number;
    replicasAfter: number;
    nodes: { nodeId: string; partitionsBefore: number; partitionsAfter: number; gained: number; lost: number }[];
    keysMoved: string;
    bytesMoved: string;
    transfers: { from: string[]; to: string; partitions: number; keys: string; bytes: string }[];
    moves: { partition: number; from: string[]; to: string[]; gaining: string[]; keys: string; bytes: string }[];
  } | null;
  planOf: string;
  committedVersion: string;
  partitions: { partition: number; owners: string[]; keys: string; bytes: string }[];
  sizesReporters: number;
}
