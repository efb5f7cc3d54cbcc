/**
 * Helpers for multi-node tests on 127.0.0.1: start a networked ckv node (a RunningNode from
 * process.ts plus a ControlClient and its libp2p address), bulk writes through the control
 * API with many requests in flight, counters, peer states, and waits on cluster conditions.
 *
 * Processes and temp dirs are cleaned up by the process.ts registry; the control clients
 * opened here are closed by an `after()` hook registered when this module is first imported.
 */
import { after } from 'node:test';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { ControlClient } from '../../src/control/client.js';
import type { EntryMessage, PeerMessage, StatusMessage, VersionMessage } from '../../src/control/proto.js';
import { startNode, waitFor, withDeadline, type RunningNode, type StartNodeOptions } from './process.js';

const openClients = new Set<ControlClient>();

function trackClient(client: ControlClient): ControlClient {
  openClients.add(client);
  return client;
}

export function closeClients(): void {
  for (const client of openClients) client.close();
  openClients.clear();
}

after(closeClients);

export interface CkvPeer {
  name: string;
  node: RunningNode;
  /** Control client on the node's socket (closed after the test file). */
  client: ControlClient;
  peerId: string;
  nodeId: string;
  /** The node's libp2p address on 127.0.0.1, with /p2p/<peer id>: what others bootstrap to. */
  address: string;
  /** The flags it was started with (without --data-dir), for a restart with the same flags. */
  args: string[];
}

export interface StartPeerOptions {
  /** Bootstrap to these nodes' addresses. */
  bootstrap?: CkvPeer[];
  /** Extra `node start` flags (--cluster, --cluster-key, --sync-interval-ms, --test-no-gossip, ...). */
  args?: string[];
  /** Restart on this data directory. */
  dataDir?: string;
  readyTimeoutMs?: number;
}

/** Starts a node listening on 127.0.0.1 (free port), no mDNS, no HTTP. */
export async function startPeer(name: string, options: StartPeerOptions = {}): Promise<CkvPeer> {
  const args = [...(options.args ?? [])];
  for (const peer of options.bootstrap ?? []) args.push('--bootstrap', peer.address);
  const startOptions: StartNodeOptions = { args, readyTimeoutMs: options.readyTimeoutMs ?? 30_000 };
  if (options.dataDir !== undefined) startOptions.dataDir = options.dataDir;
  const node = await startNode(startOptions);
  const client = trackClient(new ControlClient(node.socket));
  const status = await withDeadline(client.status(), 10_000, `status of ${name}`);
  const address = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
  if (address === undefined) throw new Error(`${name} has no 127.0.0.1 tcp address: ${status.listenAddresses.join(' ')}`);
  return { name, node, client, peerId: status.peerId, nodeId: status.nodeId, address, args };
}

/** Stops `peer` (SIGTERM, clean stop) and starts it again on its data dir with the same flags. */
export async function restartPeer(peer: CkvPeer): Promise<CkvPeer> {
  await stopPeer(peer);
  return startPeer(peer.name, { args: peer.args, dataDir: peer.node.dataDir });
}

/** SIGTERM and wait for the exit (code 0 expected from a clean stop). */
export async function stopPeer(peer: CkvPeer): Promise<void> {
  peer.client.close();
  openClients.delete(peer.client);
  const exit = await peer.node.stop();
  if (exit.code !== 0) throw new Error(`${peer.name} exited ${exit.code ?? exit.signal} on SIGTERM; stderr:\n${peer.node.stderrText()}`);
}

export function counter(status: StatusMessage, name: string): number {
  return Number(status.counters[name] ?? 0);
}

/** Sessions this node initiated, whatever their outcome (sync_sessions_*). */
export function sessionsInitiated(status: StatusMessage): number {
  return Object.entries(status.counters)
    .filter(([name]) => name.startsWith('sync_sessions_'))
    .reduce((sum, [, value]) => sum + Number(value), 0);
}

export async function peersOf(peer: CkvPeer): Promise<PeerMessage[]> {
  return (await withDeadline(peer.client.peers(), 10_000, `peers of ${peer.name}`)).peers;
}

export async function isUpAt(observer: CkvPeer, peerId: string): Promise<boolean> {
  return (await peersOf(observer)).some((p) => p.peerId === peerId && p.state === 'up');
}

/** Waits until, for every pair, each node lists the other as up. */
export async function waitLinked(pairs: [CkvPeer, CkvPeer][], timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      for (const [x, y] of pairs) {
        if (!(await isUpAt(x, y.peerId)) || !(await isUpAt(y, x.peerId))) return false;
      }
      return true;
    },
    { timeoutMs, what: `${pairs.map(([x, y]) => `${x.name}<->${y.name}`).join(', ')} to list each other as up`, intervalMs: 50 },
  );
}

/** Waits until every node lists every other node as up (only for nodes that dial each other). */
export async function waitMesh(peers: CkvPeer[], timeoutMs = 20_000): Promise<void> {
  const pairs: [CkvPeer, CkvPeer][] = [];
  for (let i = 0; i < peers.length; i++) for (let j = i + 1; j < peers.length; j++) pairs.push([peers[i]!, peers[j]!]);
  await waitLinked(pairs, timeoutMs);
}

/** Waits until `hub` and each spoke list each other as up (spokes bootstrapped to the hub). */
export async function waitStar(hub: CkvPeer, spokes: CkvPeer[], timeoutMs = 20_000): Promise<void> {
  await waitLinked(spokes.map((spoke) => [hub, spoke]), timeoutMs);
}

export function status(peer: CkvPeer): Promise<StatusMessage> {
  return withDeadline(peer.client.status(), 10_000, `status of ${peer.name}`);
}

/** Waits until all nodes report the same Merkle root and key count; returns the last statuses. */
export async function waitConverged(peers: CkvPeer[], timeoutMs: number, intervalMs = 100): Promise<StatusMessage[]> {
  let last: StatusMessage[] = [];
  await waitFor(
    async () => {
      last = await Promise.all(peers.map((p) => status(p)));
      const first = last[0]!;
      return last.every((s) => s.merkleRoot === first.merkleRoot && s.keyCount === first.keyCount);
    },
    {
      timeoutMs,
      intervalMs,
      what: `${peers.map((p) => p.name).join(', ')} to converge (last: ${peers.map((p, i) => `${p.name} keys=${last[i]?.keyCount}`).join(' ')})`,
    },
  );
  return last;
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

/** `count` puts through one client with `inFlight` requests outstanding at a time. */
export async function putMany(
  client: ControlClient,
  count: number,
  keyOf: (i: number) => string,
  valueOf: (i: number) => Uint8Array,
  inFlight = 256,
  onReply?: (i: number, version: VersionMessage) => void,
): Promise<BulkResult> {
  const startedMs = Date.now();
  let next = 0;
  let rawBytes = 0;
  let wireBytes = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const key = keyOf(i);
      const value = valueOf(i);
      rawBytes += rawEntryBytes(key, value.byteLength);
      wireBytes += wireEntryBytes(key, value.byteLength);
      const reply = await client.put(key, value);
      onReply?.(i, reply.version);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return { count, ms: Date.now() - startedMs, rawBytes, wireBytes };
}

/** Every entry under `prefix` (tombstones included), with versions and values. */
export async function scanAll(client: ControlClient, prefix: string): Promise<EntryMessage[]> {
  const entries: EntryMessage[] = [];
  for await (const entry of client.scan({ prefix, withValues: true, includeDeleted: true })) entries.push(entry);
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
