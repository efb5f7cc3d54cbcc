/**
 * The control API (ckv.proto, service ckv.v1.Kv) over gRPC on a Unix socket, mode 0600: only
 * the node's user may talk to it. Server reflection is on, so generic tools can discover it.
 *
 * Errors become gRPC status codes with a one-line message (see ckv.proto). Server streams
 * (Scan, Watch) respect backpressure: Scan waits for drain; a Watch whose client falls more
 * than `watchBufferBytesMax` behind is ended with RESOURCE_EXHAUSTED rather than letting it
 * grow the node's memory without bound.
 */
import { chmod } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { CkvError, InvalidKeyError, ValueTooLargeError } from '../core/errors.js';
import { hlcToString } from '../core/hlc.js';
import { checkKey, type Entry, type Version } from '../core/entry.js';
import { ReplicaClosedError, type LocalWrite } from '../core/replica.js';
import { toHex } from '../core/bytes.js';
import { ckvVersion } from '../config.js';
import { NoPeersError } from '../net/cluster.js';
import type { ChangeEvent, CkvNode } from '../node.js';
import { pipelinePutsInFlightMax, putManyCountMax, valueChunkBytes, watchBufferBytesMax } from './limits.js';
import { channelOptions, loadKvService, loadReflectionDefinition, type VersionMessage } from './proto.js';

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

export function versionMessage(version: Version): VersionMessage {
  return { hlc: version.hlc.toString(), node: version.node, text: `${hlcToString(version.hlc)}@${version.node}` };
}

function entryMessage(entry: Entry, withValue: boolean): object {
  return {
    key: entry.key,
    value: withValue && entry.value ? Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength) : Buffer.alloc(0),
    version: versionMessage(entry.version),
    deleted: entry.value === null,
  };
}

function statusError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/** Maps an operating error to a gRPC status; anything unexpected is INTERNAL. */
export function toServiceError(error: unknown): grpc.ServiceError {
  if (error instanceof InvalidKeyError) return statusError(grpc.status.INVALID_ARGUMENT, error.message);
  if (error instanceof ValueTooLargeError) return statusError(grpc.status.RESOURCE_EXHAUSTED, error.message);
  if (error instanceof ReplicaClosedError) return statusError(grpc.status.UNAVAILABLE, 'the node is stopping');
  if (error instanceof CkvError) return statusError(grpc.status.FAILED_PRECONDITION, error.message);
  if (error && typeof error === 'object' && 'code' in error && typeof (error as grpc.ServiceError).code === 'number') {
    return error as grpc.ServiceError;
  }
  return statusError(grpc.status.INTERNAL, error instanceof Error ? error.message : String(error));
}

export class ControlServer {
  private readonly server = new grpc.Server(channelOptions);
  private listening = false;
  /** Open Watch and PutPipeline calls: ended first on close, so shutdown does not wait on them. */
  private readonly streams = new Set<() => void>();

  constructor(private readonly node: CkvNode) {
    const { kv } = loadKvService();
    this.server.addService(kv.service, this.handlers());
    new ReflectionService(loadReflectionDefinition()).addToServer(this.server);
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
    this.listening = true;
  }

