/**
 * `/ckv/<cluster>/gc/1.0.0`: tombstone GC by acknowledgement (docs/design-delivery-gc.md
 * section 2) between a partition's collector and its holders. One request frame, one reply
 * frame, then the stream closes. Frames: u8 version, u8 type (only append: the values are part
 * of the protocol).
 * - `floor` ("what is your floor?"): empty request; reply = u8 has-floor [u64 floor HLC],
 *   varint member count (at most membersMax) and their node ids (8 bytes each): the members
 *   the floor was computed over (full replication: the collector uses a floor only if it
 *   covers every member it knows; partitioned: informative).
 * - `push` (phase one): request = varint partition, varint count (1..gcFrameTombstonesMax),
 *   then the tombstones in the core entry encoding (entry.ts); the holder applies them as
 *   ordinary remote writes and replies u8 1 once each is durable, or stale (it holds a newer
 *   version, or its collected floor refused the key: it has it, as far as GC goes); u8 0
 *   otherwise (a clock-drift refusal, an entry not held, one not a tombstone).
 * - `delete` (phase two): request = varint partition, varint count, then per tombstone the key
 *   and its version; the holder raises the partition's collected floor (persisted), deletes
 *   each key whose row is still exactly that tombstone and replies u8 1, varint rows deleted.
 * The answering side is only a member of the cluster (the protocol id names it; the cluster
 * key, when set, keeps others out). A frame that does not decode (truncated, over a bound, a
 * key outside the partition named, trailing bytes) is dropped and counted (`gc_rejected`); on
 * the asking side it becomes that peer's error for the round.
 */
import type { PeerId, Stream } from '@libp2p/interface';
import { ByteReader, ByteWriter, fromHex, toHex } from '../core/bytes.js';
import { keyHashText, readEntry, readVersion, writeEntry, writeVersion, type Entry, type Version } from '../core/entry.js';
import { MalformedError } from '../core/errors.js';
import type { Hlc } from '../core/hlc.js';
import { keyBytesMax, membersMax, nodeIdBytes } from '../core/limits.js';
import { partitionCount, partitionOfHash, type PartitionId } from '../core/placement.js';
import { gcBatchMaxLimit } from '../core/tombstone-gc.js';
import type { Counters } from '../util/counters.js';
import { FramedStream } from './framed-stream.js';
import type { CkvLibp2p } from './libp2p.js';

const gcVersion = 1;
/** Only append: the values are part of the protocol. */
const GcType = { floor: 1, push: 2, delete: 3 } as const;
/** Tombstones in one push or delete frame (a round's batch is at most this). */
export const gcFrameTombstonesMax = gcBatchMaxLimit;
/** A request: gcFrameTombstonesMax tombstones with the longest keys (~1.1 MiB with 1 KiB keys). */
const gcFrameBytesMax = 64 + gcFrameTombstonesMax * (keyBytesMax + 40);
const gcTimeoutMs = 10_000;

/** A tombstone to push or delete: its key and exact version. */
export interface GcTombstone {
  readonly key: string;
  readonly version: Version;
}

/** A holder's answer to `floor`. */
export interface FloorAnswer {
  /** Undefined: it cannot vouch for any floor yet (full replication: a member not yet in sync). */
  readonly floor: Hlc | undefined;
  /** The members (node ids) the floor covers. */
  readonly members: readonly string[];
}

/** What the holder side does with requests (src/node/gc-holder.ts). */
export interface GcHandler {
  floor(): FloorAnswer;
  /** Phase one: true once every tombstone is durable here (or superseded, or refused by the floor). */
  push(partition: PartitionId, tombstones: readonly Entry[]): Promise<boolean>;
  /** Phase two: raise the floor, delete the unchanged rows; the rows deleted. */
  deleteIfUnchanged(partition: PartitionId, tombstones: readonly GcTombstone[]): Promise<number>;
}

export function gcProtocolId(cluster: string): string {
  return `/ckv/${cluster}/gc/1.0.0`;
}

function checkPartition(partition: number): PartitionId {
  if (partition >= partitionCount) throw new MalformedError(`partition ${partition} out of range`);
  return partition;
}

function checkCount(count: number): number {
  if (count < 1 || count > gcFrameTombstonesMax) throw new MalformedError(`${count} tombstones in a frame; 1..${gcFrameTombstonesMax}`);
  return count;
}

function checkInPartition(key: string, partition: PartitionId): void {
  if (partitionOfHash(keyHashText(key)) !== partition) throw new MalformedError('a key outside the partition named');
}

export class GcProtocol {
  readonly protocol: string;
  private started = false;

  constructor(
    private readonly components: { libp2p: CkvLibp2p; counters: Counters; valueBytesMax: number },
    cluster: string,
    private readonly handler: () => GcHandler | undefined,
  ) {
    this.protocol = gcProtocolId(cluster);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.components.libp2p.handle(this.protocol, (stream) => void this.serve(stream), { maxInboundStreams: 16 });
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.components.libp2p.unhandle(this.protocol).catch(() => undefined);
  }

