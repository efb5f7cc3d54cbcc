/**
 * `/ckv/<cluster>/query/1.0.0`: one request frame, one reply frame, then the stream closes.
 * Frames: u8 version, u8 type (only append: part of the protocol).
 * - `whereis` (WhereIs: "which version of this key do you hold?"): request = key; reply = the
 *   holder's node id (8 bytes), u8 found, then for a found key u8 deleted and the version.
 * - `health` (`ckv health`: "how are you?"): empty request; reply = the node's own report
 *   (HealthReport: id, software version, incarnation, counts, disk, Merkle root, uptime, its
 *   wall clock, members up, clock warning), then, appended, its view of its peers: a varint
 *   count (at most membersMax, checked before anything is read) and per peer its node id
 *   (8 bytes), u8 state (1 up, 2 unreachable, 3 left), u8 in sync, varint last sync (wall ms,
 *   0 = never), zigzag varint clock offset (ms, cut to +-2^40). A report is what that node says
 *   of itself, shown as such; the asking node's own view of it (state, clock offset, last
 *   sync) stands beside. The status page's cluster matrix is these views side by side.
 * - `scan` (a page of a scatter-gather prefix read, src/core/scatter-read.ts): request =
 *   prefix (text), u8 has-start [start after (text)], varint page entries (1..scanPageEntriesMax),
 *   u8 with values, the partitions asked (32-byte bitmap, bit p & 7 of byte p >> 3); reply = u8
 *   more [resume after (text): the last key examined], varint count, then the entries in key
 *   order in the core encoding (without values: a live entry with an empty value). The owner
 *   stops a page at the entries asked, at scanPageBytesTarget bytes (one larger entry goes
 *   alone) or after scanExaminedMax keys looked at (keys of partitions not asked are skipped),
 *   so a page is bounded in size and time. An owner asked for a partition it does not hold
 *   refuses (the stream is reset; the asker tries the next owner).
 * A reply that does not decode (truncated, over a bound, trailing bytes) is counted
 * (`query_rejected`) and becomes the asker's error for that peer; it never throws past `ask`.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { ByteReader, ByteWriter, fromHex, toHex } from '../core/bytes.js';
import { checkKey, keyHashText, readEntry, readVersion, writeEntry, writeVersion, type Entry, type Version } from '../core/entry.js';
import { MalformedError } from '../core/errors.js';
import { bitmapHas, bitmapPartitions, partitionBitmap, partitionBitmapBytes } from '../core/layout.js';
import { frameBytesMax, keyBytesMax, membersMax, nodeIdBytes } from '../core/limits.js';
import { partitionOfHash, type PartitionId } from '../core/placement.js';
import type { PageRequest, ScanPage } from '../core/scatter-read.js';
import type { Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import { FramedStream } from './framed-stream.js';
import type { CkvLibp2p } from './libp2p.js';

const queryVersion = 1;
/** Only append: the values are part of the protocol. */
const QueryType = { whereIs: 1, health: 2, scan: 3 } as const;
/** A scan page: at most this many entries, ... */
export const scanPageEntriesMax = 1000;
/** ... about this many bytes (an entry larger goes alone), ... */
export const scanPageBytesTarget = 1024 * 1024;
/** ... and at most this many keys looked at (those of partitions not asked are skipped). */
export const scanExaminedMax = 20_000;
/** A scan reply: a page, or one entry with the largest value. */
const scanReplyBytesMax = scanPageBytesTarget + frameBytesMax;
const softwareVersionTextMax = 64;
const clockWarningTextMax = 512;
const merkleRootBytes = 32;
/** A request (the largest is a scan: a prefix, a key and a bitmap). */
const queryFrameBytesMax = 2 * keyBytesMax + 128;
/** One peer's entry in a health report: id, state, in sync, last sync, clock offset. */
const peerViewBytesMax = nodeIdBytes + 1 + 1 + 8 + 8;
/** A reply: a health report with membersMax peers is the largest (~27 KiB). */
export const replyFrameBytesMax = 1024 + 4 * (softwareVersionTextMax + clockWarningTextMax) + membersMax * peerViewBytesMax;
const clockOffsetAbsMax = 2 ** 40;
const queryTimeoutMs = 5_000;

