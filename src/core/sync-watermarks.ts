/**
 * Sync watermarks: per peer (by node id), the position of the peer's applied sequence
 * (epoch, seq) up to which this node holds everything the peer had applied. Recorded when an
 * initiated session proves it (our root was the root the peer reported with that position:
 * sync-session.ts, `heldPosition`); named as `since` in the next Hello to that peer, so
 * after a restart or a healed partition the peer streams only what it applied after it.
 *
 * A watermark is a hint, never trusted for correctness: a wrong one (lost data, a wiped peer
 * that kept its epoch) costs a descent, because the session still compares roots and the
 * descent repairs whatever the delta missed. Bounded by `membersMax` peers: recording one
 * more drops the one recorded longest ago. Persisted by the replica as one meta row
 * (`encode`/`decode`); a row that does not decode is dropped (every peer then gets a descent).
 */
import { ByteReader, ByteWriter } from './bytes.js';
import { MalformedError } from './errors.js';
import { membersMax } from './limits.js';
import { epochBytes, type SyncPosition } from './sync-frames.js';

/** Row format. Only append. */
const watermarksFormat = 1;
const nodeIdTextMax = 64;

export function epochsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class SyncWatermarks {
  /** In recording order (oldest first): a Map keeps insertion order, and a record re-inserts. */
  private readonly byPeer = new Map<string, SyncPosition>();
  /**
   * Per peer, this node's own applied seq when its watermark was last proven (memory only:
   * a watermark read at open counts as proven at `assumeProvenAt`'s seq). How many entries the
   * next delta from that peer would resend (watermark-refresh.ts).
   */
  private readonly provenAtSeq = new Map<string, number>();

  constructor(private readonly max = membersMax) {}

  get size(): number {
    return this.byPeer.size;
  }

  get(nodeId: string): SyncPosition | undefined {
    return this.byPeer.get(nodeId);
  }

  /**
   * Record that we hold everything `nodeId` had applied up to `position`. Within one epoch a
   * watermark only moves forward (two sessions may end out of order); another epoch replaces
   * it (the peer's store was made anew). Returns whether anything changed.
   */
  record(nodeId: string, position: SyncPosition): boolean {
    const current = this.byPeer.get(nodeId);
    if (current !== undefined && epochsEqual(current.epoch, position.epoch) && current.seq >= position.seq) return false;
    this.byPeer.delete(nodeId);
    this.byPeer.set(nodeId, { epoch: position.epoch.slice(), seq: position.seq });
    while (this.byPeer.size > this.max) {
      const oldest = this.byPeer.keys().next().value!;
      this.byPeer.delete(oldest);
      this.provenAtSeq.delete(oldest);
    }
    return true;
  }

  /** Forget a peer's watermark (its next session is a descent). */
  forget(nodeId: string): void {
    this.byPeer.delete(nodeId);
    this.provenAtSeq.delete(nodeId);
  }

  /** A session proved we hold the peer's position while our own applied seq was `localSeq`. */
  noteProven(nodeId: string, localSeq: number): void {
    this.provenAtSeq.set(nodeId, localSeq);
  }

  /** At open: every watermark read counts as proven at `localSeq`. */
  assumeProvenAt(localSeq: number): void {
    for (const nodeId of this.byPeer.keys()) this.provenAtSeq.set(nodeId, localSeq);
  }

  /** Peers whose watermark was last proven `entriesMin` or more of our applied entries before `localSeq`. */
  lagging(localSeq: number, entriesMin: number): string[] {
    const lagging: string[] = [];
    for (const nodeId of this.byPeer.keys()) {
      if (localSeq - (this.provenAtSeq.get(nodeId) ?? localSeq) >= entriesMin) lagging.push(nodeId);
    }
    return lagging;
  }

  encode(): Uint8Array {
    const w = new ByteWriter();
    w.u8(watermarksFormat).varint(this.byPeer.size);
    for (const [nodeId, position] of this.byPeer) w.string(nodeId).raw(position.epoch).varint(position.seq);
    return w.finish();
  }

  /** The watermarks in `bytes`, or empty ones if they do not decode (each peer then gets a descent). */
  static decode(bytes: Uint8Array | undefined, max = membersMax): SyncWatermarks {
    const watermarks = new SyncWatermarks(max);
    if (bytes === undefined) return watermarks;
    try {
      const r = new ByteReader(bytes);
      if (r.u8() !== watermarksFormat) throw new MalformedError('unknown watermarks format');
      const count = r.bounded(max, 'watermark count');
      for (let i = 0; i < count; i++) {
        const nodeId = r.string(nodeIdTextMax, 'node id');
        const epoch = r.raw(epochBytes).slice();
        watermarks.record(nodeId, { epoch, seq: r.bounded(Number.MAX_SAFE_INTEGER, 'seq') });
      }
      r.end();
    } catch (error) {
      if (!(error instanceof MalformedError)) throw error;
      return new SyncWatermarks(max);
    }
    return watermarks;
  }
}