  /** `peer`'s floor. Throws on failure. */
  floor(peer: PeerId): Promise<FloorAnswer> {
    return this.ask(peer, new ByteWriter().u8(gcVersion).u8(GcType.floor).finish(), (r) => {
      const floor = r.u8() === 1 ? r.u64() : undefined;
      const count = r.bounded(membersMax, 'members');
      const members: string[] = [];
      for (let i = 0; i < count; i++) members.push(toHex(r.raw(nodeIdBytes)));
      return { floor, members };
    });
  }

  /** Phase one to `peer`: whether it acknowledged. Throws on failure. */
  push(peer: PeerId, partition: PartitionId, tombstones: readonly GcTombstone[]): Promise<boolean> {
    const w = new ByteWriter().u8(gcVersion).u8(GcType.push).varint(partition).varint(checkCount(tombstones.length));
    for (const t of tombstones) writeEntry(w, { key: t.key, value: null, version: t.version });
    return this.ask(peer, w.finish(), (r) => r.u8() === 1);
  }

  /** Phase two to `peer`: the rows it deleted. Throws on failure or refusal. */
  delete(peer: PeerId, partition: PartitionId, tombstones: readonly GcTombstone[]): Promise<number> {
    const w = new ByteWriter().u8(gcVersion).u8(GcType.delete).varint(partition).varint(checkCount(tombstones.length));
    for (const t of tombstones) {
      w.string(t.key);
      writeVersion(w, t.version);
    }
    return this.ask(peer, w.finish(), (r) => {
      if (r.u8() !== 1) throw new MalformedError('delete refused');
      return r.varint();
    });
  }

  private async ask<T>(peer: PeerId, request: Uint8Array, read: (r: ByteReader) => T): Promise<T> {
    const signal = AbortSignal.timeout(gcTimeoutMs);
    const stream = await this.components.libp2p.dialProtocol(peer, this.protocol, { signal });
    const framed = new FramedStream(stream, { frameBytesMax: gcFrameBytesMax, signal });
    try {
      await framed.write(request);
      const reply = await framed.read();
      if (!reply) throw new Error('peer closed the gc request without a reply');
      let answer: T;
      try {
        const r = new ByteReader(reply);
        if (r.u8() !== gcVersion) throw new MalformedError('unsupported gc reply version');
        answer = read(r);
        r.end();
      } catch (error) {
        this.components.counters.add('gc_rejected');
        throw new MalformedError(`malformed gc reply from ${peer.toString()}: ${(error as Error).message}`);
      }
      await framed.close().catch(() => undefined);
      return answer;
    } catch (error) {
      framed.abort(error as Error);
      throw error;
    }
  }

  private async serve(stream: Stream): Promise<void> {
    const framed = new FramedStream(stream, { frameBytesMax: gcFrameBytesMax, signal: AbortSignal.timeout(gcTimeoutMs) });
    try {
      const request = await framed.read();
      if (!request) return;
      const handler = this.handler();
      if (!handler) throw new Error('gc not ready');
      const r = new ByteReader(request);
      if (r.u8() !== gcVersion) throw new MalformedError('unsupported gc version');
      const type = r.u8();
      const w = new ByteWriter().u8(gcVersion);
      if (type === GcType.floor) {
        r.end();
        const answer = handler.floor();
        if (answer.floor === undefined) w.u8(0);
        else w.u8(1).u64(answer.floor);
        const members = answer.members.slice(0, membersMax);
        w.varint(members.length);
        for (const member of members) w.raw(fromHex(member));
      } else if (type === GcType.push) {
        const partition = checkPartition(r.varint());
        const count = checkCount(r.varint());
        const entries: Entry[] = [];
        for (let i = 0; i < count; i++) {
          const entry = readEntry(r, this.components.valueBytesMax);
          if (entry.value !== null) throw new MalformedError('a live value pushed as a tombstone');
          checkInPartition(entry.key, partition);
          entries.push(entry);
        }
        r.end();
        w.u8((await handler.push(partition, entries)) ? 1 : 0);
      } else if (type === GcType.delete) {
        const partition = checkPartition(r.varint());
        const count = checkCount(r.varint());
        const tombstones: GcTombstone[] = [];
        for (let i = 0; i < count; i++) {
          const key = r.string(keyBytesMax, 'key');
          const version = readVersion(r);
          checkInPartition(key, partition);
          tombstones.push({ key, version });
        }
        r.end();
        w.u8(1).varint(await handler.deleteIfUnchanged(partition, tombstones));
      } else throw new MalformedError(`unsupported gc request type ${type}`);
      await framed.write(w.finish());
      await framed.close();
    } catch (error) {
      if (error instanceof MalformedError) this.components.counters.add('gc_rejected');
      framed.abort(error as Error);
    }
  }
}
