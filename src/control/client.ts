/**
 * The control API client used by the CLI (and by tests and benches): promises and async
 * iterables over the small HTTP/2 gRPC client in h2.ts with the hand-written codecs in
 * wire.ts, so a CLI command loads neither grpc-js nor protobufjs. Every unary call has a
 * deadline; "no node at this socket" is one error type, "this socket is another user's"
 * another, and a write whose connection was lost after it was sent in full is a third
 * (OutcomeUnknownError: it may or may not have been applied).
 *
 * Values stream: `put` sends a value over unaryPutBytesMax as a PutStream of ~1 MiB
 * messages, `putStream` takes any async source (a file, stdin) without holding it whole, and
 * `getStream` hands the value over in the pieces it arrives in.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { CkvError } from '../core/errors.js';
import { ConnectionLostError, GrpcChannel, GrpcStatus, GrpcStatusError, type Call } from './h2.js';
import { grpcMessageBytesMax, unaryPutBytesMax, valueChunkBytes } from './limits.js';
import type {
  ChangeMessage,
  EntryMessage,
  HealthReplyMessage,
  HolderMessage,
  LayoutReplyMessage,
  PeerMessage,
  StatusMessage,
  SyncProgressMessage,
  VersionMessage,
  PurgeReplyMessage,
  GcStateMessage,
  GcRunReplyMessage,
  BalanceProgressMessage,
} from './proto.js';
import * as wire from './wire.js';

/** Unary calls give up after this; a 64 MiB put over a Unix socket takes well under it. */
const unaryDeadlineMs = 60_000;

/**
 * A write's condition as the API takes it: `ifVersion`, a version's text as replies print it
 * ("wallMs.counter@node"); `ifAbsent`, the key holds nothing or a tombstone. At most one.
 */
export interface WriteConditionText {
  ifVersion?: string;
  ifAbsent?: boolean;
}

export class NodeUnreachableError extends CkvError {
  constructor(readonly socketPath: string) {
    super('ERR_NODE_UNREACHABLE', `no node is running at ${socketPath} (start one with: ckv node start)`);
    this.name = 'NodeUnreachableError';
  }
}

/**
 * The socket (or a directory on its way) is not this user's to use: the node runs as another
 * user (the socket is 0600). Not "no node is running": one may well be.
 */
export class SocketPermissionError extends CkvError {
  constructor(readonly socketPath: string) {
    super(
      'ERR_SOCKET_PERMISSION',
      `permission denied (EACCES) on the control socket ${socketPath}: the node runs as another user; run ckv as that user`,
    );
    this.name = 'SocketPermissionError';
  }
}

/**
 * A write was sent in full, then the connection closed before the node answered: it may or
 * may not have been applied.
 */
export class OutcomeUnknownError extends CkvError {
  constructor(message: string) {
    super('ERR_OUTCOME_UNKNOWN', message);
    this.name = 'OutcomeUnknownError';
  }
}

/** Partitioned mode: which owners a read asked and what each answered (empty in full mode). */
export interface ReadFields {
  from: string;
  owners: string[];
  asked: number;
  answers: OwnerAnswerMessage[];
}

export interface OwnerAnswerMessage {
  nodeId: string;
  found: boolean;
  version: VersionMessage | null;
  deleted: boolean;
  error: string;
}

/** Partitioned mode: where to read (`get --from`), and whether fewer answers will do. */
export interface ReadOptionsText {
  from?: string;
  allowPartial?: boolean;
}

export interface GetResult extends ReadFields {
  found: boolean;
  value: Buffer;
  version: VersionMessage | null;
  deleted: boolean;
  /** A value written with a TTL: when it expires (wall ms); 0: never. */
  expiresAtMs: number;
}

/** The head of a GetStream: what the key holds, then its value in pieces. */
export interface GetStreamResult extends ReadFields {
  found: boolean;
  version: VersionMessage | null;
  deleted: boolean;
  /** A value written with a TTL: when it expires (wall ms); 0: never. */
  expiresAtMs: number;
  valueBytes: number;
  chunks: AsyncIterable<Buffer>;
}

