/**
 * The anti-entropy protocol `/ckv/<cluster>/sync/1.1.0` (and 1.0.0): one libp2p stream per session,
 * length-prefixed frames (FramedStream), driving the core's SyncInitiator / SyncResponder
 * state machines through the core's session driver. This file only moves frames and applies
 * entries; every protocol decision is in src/core/sync-session.ts and session-driver.ts.
 *
 * Bounds: at most `inboundSessionsMax` sessions are served at once, and at most
 * `inboundSessionsPerPeerMax` of them for one peer (a session past either is answered with a
 * typed `busy` refusal at once); frames are bounded by FramedStream (a larger announced frame
 * aborts the stream without buffering it) and buffered within the node's frame budget; a
 * session is bounded in rounds by the core, in time by an AbortSignal (60 s), and in silence
 * by `syncIdleMsMax` (5 s without a byte from the peer while we wait for its next frame, in
 * either role: a Hello followed by silence gives its slot back within seconds). Anything
 * malformed from a peer ends that session and is counted (`sync_rejected`); nothing it sent
 * after the bad frame is applied.
 *
 * Versions: 1.1.0 adds the Hello's positions extension (the responder's Position and catch-up
 * by delta, src/core/sync-frames.ts); a 1.0.0 responder refuses such a Hello as malformed. A
 * node serves both and dials 1.1.0 first, falling back to 1.0.0 (multistream-select picks the
 * first the peer supports), and sends the extension only on 1.1.0: a cluster upgraded one node
 * at a time keeps syncing both ways.
 *
 * 1.2.0 is partitioned mode's (docs/partitioned-mode.md): sessions restricted to a bitmap of
 * partitions (the Hello's partitions extension, the responder's Partitions frame). A
 * partitioned node (`partitions` given) dials only 1.2.0, with a bitmap chosen by the caller
 * (the partitions it shares with the peer, or those it pulls or offloads), and answers a
 * session on 1.0.0 or 1.1.0 with a typed refusal (unsupportedVersion): a session that is not
 * restricted would move every partition. As responder it covers the Hello's bitmap AND the
 * partitions it holds (`partitionsHeld`): so a new owner pulls from an old owner, and a node
 * offloads a partition it no longer holds to the owners, even while their views of the
 * layout differ; nothing this node does not hold moves, and its replica refuses keys it does
 * not hold whatever a session carries. A full-replication node serves 1.2.0 too (a restricted
 * Hello then covers its own bitmap) and dials as before.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import type { ReceivedEntries } from '../core/received-entries.js';
import {
  entriesFrameBytesTarget,
  inboundSessionsPerPeerMax,
  syncIdleMsMax,
  valueBytesMax as valueBytesMaxDefault,
  writeBatchOpsMax,
} from '../core/limits.js';
import type { ApplyReport, Replica } from '../core/replica.js';
import { FrameType, RefuseReason, encodeFrame } from '../core/sync-frames.js';
import { driveSession, type FrameTransport } from '../core/session-driver.js';
import { SyncInitiator, SyncResponder, type SyncResult } from '../core/sync-session.js';
import type { Counters } from '../util/counters.js';
import { errorText, toError } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';
import { FramedStream } from './framed-stream.js';
import type { CkvLibp2p } from './libp2p.js';

/** The protocol every ckv version speaks (and identifies a ckv node by). */
export function syncProtocolId(cluster: string): string {
  return `/ckv/${cluster}/sync/1.0.0`;
}

/** 1.1.0: Hello may carry the positions extension (catch-up by delta). */
export function syncProtocolIdPositions(cluster: string): string {
  return `/ckv/${cluster}/sync/1.1.0`;
}

/** 1.2.0: restricted sessions (partitioned mode). */
export function syncProtocolIdPartitions(cluster: string): string {
  return `/ckv/${cluster}/sync/1.2.0`;
}

/** Peers whose last successful connection is remembered (more than any cluster's members). */
const syncedConnectionsMax = 4096;

/** A session ends after this long whatever its state; what it applied stays applied. */
export const sessionTimeoutMsDefault = 60_000;

/**
 * A served session must receive its whole Hello within this long, or it gives up its slot
 * (a peer trickling bytes is not idle, but cannot hold a slot this way either).
 */
const helloTimeoutMs = 5_000;

export interface SessionReport {
  peerId: string;
  /**
   * 'skipped': the peer is syncing with us right now (`peerSyncing`), that session serves
   * both; or, in partitioned mode, the two nodes share no partition now (src/net/cluster.ts).
   */
  outcome: SyncResult['outcome'] | 'error' | 'skipped';
  /** Skipped because the peer was syncing with us: the membership syncs once that ends. */
  peerSyncing?: true;
  result: SyncResult | undefined;
  error: string | undefined;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
}