export function queryProtocolId(cluster: string): string {
  return `/ckv/${cluster}/query/1.0.0`;
}

export interface Holding {
  /** The answering node's id. */
  nodeId: string;
  /** Undefined if it holds no version of the key. */
  version: Version | undefined;
  deleted: boolean;
}

/** What a node reports of itself to `ckv health` on another node. */
export interface HealthReport {
  nodeId: string;
  /** ckv's software version. */
  version: string;
  incarnation: number;
  keys: number;
  tombstones: number;
  bytesOnDisk: number;
  /** Hex, 64 characters. */
  merkleRoot: string;
  uptimeMs: number;
  /** Its wall clock when it answered. */
  timeMs: number;
  /** Members it sees up. */
  peersUp: number;
  /** Why it refuses writes, if it does ('' if not). */
  clockWarning: string;
  /** Its view of each member it knows (at most membersMax; empty from a node that sends none). */
  peers: ReportedPeer[];
}

/** One member as the reporting node sees it. */
export interface ReportedPeer {
  nodeId: string;
  state: 'up' | 'unreachable' | 'left';
  inSync: boolean;
  /** Its wall ms when a session with that member last ended; 0 = never. */
  lastSyncMs: number;
  /** That member's wall clock minus the reporter's (ms). */
  clockOffsetMs: number;
}

/** Only append: part of the protocol. */
const peerStateCodes = { up: 1, unreachable: 2, left: 3 } as const;
const peerStates = ['', 'up', 'unreachable', 'left'] as const;

