/**
 * The one JSON shape of `ckv ... --json` (README "JSON output"). Rules:
 * - a command that answers once prints one JSON document; a command that answers with many
 *   items (keys, get of several keys or a prefix, watch, sync) prints one object per line;
 * - counts, sizes and times in milliseconds are JSON numbers (the control API carries 64-bit
 *   integers as decimal strings; every one shown here fits a double exactly);
 * - a version is its text "wallMs.counter@node", the form `--if-version` takes, with `time`,
 *   its wall clock as ISO 8601, beside it;
 * - a value is `value` with its `encoding`: "utf8" when the bytes are valid UTF-8, else "base64".
 */
import type { BootstrapMessage, DeliveryStatusMessage, EntryMessage, GcStateMessage, HolderMessage, PartitionedStatusMessage, PeerMessage, StatusMessage, SyncProgressMessage, VersionMessage } from '../control/proto.js';

/** The ISO 8601 time of a version's wall clock ("" for none). */
export function versionTime(version: VersionMessage | null | undefined): string {
  if (!version) return '';
  const wallMs = Number(BigInt(version.hlc) >> 16n);
  return new Date(wallMs).toISOString();
}

/** `version` and `time` of a version, or neither. */
export function versionFields(version: VersionMessage | null | undefined): { version?: string; time?: string } {
  return version ? { version: version.text, time: versionTime(version) } : {};
}

/** A value as `value` + `encoding`. */
export function valueFields(value: Uint8Array): { value: string; encoding: 'utf8' | 'base64'; valueBytes: number } {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const text = bytes.toString('utf8');
  const isText = Buffer.byteLength(text, 'utf8') === bytes.byteLength && Buffer.from(text, 'utf8').equals(bytes);
  return { value: isText ? text : bytes.toString('base64'), encoding: isText ? 'utf8' : 'base64', valueBytes: bytes.byteLength };
}

/** A value's expiry (TTL) as `expiresAtMs` (wall ms) and `expiresAt` (ISO 8601), or neither (0 or absent: never). */
export function expiryFields(expiresAtMs: number | string | undefined): { expiresAtMs?: number; expiresAt?: string } {
  const ms = Number(expiresAtMs ?? 0);
  return ms > 0 ? { expiresAtMs: ms, expiresAt: new Date(ms).toISOString() } : {};
}

/**
 * A key as `get` shows it: found (a live value, with it), deleted (a tombstone: its version),
 * or neither (never written).
 */
export function entryJson(key: string, reply: { found: boolean; deleted: boolean; value?: Uint8Array; version: VersionMessage | null; expiresAtMs?: number | string }): object {
  if (reply.found && reply.value !== undefined) return { key, found: true, deleted: false, ...valueFields(reply.value), ...versionFields(reply.version), ...expiryFields(reply.expiresAtMs) };
  return { key, found: false, deleted: reply.deleted, ...(reply.deleted ? versionFields(reply.version) : {}) };
}

/** An entry of a scan (keys, get --prefix): with its value when the scan carried values. */
export function scannedJson(entry: EntryMessage, withValue: boolean): object {
  return {
    key: entry.key,
    found: !entry.deleted,
    deleted: entry.deleted,
    ...(withValue && !entry.deleted ? valueFields(entry.value) : {}),
    ...versionFields(entry.version),
    ...(entry.deleted ? {} : expiryFields(entry.expiresAtMs)),
  };
}

export function statusJson(s: StatusMessage): object {
  return {
    nodeId: s.nodeId,
    peerId: s.peerId,
    cluster: s.cluster,
    listenAddresses: s.listenAddresses,
    httpUrl: s.httpUrl,
    keyCount: Number(s.keyCount),
    tombstoneCount: Number(s.tombstoneCount),
    bytesOnDisk: Number(s.bytesOnDisk),
    merkleRoot: s.merkleRoot,
    hlcNow: s.hlcNow?.text ?? '',
    hlcTime: versionTime(s.hlcNow),
    uptimeMs: Number(s.uptimeMs),
    version: s.version,
    dataDir: s.dataDir,
    incarnation: Number(s.incarnation),
    clockWarning: s.clockWarning,
    bootstrap: s.bootstrap.map(bootstrapJson),
    counters: Object.fromEntries(Object.entries(s.counters).map(([name, value]) => [name, Number(value)])),
    ...(s.partitioned ? { partitioned: partitionedJson(s.partitioned) } : {}),
    ...(s.delivery ? { delivery: deliveryJson(s.delivery) } : {}),
    ...(s.gc ? { gc: gcJson(s.gc) } : {}),
  };
}