/** What the membership learns from sessions peers start with us. */
export interface ServedSessionObserver {
  /** The peer's Hello: its wall clock and entry count. */
  hello(peerId: string, peerWallMs: number, entryCount: number): void;
  /** A served session ended; ok = in sync or synced. */
  served(peerId: string, ok: boolean, result: string): void;
  /** Whether to serve a session now (false while we catch up from another peer). */
  acceptsInbound(): boolean;
}

export interface SyncServiceComponents {
  libp2p: CkvLibp2p;
  replica: Replica;
  sessions: ServedSessionObserver;
  counters: Counters;
  logger: Logger;
}

export interface SyncServiceOptions {
  cluster: string;
  inboundSessionsMax: number;
  sessionTimeoutMs?: number;
  valueBytesMax?: number;
  /** Our wall clock, sent in our Hellos so peers can measure our offset (default Date.now). */
  wallClockMs?: () => number;
  /** Salt source for initiated sessions (a fresh salt each session). */
  rng: () => number;
  /**
   * Partitioned mode only: the partitions this node holds now (a bitmap; empty before its
   * first layout). Undefined: full replication (sessions unrestricted, as before 1.2.0).
   */
  partitionsHeld?: () => Uint8Array;
}

export class SyncService {
  readonly protocol: string;
  /** The protocol version with the positions extension, dialled first. */
  readonly protocolPositions: string;
  /** Restricted sessions (partitioned mode). */
  readonly protocolPartitions: string;
  private inbound = 0;
  /** Sessions being served, by peer: we do not start one with a peer that is syncing with us. */
  private readonly servingPeers = new Map<string, number>();
  private started = false;
  private readonly stopController = new AbortController();
  private readonly frameBytesMax: number;
  private readonly sessionTimeoutMs: number;
  /** Peer id -> the connection on which a session with it last succeeded (see syncWith). */
  private readonly syncedOnConnection = new Map<string, string>();

  constructor(private readonly components: SyncServiceComponents, private readonly options: SyncServiceOptions) {
    this.protocol = syncProtocolId(options.cluster);
    this.protocolPositions = syncProtocolIdPositions(options.cluster);
    this.protocolPartitions = syncProtocolIdPartitions(options.cluster);
    this.frameBytesMax = (options.valueBytesMax ?? valueBytesMaxDefault) + entriesFrameBytesTarget + 64 * 1024;
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? sessionTimeoutMsDefault;
  }

