/**
 * The control API client used by the CLI (and by tests and benches): promises over the
 * generated gRPC client, with a deadline on every unary call and one error type for "no node
 * at this socket".
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { CkvError } from '../core/errors.js';
import {
  channelOptions,
  loadKvService,
  type ChangeMessage,
  type EntryMessage,
  type HolderMessage,
  type PeerMessage,
  type StatusMessage,
  type SyncProgressMessage,
  type VersionMessage,
} from './proto.js';

/** Unary calls give up after this; a 64 MiB put over a Unix socket takes well under it. */
const unaryDeadlineMs = 60_000;

export class NodeUnreachableError extends CkvError {
  constructor(readonly socketPath: string) {
    super('ERR_NODE_UNREACHABLE', `no node is running at ${socketPath} (start one with: ckv node start)`);
    this.name = 'NodeUnreachableError';
  }
}

export interface GetResult {
  found: boolean;
  value: Buffer;
  version: VersionMessage | null;
  deleted: boolean;
}

type RawClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class ControlClient {
  private readonly raw: RawClient;

  constructor(readonly socketPath: string) {
    const { kv } = loadKvService();
    this.raw = new kv(`unix:${socketPath}`, grpc.credentials.createInsecure(), channelOptions) as unknown as RawClient;
  }

  /** A client for the node at `socketPath`; throws NodeUnreachableError if there is no socket. */
  static connect(socketPath: string): ControlClient {
    if (!existsSync(socketPath)) throw new NodeUnreachableError(socketPath);
    return new ControlClient(socketPath);
  }

  close(): void {
    this.raw.close();
  }

  private unary<Res>(method: string, request: object): Promise<Res> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + unaryDeadlineMs);
      const fn = this.raw[method]!.bind(this.raw) as (
        req: object,
        meta: grpc.Metadata,
        opts: grpc.CallOptions,
        cb: (error: grpc.ServiceError | null, res: Res) => void,
      ) => void;
      fn(request, new grpc.Metadata(), { deadline }, (error, response) => {
        if (error) reject(this.translate(error));
        else resolve(response);
      });
    });
  }

  /** A connection failure means no node is listening at the socket. */
  translate(error: grpc.ServiceError): Error {
    if (error.code === grpc.status.UNAVAILABLE && /connect|No connection|ENOENT|ECONNREFUSED/i.test(error.details ?? error.message)) {
      return new NodeUnreachableError(this.socketPath);
    }
    return error;
  }

  private stream<Res>(method: string, request: object): AsyncIterable<Res> & { cancel(): void } {
    const call = (this.raw[method]!.bind(this.raw) as (req: object) => grpc.ClientReadableStream<Res>)(request);
    const translate = this.translate.bind(this);
    return {
      cancel: () => call.cancel(),
      async *[Symbol.asyncIterator]() {
        try {
          for await (const message of call) yield message as Res;
        } catch (error) {
          throw translate(error as grpc.ServiceError);
        }
      },
    };
  }

  put(key: string, value: Uint8Array): Promise<{ version: VersionMessage }> {
    return this.unary('Put', { key, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) });
  }
  /** Many puts in one call; each result has a version or an error. */
  putMany(puts: { key: string; value: Uint8Array }[]): Promise<{ results: { version: VersionMessage | null; error: string }[] }> {
    return this.unary('PutMany', {
      puts: puts.map(({ key, value }) => ({ key, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) })),
    });
  }
  get(key: string): Promise<GetResult> {
    return this.unary('Get', { key });
  }
  delete(key: string): Promise<{ version: VersionMessage }> {
    return this.unary('Delete', { key });
  }
  hasKey(key: string): Promise<{ found: boolean; version: VersionMessage | null; deleted: boolean }> {
    return this.unary('HasKey', { key });
  }
  whereIs(key: string): Promise<{ holders: HolderMessage[] }> {
    return this.unary('WhereIs', { key });
  }
  status(): Promise<StatusMessage> {
    return this.unary('Status', {});
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
  scan(request: { prefix?: string; startAfter?: string; limit?: number; withValues?: boolean; includeDeleted?: boolean }) {
    return this.stream<EntryMessage>('Scan', request);
  }
  watch(prefix = '') {
    return this.stream<ChangeMessage>('Watch', { prefix });
  }
  sync(peer = '') {
    return this.stream<SyncProgressMessage>('Sync', { peer });
  }
}
