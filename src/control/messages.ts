/**
 * The control API's replies as message objects (ckv.proto) for grpc-js to serialize: a version,
 * an entry, a write's PutReply, a read's partitioned fields, the node's status, GC state, layout,
 * peers and health (64-bit numbers as decimal text); and an error as its gRPC status, by the
 * error table (src/errors.ts). Pure functions of their input, so server.ts reads as its calls.
 */
import * as grpc from '@grpc/grpc-js';
import { hlcToString } from '../core/hlc.js';
import type { Entry, Version } from '../core/entry.js';
import { transfersOf } from '../core/layout-plan.js';
import { errorKinds, kindOf } from '../errors.js';
import type { ReadReply, WriteReply } from '../node/api.js';
import type { ClusterHealth } from '../node/health.js';
import type { NodeStatus, PeerView } from '../node/status.js';
import type { GcStatus } from '../node/gc.js';
import type { LayoutView } from '../net/layout-view.js';
import type { VersionMessage } from './proto.js';

export function versionMessage(version: Version): VersionMessage {
  return { hlc: version.hlc.toString(), node: version.node, text: `${hlcToString(version.hlc)}@${version.node}` };
}

/** A write's PutReply as an object (grpc-js's path; the lean path encodes it by hand: encodePutReply). */
export function putReplyMessage(reply: WriteReply): object {
  return { version: versionMessage(reply.version), owners: reply.owners, acked: reply.acked };
}

export function entryMessage(entry: Entry, withValue: boolean): object {
  return {
    key: entry.key,
    value: withValue && entry.value ? Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength) : Buffer.alloc(0),
    version: versionMessage(entry.version),
    deleted: entry.value === null,
    ...(entry.value !== null && entry.expiresAtMs !== undefined ? { expiresAtMs: String(entry.expiresAtMs) } : {}),
  };
}

/** The gRPC GcState view of the node's GC status (src/node/gc.ts). */
export function gcStateMessage(gc: GcStatus): object {
  return {
    watermark: gc.watermark,
    watermarkAgeMs: String(gc.watermarkAgeMs ?? -1),
    holdsBack: gc.holdsBack ?? '',
    collector: gc.collector,
    tombstones: String(gc.tombstones),
    collectable: String(gc.collectable),
    collected: String(gc.collected),
    openRounds: gc.openRounds,
    lastRunAtMs: String(gc.lastRunAtMs ?? 0),
    errors: gc.lastErrors,
  };
}

/** The gRPC StatusReply view of the node's one status (src/node/status.ts). */
export function statusMessage(status: NodeStatus): object {
  return {
    nodeId: status.nodeId,
    peerId: status.peerId,
    listenAddresses: status.listenAddresses,
    cluster: status.cluster,
    keyCount: String(status.keys),
    tombstoneCount: String(status.tombstones),
    bytesOnDisk: String(status.bytesOnDisk),
    merkleRoot: status.merkleRoot,
    hlcNow: versionMessage({ hlc: status.hlcNow, node: status.nodeId }),
    uptimeMs: String(status.uptimeMs),
    version: status.version,
    dataDir: status.dataDir,
    // Numbers, not decimal strings: protobufjs turns each into a 64-bit value, and parsing ~100
    // strings was a tenth of a Status call's CPU (a number converts directly; counters stay
    // far below 2^53).
    counters: status.counters,
    httpUrl: status.httpUrl,
    incarnation: String(status.incarnation),
    clockWarning: status.clock.warning,
    bootstrap: status.bootstrap.map((b) => ({ ...b, sinceMs: String(b.sinceMs), failures: String(b.failures) })),
    ...(status.partitioned
      ? {
          partitioned: {
            replicas: status.partitioned.replicas,
            layoutVersion: String(status.partitioned.layoutVersion),
            activeVersions: status.partitioned.activeVersions.map(String),
            partitionsOwned: status.partitioned.partitionsOwned,
            partitionsUnderReplicated: status.partitioned.partitionsUnderReplicated,
            rebalancePending: String(status.partitioned.rebalance.pending),
            rebalanceDone: String(status.partitioned.rebalance.done),
            conflicts: status.partitioned.conflicts,
            mismatch: status.partitioned.mismatch,
            rebalanceBlockedBy: status.partitioned.rebalance.blockedBy ?? [],
            removedAt: String(status.partitioned.removedAt),
          },
        }
      : {}),
    ...(status.gc ? { gc: gcStateMessage(status.gc) } : {}),
    ...(status.delivery
      ? {
          delivery: {
            pendingRows: String(status.delivery.pendingRows),
            pendingBytes: String(status.delivery.pendingBytes),
            oldestAgeMs: String(status.delivery.oldestAgeMs),
            targets: status.delivery.targets.map((t) => ({
              node: t.node,
              rows: String(t.rows),
              bytes: String(t.bytes),
              oldestAgeMs: String(t.oldestAgeMs),
              nextAttemptInMs: String(Math.round(t.nextAttemptInMs)),
            })),
          },
        }
      : {}),
  };
}

