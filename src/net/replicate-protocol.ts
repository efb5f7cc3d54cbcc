/**
 * `/ckv/<cluster>/replicate/1.0.0`: a coordinator hands writes to a partition's owners and
 * reads keys from them (partitioned mode). One long-lived stream per (coordinator, owner),
 * opened at the first request and kept while it works; requests are pipelined on it and
 * answered in order, each reply naming its request's id.
 *
 * Frames (length-prefixed, FramedStream), integers LEB128 varints:
 *
 *     frame   = version:u8 (1) type:u8 id:varint body      type (only append):
 *     apply   = count:varint (1..replicateEntriesMax) entry*    1: store these entries
 *     applied = count:varint outcome:u8 * count                 2: what became of each
 *     read    = key:text                                        3: your entry of this key?
 *     entry   = found:u8 [entry]                                4: it (tombstones included)
 *     outcome: 1 applied, 2 older (it holds this version or newer), 3 not-owner, 4 refused-clock
 *     (stamped too far in its future), 5 refused-invalid (only append)
 *
 * The owner never trusts the coordinator: entries go through `replica.applyRemote`, which
 * checks each one's limits, its stamp against the clock drift bound and that this node holds
 * the key's partition (the replica's `holds`), and replies once the accepted ones are durable
 * (applyRemote resolves after the LevelDB commit). An `applied` or `older` outcome is an ack.
 *
 * Coordinator side (`ReplicateClient`): writes to one owner issued together are batched into
 * one frame (up to `replicateEntriesMax` entries or `replicateBatchBytesTarget` bytes; one large
 * value goes alone), with at most `replicateInFlightMax` frames unanswered per owner; the rest
 * wait in a queue bounded in entries (`replicateQueuedEntriesMax`; past it a write to that owner
 * fails at once). Replies are read only while requests are unanswered, with `replicateIdleMs`
 * of silence allowed: an owner that stops answering fails every request on the stream, which
 * is dropped (the next request dials again); a stream that closes while idle (the owner
 * stopped, the connection dropped) is dropped at once.
 *
 * Bounds on the owner: frames up to `frameBytesMax` (a 64 MiB value fits) within the node's
 * frame budget; `replicateInboundStreamsMax` streams at once node-wide (more are reset) and 4
 * per connection; `replicateInFlightMax` requests applied at once per stream (it reads no
 * further frame meanwhile, so HTTP/2-style backpressure reaches the coordinator). A malformed
 * frame (bad version, type, count, entry, trailing bytes) resets the stream and is counted
 * (`replicate_rejected`); it never throws past the handler.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { ByteReader, ByteWriter } from '../core/bytes.js';
import { checkKey, readEntry, writeEntry, type Entry } from '../core/entry.js';
import { CkvError, MalformedError } from '../core/errors.js';
import { frameBytesMax, keyBytesMax, valueBytesMax as valueBytesMaxDefault } from '../core/limits.js';
import type { Replica } from '../core/replica.js';
import { replicateOutcomeOf, replicateOutcomes, type ReplicateOutcome } from '../core/write-quorum.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import { FramedStream } from './framed-stream.js';
import type { CkvLibp2p } from './libp2p.js';

const replicateVersion = 1;
/** Only append: the values are part of the protocol. */
export const ReplicateType = { apply: 1, applied: 2, read: 3, entry: 4 } as const;
/** Entries in one apply frame (the replica's batch size). */
export const replicateEntriesMax = 1024;
/** A batch stops growing past this many bytes (a single larger entry is sent alone). */
export const replicateBatchBytesTarget = 256 * 1024;
/** Frames unanswered on one stream, each side. */
export const replicateInFlightMax = 8;
/** Entries waiting for one owner beyond those in flight. */
export const replicateQueuedEntriesMax = 16 * 1024;
/** Streams an owner serves at once, node-wide. */
export const replicateInboundStreamsMax = 256;
/** Silence allowed while a request is unanswered before the stream is dropped. */
export const replicateIdleMs = 10_000;
/** Dialing an owner gives up after this long. */
const dialTimeoutMs = 5_000;

export function replicateProtocolId(cluster: string): string {
  return `/ckv/${cluster}/replicate/1.0.0`;
}

/** Wire codes of ReplicateOutcome: index + 1. */
function outcomeCode(outcome: ReplicateOutcome): number {
  return replicateOutcomes.indexOf(outcome) + 1;
}

function outcomeOf(code: number): ReplicateOutcome {
  const outcome = replicateOutcomes[code - 1];
  if (outcome === undefined) throw new MalformedError(`unknown replicate outcome ${code}`);
  return outcome;
}

export type ReplicateRequest = { type: 'apply'; id: number; entries: Entry[] } | { type: 'read'; id: number; key: string };
export type ReplicateReply = { type: 'applied'; id: number; outcomes: ReplicateOutcome[] } | { type: 'entry'; id: number; entry: Entry | undefined };

