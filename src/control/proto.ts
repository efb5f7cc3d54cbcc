/**
 * Loads ckv.proto for the server and reflection (the CLI's client uses wire.ts instead). The .proto file stays the
 * single source of the API; it is read from src/control/ at run time (also from dist/).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { grpcMessageBytesMax } from './limits.js';

const here = dirname(fileURLToPath(import.meta.url));
/** src/control/ckv.proto, found from src/control or dist/src/control. */
export const protoPath = [join(here, 'ckv.proto'), join(here, '..', '..', '..', 'src', 'control', 'ckv.proto')].find(
  (p) => existsSync(p),
)!;

export const loaderOptions: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const channelOptions: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': grpcMessageBytesMax,
  'grpc.max_send_message_length': grpcMessageBytesMax,
};

let cached: { definition: protoLoader.PackageDefinition; kv: grpc.ServiceClientConstructor } | undefined;

/** The API as written in ckv.proto (snake_case names), for server reflection. */
export function loadReflectionDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(protoPath, { ...loaderOptions, keepCase: true });
}

export function loadKvService(): { definition: protoLoader.PackageDefinition; kv: grpc.ServiceClientConstructor } {
  if (!cached) {
    const definition = protoLoader.loadSync(protoPath, loaderOptions);
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { ckv: { v1: { Kv: grpc.ServiceClientConstructor } } };
    cached = { definition, kv: loaded.ckv.v1.Kv };
  }
  return cached;
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
}
export interface ChangeMessage {
  key: string;
  version: VersionMessage | null;
  origin: string;
  deleted: boolean;
  valueBytes: string;
  appliedAtMs: string;
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