/** The gRPC LayoutReply view of a layout (partitioned mode). */
export function layoutMessage(view: LayoutView): object {
  const { current, plan } = view;
  return {
    replicas: view.replicas,
    self: view.self,
    ...(current ? { current: { version: String(current.version), replicas: current.replicas ?? 0, digest: current.digest, members: current.members, removed: current.removed.map((r) => ({ nodeId: r.nodeId, at: String(r.at) })) } } : {}),
    active: view.active.map((a) => ({ ...a, version: String(a.version) })),
    staged: view.staged,
    stagedReplicas: view.stagedReplicas,
    stagedError: view.stagedError,
    conflicts: view.conflicts.map((c) => ({ ...c, version: String(c.version) })),
    ...(plan
      ? {
          plan: {
            fromVersion: String(plan.fromVersion ?? 0),
            toVersion: String(plan.toVersion),
            partitionsChanged: plan.totals.partitionsChanged,
            replicasMoved: plan.totals.replicasMoved,
            replicasAfter: plan.totals.replicasAfter,
            nodes: plan.nodes.map((n) => ({
              nodeId: n.nodeId,
              partitionsBefore: n.partitionsBefore,
              partitionsAfter: n.partitionsAfter,
              gained: n.partitionsGained,
              lost: n.partitionsLost,
            })),
            keysMoved: String(plan.totals.keysMoved),
            bytesMoved: String(plan.totals.bytesMoved),
            transfers: transfersOf(plan).map((t) => ({ ...t, keys: String(t.keys), bytes: String(t.bytes) })),
            moves: plan.moves.map((m) => ({ partition: m.partition, from: m.from, to: m.to, gaining: m.gaining, keys: String(m.keys), bytes: String(m.bytes) })),
          },
        }
      : {}),
    planOf: view.planOf,
    committedVersion: String(view.committedVersion),
    partitions: view.partitions.map((p) => ({ ...p, keys: String(p.keys), bytes: String(p.bytes) })),
    sizesReporters: view.sizesReporters,
  };
}

export function peerMessage(p: PeerView): object {
  return {
    peerId: p.peerId,
    nodeId: p.nodeId,
    addresses: p.addresses,
    state: p.state,
    lastSyncMs: String(p.lastSyncMs),
    lastSyncResult: p.lastSyncResult,
    clockOffsetMs: String(p.clockOffsetMs),
    inSync: p.inSync,
    incarnation: String(p.incarnation),
  };
}

export function healthMessage(h: ClusterHealth): object {
  return {
    healthy: h.healthy,
    problems: h.problems,
    timeMs: String(h.timeMs),
    members: h.members.map((m) => ({
      nodeId: m.nodeId,
      peerId: m.peerId,
      self: m.self,
      state: m.state,
      reported: m.report !== undefined,
      version: m.report?.version ?? '',
      incarnation: String(m.report?.incarnation ?? 0),
      keyCount: String(m.report?.keys ?? 0),
      tombstoneCount: String(m.report?.tombstones ?? 0),
      bytesOnDisk: String(m.report?.bytesOnDisk ?? 0),
      merkleRoot: m.report?.merkleRoot ?? '',
      uptimeMs: String(m.report?.uptimeMs ?? 0),
      peersUp: String(m.report?.peersUp ?? 0),
      clockWarning: m.report?.clockWarning ?? '',
      clockOffsetMs: String(m.clockOffsetMs),
      lastSyncMs: String(m.lastSyncMs),
      lastSyncResult: m.lastSyncResult,
      inSync: m.inSync,
      error: m.error,
    })),
  };
}

/** The partitioned-read fields of GetReply and GetChunk (empty in full-replication mode). */
export function readReplyMessage(reply: ReadReply): object {
  if (reply.owners.length === 0) return {};
  return {
    from: reply.from,
    owners: reply.owners,
    asked: reply.asked,
    answers: reply.answers.map((a) => ({
      nodeId: a.nodeId,
      found: a.version !== undefined,
      ...(a.version ? { version: versionMessage(a.version) } : {}),
      deleted: a.deleted ?? false,
      error: a.error ?? '',
    })),
  };
}

function statusError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/**
 * An error as a gRPC status: its kind's code from the error table (src/errors.ts), with its
 * one-line message; anything unexpected is INTERNAL.
 */
export function toServiceError(error: unknown): grpc.ServiceError {
  if (error && typeof error === 'object' && 'code' in error && typeof (error as grpc.ServiceError).code === 'number') {
    return error as grpc.ServiceError; // already a status (grpc-js's own)
  }
  const kind = kindOf(error);
  const message = kind === 'stopping' ? 'the node is stopping' : error instanceof Error ? error.message : String(error);
  return statusError(errorKinds[kind].grpc, message.split('\n')[0]!);
}