/** A write's reply: the version, and in partitioned mode the owners and those that acked. */
export interface PutReplyMessage {
  version: VersionMessage;
  owners: string[];
  acked: string[];
}

/** The whereis reply (partitioned fields empty in full-replication mode). */
export interface WhereIsReplyMessage {
  holders: HolderMessage[];
  partitioned: boolean;
  partition: number;
  layouts: { version: string; owners: { nodeId: string; peerId: string; up: boolean }[] }[];
  readOwners: string[];
}

export interface Cancellable<T> extends AsyncIterable<T> {
  cancel(): void;
}

const service = '/ckv.v1.Kv/';
/** What a put whose outcome is unknown says (README, exit code 6). */
const putOutcome = 'the node went away after the value was sent; it may or may not be stored: check with ckv get';

export class ControlClient {
  private readonly channel: GrpcChannel;

  constructor(readonly socketPath: string) {
    this.channel = new GrpcChannel(socketPath, grpcMessageBytesMax);
  }

  /**
   * A client for the node at `socketPath`; throws NodeUnreachableError if there is no socket,
   * SocketPermissionError if this user may not even look at it.
   */
  static connect(socketPath: string): ControlClient {
    try {
      statSync(socketPath);
      accessSync(socketPath, constants.W_OK); // connecting to a Unix socket needs write permission on it
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') throw new SocketPermissionError(socketPath);
      throw new NodeUnreachableError(socketPath);
    }
    return new ControlClient(socketPath);
  }

  close(): void {
    this.channel.close();
  }

  /**
   * A connection refused for permission is SocketPermissionError; any other connection
   * failure means no node is listening at the socket.
   */
  translate(error: unknown): unknown {
    if (error instanceof GrpcStatusError && error.code === GrpcStatus.UNAVAILABLE && !(error instanceof ConnectionLostError)) {
      if (/EACCES|EPERM/.test(error.details)) return new SocketPermissionError(this.socketPath);
      if (/cannot connect|ENOENT|ECONNREFUSED/i.test(error.details)) return new NodeUnreachableError(this.socketPath);
    }
    return error;
  }

  /** translate(), and for a write sent in full whose connection then closed: OutcomeUnknownError(`unknown`). */
  private translateWrite(error: unknown, unknown: string): unknown {
    if (error instanceof ConnectionLostError && error.requestSent) return new OutcomeUnknownError(unknown);
    return this.translate(error);
  }

  private async send(call: Call, schema: wire.Schema, request: object): Promise<void> {
    const { parts, bytes } = wire.encodeMessage(schema, request);
    await call.write(parts, bytes);
  }

  /**
   * `unknown`: the call writes, and this is what to say if the connection is lost after it
   * was sent in full (its outcome is then unknown).
   */
  private async unary<Res>(method: wire.Method, request: object, unknown?: string): Promise<Res> {
    const { request: requestSchema, reply: replySchema } = wire.methods[method];
    const call = this.channel.call(service + method, { deadlineMs: unaryDeadlineMs });
    try {
      await this.send(call, requestSchema, request);
      call.end();
      let reply: Res | undefined;
      for await (const message of call.messages()) reply = wire.decode<Res>(replySchema, message);
      if (reply === undefined) throw new GrpcStatusError(GrpcStatus.INTERNAL, `${method}: the node sent no reply`);
      return reply;
    } catch (error) {
      throw unknown === undefined ? this.translate(error) : this.translateWrite(error, unknown);
    }
  }

  private stream<Res>(method: wire.Method, request: object): Cancellable<Res> {
    const { request: requestSchema, reply: replySchema } = wire.methods[method];
    const call = this.channel.call(service + method);
    const sent = this.send(call, requestSchema, request).then(() => call.end());
    const translate = this.translate.bind(this);
    return {
      cancel: () => call.cancel(),
      async *[Symbol.asyncIterator]() {
        try {
          await sent;
          for await (const message of call.messages()) yield wire.decode<Res>(replySchema, message);
        } catch (error) {
          throw translate(error);
        } finally {
          if (!call.ended) call.cancel(); // the reader stopped early (break, an error of its own)
        }
      },
    };
  }

