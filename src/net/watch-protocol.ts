/**
 * `/ckv/<cluster>/watch/1.0.0`: `ckv watch` across owners in partitioned mode.
 *
 * In partitioned mode a write reaches only its key's owners (and the coordinator that took
 * it), so a node's own changes miss the writes to partitions it does not own. A watching node
 * therefore subscribes to every up member for the watched prefix: one stream per member,
 * opened when the watch starts and, for members that come up later, within
 * `watchResubscribeMs`. Each member sends, for every change it applies under the prefix
 * (local or from a coordinator), one frame; the watcher dedupes by (key, version) over the
 * last `watchSeenMax` changes (each write arrives once from each of its owners) and hands
 * each change once to its listener, with this node's clock as the applied time.
 *
 * Why this design rather than owners notifying coordinators or gossip: it needs no routing
 * state (any member may hold a watched key, and membership already lists who is up), a write
 * is seen as soon as its first owner applies it, a member down or restarting is resubscribed
 * without the writer knowing of watchers, and nothing is sent when nobody watches. Its cost is
 * one stream per member per watch and K copies of each change; watches are few.
 *
 * Wire (frames over FramedStream): request = u8 version (1), prefix (text); then from the
 * member, frames of u8 type (only append: part of the protocol) 1 change: key (text), u8
 * deleted, version (u64 hlc, 8-byte node), varint value bytes; 2 behind: the member dropped
 * this watcher (its queue passed `watchQueueBytesMax`), the stream ends; 3 a change of a
 * value with a TTL: as 1, then varint expiresAtMs (a watcher from before TTLs ends that
 * member's stream at it, as at any unknown frame, and resubscribes). A slow watcher is
 * thus dropped as a local one is (WatcherBehindError). A malformed frame ends that member's
 * stream and is counted (`query_rejected`); the member is resubscribed later.
 */
import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { ByteReader, ByteWriter } from '../core/bytes.js';
import { readVersion, versionToText, writeVersion, type Entry } from '../core/entry.js';
import { MalformedError } from '../core/errors.js';
import { keyBytesMax, valueBytesMax } from '../core/limits.js';
import type { AppliedChange } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import { FramedStream } from './framed-stream.js';
import type { CkvLibp2p } from './libp2p.js';

const watchVersion = 1;
/** Only append: the values are part of the protocol. */
const WatchFrame = { change: 1, behind: 2, changeExpiring: 3 } as const;
const watchFrameBytesMax = keyBytesMax + 64;
/** Bytes a member queues for one remote watcher before it drops it (behind). */
export const watchQueueBytesMax = 4 * 1024 * 1024;
/** Changes remembered to drop the copies from a write's other owners. */
export const watchSeenMax = 65_536;
/** How often a watch looks for members to subscribe to (those that came up). */
export const watchResubscribeMs = 1_000;
/** Remote watchers served at once by a node. */
export const watchServedMax = 64;

export function watchProtocolId(cluster: string): string {
  return `/ckv/${cluster}/watch/1.0.0`;
}

/** A change as a member reports it. */
export interface RemoteChange {
  entry: Entry;
  valueBytes: number;
}

export function encodeChangeFrame(change: Pick<AppliedChange, 'entry'>): Uint8Array {
  const { entry } = change;
  const expiring = entry.value !== null && entry.expiresAtMs !== undefined;
  const w = new ByteWriter().u8(expiring ? WatchFrame.changeExpiring : WatchFrame.change).string(entry.key).u8(entry.value === null ? 1 : 0);
  writeVersion(w, entry.version);
  w.varint(entry.value?.byteLength ?? 0);
  if (expiring) w.varint(entry.expiresAtMs!);
  return w.finish();
}

/** A member's frame: a change, or 'behind'. Throws MalformedError. */
export function decodeWatchFrame(bytes: Uint8Array): RemoteChange | 'behind' {
  const r = new ByteReader(bytes);
  const type = r.u8();
  if (type === WatchFrame.behind) {
    r.end();
    return 'behind';
  }
  if (type !== WatchFrame.change && type !== WatchFrame.changeExpiring) throw new MalformedError(`unknown watch frame ${type}`);
  const key = r.string(keyBytesMax, 'key');
  if (key.length === 0) throw new MalformedError('empty key');
  const deleted = r.u8();
  if (deleted > 1) throw new MalformedError(`bad deleted flag ${deleted}`);
  const version = readVersion(r);
  const valueBytes = r.varint();
  if (valueBytes > valueBytesMax || (deleted === 1 && valueBytes !== 0)) throw new MalformedError(`bad value size ${valueBytes}`);
  const expiresAtMs = type === WatchFrame.changeExpiring ? r.varint() : undefined;
  if (expiresAtMs !== undefined && deleted === 1) throw new MalformedError('a deletion with an expiry');
  r.end();
  const value = deleted === 1 ? null : new Uint8Array(0);
  return { entry: expiresAtMs === undefined ? { key, value, version } : { key, value, version, expiresAtMs }, valueBytes };
}