export function encodeApply(id: number, entries: readonly Entry[]): Uint8Array {
  const w = new ByteWriter(1024).u8(replicateVersion).u8(ReplicateType.apply).varint(id).varint(entries.length);
  for (const entry of entries) writeEntry(w, entry);
  return w.finish();
}

export function encodeRead(id: number, key: string): Uint8Array {
  return new ByteWriter().u8(replicateVersion).u8(ReplicateType.read).varint(id).string(key).finish();
}

export function encodeApplied(id: number, outcomes: readonly ReplicateOutcome[]): Uint8Array {
  const w = new ByteWriter(16 + outcomes.length).u8(replicateVersion).u8(ReplicateType.applied).varint(id).varint(outcomes.length);
  for (const outcome of outcomes) w.u8(outcomeCode(outcome));
  return w.finish();
}

export function encodeEntryReply(id: number, entry: Entry | undefined): Uint8Array {
  const w = new ByteWriter(64 + (entry?.value?.byteLength ?? 0)).u8(replicateVersion).u8(ReplicateType.entry).varint(id).u8(entry ? 1 : 0);
  if (entry) writeEntry(w, entry);
  return w.finish();
}

function readHeader(r: ByteReader): { type: number; id: number } {
  const version = r.u8();
  if (version !== replicateVersion) throw new MalformedError(`unsupported replicate version ${version}`);
  return { type: r.u8(), id: r.varint() };
}

/** A request as the owner reads it. Throws MalformedError. */
export function decodeRequest(bytes: Uint8Array, valueBytesMax = valueBytesMaxDefault): ReplicateRequest {
  const r = new ByteReader(bytes);
  const { type, id } = readHeader(r);
  if (type === ReplicateType.apply) {
    const count = r.bounded(replicateEntriesMax, 'entries in an apply frame');
    if (count === 0) throw new MalformedError('an apply frame with no entry');
    const entries: Entry[] = [];
    for (let i = 0; i < count; i++) entries.push(readEntry(r, valueBytesMax));
    r.end();
    return { type: 'apply', id, entries };
  }
  if (type === ReplicateType.read) {
    const key = r.string(keyBytesMax, 'key');
    r.end();
    if (key.length === 0) throw new MalformedError('empty key');
    return { type: 'read', id, key };
  }
  throw new MalformedError(`unsupported replicate request type ${type}`);
}

/** A reply as the coordinator reads it. Throws MalformedError. */
export function decodeReply(bytes: Uint8Array, valueBytesMax = valueBytesMaxDefault): ReplicateReply {
  const r = new ByteReader(bytes);
  const { type, id } = readHeader(r);
  if (type === ReplicateType.applied) {
    const count = r.bounded(replicateEntriesMax, 'outcomes');
    const outcomes: ReplicateOutcome[] = [];
    for (let i = 0; i < count; i++) outcomes.push(outcomeOf(r.u8()));
    r.end();
    return { type: 'applied', id, outcomes };
  }
  if (type === ReplicateType.entry) {
    const found = r.u8();
    if (found > 1) throw new MalformedError(`bad found flag ${found}`);
    const entry = found === 1 ? readEntry(r, valueBytesMax) : undefined;
    r.end();
    return { type: 'entry', id, entry };
  }
  throw new MalformedError(`unsupported replicate reply type ${type}`);
}

/** An owner could not be reached, or its stream failed: the request's outcome is unknown. */
export class OwnerUnreachableError extends CkvError {
  constructor(readonly peerId: string, why: string) {
    super('ERR_OWNER_UNREACHABLE', `owner ${peerId} unreachable: ${why}`);
    this.name = 'OwnerUnreachableError';
  }
}

export interface ReplicateComponents {
  libp2p: CkvLibp2p;
  replica: Replica;
  counters: Counters;
}

export interface ReplicateOptions {
  cluster: string;
  valueBytesMax?: number;
  /** Overrides for tests. */
  idleMs?: number;
  dial?: (peerId: string, protocol: string, signal: AbortSignal) => Promise<Stream>;
}

/** The owner side: serves apply and read requests from coordinators. */
export class ReplicateService {
  readonly protocol: string;
  private started = false;
  private inbound = 0;
  private readonly valueBytesMax: number;

  constructor(
    private readonly components: ReplicateComponents,
    options: ReplicateOptions,
  ) {
    this.protocol = replicateProtocolId(options.cluster);
    this.valueBytesMax = options.valueBytesMax ?? valueBytesMaxDefault;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.components.libp2p.handle(this.protocol, (stream, connection) => void this.serve(stream, connection), { maxInboundStreams: 4 });
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.components.libp2p.unhandle(this.protocol).catch(() => undefined);
  }