  /**
   * Stores a value; one over unaryPutBytesMax goes as a PutStream, in pieces. With a
   * `condition`, only if it holds on the node (else a GrpcStatusError ABORTED naming the
   * current version; nothing is written).
   */
  put(key: string, value: Uint8Array, condition: WriteConditionText = {}, consistency = '', ttlMs = 0): Promise<PutReplyMessage> {
    if (value.byteLength > unaryPutBytesMax) return this.putStream(key, value.byteLength, [value], condition, consistency, ttlMs);
    return this.unary('Put', { key, value, ...condition, consistency, ...(ttlMs > 0 ? { ttlMs } : {}) }, putOutcome);
  }

  /**
   * Stores a value of `valueBytes` bytes read from `source` (any chunk sizes), sent in
   * messages of at most valueChunkBytes, waiting on HTTP/2 flow control: only a few pieces
   * are ever held. The node refuses a wrong total, a bad key or a too-large value; nothing is
   * stored then.
   */
  async putStream(
    key: string,
    valueBytes: number,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    condition: WriteConditionText = {},
    consistency = '',
    ttlMs = 0,
  ): Promise<PutReplyMessage> {
    const call = this.channel.call(`${service}PutStream`, { deadlineMs: unaryDeadlineMs });
    try {
      await this.send(call, wire.PutChunk, { key, valueBytes, ...condition, consistency, ...(ttlMs > 0 ? { ttlMs } : {}) });
      for await (const chunk of source) {
        for (let offset = 0; offset < chunk.byteLength && !call.ended; offset += valueChunkBytes) {
          await this.send(call, wire.PutChunk, { data: chunk.subarray(offset, offset + valueChunkBytes) });
        }
        if (call.ended) break; // refused early: the status says why
      }
      call.end();
      let reply: PutReplyMessage | undefined;
      for await (const message of call.messages()) reply = wire.decode(wire.PutReply, message);
      if (!reply) throw new GrpcStatusError(GrpcStatus.INTERNAL, 'PutStream: the node sent no reply');
      return reply;
    } catch (error) {
      if (!call.ended) call.cancel();
      throw this.translateWrite(error, putOutcome);
    }
  }

  /**
   * A PutPipeline: many puts in flight on one stream, each answered on its own. Close it when
   * done (puts still in flight are answered first).
   */
  pipeline(): PutPipeline {
    return new PutPipeline(this.channel.call(`${service}PutPipeline`), this.translate.bind(this));
  }

  /**
   * Many puts in one call (at most putManyCountMax); each result has a version or an error
   * (and its gRPC code). A put with `delete` writes a tombstone; each may carry a condition
   * and, in partitioned mode, a consistency (one, quorum, all; default quorum).
   */
  putMany(
    puts: ({ key: string; value?: Uint8Array; delete?: boolean; consistency?: string; ttlMs?: number } & WriteConditionText)[],
  ): Promise<{ results: { version: VersionMessage | null; error: string; code: number }[] }> {
    return this.unary('PutMany', { puts }, 'the node went away after the puts were sent; they may or may not be stored: check with ckv get');
  }

  /** The whole value in one buffer (gathered from a GetStream). */
  async get(key: string, options: ReadOptionsText = {}): Promise<GetResult> {
    const head = await this.getStream(key, options);
    const value = Buffer.allocUnsafe(head.valueBytes);
    let filled = 0;
    for await (const chunk of head.chunks) {
      if (filled + chunk.byteLength > value.byteLength) throw new GrpcStatusError(GrpcStatus.INTERNAL, 'GetStream: more bytes than announced');
      value.set(chunk, filled);
      filled += chunk.byteLength;
    }
    if (filled !== value.byteLength) throw new GrpcStatusError(GrpcStatus.INTERNAL, `GetStream: ${filled} of ${value.byteLength} bytes`);
    return { found: head.found, value, version: head.version, deleted: head.deleted, expiresAtMs: head.expiresAtMs, from: head.from, owners: head.owners, asked: head.asked, answers: head.answers };
  }