export interface WatchParts {
  libp2p: CkvLibp2p;
  counters: Counters;
  /** Subscribe to this node's applied changes; returns the unsubscribe. */
  onChange: (listener: (change: AppliedChange) => void) => () => void;
  /** The up members' peer ids (not this node). */
  upPeerIds: () => string[];
}

export class WatchService {
  readonly protocol: string;
  private served = 0;

  constructor(
    private readonly parts: WatchParts,
    cluster: string,
  ) {
    this.protocol = watchProtocolId(cluster);
  }

  async start(): Promise<void> {
    await this.parts.libp2p.handle(this.protocol, (stream, connection) => void this.serve(stream, connection), { maxInboundStreams: 16 });
  }

  async stop(): Promise<void> {
    await this.parts.libp2p.unhandle(this.protocol).catch(() => undefined);
  }

  /** A member's side: its changes under the prefix to the watcher, until it goes away or falls behind. */
  private async serve(stream: Stream, _connection: Connection): Promise<void> {
    const framed = new FramedStream(stream, { frameBytesMax: watchFrameBytesMax });
    if (this.served >= watchServedMax) {
      framed.abort(new Error('too many watchers'));
      return;
    }
    this.served++;
    let unsubscribe: (() => void) | undefined;
    try {
      const request = await framed.read();
      if (!request) return;
      const r = new ByteReader(request);
      if (r.u8() !== watchVersion) throw new MalformedError('unsupported watch version');
      const prefix = r.string(keyBytesMax, 'prefix');
      r.end();
      let queuedBytes = 0;
      let ended = false;
      const done = new Promise<void>((resolve) => {
        unsubscribe = this.parts.onChange((change) => {
          if (ended || !change.entry.key.startsWith(prefix)) return;
          if (queuedBytes > watchQueueBytesMax) {
            ended = true;
            void framed.write(Uint8Array.of(WatchFrame.behind)).finally(() => resolve());
            return;
          }
          const frame = encodeChangeFrame(change);
          queuedBytes += frame.byteLength;
          framed.write(frame).then(
            () => (queuedBytes -= frame.byteLength),
            () => {
              ended = true;
              resolve();
            },
          );
        });
        // The watcher closes its side when it stops watching.
        void framed.read().then(
          () => resolve(),
          () => resolve(),
        );
      });
      await done;
      await framed.close().catch(() => undefined);
    } catch (error) {
      this.parts.counters.add('query_rejected');
      framed.abort(error as Error);
    } finally {
      unsubscribe?.();
      this.served--;
    }
  }

  /**
   * The watcher's side: subscribes to every up member for `prefix` (and to those that come up
   * later), calls `listener` for each change they report (each write once per owner: dedupe
   * with ChangeDedupe) and `onBehind` if a member dropped us. Returns the function that ends it.
   */
  watch(prefix: string, listener: (change: RemoteChange) => void, onBehind: () => void): () => void {
    /** Members followed (or being dialed), and their streams once open. */
    const following = new Set<string>();
    const streams = new Set<FramedStream>();
    let stopped = false;
    const follow = async (peerId: string): Promise<void> => {
      const stream = await this.parts.libp2p.dialProtocol(peerIdFromString(peerId), this.protocol, { signal: AbortSignal.timeout(5_000) });
      const framed = new FramedStream(stream, { frameBytesMax: watchFrameBytesMax });
      streams.add(framed);
      try {
        if (stopped) return;
        await framed.write(new ByteWriter().u8(watchVersion).string(prefix).finish());
        for (;;) {
          const frame = await framed.read();
          if (!frame || stopped) return;
          let change: RemoteChange | 'behind';
          try {
            change = decodeWatchFrame(frame);
          } catch (error) {
            this.parts.counters.add('query_rejected');
            throw error;
          }
          if (change === 'behind') {
            if (!stopped) onBehind();
            return;
          }
          listener(change);
        }
      } finally {
        streams.delete(framed);
        framed.abort(new Error('watch ended'));
      }
    };
    const subscribe = (): void => {
      if (stopped) return;
      for (const peerId of this.parts.upPeerIds()) {
        if (following.has(peerId)) continue;
        following.add(peerId);
        void follow(peerId)
          .catch(() => undefined)
          .finally(() => following.delete(peerId));
      }
    };
    subscribe();
    const timer = setInterval(subscribe, watchResubscribeMs);
    timer.unref();
    return () => {
      stopped = true;
      clearInterval(timer);
      for (const framed of streams) framed.abort(new Error('watch ended'));
      streams.clear();
    };
  }
}

/** Remembers the last watchSeenMax (key, version) pairs: each write is shown once, whichever owners report it. */
export class ChangeDedupe {
  private readonly seen = new Set<string>();

  /**
   * True the first time this version of this key is seen, as a value or as a tombstone (an
   * expired value's tombstone has the value's version: its expiry is a change of its own).
   */
  first(entry: Entry): boolean {
    const id = `${versionToText(entry.version)}${entry.value === null ? ' del ' : ' '}${entry.key}`;
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > watchSeenMax) this.seen.delete(this.seen.values().next().value!);
    return true;
  }
}