  /** Serves one stream until the peer closes it or sends something malformed. Never throws. */
  async serve(stream: Stream, _connection?: Connection): Promise<void> {
    if (this.inbound >= replicateInboundStreamsMax) {
      this.components.counters.add('replicate_refused_busy');
      stream.abort(new Error('too many replicate streams'));
      return;
    }
    this.inbound++;
    const framed = new FramedStream(stream, { frameBytesMax });
    // Replies leave in request order: each waits for the one before it.
    let replies: Promise<void> = Promise.resolve();
    const inFlight: Promise<void>[] = [];
    try {
      for (;;) {
        while (inFlight.length >= replicateInFlightMax) await inFlight.shift();
        const frame = await framed.read();
        if (frame === undefined) break;
        let request: ReplicateRequest;
        try {
          request = decodeRequest(frame, this.valueBytesMax);
        } catch (error) {
          this.components.counters.add('replicate_rejected');
          throw error;
        }
        const answer = this.answer(request);
        const previous = replies;
        replies = (async () => {
          const reply = await answer;
          await previous;
          await framed.write(reply);
        })();
        // Awaited below (or its failure reaches the next reply); marked handled so that a
        // failed reply never becomes an unhandled rejection (which would stop the process).
        replies.catch(() => undefined);
        inFlight.push(replies);
      }
      await replies;
      await framed.close().catch(() => undefined);
    } catch (error) {
      framed.abort(error instanceof Error ? error : new Error(errorText(error)));
    } finally {
      this.inbound--;
    }
  }

  private async answer(request: ReplicateRequest): Promise<Uint8Array> {
    if (request.type === 'read') {
      this.components.counters.add('replicate_reads_served');
      return encodeEntryReply(request.id, await this.components.replica.get(request.key));
    }
    this.components.counters.add('replicate_entries_received', request.entries.length);
    this.components.counters.add('replicate_frames_received');
    const report = await this.components.replica.applyRemote(request.entries, { outcomes: true });
    const outcomes = report.outcomes?.map(replicateOutcomeOf) ?? request.entries.map(() => 'applied' as const);
    return encodeApplied(request.id, outcomes);
  }
}

type Waiter =
  | { kind: 'apply'; count: number; resolve: (outcomes: ReplicateOutcome[]) => void; reject: (error: Error) => void }
  | { kind: 'read'; resolve: (entry: Entry | undefined) => void; reject: (error: Error) => void };

interface Queued {
  entry: Entry;
  bytes: number;
  resolve: (outcome: ReplicateOutcome) => void;
  reject: (error: Error) => void;
}

/** One owner's stream, its queue of writes and its unanswered requests. */
class OwnerChannel {
  private framed: Promise<FramedStream> | undefined;
  private readonly waiting = new Map<number, Waiter>();
  private readonly queue: Queued[] = [];
  private nextId = 1;
  private inFlight = 0;
  private reading = false;
  private flushScheduled = false;
  private closed = false;

  constructor(
    readonly peerId: string,
    private readonly open: () => Promise<FramedStream>,
    private readonly valueBytesMax: number,
    private readonly onMalformed: () => void,
    private readonly onDead: (channel: OwnerChannel) => void,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  apply(entry: Entry): Promise<ReplicateOutcome> {
    if (this.queue.length >= replicateQueuedEntriesMax) {
      return Promise.reject(new OwnerUnreachableError(this.peerId, `${this.queue.length} writes already wait for it`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, bytes: 32 + entry.key.length * 3 + (entry.value?.byteLength ?? 0), resolve, reject });
      this.scheduleFlush();
    });
  }

