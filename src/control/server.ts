/**
 * The control API (ckv.proto, service ckv.v1.Kv) over gRPC on a Unix socket, mode 0600: only
 * the node's user may talk to it. Server reflection is on (./reflection.ts), so generic tools can discover it.
 * Requests are decoded and checked by ./requests.ts; replies and error statuses are built by ./messages.ts.
 *
 * Errors become gRPC status codes with a one-line message, by the error table (src/errors.ts). Server streams
 * (Scan, Export, Watch) respect backpressure: Scan and Export wait for drain; a Watch whose client falls more
 * than `watchBufferBytesMax` behind is ended with RESOURCE_EXHAUSTED rather than letting it
 * grow the node's memory without bound.
 *
 * A graceful stop (close) answers the calls in flight before it lets go of the socket: a put
 * that arrived is stored and acknowledged, so a client is never told "unavailable" about a
 * value that was in fact stored. The socket file is removed only if it is still the one this
 * server bound.
 */
import { chmod, lstat, rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { ValueTooLargeError } from '../core/errors.js';
import { encodedEntryBytes, encodeEntryInto, type WriteCondition } from '../core/entry.js';
import { hlcPack } from '../core/hlc.js';
import type { LocalWrite } from '../core/replica.js';
import { InvalidArgumentError, NodeStoppingError, WatcherBehindError } from '../errors.js';
import type { ChangeEvent, NodeApi, WriteReply } from '../node/api.js';
import type { Consistency } from '../core/ownership.js';
import { consistencyOf } from '../node/coordinator.js';
import {
  exportChunkBytesTarget,
  exportChunkEntriesMax,
  grpcMessageBytesMax,
  pipelinePutsInFlightMax,
  putManyCountMax,
  valueChunkBytes,
  watchBufferBytesMax,
} from './limits.js';
import { channelOptions, kvServiceDefinition } from './service.js';
import { addReflection } from './reflection.js';
import { encodeChange, encodePutManyReply, encodePutReply, type PutOutcome } from './watch-codec.js';
import { interceptStreams, leanEligible, serveLeanUnary, type LeanMethod } from './lean-unary.js';
import type { LayoutChangeRequest } from '../net/layout-service.js';
import {
  entryMessage,
  gcStateMessage,
  healthMessage,
  layoutMessage,
  peerMessage,
  putReplyMessage,
  readReplyMessage,
  statusMessage,
  toServiceError,
  versionMessage,
} from './messages.js';
import {
  checkedKey,
  decodeEntryBatch,
  localWrite,
  readOptions,
  scanReadOptions,
  ttlOf,
  writeCondition,
  writeOutcomes,
  putResultMessage,
  type ExportRequest,
  type GetMessage,
  type PutChunk,
  type PutMessage,
  type ScanRequest,
} from './requests.js';

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** How long a stop waits for idle connections to let go, and again once the calls in flight are answered. */
const closeGraceMs = 2000;
/** How long a stop waits for calls in flight (a 64 MiB PutStream from a slow client): the CLI's own deadline. */
const callsInFlightWaitMs = 60_000;
/** Puts a warm-up call decodes and answers (warmUp): the size of a bench's PutMany, and 4x a Put batch's. */
const warmUpPuts = 250;

export class ControlServer {
  private readonly server = new grpc.Server(channelOptions);
  private listening = false;
  /** The socket file this server bound (device and inode): close removes it only if it is still that one. */
  private socket: { path: string; dev: number; ino: number } | undefined;
  /** Open Watch and PutPipeline calls: ended first on close, so shutdown does not wait on them. */
  private readonly streams = new Set<() => void>();
  /** Calls being handled (unary, PutStream, GetStream, Scan): a stop answers them before it closes. */
  private callsInFlight = 0;
  private readonly callsAnswered = new Set<() => void>();
  /** Put, PutMany, Get and Status by path, answered on node:http2 without grpc-js (./lean-unary.ts). */
  private readonly leanMethods: Map<string, LeanMethod>;
  /** Whether Put, PutMany, Get and Status are answered by the lean path (false: grpc-js's internals were not found). */
  leanUnary = false;

  private readonly kv: ReturnType<typeof kvServiceDefinition>;

  constructor(private readonly node: NodeApi) {
    const kv = kvServiceDefinition();
    this.kv = kv;
    // Watch messages and PutPipeline's replies are encoded by hand (./watch-codec.ts): the handlers write the bytes.
    const asIs = (bytes: Buffer): Buffer => bytes;
    const service = { ...kv, Watch: { ...kv.Watch!, responseSerialize: asIs }, PutPipeline: { ...kv.PutPipeline!, responseSerialize: asIs } };
    // Put, PutMany, Get and Status stay registered with grpc-js (reflection lists them; a compressed call goes there).
    this.server.addService(service, this.handlers());
    addReflection(this.server); // built on its first call
    const lean = <Req, Res>(name: 'Put' | 'PutMany' | 'Get' | 'Status', handle: (request: Req) => Promise<Res>, serialize: (reply: Res) => Buffer): [string, LeanMethod] => {
      const definition = kv[name]!;
      const method: LeanMethod<Req, Res> = {
        path: definition.path,
        deserialize: definition.requestDeserialize as (bytes: Buffer) => Req,
        serialize,
        handle,
        statusOf: (error) => {
          const status = toServiceError(error);
          return { code: status.code, details: status.details };
        },
      };
      return [definition.path, method as LeanMethod];
    };
    // Put's reply is encoded by hand (./watch-codec.ts: the same bytes); Get's by wire.ts.
    const put = lean('Put', this.putWrite, (reply: WriteReply) => encodePutReply(reply.version, reply.owners, reply.acked));
    const get = lean('Get', this.get, kv.Get!.responseSerialize as (reply: object) => Buffer);
    // Status too: pollers call it often (benches every 10 ms while a node catches up, the
    // status page, scrapes), and grpc-js's per-call machinery was most of its cost (~0.9 ms of
    // a node's CPU a call, docs/measurements.md, 2026-12-05 (night)).
    const status = lean('Status', this.status, kv.Status!.responseSerialize as (reply: object) => Buffer);
    // PutMany's reply, a version per put, is encoded by hand too (./watch-codec.ts: the same bytes).
    const putMany = lean('PutMany', this.putMany, encodePutManyReply);
    this.leanMethods = new Map([put, putMany, get, status]);
  }

  /**
   * FrontEnd.warmUp: PutMany's and Put's requests decoded (as the lean path does, with the
   * puts checked as the handler checks them) and their replies encoded, for warmUpPuts puts
   * of throwaway data. No handler runs: nothing is written.
   */
  warmUp(): void {
    const value = Buffer.alloc(100, 0x61);
    const puts = Array.from({ length: warmUpPuts }, (_, i) => ({ key: `warm-up/${i}`, value }));
    const putMany = this.leanMethods.get(this.kv.PutMany!.path)!;
    const request = putMany.deserialize(this.kv.PutMany!.requestSerialize({ puts })) as { puts: PutMessage[] };
    const writes = request.puts.map(localWrite);
    // Stamps of today's milliseconds and counters, as real replies carry: the encoders' loops
    // over a stamp's bytes run only for those, and code compiled without them is thrown away.
    const wallMs = Date.now();
    const versions = writes.map((_, i) => ({ hlc: hlcPack(wallMs + (i >> 4), i & 15), node: this.node.nodeId }));
    putMany.serialize(versions);
    const put = this.leanMethods.get(this.kv.Put!.path)!;
    for (let i = 0; i < warmUpPuts; i++) {
      const one = put.deserialize(this.kv.Put!.requestSerialize(puts[i]!)) as PutMessage;
      localWrite(one);
      put.serialize({ version: versions[i]!, owners: [], acked: [] });
    }
  }

  async listen(socketPath: string): Promise<void> {
    // Bind with a umask that already makes the socket 0600: no window where others can connect.
    const umask = process.umask(0o177);
    try {
      await new Promise<number>((resolve, reject) =>
        this.server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
          error ? reject(error) : resolve(port),
        ),
      );
    } finally {
      process.umask(umask);
    }
    await chmod(socketPath, 0o600);
    const info = await lstat(socketPath);
    this.socket = { path: socketPath, dev: info.dev, ino: info.ino };
    this.listening = true;
    const limits = { receiveBytesMax: grpcMessageBytesMax, sendBytesMax: grpcMessageBytesMax };
    const guard = <T>(run: () => Promise<T>): Promise<T> => (this.node.isStopping ? Promise.reject(new NodeStoppingError()) : this.inFlight(run));
    this.leanUnary = interceptStreams(this.server, (stream, headers) => {
      const method = this.leanMethods.get(headers[':path'] as string);
      if (method === undefined || !leanEligible(headers)) return false;
      serveLeanUnary(stream, headers, method, limits, guard);
      return true;
    });
    if (!this.leanUnary) this.node.logger.warn('control socket: Put, PutMany, Get and Status are served by grpc-js (its HTTP/2 server was not found)');
  }

  /** Put: one value, acknowledged once stored (partitioned mode: by enough owners). */
  private readonly putWrite = async (req: PutMessage): Promise<WriteReply> => {
    if (req.delete) throw new InvalidArgumentError('Put writes a value; use Delete (delete is for PutMany and PutPipeline)');
    const value = new Uint8Array(req.value.buffer, req.value.byteOffset, req.value.byteLength);
    return this.node.write(req.key, value, { condition: writeCondition(req.ifVersion, req.ifAbsent), consistency: consistencyOf(req.consistency), ttlMs: ttlOf(req.ttlMs) });
  };

  /**
   * PutMany: one writeMany (the replica folds the puts into a few storage batches), a result
   * per put. A put refused because the node is stopping fails the whole call (UNAVAILABLE is
   * also partitioned mode's too-few-acks of one put, which stays that put's result).
   */
  private readonly putMany = async (req: { puts: PutMessage[] }): Promise<PutOutcome[]> => {
    if (req.puts.length > putManyCountMax) {
      throw new InvalidArgumentError(`${req.puts.length} puts in one call; the limit is ${putManyCountMax}`);
    }
    return writeOutcomes(this.node, req.puts.map(localWrite), () => {
      throw new NodeStoppingError();
    });
  };

  /** Get: the value and version (partitioned mode: and what the owners answered). */
  private readonly get = async (req: GetMessage): Promise<object> => {
    const reply = await this.node.read(checkedKey(req.key), readOptions(req));
    const entry = reply.entry;
    const head = readReplyMessage(reply);
    if (!entry) return { found: false, ...head };
    return { ...entryMessage(entry, true), found: entry.value !== null, ...head };
  };

  /** Status: the node's one status (src/node/status.ts) as a StatusReply. */
  private readonly status = async (): Promise<object> => statusMessage(await this.node.status());

  /**
   * Idempotent. Stops taking connections and ends Watch and PutPipeline streams; every other
   * call in flight is answered first (a PutStream still arriving is received, stored and
   * answered), for up to callsInFlightWaitMs; connections that stay open past closeGraceMs
   * after that are cut. Then removes the socket file, if it is still the one this server bound.
   */
  async close(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    for (const end of [...this.streams]) end();
    const closed = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    let done = await within(closed, closeGraceMs);
    if (!done && this.callsInFlight > 0) {
      this.node.logger.info('control socket: answering calls in flight before closing', { calls: this.callsInFlight, waitMsMax: callsInFlightWaitMs });
      await within(this.allAnswered(), callsInFlightWaitMs);
      done = await within(closed, closeGraceMs); // the replies reach the clients, which then let go
    }
    if (!done) this.server.forceShutdown();
    await this.removeSocket();
  }

  /** Removes the socket file unless it is gone or another file now has its path. */
  private async removeSocket(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return;
    try {
      const info = await lstat(socket.path);
      if (info.dev === socket.dev && info.ino === socket.ino) await rm(socket.path, { force: true });
    } catch {
      // already gone (the listener's close unlinks it)
    }
  }

  /** Counts `work` as a call in flight until it settles. */
  private inFlight<T>(work: () => Promise<T>): Promise<T> {
    this.callsInFlight++;
    return work().finally(() => {
      this.callsInFlight--;
      if (this.callsInFlight === 0) for (const answered of [...this.callsAnswered]) answered();
    });
  }

  /** Resolves once no call is in flight. */
  private allAnswered(): Promise<void> {
    if (this.callsInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const answered = (): void => {
        this.callsAnswered.delete(answered);
        resolve();
      };
      this.callsAnswered.add(answered);
    });
  }

  private guard<Req, Res>(handler: (request: Req) => Promise<Res>): Unary<Req, Res> {
    return (call, callback) => {
      if (this.node.isStopping) {
        callback(toServiceError(new NodeStoppingError()));
        return;
      }
      void this.inFlight(() =>
        handler(call.request).then(
          (reply) => callback(null, reply),
          (error) => callback(toServiceError(error)),
        ),
      );
    };
  }

  private handlers(): grpc.UntypedServiceImplementation {
    const node = this.node;
    return {
      // Answered by the lean path (./lean-unary.ts) unless compressed or grpc-js's server was not found.
      Put: this.guard(async (req: PutMessage) => putReplyMessage(await this.putWrite(req))),
      Get: this.guard(this.get),
      Delete: this.guard(async (req: { key: string; ifVersion: string; consistency: string }) => ({
        version: versionMessage((await node.write(req.key, null, { condition: writeCondition(req.ifVersion, false), consistency: consistencyOf(req.consistency) })).version),
      })),
      PutMany: this.guard(async (req: { puts: PutMessage[] }) => ({ results: (await this.putMany(req)).map(putResultMessage) })),
      PutPipeline: (call: grpc.ServerDuplexStream<PutMessage, unknown>) => this.putPipeline(call),
      HasKey: this.guard(async (req: { key: string }) => {
        // Always this node's own copy, also in partitioned mode.
        const { entry } = await node.read(checkedKey(req.key), { from: 'local' });
        return entry ? { found: true, version: versionMessage(entry.version), deleted: entry.value === null } : { found: false };
      }),
      WhereIs: this.guard(async (req: { key: string; probe: boolean }) => {
        const key = checkedKey(req.key);
        const owners = node.owners(key);
        // Partitioned mode: the owners, and only with --probe their versions (asked of them alone).
        const ownerIds = owners && new Set(owners.layouts.flatMap((layout) => layout.owners.map((owner) => owner.nodeId)));
        const ownerPeers = owners && new Set(owners.layouts.flatMap((layout) => layout.owners.map((owner) => owner.peerId)));
        const holders = owners === undefined || req.probe ? await node.whereIs(key) : [];
        return {
          holders: holders
            .filter((h) => ownerIds === undefined || (h.nodeId !== undefined ? ownerIds.has(h.nodeId) : ownerPeers!.has(h.peerId)))
            .map((h) =>
              h.error
                ? { peerId: h.peerId, error: h.error }
                : { nodeId: h.nodeId ?? '', peerId: h.peerId, ...(h.version ? { version: versionMessage(h.version) } : {}), deleted: h.deleted ?? false, error: '' },
            ),
          ...(owners ? { partitioned: true, partition: owners.partition, layouts: owners.layouts.map((l) => ({ ...l, version: String(l.version) })), readOwners: owners.readOwners } : {}),
        };
      }),
      Status: this.guard(this.status),
      GcStatus: this.guard(async () => gcStateMessage(node.gcStatus())),
      GcRun: this.guard(async () => {
        const report = await node.gcRun();
        return { gc: gcStateMessage(node.gcStatus()), rounds: report.rounds, roundsAbandoned: report.roundsAbandoned, deleted: String(report.deleted), collectable: String(report.collectable) };
      }),
      Peers: this.guard(async () => ({ peers: (await node.peers()).map(peerMessage) })),
      Health: this.guard(async () => healthMessage(await node.health())),
      ForgetPeer: this.guard(async (req: { peerId: string }) => ({ forgotten: await node.forget(req.peerId) })),
      Layout: this.guard(async () => layoutMessage(await node.layout())),
      LayoutChange: this.guard(async (req: LayoutChangeRequest) => layoutMessage(await node.layoutChange(req))),
      RemoveNode: this.guard(async (req: { node: string }) => layoutMessage(await node.removeNode(req.node))),
      LeaveCluster: this.guard(async () => layoutMessage(await node.leaveCluster())),
      Leave: this.guard(async () => {
        setImmediate(() => void node.stop('leave requested'));
        return {};
      }),
      PutStream: (call: grpc.ServerReadableStream<PutChunk, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (this.node.isStopping) return callback(toServiceError(new NodeStoppingError()));
        void this.inFlight(() =>
          this.putStream(call).then(
            (reply) => callback(null, putReplyMessage(reply)),
            (error) => callback(toServiceError(error)),
          ),
        );
      },
      GetStream: (call: grpc.ServerWritableStream<GetMessage, unknown>) => void this.inFlight(() => this.getStream(call)),
      Scan: (call: grpc.ServerWritableStream<ScanRequest, unknown>) => void this.inFlight(() => this.scan(call)),
      Watch: (call: grpc.ServerWritableStream<{ prefix: string }, unknown>) => this.watch(call),
      // Not counted as in flight: a stop cuts a Sync (sessions with every peer can be long) like a Watch.
      Sync: (call: grpc.ServerWritableStream<{ peer: string }, unknown>) => void this.sync(call),
      // Not counted as in flight either: an export of a large store can take minutes; a stop ends it.
      Export: (call: grpc.ServerWritableStream<ExportRequest, unknown>) => void this.exportEntries(call),
      // Not in flight either: a purge's sessions and a balance's wait can be long; a stop ends them.
      Purge: (call: grpc.ServerWritableStream<{ dryRun: boolean }, unknown>) => void this.purge(call),
      Balance: (call: grpc.ServerWritableStream<{ singleLayout: boolean }, unknown>) => void this.balance(call),
      Import: this.guard(async (req: { entries: Buffer; count: number }) => {
        const report = await node.importEntries(decodeEntryBatch(req.entries, req.count, node.valueBytesMax));
        return {
          applied: String(report.applied),
          notNewer: String(report.notNewer),
          refusedClock: String(report.refusedClock),
          refusedInvalid: String(report.refusedInvalid),
          refusedNotHeld: String(report.refusedNotHeld),
        };
      }),
    };
  }

  /**
   * The puts that arrive in one turn of the event loop go to the replica as one writeMany,
   * and are answered in the order sent: results that are ready together go out in one
   * PutManyReply, flushed once per turn. Past pipelinePutsInFlightMax
   * unanswered puts the call is paused, so HTTP/2 flow control holds the client back. Ended
   * with UNAVAILABLE when the node stops.
   */
  private putPipeline(call: grpc.ServerDuplexStream<PutMessage, unknown>): void {
    if (this.node.isStopping) {
      call.emit('error', toServiceError(new NodeStoppingError()));
      return;
    }
    /** Results in the order of the puts, from put number `firstSeq` on; a slot is filled when its put finishes. */
    const results: (PutOutcome | undefined)[] = [];
    let firstSeq = 0;
    let inputEnded = false;
    let closed = false;
    let flushScheduled = false;
    const finish = (): void => {
      if (closed) return;
      closed = true;
      this.streams.delete(stop);
    };
    const stop = (): void => {
      if (closed) return;
      finish();
      call.emit('error', toServiceError(new NodeStoppingError()));
    };
    const flush = (): void => {
      flushScheduled = false;
      if (closed) return;
      let ready = 0;
      while (ready < results.length && results[ready] !== undefined) ready++;
      if (ready > 0) {
        call.write(encodePutManyReply(results.splice(0, ready) as PutOutcome[]));
        firstSeq += ready;
      }
      if (results.length <= pipelinePutsInFlightMax / 2 && call.isPaused()) call.resume();
      if (inputEnded && results.length === 0) {
        finish();
        call.end();
      }
    };
    const scheduleFlush = (): void => {
      if (flushScheduled) return;
      flushScheduled = true;
      setImmediate(flush);
    };
    // Puts that arrived in one turn of the event loop go to the replica as one writeMany.
    let unsubmitted: (LocalWrite | Error)[] = [];
    let unsubmittedFirstSeq = 0;
    const submit = (): void => {
      const writes = unsubmitted;
      const first = unsubmittedFirstSeq;
      unsubmitted = [];
      void writeOutcomes(this.node, writes).then((outcomes) => {
        for (const [i, outcome] of outcomes.entries()) results[first + i - firstSeq] = outcome;
        scheduleFlush();
      });
    };
    this.streams.add(stop);
    call.on('data', (put: PutMessage) => {
      if (unsubmitted.length === 0) {
        unsubmittedFirstSeq = firstSeq + results.length;
        setImmediate(submit);
      }
      results.push(undefined);
      unsubmitted.push(localWrite(put));
      if (results.length >= pipelinePutsInFlightMax) call.pause();
    });
    call.on('end', () => {
      inputEnded = true;
      scheduleFlush();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
  }

  /**
   * Gathers a PutStream into one buffer of the announced size (allocated once, after the
   * size is checked against the limit), then stores it like a Put. A wrong total, a bad key
   * or a value over the limit stores nothing.
   */
  private async putStream(call: grpc.ServerReadableStream<PutChunk, unknown>): Promise<WriteReply> {
    let key: string | undefined;
    let value: Buffer | undefined;
    let condition: WriteCondition | undefined;
    let consistency: Consistency | undefined;
    let ttlMs: number | undefined;
    let filled = 0;
    for await (const chunk of call as AsyncIterable<PutChunk>) {
      if (value === undefined) {
        key = checkedKey(chunk.key);
        condition = writeCondition(chunk.ifVersion, chunk.ifAbsent);
        consistency = consistencyOf(chunk.consistency ?? '');
        ttlMs = ttlOf(chunk.ttlMs);
        const size = Number(chunk.valueBytes);
        const limit = this.node.valueBytesMax;
        if (size > limit) throw new ValueTooLargeError(size, limit);
        value = Buffer.allocUnsafe(size);
      }
      if (chunk.data.byteLength > value.byteLength - filled) {
        throw new InvalidArgumentError(`PutStream sent more than the ${value.byteLength} bytes it announced (nothing was stored)`);
      }
      value.set(chunk.data, filled);
      filled += chunk.data.byteLength;
    }
    if (value === undefined || key === undefined) throw new InvalidArgumentError('PutStream sent no message (nothing was stored)');
    if (filled !== value.byteLength) {
      throw new InvalidArgumentError(`PutStream ended after ${filled} of the ${value.byteLength} bytes it announced (nothing was stored)`);
    }
    return this.node.write(key, new Uint8Array(value.buffer, value.byteOffset, value.byteLength), { condition, consistency, ttlMs });
  }

  /** A value in pieces of valueChunkBytes, each a view of the stored value, sent as the client reads. */
  private async getStream(call: grpc.ServerWritableStream<GetMessage, unknown>): Promise<void> {
    try {
      if (this.node.isStopping) throw new NodeStoppingError();
      const reply = await this.node.read(checkedKey(call.request.key), readOptions(call.request));
      const entry = reply.entry;
      const head = readReplyMessage(reply);
      if (!entry || entry.value === null) {
        call.write({ found: false, deleted: entry !== undefined, ...(entry ? { version: versionMessage(entry.version) } : {}), ...head });
        call.end();
        return;
      }
      const value = Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength);
      const expiry = entry.expiresAtMs === undefined ? {} : { expiresAtMs: String(entry.expiresAtMs) };
      let ok = call.write({ found: true, version: versionMessage(entry.version), valueBytes: String(value.byteLength), data: value.subarray(0, valueChunkBytes), ...expiry, ...head });
      for (let offset = valueChunkBytes; offset < value.byteLength && !call.cancelled; offset += valueChunkBytes) {
        if (!ok) await drained(call);
        ok = call.write({ data: value.subarray(offset, offset + valueChunkBytes) });
      }
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  private async scan(call: grpc.ServerWritableStream<ScanRequest, unknown>): Promise<void> {
    const req = call.request;
    const limit = req.limit > 0 ? req.limit : Infinity;
    let sent = 0;
    try {
      const read = scanReadOptions(req);
      const options = { prefix: req.prefix, ...(req.startAfter ? { startAfter: req.startAfter } : {}), withValues: req.withValues, ...read };
      for await (const entry of this.node.scan(options)) {
        if (call.cancelled || sent >= limit) break;
        if (entry.value === null && !req.includeDeleted) continue;
        sent++;
        if (!call.write(entryMessage(entry, req.withValues))) await drained(call);
      }
      if (read.partial.partitionsMissing > 0 && !call.cancelled) call.write({ partitionsMissing: read.partial.partitionsMissing });
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  /**
   * Export: the entries under a prefix from one snapshot (NodeApi.exportEntries), in the core's entry
   * encoding, several to a message: a message is sent before it would pass
   * exportChunkBytesTarget bytes or exportChunkEntriesMax entries (an entry larger than the
   * target goes alone). Waits for drain, so a slow reader holds the scan, not the node's
   * memory. A stop ends it with UNAVAILABLE.
   */
  private async exportEntries(call: grpc.ServerWritableStream<ExportRequest, unknown>): Promise<void> {
    let stopped = false;
    const stop = (): void => {
      stopped = true;
    };
    this.streams.add(stop);
    try {
      if (this.node.isStopping) throw new NodeStoppingError();
      const { prefix, includeDeleted } = call.request;
      const read = scanReadOptions(call.request);
      let arena = Buffer.allocUnsafe(exportChunkBytesTarget);
      let used = 0;
      let count = 0;
      const send = async (entries: Buffer, n: number, partitionsMissing = 0): Promise<void> => {
        if (!call.write({ entries, count: n, ...(partitionsMissing > 0 ? { partitionsMissing } : {}) })) await drained(call);
      };
      const flush = async (): Promise<void> => {
        if (count === 0) return;
        const entries = arena.subarray(0, used);
        arena = Buffer.allocUnsafe(exportChunkBytesTarget); // the one sent is not reused
        used = 0;
        const n = count;
        count = 0;
        await send(entries, n);
      };
      for await (const entry of this.node.exportEntries(prefix, read)) {
        if (call.cancelled || stopped) break;
        if (entry.value === null && !includeDeleted) continue;
        const keyBytes = Buffer.byteLength(entry.key, 'utf8');
        const bytes = encodedEntryBytes(entry, keyBytes);
        if (used + bytes > arena.byteLength || count === exportChunkEntriesMax) await flush();
        if (bytes > arena.byteLength) {
          const alone = Buffer.allocUnsafe(bytes);
          encodeEntryInto(alone, 0, entry, keyBytes);
          await send(alone, 1);
          continue;
        }
        used = encodeEntryInto(arena, used, entry, keyBytes);
        count++;
      }
      if (stopped) throw new NodeStoppingError();
      if (call.cancelled) return;
      await flush();
      if (read.partial.partitionsMissing > 0) await send(Buffer.alloc(0), 0, read.partial.partitionsMissing);
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    } finally {
      this.streams.delete(stop);
    }
  }

  private async purge(call: grpc.ServerWritableStream<{ dryRun: boolean }, unknown>): Promise<void> {
    try {
      const report = await this.node.purge(call.request.dryRun);
      call.write({ ...report, entries: String(report.entries), bytes: String(report.bytes) });
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  private async balance(call: grpc.ServerWritableStream<{ singleLayout: boolean }, unknown>): Promise<void> {
    try {
      for await (const step of this.node.balance(call.request.singleLayout)) {
        if (call.cancelled) break;
        call.write({
          activeVersions: step.activeVersions.map(String),
          pending: step.pending.map((p) => ({ version: String(p.version), partitions: p.partitions })),
          pulled: String(step.pulled),
          blockedBy: step.blockedBy,
          done: step.done,
        });
      }
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  private async sync(call: grpc.ServerWritableStream<{ peer: string }, unknown>): Promise<void> {
    try {
      for await (const step of this.node.sync(call.request.peer || undefined)) {
        if (call.cancelled) break;
        if (step.phase === 'started') {
          call.write({ peerId: step.peerId, phase: 'started' });
          continue;
        }
        call.write({
          ...step,
          entriesSent: String(step.entriesSent),
          entriesReceived: String(step.entriesReceived),
          bytesSent: String(step.bytesSent),
          bytesReceived: String(step.bytesReceived),
        });
      }
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  private watch(call: grpc.ServerWritableStream<{ prefix: string }, unknown>): void {
    const prefix = call.request.prefix;
    // Bytes written but not yet taken by HTTP/2 (the stream is object-mode: its own
    // writableLength counts messages, not bytes).
    let queuedBytes = 0;
    const listener = (change: ChangeEvent): void => {
      if (!change.entry.key.startsWith(prefix)) return;
      if (queuedBytes > watchBufferBytesMax) {
        cleanup();
        call.emit('error', toServiceError(new WatcherBehindError()));
        return;
      }
      const message = encodeChange(change);
      queuedBytes += message.byteLength;
      call.write(message, () => (queuedBytes -= message.byteLength));
    };
    let unwatch: (() => void) | undefined;
    const cleanup = (): void => {
      unwatch?.();
      unwatch = undefined;
      this.streams.delete(end);
    };
    // The node is stopping: the watcher is told by UNAVAILABLE, so scripts can tell it from Ctrl-C.
    const end = (): void => {
      cleanup();
      call.emit('error', toServiceError(new NodeStoppingError()));
    };
    this.streams.add(end);
    // Partitioned mode: the node also follows every member for this prefix; one that dropped
    // us for being slow ends the watch as a full local queue does.
    unwatch = this.node.watch(listener, {
      prefix,
      onBehind: () => {
        if (unwatch === undefined) return;
        cleanup();
        call.emit('error', toServiceError(new WatcherBehindError()));
      },
    });
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
  }
}

/** Whether `promise` settles within `ms` (true), or the time ran out first (false). */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/** Resolves when the stream can take more, or when the client has gone (no wait forever). */
function drained(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
  });
}