  /** The value in the pieces it arrives in: a 64 MiB value is never whole in this process. */
  async getStream(key: string, options: ReadOptionsText = {}): Promise<GetStreamResult> {
    const replies = this.stream<GetChunkMessage>('GetStream', { key, ...options })[Symbol.asyncIterator]();
    const first = await replies.next();
    if (first.done) throw new GrpcStatusError(GrpcStatus.INTERNAL, 'GetStream: the node sent no reply');
    const head = first.value;
    const valueBytes = Number(head.valueBytes);
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        if (head.data.byteLength > 0) yield head.data;
        for (;;) {
          const next = await replies.next();
          if (next.done) return;
          yield next.value.data;
        }
      } finally {
        await replies.return?.(undefined);
      }
    }
    return {
      found: head.found,
      version: head.version,
      deleted: head.deleted,
      expiresAtMs: Number(head.expiresAtMs ?? 0),
      valueBytes,
      chunks: chunks(),
      from: head.from,
      owners: head.owners,
      asked: head.asked,
      answers: head.answers,
    };
  }

  /** Deletes (a tombstone); with `ifVersion`, only if the key holds exactly that version; `consistency` as put's. */
  delete(key: string, condition: { ifVersion?: string } = {}, consistency = ''): Promise<{ version: VersionMessage }> {
    return this.unary('Delete', { key, ...condition, consistency }, 'the node went away after the delete was sent; it may or may not be applied: check with ckv haskey');
  }
  health(): Promise<HealthReplyMessage> {
    return this.unary('Health', {});
  }
  hasKey(key: string): Promise<{ found: boolean; version: VersionMessage | null; deleted: boolean }> {
    return this.unary('HasKey', { key });
  }
  whereIs(key: string, probe = false): Promise<WhereIsReplyMessage> {
    return this.unary('WhereIs', { key, probe });
  }
  status(): Promise<StatusMessage> {
    return this.unary('Status', {});
  }
  gcStatus(): Promise<GcStateMessage> {
    return this.unary('GcStatus', {});
  }
  gcRun(): Promise<GcRunReplyMessage> {
    return this.unary('GcRun', {});
  }
  peers(): Promise<{ peers: PeerMessage[] }> {
    return this.unary('Peers', {});
  }
  forgetPeer(peerId: string): Promise<{ forgotten: boolean }> {
    return this.unary('ForgetPeer', { peerId });
  }
  leave(): Promise<object> {
    return this.unary('Leave', {});
  }
  // Partitioned mode: layouts.
  layout(): Promise<LayoutReplyMessage> {
    return this.unary('Layout', {});
  }
  layoutChange(request: { action: string; node?: string; weight?: number; replicas?: string }): Promise<LayoutReplyMessage> {
    return this.unary('LayoutChange', request);
  }
  removeNode(node: string): Promise<LayoutReplyMessage> {
    return this.unary('RemoveNode', { node });
  }
  leaveCluster(): Promise<LayoutReplyMessage> {
    return this.unary('LeaveCluster', {});
  }
  /** Partitioned mode: `from: 'local'` for this node's copy; `allowPartial` (a last message carries partitionsMissing). */
  scan(request: { prefix?: string; startAfter?: string; limit?: number; withValues?: boolean; includeDeleted?: boolean; from?: string; allowPartial?: boolean }) {
    return this.stream<EntryMessage>('Scan', request);
  }
  /**
   * Every entry under `prefix` from one snapshot of the node's store, in key order, as batches
   * of entries in the core encoding (src/core/entry.ts), each ~1 MiB or one large entry.
   */
  exportEntries(request: { prefix?: string; includeDeleted?: boolean; from?: string; allowPartial?: boolean }) {
    return this.stream<EntryBatchMessage>('Export', request);
  }
  /**
   * Entries in the core encoding (at most importEntriesMax), merged by the node like a peer's;
   * the counts of what it did. A connection lost after the batch was sent: OutcomeUnknownError.
   */
  importEntries(entries: Uint8Array, count: number): Promise<ImportReplyMessage> {
    return this.unary('Import', { entries, count }, 'the node went away during the import; the entries in flight may or may not be applied: run the import again (it is idempotent)');
  }
  watch(prefix = '') {
    return this.stream<ChangeMessage>('Watch', { prefix });
  }
  sync(peer = '') {
    return this.stream<SyncProgressMessage>('Sync', { peer });
  }
  /** Partitioned mode: a purge now (dry: what it would drop); one reply. */
  purge(dryRun: boolean) {
    return this.stream<PurgeReplyMessage>('Purge', { dryRun });
  }
  /** Partitioned mode: pulls now, progress until done. */
  balance(singleLayout: boolean) {
    return this.stream<BalanceProgressMessage>('Balance', { singleLayout });
  }
}