/** `ckv gc --json`, and `status --json`'s `gc`: tombstone GC as this node sees it. */
export function gcJson(gc: GcStateMessage): object {
  return {
    watermark: gc.watermark,
    watermarkAgeMs: gc.watermarkAgeMs === '-1' ? null : Number(gc.watermarkAgeMs),
    holdsBack: gc.holdsBack || null,
    collector: gc.collector,
    tombstones: Number(gc.tombstones),
    collectable: Number(gc.collectable),
    collected: Number(gc.collected),
    openRounds: gc.openRounds,
    lastRunAtMs: gc.lastRunAtMs === '0' ? null : Number(gc.lastRunAtMs),
    errors: gc.errors,
  };
}

/** `status --json`'s `delivery` (partitioned mode only): pending rows per owner that has not acknowledged them. */
function deliveryJson(d: DeliveryStatusMessage): object {
  return {
    pendingRows: Number(d.pendingRows),
    pendingBytes: Number(d.pendingBytes),
    oldestAgeMs: Number(d.oldestAgeMs),
    targets: d.targets.map((t) => ({ node: t.node, rows: Number(t.rows), bytes: Number(t.bytes), oldestAgeMs: Number(t.oldestAgeMs), nextAttemptInMs: Number(t.nextAttemptInMs) })),
  };
}

/** `status --json`'s `partitioned` (partitioned mode only; absent in full-replication mode). */
function partitionedJson(p: PartitionedStatusMessage): object {
  return {
    replicas: p.replicas,
    layoutVersion: Number(p.layoutVersion),
    activeVersions: p.activeVersions.map(Number),
    partitionsOwned: p.partitionsOwned,
    partitionsUnderReplicated: p.partitionsUnderReplicated,
    rebalance: { pending: Number(p.rebalancePending), done: Number(p.rebalanceDone), blockedBy: p.rebalanceBlockedBy },
    conflicts: p.conflicts,
    ...(p.mismatch ? { mismatch: p.mismatch } : {}),
    removed: p.removedAt !== '0',
    removedAt: Number(p.removedAt),
  };
}

function bootstrapJson(b: BootstrapMessage): object {
  return { address: b.address, state: b.state, peerId: b.peerId, lastError: b.lastError, sinceMs: Number(b.sinceMs), failures: Number(b.failures) };
}

export function peerJson(p: PeerMessage): object {
  return {
    peerId: p.peerId,
    nodeId: p.nodeId,
    state: p.state,
    incarnation: Number(p.incarnation),
    inSync: p.inSync,
    lastSyncMs: Number(p.lastSyncMs),
    lastSyncResult: p.lastSyncResult,
    clockOffsetMs: Number(p.clockOffsetMs),
    addresses: p.addresses,
  };
}

export function holderJson(h: HolderMessage): object {
  return { nodeId: h.nodeId, peerId: h.peerId, deleted: h.deleted, ...versionFields(h.version), ...(h.error ? { error: h.error } : {}) };
}

export function syncJson(p: SyncProgressMessage): object {
  return {
    peerId: p.peerId,
    phase: p.phase,
    outcome: p.outcome,
    rounds: p.rounds,
    entriesSent: Number(p.entriesSent),
    entriesReceived: Number(p.entriesReceived),
    bytesSent: Number(p.bytesSent),
    bytesReceived: Number(p.bytesReceived),
    ...(p.message ? { message: p.message } : {}),
  };
}