function zigzag(n: number): number {
  const v = Math.max(-clockOffsetAbsMax, Math.min(clockOffsetAbsMax, Math.trunc(n)));
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

function unzigzag(n: number): number {
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

export function encodeHealthReport(w: ByteWriter, report: HealthReport): ByteWriter {
  w.raw(fromHex(report.nodeId)).string(report.version.slice(0, softwareVersionTextMax)).varint(report.incarnation);
  w.varint(report.keys).varint(report.tombstones).varint(report.bytesOnDisk).raw(fromHex(report.merkleRoot));
  w.varint(report.uptimeMs).varint(report.timeMs).varint(report.peersUp).string(report.clockWarning.slice(0, clockWarningTextMax));
  const peers = report.peers.filter((p) => /^[0-9a-f]{16}$/.test(p.nodeId)).slice(0, membersMax);
  w.varint(peers.length);
  for (const p of peers) {
    w.raw(fromHex(p.nodeId)).u8(peerStateCodes[p.state]).u8(p.inSync ? 1 : 0).varint(Math.max(0, Math.trunc(p.lastSyncMs))).varint(zigzag(p.clockOffsetMs));
  }
  return w;
}

export function decodeHealthReport(r: ByteReader): HealthReport {
  return {
    nodeId: toHex(r.raw(nodeIdBytes)),
    version: r.string(softwareVersionTextMax, 'software version'),
    incarnation: r.varint(),
    keys: r.varint(),
    tombstones: r.varint(),
    bytesOnDisk: r.varint(),
    merkleRoot: toHex(r.raw(merkleRootBytes)),
    uptimeMs: r.varint(),
    timeMs: r.varint(),
    peersUp: r.varint(),
    clockWarning: r.string(clockWarningTextMax, 'clock warning'),
    peers: decodeReportedPeers(r),
  };
}

function decodeReportedPeers(r: ByteReader): ReportedPeer[] {
  const count = r.bounded(membersMax, 'peers in a health report');
  if (count * (nodeIdBytes + 4) > r.remaining) throw new MalformedError(`health report names ${count} peers in ${r.remaining} bytes`);
  const peers: ReportedPeer[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = toHex(r.raw(nodeIdBytes));
    const code = r.u8();
    const state = peerStates[code];
    if (!state) throw new MalformedError(`unknown peer state ${code} in a health report`);
    const inSync = r.u8() === 1;
    const lastSyncMs = r.varint();
    const clockOffsetMs = unzigzag(r.varint());
    if (Math.abs(clockOffsetMs) > clockOffsetAbsMax) throw new MalformedError('clock offset out of range in a health report');
    peers.push({ nodeId, state, inSync, lastSyncMs, clockOffsetMs });
  }
  return peers;
}

export class QueryService {
  readonly protocol: string;
  private started = false;

  constructor(
    private readonly components: {
      libp2p: CkvLibp2p;
      replica: Replica;
      counters: Counters;
      healthReport?: (() => Promise<HealthReport>) | undefined;
      /** Partitioned mode: this node's keys in order (the store's key index), and whether it holds a partition. */
      scan?: ((options: { prefix: string; startAfter?: string }) => AsyncIterable<Entry>) | undefined;
      holds?: ((partition: PartitionId) => boolean) | undefined;
    },
    cluster: string,
  ) {
    this.protocol = queryProtocolId(cluster);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.components.libp2p.handle(this.protocol, (stream, connection) => void this.serve(stream, connection), {
      maxInboundStreams: 32,
    });
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.components.libp2p.unhandle(this.protocol).catch(() => undefined);
  }

  /** What `peer` holds of `key`. Throws on failure. */
  whereIs(peer: PeerId, key: string): Promise<Holding> {
    checkKey(key);
    return this.ask(peer, new ByteWriter().u8(queryVersion).u8(QueryType.whereIs).string(key).finish(), (r) => {
      const nodeId = toHex(r.raw(nodeIdBytes));
      const found = r.u8() === 1;
      return found ? { nodeId, deleted: r.u8() === 1, version: readVersion(r) } : { nodeId, deleted: false, version: undefined };
    });
  }

  /** `peer`'s report of itself. Throws on failure (an older peer that does not know the query closes the stream). */
  health(peer: PeerId, timeoutMs = queryTimeoutMs): Promise<HealthReport> {
    return this.ask(peer, new ByteWriter().u8(queryVersion).u8(QueryType.health).finish(), decodeHealthReport, timeoutMs);
  }

  /** One page of `peer`'s keys (see the top comment); its checks against the request are the caller's (checkPage). */
  scanPage(peer: PeerId, request: PageRequest, withValues: boolean, valueBytesMax: number): Promise<ScanPage> {
    const w = new ByteWriter().u8(queryVersion).u8(QueryType.scan).string(request.prefix).u8(request.startAfter === undefined ? 0 : 1);
    if (request.startAfter !== undefined) w.string(request.startAfter);
    w.varint(request.pageEntries).u8(withValues ? 1 : 0).raw(partitionBitmap(request.partitions));
    return this.ask(peer, w.finish(), (r) => decodeScanReply(r, valueBytesMax), queryTimeoutMs, scanReplyBytesMax);
  }

  /** One request frame, one reply frame read with `read` (which must consume it all). */
  private async ask<T>(peer: PeerId, request: Uint8Array, read: (r: ByteReader) => T, timeoutMs = queryTimeoutMs, replyBytesMax = replyFrameBytesMax): Promise<T> {
    const signal = AbortSignal.timeout(timeoutMs);
    const stream = await this.components.libp2p.dialProtocol(peer, this.protocol, { signal });
    const framed = new FramedStream(stream, { frameBytesMax: replyBytesMax, signal });
    try {
      await framed.write(request);
      const reply = await framed.read();
      if (!reply) throw new Error('peer closed the query without a reply');
      let answer: T;
      try {
        const r = new ByteReader(reply);
        if (r.u8() !== queryVersion) throw new MalformedError('unsupported query reply version');
        answer = read(r);
        r.end();
      } catch (error) {
        this.components.counters.add('query_rejected');
        throw new MalformedError(`malformed reply from ${peer.toString()}: ${(error as Error).message}`);
      }
      await framed.close().catch(() => undefined);
      return answer;
    } catch (error) {
      framed.abort(error as Error);
      throw error;
    }
  }

  private async serve(stream: Stream, _connection: Connection): Promise<void> {
    // The read limit covers a request (and the health report it always allowed; a request
    // longer than queryFrameBytesMax is malformed below); the write limit a scan page.
    const framed = new FramedStream(stream, {
      frameBytesMax: Math.max(replyFrameBytesMax, queryFrameBytesMax),
      writeFrameBytesMax: scanReplyBytesMax,
      signal: AbortSignal.timeout(queryTimeoutMs),
    });
    try {
      const request = await framed.read();
      if (!request) return;
      if (request.byteLength > queryFrameBytesMax) throw new MalformedError(`query of ${request.byteLength} bytes; the limit is ${queryFrameBytesMax}`);
      const r = new ByteReader(request);
      if (r.u8() !== queryVersion) throw new MalformedError('unsupported query version');
      const type = r.u8();
      if (type === QueryType.health && this.components.healthReport) {
        r.end();
        const report = await this.components.healthReport();
        await framed.write(encodeHealthReport(new ByteWriter().u8(queryVersion), report).finish());
        await framed.close();
        return;
      }
      if (type === QueryType.scan && this.components.scan) {
        await framed.write(await this.servePage(r));
        await framed.close();
        return;
      }
      if (type !== QueryType.whereIs) throw new MalformedError(`unsupported query type ${type}`);
      const key = r.string(keyBytesMax, 'key');
      r.end();
      const entry = await this.components.replica.get(key);
      const w = new ByteWriter().u8(queryVersion).raw(fromHex(this.components.replica.nodeId)).u8(entry ? 1 : 0);
      if (entry) {
        w.u8(entry.value === null ? 1 : 0);
        writeVersion(w, entry.version);
      }
      await framed.write(w.finish());
      await framed.close();
    } catch (error) {
      this.components.counters.add('query_rejected');
      framed.abort(error as Error);
    }
  }

  private async servePage(r: ByteReader): Promise<Uint8Array> {
    const prefix = r.string(keyBytesMax, 'prefix');
    const startAfter = r.u8() === 1 ? r.string(keyBytesMax, 'start after') : undefined;
    const pageEntries = r.varint();
    if (pageEntries < 1 || pageEntries > scanPageEntriesMax) throw new MalformedError(`page of ${pageEntries} entries asked; 1..${scanPageEntriesMax}`);
    const withValues = r.u8() === 1;
    const bitmap = r.raw(partitionBitmapBytes);
    r.end();
    const holds = this.components.holds;
    const notHeld = bitmapPartitions(bitmap).filter((p) => holds !== undefined && !holds(p));
    if (notHeld.length > 0) throw new MalformedError(`asked for ${notHeld.length} partitions this node does not hold`);
    const page = await readPage(this.components.scan!, { prefix, startAfter, pageEntries, withValues, asked: (p) => bitmapHas(bitmap, p) });
    const w = new ByteWriter().u8(queryVersion).u8(page.resumeAfter === undefined ? 0 : 1);
    if (page.resumeAfter !== undefined) w.string(page.resumeAfter);
    w.varint(page.entries.length);
    for (const entry of page.entries) writeEntry(w, entry);
    return w.finish();
  }
}

/** A page of this node's keys (what a scan query answers; also a node's page of itself). */
export async function readPage(
  scan: (options: { prefix: string; startAfter?: string }) => AsyncIterable<Entry>,
  request: { prefix: string; startAfter: string | undefined; pageEntries: number; withValues: boolean; asked: (partition: PartitionId) => boolean },
): Promise<ScanPage> {
  const entries: Entry[] = [];
  let bytes = 0;
  let examined = 0;
  for await (const entry of scan({ prefix: request.prefix, ...(request.startAfter !== undefined ? { startAfter: request.startAfter } : {}) })) {
    examined++;
    if (request.asked(partitionOfHash(keyHashText(entry.key)))) {
      const kept = request.withValues || entry.value === null ? entry : { ...entry, value: new Uint8Array(0) };
      entries.push(kept);
      bytes += entry.key.length * 3 + 32 + (kept.value?.byteLength ?? 0);
    }
    if (entries.length >= request.pageEntries || bytes >= scanPageBytesTarget || examined >= scanExaminedMax) return { entries, resumeAfter: entry.key };
  }
  return { entries, resumeAfter: undefined };
}

/** A scan reply's page (without its version byte). */
export function decodeScanReply(r: ByteReader, valueBytesMax: number): ScanPage {
  const more = r.u8();
  if (more > 1) throw new MalformedError(`unknown scan reply flag ${more}`);
  const resumeAfter = more === 1 ? r.string(keyBytesMax, 'resume after') : undefined;
  const count = r.bounded(scanPageEntriesMax, 'entries in a scan page');
  if (count * 11 > r.remaining) throw new MalformedError(`scan page names ${count} entries in ${r.remaining} bytes`);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) entries.push(readEntry(r, valueBytesMax));
  return { entries, resumeAfter };
}