  /** Idempotent. Lets in-flight calls finish for up to 2 s, then cuts the rest. */
  async close(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    for (const end of [...this.streams]) end();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private guard<Req, Res>(handler: (request: Req) => Promise<Res>): Unary<Req, Res> {
    return (call, callback) => {
      if (this.node.isStopping) {
        callback(statusError(grpc.status.UNAVAILABLE, 'the node is stopping'));
        return;
      }
      handler(call.request).then(
        (reply) => callback(null, reply),
        (error) => callback(toServiceError(error)),
      );
    };
  }

  private handlers(): grpc.UntypedServiceImplementation {
    const node = this.node;
    return {
      Put: this.guard(async (req: { key: string; value: Buffer }) => ({
        version: versionMessage(await node.put(req.key, new Uint8Array(req.value.buffer, req.value.byteOffset, req.value.byteLength))),
      })),
      Get: this.guard(async (req: { key: string }) => {
        const entry = await node.get(checkedKey(req.key));
        if (!entry) return { found: false };
        return { ...entryMessage(entry, true), found: entry.value !== null };
      }),
      Delete: this.guard(async (req: { key: string }) => ({ version: versionMessage(await node.delete(req.key)) })),
      PutMany: this.guard(async (req: { puts: { key: string; value: Buffer }[] }) => {
        if (req.puts.length > putManyCountMax) {
          throw statusError(grpc.status.INVALID_ARGUMENT, `${req.puts.length} puts in one call; the limit is ${putManyCountMax}`);
        }
        // One writeMany: the replica folds them into a few storage batches.
        const results = await writeResults(
          node,
          req.puts.map((put) => ({ key: put.key, value: new Uint8Array(put.value.buffer, put.value.byteOffset, put.value.byteLength) })),
        );
        if (results.some((result) => result.code === grpc.status.UNAVAILABLE)) throw new ReplicaClosedError();
        return { results };
      }),
      PutPipeline: (call: grpc.ServerDuplexStream<PutMessage, unknown>) => this.putPipeline(call),
      HasKey: this.guard(async (req: { key: string }) => {
        const entry = await node.get(checkedKey(req.key));
        return entry ? { found: true, version: versionMessage(entry.version), deleted: entry.value === null } : { found: false };
      }),
      WhereIs: this.guard(async (req: { key: string }) => {
        const entry = await node.get(checkedKey(req.key));
        const self = node.cluster?.peerId ?? '';
        const holders: object[] = entry
          ? [{ nodeId: node.nodeId, peerId: self, version: versionMessage(entry.version), deleted: entry.value === null, error: '' }]
          : [];
        for (const answer of (await node.cluster?.whereIs(req.key)) ?? []) {
          if (answer.error) holders.push({ peerId: answer.peerId, error: answer.error });
          else if (answer.holding?.version) {
            const { nodeId, version, deleted } = answer.holding;
            holders.push({ nodeId, peerId: answer.peerId, version: versionMessage(version), deleted, error: '' });
          }
        }
        return { holders };
      }),
      // The only await comes first, so every other field is read at one moment.
      Status: this.guard(async () => {
        const bytesOnDisk = String(await node.sizeBytes());
        return {
          nodeId: node.nodeId,
          peerId: node.cluster?.peerId ?? '',
          listenAddresses: node.cluster?.listenAddresses() ?? [],
          cluster: node.config.cluster,
          keyCount: String(node.replica.liveCount),
          tombstoneCount: String(node.replica.tombstoneCount),
          bytesOnDisk,
          merkleRoot: toHex(node.replica.root().digest),
          hlcNow: versionMessage({ hlc: node.hlcNow(), node: node.nodeId }),
          uptimeMs: String(Date.now() - node.startedAtMs),
          version: ckvVersion,
          dataDir: node.config.dataDir,
          counters: Object.fromEntries(Object.entries(node.counters.snapshot()).map(([k, v]) => [k, String(v)])),
          httpUrl: node.httpUrl,
        };
      }),
      Peers: this.guard(async () => ({
        peers: (node.cluster?.peerList() ?? []).map((p) => ({
          peerId: p.peerId,
          nodeId: p.nodeId,
          addresses: p.addresses,
          state: p.state,
          lastSyncMs: String(p.lastSyncMs),
          lastSyncResult: p.lastSyncResult,
          clockOffsetMs: String(p.clockOffsetMs),
          inSync: p.inSync,
        })),
      })),
      ForgetPeer: this.guard(async (req: { peerId: string }) => ({ forgotten: node.cluster?.forget(req.peerId) ?? false })),
      Leave: this.guard(async () => {
        setImmediate(() => void node.stop('leave requested'));
        return {};
      }),
      PutStream: (call: grpc.ServerReadableStream<PutChunk, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (this.node.isStopping) return callback(statusError(grpc.status.UNAVAILABLE, 'the node is stopping'));
        this.putStream(call).then(
          (version) => callback(null, { version: versionMessage(version) }),
          (error) => callback(toServiceError(error)),
        );
      },
      GetStream: (call: grpc.ServerWritableStream<{ key: string }, unknown>) => void this.getStream(call),
      Scan: (call: grpc.ServerWritableStream<ScanRequest, unknown>) => void this.scan(call),
      Watch: (call: grpc.ServerWritableStream<{ prefix: string }, unknown>) => this.watch(call),
      Sync: (call: grpc.ServerWritableStream<{ peer: string }, unknown>) => void this.sync(call),
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
      call.emit('error', statusError(grpc.status.UNAVAILABLE, 'the node is stopping'));
      return;
    }
    /** Results in the order of the puts, from put number `firstSeq` on; a slot is filled when its put finishes. */
    const results: (PutResultMessage | undefined)[] = [];
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
      call.emit('error', statusError(grpc.status.UNAVAILABLE, 'the node is stopping'));
    };
    const flush = (): void => {
      flushScheduled = false;
      if (closed) return;
      let ready = 0;
      while (ready < results.length && results[ready] !== undefined) ready++;
      if (ready > 0) {
        call.write({ results: results.splice(0, ready) });
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
    let unsubmitted: LocalWrite[] = [];
    let unsubmittedFirstSeq = 0;
    const submit = (): void => {
      const writes = unsubmitted;
      const first = unsubmittedFirstSeq;
      unsubmitted = [];
      void writeResults(this.node, writes).then((outcomes) => {
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
      unsubmitted.push({ key: put.key, value: new Uint8Array(put.value.buffer, put.value.byteOffset, put.value.byteLength) });
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
  private async putStream(call: grpc.ServerReadableStream<PutChunk, unknown>): Promise<Version> {
    let key: string | undefined;
    let value: Buffer | undefined;
    let filled = 0;
    for await (const chunk of call as AsyncIterable<PutChunk>) {
      if (value === undefined) {
        key = checkedKey(chunk.key);
        const size = Number(chunk.valueBytes);
        const limit = this.node.config.valueBytesMax;
        if (size > limit) throw new ValueTooLargeError(size, limit);
        value = Buffer.allocUnsafe(size);
      }
      if (chunk.data.byteLength > value.byteLength - filled) {
        throw statusError(grpc.status.INVALID_ARGUMENT, `PutStream sent more than the ${value.byteLength} bytes it announced (nothing was stored)`);
      }
      value.set(chunk.data, filled);
      filled += chunk.data.byteLength;
    }
    if (value === undefined || key === undefined) throw statusError(grpc.status.INVALID_ARGUMENT, 'PutStream sent no message (nothing was stored)');
    if (filled !== value.byteLength) {
      throw statusError(grpc.status.INVALID_ARGUMENT, `PutStream ended after ${filled} of the ${value.byteLength} bytes it announced (nothing was stored)`);
    }
    return this.node.put(key, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }

  /** A value in pieces of valueChunkBytes, each a view of the stored value, sent as the client reads. */
  private async getStream(call: grpc.ServerWritableStream<{ key: string }, unknown>): Promise<void> {
    try {
      if (this.node.isStopping) throw new ReplicaClosedError();
      const entry = await this.node.get(checkedKey(call.request.key));
      if (!entry || entry.value === null) {
        call.write({ found: false, deleted: entry !== undefined, ...(entry ? { version: versionMessage(entry.version) } : {}) });
        call.end();
        return;
      }
      const value = Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength);
      let ok = call.write({ found: true, version: versionMessage(entry.version), valueBytes: String(value.byteLength), data: value.subarray(0, valueChunkBytes) });
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
      const options = { prefix: req.prefix, ...(req.startAfter ? { startAfter: req.startAfter } : {}) };
      for await (const entry of this.node.scan(options)) {
        if (call.cancelled || sent >= limit) break;
        if (entry.value === null && !req.includeDeleted) continue;
        sent++;
        if (!call.write(entryMessage(entry, req.withValues))) await drained(call);
      }
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  private async sync(call: grpc.ServerWritableStream<{ peer: string }, unknown>): Promise<void> {
    try {
      const cluster = this.node.cluster;
      if (!cluster) throw new NoPeersError();
      for await (const step of cluster.syncNow(call.request.peer || undefined)) {
        if (call.cancelled) break;
        if (step.phase === 'started') {
          call.write({ peerId: step.peerId, phase: 'started' });
          continue;
        }
        const { report } = step;
        call.write({
          peerId: report.peerId,
          phase: report.outcome === 'error' || report.outcome === 'refused' ? 'failed' : 'finished',
          outcome: report.outcome,
          rounds: report.result?.rounds ?? 0,
          entriesSent: String(report.result?.entriesSent ?? 0),
          entriesReceived: String(report.result?.entriesReceived ?? 0),
          bytesSent: String(report.bytesSent),
          bytesReceived: String(report.bytesReceived),
          message: report.error ?? '',
        });
      }
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(error));
    }
  }

  private watch(call: grpc.ServerWritableStream<{ prefix: string }, unknown>): void {
    const prefix = call.request.prefix;
    const listener = (change: ChangeEvent): void => {
      if (!change.entry.key.startsWith(prefix)) return;
      if (call.writableLength > watchBufferBytesMax) {
        cleanup();
        call.emit('error', statusError(grpc.status.RESOURCE_EXHAUSTED, 'watcher fell too far behind; watch again'));
        return;
      }
      call.write({
        key: change.entry.key,
        version: versionMessage(change.entry.version),
        origin: change.origin,
        deleted: change.entry.value === null,
        valueBytes: String(change.entry.value?.byteLength ?? 0),
        appliedAtMs: String(change.appliedAtMs),
      });
    };
    const cleanup = (): void => {
      this.node.changes.off('change', listener);
      this.streams.delete(end);
    };
    // The node is stopping: the watcher is told by UNAVAILABLE, so scripts can tell it from Ctrl-C.
    const end = (): void => {
      cleanup();
      call.emit('error', statusError(grpc.status.UNAVAILABLE, 'the node is stopping'));
    };
    this.streams.add(end);
    this.node.changes.on('change', listener);
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
  }
}

interface PutMessage {
  key: string;
  value: Buffer;
}

interface PutResultMessage {
  version?: VersionMessage;
  error: string;
  code: number;
}

/** Each write's outcome as a PutResult: a version, or the error's message and status code. */
async function writeResults(node: CkvNode, writes: readonly LocalWrite[]): Promise<PutResultMessage[]> {
  let outcomes: (Version | Error)[];
  try {
    outcomes = await node.writeMany(writes);
  } catch (error) {
    outcomes = writes.map(() => error as Error); // the node is stopping: every write fails alike
  }
  return outcomes.map((outcome) => {
    if (!(outcome instanceof Error)) return { version: versionMessage(outcome), error: '', code: grpc.status.OK };
    const status = toServiceError(outcome);
    return { error: status.details, code: status.code };
  });
}

interface PutChunk {
  key: string;
  valueBytes: string;
  data: Buffer;
}

interface ScanRequest {
  prefix: string;
  startAfter: string;
  limit: number;
  withValues: boolean;
  includeDeleted: boolean;
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

/** Read paths validate keys too, so `get ''` is INVALID_ARGUMENT, not "not found". */
function checkedKey(key: string): string {
  checkKey(key);
  return key;
}