/** An Export message: `count` entries in the core encoding, back to back. */
export interface EntryBatchMessage {
  entries: Buffer;
  count: number;
  /** Partitioned mode with allow_partial: a last batch (count 0) naming partitions no owner answered for. */
  partitionsMissing: number;
}

/** What an Import did (uint64 counts as decimal strings). */
export interface ImportReplyMessage {
  applied: string;
  notNewer: string;
  refusedClock: string;
  refusedInvalid: string;
  refusedNotHeld: string;
}

interface PutResultMessage {
  version: VersionMessage | null;
  error: string;
  code: number;
}

/**
 * Puts on one PutPipeline stream. Results come back in the order sent, so each put's promise
 * is settled from a FIFO. A refused put (bad key, too large) rejects alone, with the status
 * the node gave it; if the stream fails, every put in flight rejects with that error.
 */
export class PutPipeline {
  private readonly waiting: { resolve: (v: { version: VersionMessage }) => void; reject: (e: unknown) => void }[] = [];
  private failure: unknown;
  private readonly reading: Promise<void>;
  /** Puts made in this turn of the event loop, written together at its end. */
  private readonly unsent: { parts: Uint8Array[]; bytes: number }[] = [];

  constructor(
    private readonly call: Call,
    private readonly translate: (error: unknown) => unknown,
  ) {
    this.reading = this.read();
  }

  private async read(): Promise<void> {
    try {
      for await (const message of this.call.messages()) {
        for (const result of wire.decode<{ results: PutResultMessage[] }>(wire.PutManyReply, message).results) {
          const next = this.waiting.shift();
          if (!next) throw new GrpcStatusError(GrpcStatus.INTERNAL, 'PutPipeline: a result for no put');
          if (result.version) next.resolve({ version: result.version });
          else next.reject(new GrpcStatusError(result.code || GrpcStatus.UNKNOWN, result.error));
        }
      }
      if (this.waiting.length > 0) throw new GrpcStatusError(GrpcStatus.INTERNAL, `PutPipeline ended with ${this.waiting.length} puts unanswered`);
    } catch (error) {
      this.failure = this.translate(error);
      for (const next of this.waiting.splice(0)) next.reject(this.failure);
    }
  }

  /** Resolves when the node has stored it (partitioned mode: at `consistency`, '' = quorum); waits only for flow control, not for the reply, to send the next. */
  put(key: string, value: Uint8Array, consistency = ''): Promise<{ version: VersionMessage }> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.call.ended) return Promise.reject(new GrpcStatusError(GrpcStatus.CANCELLED, 'PutPipeline is closed'));
    const answer = new Promise<{ version: VersionMessage }>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.unsent.push(wire.encodeMessage(wire.PutRequest, consistency === '' ? { key, value } : { key, value, consistency }));
    if (this.unsent.length === 1) queueMicrotask(() => void this.call.writeMany(this.unsent.splice(0)));
    return answer;
  }

  /** Ends the stream after the puts in flight are answered. */
  async close(): Promise<void> {
    await this.call.writeMany(this.unsent.splice(0));
    this.call.end();
    await this.reading;
  }
}

interface GetChunkMessage extends ReadFields {
  found: boolean;
  version: VersionMessage | null;
  deleted: boolean;
  valueBytes: string;
  expiresAtMs?: string;
  data: Buffer;
}