  /** Idempotent. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // One handler for both versions: the responder reads either Hello (the extension is optional).
    await this.components.libp2p.handle([this.protocolPartitions, this.protocolPositions, this.protocol], (stream, connection) => void this.serve(stream, connection), {
      // Streams past the session limit still open, so the peer gets a typed `busy` reply.
      maxInboundStreams: this.options.inboundSessionsMax * 4,
    });
  }

  /** Idempotent: refuses new sessions and aborts running ones. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopController.abort(new Error('node stopping'));
    await this.components.libp2p.unhandle([this.protocolPartitions, this.protocolPositions, this.protocol]).catch(() => undefined);
  }

  /**
   * Run one session with `peer` as initiator. Never throws: failures are in the report.
   * With the peer's node id, the session names the watermark recorded for it (a delta
   * catch-up) and records a new one if the session proves we hold the peer's position.
   * With `partitions` (partitioned mode), the session is restricted to them (protocol 1.2.0):
   * the result's `partitions` says which the peer covered too. `whileServed`: run it even if
   * the peer is syncing with us now (a pull or an offload needs a session of its own).
   */
  async syncWith(peer: PeerId, peerNodeId?: string, partitions?: Uint8Array, whileServed = false): Promise<SessionReport> {
    const peerId = peer.toString();
    const startedMs = Date.now();
    if (!whileServed && (this.servingPeers.get(peerId) ?? 0) > 0) {
      return { peerId, outcome: 'skipped', peerSyncing: true, result: undefined, error: undefined, bytesSent: 0, bytesReceived: 0, durationMs: 0 };
    }
    const signal = AbortSignal.any([this.stopController.signal, AbortSignal.timeout(this.sessionTimeoutMs)]);
    const { replica } = this.components;
    // A delta only in the first session that succeeds on a connection (after a start or a
    // reconnect: when this node may have missed writes). While connected, gossip delivers the
    // peer's writes, and a delta from an old watermark would re-send all of them: under a
    // write load every periodic session streamed everything since the last exactly-equal root
    // (5-node throughput fell to a third). Later sessions on the connection descend, as before.
    const connectionId = this.components.libp2p.getConnections(peer)[0]?.id;
    const delta = connectionId === undefined || this.syncedOnConnection.get(peerId) !== connectionId;
    let framed: FramedStream | undefined;
    let result: SyncResult | undefined;
    let error: string | undefined;
    try {
      const protocols = partitions === undefined ? [this.protocolPositions, this.protocol] : [this.protocolPartitions];
      const stream = await this.components.libp2p.dialProtocol(peer, protocols, { signal });
      framed = new FramedStream(stream, { frameBytesMax: this.frameBytesMax, signal, readIdleMs: syncIdleMsMax });
      const initiator = new SyncInitiator(
        replica.syncContext({
          cluster: this.options.cluster,
          wallClockMs: this.options.wallClockMs ?? Date.now,
          ...(peerNodeId === undefined ? {} : { peerNodeId }),
          // A 1.0.0 peer refuses the positions extension: the old Hello, the descent alone.
          positions: stream.protocol === this.protocolPositions,
          delta,
          partitions,
        }),
        Math.floor(this.options.rng() * 2 ** 32),
      );
      // The driver also waits for the responder to close its side, which it does only once it
      // has applied everything we pushed: the next session does not re-send entries in flight.
      result = await driveSession(initiator, transportOf(framed), { apply: (entries) => this.apply(entries) });
    } catch (cause) {
      error = this.failure(cause, peerId, 'initiator');
      framed?.abort(cause instanceof Error ? cause : new Error(String(cause)));
    }
    const outcome = result?.outcome ?? 'error';
    if ((result?.outcome === 'in-sync' || result?.outcome === 'synced') && error === undefined && connectionId !== undefined) this.markSynced(peerId, connectionId);
    const { counters } = this.components;
    counters.add(`sync_sessions_${outcome.replace('-', '_')}`);
    this.countOutside(result);
    if (result?.delta) {
      counters.add('sync_delta_received');
      counters.add('sync_delta_entries_received', result.delta.entries);
      if (result.heldPosition === undefined) counters.add('sync_delta_descended');
    }
    if (result && peerNodeId !== undefined && replica.recordSession(peerNodeId, result)) counters.add('sync_watermarks_recorded');
    const report: SessionReport = {
      peerId,
      outcome,
      result,
      error: error ?? (result?.outcome === 'refused' ? `${result.refuseReason}: ${result.message}` : undefined),
      bytesSent: framed?.bytesWritten ?? 0,
      bytesReceived: framed?.bytesRead ?? 0,
      durationMs: Date.now() - startedMs,
    };
    this.account(report);
    return report;
  }

  /** Remembers that a session with `peerId` succeeded on `connectionId` (bounded: oldest forgotten). */
  private markSynced(peerId: string, connectionId: string): void {
    this.syncedOnConnection.delete(peerId);
    this.syncedOnConnection.set(peerId, connectionId);
    if (this.syncedOnConnection.size > syncedConnectionsMax) this.syncedOnConnection.delete(this.syncedOnConnection.keys().next().value!);
  }