  read(key: string): Promise<Entry | undefined> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { kind: 'read', resolve, reject });
      this.send(id, encodeRead(id, key));
    });
  }

  close(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.onDead(this);
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
    for (const queued of this.queue.splice(0)) queued.reject(error);
    void this.framed?.then((framed) => framed.abort(error)).catch(() => undefined);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Writes issued in the same turn (one commit's, one PutMany's) go in one frame.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < replicateInFlightMax && !this.closed) {
      let bytes = 0;
      let take = 0;
      while (take < this.queue.length && take < replicateEntriesMax) {
        const next = this.queue[take]!.bytes;
        if (take > 0 && bytes + next > replicateBatchBytesTarget) break;
        bytes += next;
        take++;
      }
      const batch = this.queue.splice(0, take);
      const id = this.nextId++;
      this.inFlight++;
      this.waiting.set(id, {
        kind: 'apply',
        count: batch.length,
        resolve: (outcomes) => {
          this.inFlight--;
          batch.forEach((queued, i) => queued.resolve(outcomes[i]!));
          this.flush();
        },
        reject: (error) => {
          this.inFlight--;
          for (const queued of batch) queued.reject(error);
        },
      });
      this.send(
        id,
        encodeApply(
          id,
          batch.map((queued) => queued.entry),
        ),
      );
    }
  }

  private send(id: number, frame: Uint8Array): void {
    this.framed ??= this.open().then((framed) => {
      // A stream that ends while idle (the owner stopped, the connection dropped) retires the
      // channel at once, so the next request dials again instead of failing on a closed stream.
      framed.stream.addEventListener('close', () => this.close(new OwnerUnreachableError(this.peerId, 'the stream closed')), { once: true });
      return framed;
    });
    this.framed
      .then(async (framed) => {
        await framed.write(frame);
        if (!this.reading) void this.readReplies(framed);
      })
      .catch((error: unknown) => {
        if (this.waiting.has(id)) this.close(new OwnerUnreachableError(this.peerId, errorText(error)));
      });
  }

  /** Reads replies while requests are unanswered; an idle channel reads nothing (and never times out). */
  private async readReplies(framed: FramedStream): Promise<void> {
    this.reading = true;
    try {
      while (this.waiting.size > 0 && !this.closed) {
        // The stream's idle limit (readIdleMs) fails a read that hears nothing for idleMs.
        const frame = await framed.read();
        if (frame === undefined) throw new Error('the owner closed the stream');
        let reply: ReplicateReply;
        try {
          reply = decodeReply(frame, this.valueBytesMax);
        } catch (error) {
          this.onMalformed();
          throw error;
        }
        const waiter = this.waiting.get(reply.id);
        if (waiter === undefined || waiter.kind !== (reply.type === 'applied' ? 'apply' : 'read')) throw new MalformedError(`reply to no request (${reply.id})`);
        this.waiting.delete(reply.id);
        if (waiter.kind === 'apply' && reply.type === 'applied') {
          if (reply.outcomes.length !== waiter.count) {
            this.onMalformed();
            throw new MalformedError(`${reply.outcomes.length} outcomes for ${waiter.count} entries`);
          }
          waiter.resolve(reply.outcomes);
        } else if (waiter.kind === 'read' && reply.type === 'entry') waiter.resolve(reply.entry);
      }
    } catch (error) {
      this.close(new OwnerUnreachableError(this.peerId, errorText(error)));
    } finally {
      this.reading = false;
    }
  }
}

/** The coordinator side: one channel per owner, created on first use. */
export class ReplicateClient {
  readonly protocol: string;
  private readonly channels = new Map<string, OwnerChannel>();
  private readonly idleMs: number;
  private readonly valueBytesMax: number;
  private stopped = false;

  constructor(
    private readonly components: { counters: Counters },
    options: ReplicateOptions & { dial: NonNullable<ReplicateOptions['dial']> },
  ) {
    this.protocol = replicateProtocolId(options.cluster);
    this.idleMs = options.idleMs ?? replicateIdleMs;
    this.valueBytesMax = options.valueBytesMax ?? valueBytesMaxDefault;
    this.dial = options.dial;
  }

  private readonly dial: NonNullable<ReplicateOptions['dial']>;

  /** Stores `entry` on the owner with peer id `peerId`; resolves with its outcome once durable there. */
  apply(peerId: string, entry: Entry): Promise<ReplicateOutcome> {
    return this.channel(peerId).apply(entry);
  }

  /** The owner's entry of `key` (a tombstone has value null), or undefined. */
  read(peerId: string, key: string): Promise<Entry | undefined> {
    checkKey(key);
    return this.channel(peerId).read(key);
  }

  stop(): void {
    this.stopped = true;
    for (const channel of [...this.channels.values()]) channel.close(new OwnerUnreachableError(channel.peerId, 'this node is stopping'));
  }

  private channel(peerId: string): OwnerChannel {
    if (this.stopped) throw new OwnerUnreachableError(peerId, 'this node is stopping');
    let channel = this.channels.get(peerId);
    if (channel === undefined) {
      channel = new OwnerChannel(
        peerId,
        async () => {
          const stream = await this.dial(peerId, this.protocol, AbortSignal.timeout(dialTimeoutMs));
          return new FramedStream(stream, { frameBytesMax, readIdleMs: this.idleMs });
        },
        this.valueBytesMax,
        () => this.components.counters.add('replicate_rejected'),
        (dead) => {
          if (this.channels.get(dead.peerId) === dead) this.channels.delete(dead.peerId);
        },
      );
      this.channels.set(peerId, channel);
    }
    return channel;
  }
}

/** The dial function over a libp2p node. */
export function libp2pDial(libp2p: CkvLibp2p, peerIdOf: (peerId: string) => PeerId): NonNullable<ReplicateOptions['dial']> {
  return (peerId, protocol, signal) => libp2p.dialProtocol(peerIdOf(peerId), protocol, { signal });
}
