/**
 * Test-only helpers for multi-node tests on 127.0.0.1, on top of the harness (nodes,
 * cluster formation, waits and cleanup all live in harness/): the defaults these tests
 * start nodes with, a bulk write that counts the bytes it wrote, scans, and /proc checks.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { ControlClient } from '../../src/control/client.js';
import type { ChangeMessage, EntryMessage, StatusMessage } from '../../src/control/proto.js';
import { putMany as timedPutMany, startNode, type NodeOptions, type NodeProcess } from '../../harness/testing.js';

/** Starts a node named `name` on 127.0.0.1 (free port, no mDNS, no HTTP); 30 s to answer Status. */
export function startPeer(name: string, options: NodeOptions = {}): Promise<NodeProcess> {
  return startNode({ readyDeadlineMs: 30_000, ...options, name });
}

/** Sessions this node initiated, whatever their outcome (sync_sessions_*). */
export function sessionsInitiated(status: StatusMessage): number {
  return Object.entries(status.counters)
    .filter(([name]) => name.startsWith('sync_sessions_'))
    .reduce((sum, [, value]) => sum + Number(value), 0);
}

export interface BulkResult {
  count: number;
  ms: number;
  /** Sum over entries of key bytes + value bytes + 26 (version, flags and length overhead). */
  rawBytes: number;
  /** Sum over entries of their exact wire encoding (src/core/entry.ts writeEntry). */
  wireBytes: number;
}

/** The raw size of one entry used in measurements: key + value + 26 bytes of overhead. */
export function rawEntryBytes(key: string, valueBytes: number): number {
  return Buffer.byteLength(key) + valueBytes + 26;
}

/** Bytes of an unsigned LEB128 varint. */
function varintBytes(n: number): number {
  let bytes = 1;
  for (let rest = n; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes++;
  return bytes;
}

/** Exact encoded size of a live entry: varint key length, key, flags, hlc, node id, varint value length, value. */
export function wireEntryBytes(key: string, valueBytes: number): number {
  const keyBytes = Buffer.byteLength(key);
  return varintBytes(keyBytes) + keyBytes + 1 + 8 + 8 + varintBytes(valueBytes) + valueBytes;
}

/** harness putMany (same arguments), also counting the raw and wire bytes written. */
export async function putMany(...[client, count, keyOf, valueOf, inFlight, hooks = {}]: Parameters<typeof timedPutMany>): Promise<BulkResult> {
  let rawBytes = 0;
  let wireBytes = 0;
  const onPut = (i: number, key: string, value: Uint8Array): void => {
    rawBytes += rawEntryBytes(key, value.byteLength);
    wireBytes += wireEntryBytes(key, value.byteLength);
    hooks.onPut?.(i, key, value);
  };
  const ms = await timedPutMany(client, count, keyOf, valueOf, inFlight, { ...hooks, onPut });
  return { count, ms: Math.round(ms), rawBytes, wireBytes };
}

/** Every entry under `prefix` in the node's own store (tombstones included), with versions and values. */
export async function scanAll(client: ControlClient, prefix: string): Promise<EntryMessage[]> {
  const entries: EntryMessage[] = [];
  for await (const entry of client.scan({ prefix, withValues: true, includeDeleted: true, from: 'local' })) entries.push(entry);
  return entries;
}

/**
 * Whether process `pid` has an established TCP connection to 127.0.0.1:`port` (Linux
 * /proc). Used to show two nodes of different clusters really are connected at the
 * transport level, so "they ignore each other" is not vacuous.
 */
export function hasTcpConnectionTo(pid: number, port: number): boolean {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match) inodes.add(match[1]!);
      } catch {
        // fd closed meanwhile
      }
    }
  } catch {
    return false;
  }
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const remote = fields[2]!;
      const state = fields[3]!;
      const inode = fields[9]!;
      if (state === '01' && remote.endsWith(`:${portHex}`) && inodes.has(inode)) return true;
    }
  }
  return false;
}

/** The TCP port of a /ip4/.../tcp/PORT/... multiaddr. */
export function tcpPort(address: string): number {
  const match = /\/tcp\/(\d+)/.exec(address);
  if (!match) throw new Error(`no tcp port in ${address}`);
  return Number(match[1]);
}

export function pad(i: number): string {
  return String(i).padStart(6, '0');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** A Watch's changes as they arrive, until `stop()` (which cancels it; a CANCELLED end is no error, any other is thrown). */
export function collectWatch(client: ControlClient, prefix: string): { changes: ChangeMessage[]; stop(): Promise<void> } {
  const changes: ChangeMessage[] = [];
  const watch = client.watch(prefix);
  const watching = (async () => {
    try {
      for await (const change of watch) changes.push(change);
    } catch (error) {
      if ((error as { code?: number }).code !== 1 /* CANCELLED */) throw error;
    }
  })();
  return {
    changes,
    async stop() {
      watch.cancel();
      await watching;
    },
  };
}