  private async serve(stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString();
    const { replica, sessions, counters } = this.components;
    const signal = AbortSignal.any([this.stopController.signal, AbortSignal.timeout(this.sessionTimeoutMs)]);
    // A served session whose peer goes silent (after its Hello or at any later step) ends
    // after syncIdleMsMax and gives its slot back.
    const framed = new FramedStream(stream, { frameBytesMax: this.frameBytesMax, signal, readIdleMs: syncIdleMsMax });
    const full = this.inbound >= this.options.inboundSessionsMax;
    const peerFull = (this.servingPeers.get(peerId) ?? 0) >= inboundSessionsPerPeerMax;
    if (full || peerFull || !sessions.acceptsInbound()) {
      // Refuse at once, without waiting for the Hello: a busy node holds no slot for it.
      counters.add('sync_refused_busy');
      const message = full
        ? `serving ${this.options.inboundSessionsMax} sessions already`
        : peerFull
          ? `serving ${inboundSessionsPerPeerMax} sessions for this peer already`
          : 'catching up from another peer';
      await framed.write(encodeFrame({ type: FrameType.refuse, reason: RefuseReason.busy, message })).catch(() => undefined);
      await framed.close().catch(() => undefined);
      return;
    }
    const held = this.options.partitionsHeld?.();
    if (held !== undefined && stream.protocol !== this.protocolPartitions) {
      // A partitioned node never runs an unrestricted session: it would move every partition.
      counters.add('sync_refused_unsupportedVersion');
      const message = `this node is in partitioned mode: it syncs over ${this.protocolPartitions} only`;
      await framed.write(encodeFrame({ type: FrameType.refuse, reason: RefuseReason.unsupportedVersion, message })).catch(() => undefined);
      await framed.close().catch(() => undefined);
      return;
    }
    this.inbound++;
    this.servingPeers.set(peerId, (this.servingPeers.get(peerId) ?? 0) + 1);
    const responder = new SyncResponder(replica.syncContext({ cluster: this.options.cluster, partitions: held }));
    const helloTimer = setTimeout(() => framed.abort(new Error(`no Hello within ${helloTimeoutMs} ms`)), helloTimeoutMs);
    try {
      const result = await driveSession(responder, transportOf(framed), {
        apply: (entries) => this.apply(entries),
        onHello: (peerWallMs, peerEntryCount) => {
          clearTimeout(helloTimer);
          sessions.hello(peerId, peerWallMs, peerEntryCount);
        },
      });
      sessions.served(peerId, result.outcome === 'in-sync' || result.outcome === 'synced', result.outcome);
      this.countOutside(result);
      if (result.delta) counters.add('sync_delta_sent');
      if (result.outcome === 'refused') {
        // Our refusal of its Hello: a protocol violation is counted as hostile input.
        const hostile = result.refuseReason === 'malformed' || result.refuseReason === 'unsupportedVersion';
        counters.add(hostile ? 'sync_rejected' : `sync_refused_${result.refuseReason ?? 'unknown'}`);
      }
    } catch (cause) {
      this.failure(cause, peerId, 'responder');
      framed.abort(cause instanceof Error ? cause : new Error(String(cause)));
    } finally {
      clearTimeout(helloTimer);
      this.inbound--;
      const serving = (this.servingPeers.get(peerId) ?? 1) - 1;
      if (serving > 0) this.servingPeers.set(peerId, serving);
      else this.servingPeers.delete(peerId);
      this.account({ bytesSent: framed.bytesWritten, bytesReceived: framed.bytesRead });
    }
  }

  /** Entries a peer sent outside the session's partitions: dropped by the session, counted as hostile. */
  private countOutside(result: SyncResult | undefined): void {
    const outside = result?.entriesOutsidePartitions ?? 0;
    if (outside === 0) return;
    this.components.counters.add('sync_rejected');
    this.components.counters.add('sync_entries_outside_partitions', outside);
  }

  /**
   * A frame's entries (up to ~2,000 at the 256 KiB frame target) go to the replica in slices of
   * at most writeBatchOpsMax, all handed over at once: the replica commits each slice on its
   * own, and the event loop turns between commits. One commit of the whole frame held the loop
   * for 20-130 ms at a time while a restarted node caught up, and a Status or Get waited
   * behind several such turns (docs/measurements.md).
   */
  private async apply(entries: ReceivedEntries): Promise<void> {
    const slices: Promise<ApplyReport>[] = [];
    const { replica } = this.components;
    for (let at = 0; at < entries.length; at += writeBatchOpsMax) slices.push(replica.applyReceived(entries.slice(at, at + writeBatchOpsMax)));
    const { counters } = this.components;
    for (const report of await Promise.all(slices)) {
      counters.add('sync_entries_applied', report.applied);
      if (report.rejectedClockDrift) counters.add('clock_drift_rejected', report.rejectedClockDrift);
      if (report.rejectedInvalid) counters.add('sync_rejected', report.rejectedInvalid);
    }
  }

  private failure(cause: unknown, peerId: string, role: string): string {
    // libp2p may reject with an Event (a stream's 'close'), not an Error: take the error it carries.
    const error = toError(cause);
    // Malformed input is hostile (sync_rejected). A peer that dies or goes away mid-frame (a
    // reset connection, an aborted stream, a frame cut short by a close: FrameTruncatedError)
    // is a failure like any lost connection (sync_failed), not an attack.
    const hostile = ['MalformedError', 'UnsupportedVersionError', 'FrameTooLargeError'].includes(error.name);
    if (hostile) this.components.counters.add('sync_rejected');
    else this.components.counters.add('sync_failed');
    const text = errorText(error);
    if (!this.stopController.signal.aborted) {
      this.components.logger.warn('sync session failed', { peer: peerId, role, error: text });
    }
    return text;
  }

  private account(bytes: { bytesSent: number; bytesReceived: number }): void {
    this.components.counters.add('sync_bytes_out', bytes.bytesSent);
    this.components.counters.add('sync_bytes_in', bytes.bytesReceived);
  }
}

/** A session's frames over one libp2p stream. */
function transportOf(framed: FramedStream): FrameTransport {
  return {
    send: (frame) => framed.write(frame),
    receive: () => framed.read(),
    close: () => framed.close().catch(() => undefined),
  };
}
