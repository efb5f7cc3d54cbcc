/**
 * A small gRPC client over node:http2 on a Unix socket: what the CLI needs of gRPC and
 * nothing more (unary, server-streaming and client-streaming calls, deadlines, cancel,
 * status codes). Why not @grpc/grpc-js: loading it costs a `ckv get` ~45 ms, a fifth of
 * its wall time; node:http2 is built in. The server stays on grpc-js, so this speaks plain
 * gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 * POST /package.Service/Method, each message framed as a compressed flag (always 0) and a
 * 4-byte big-endian length, the status in `grpc-status`/`grpc-message` trailers (or in the
 * headers of a trailers-only reply).
 *
 * Flow control is HTTP/2's: a slow reader pauses the stream, which stops the window updates,
 * which stops the sender; a writer awaits 'drain'. So a 64 MiB value moves through in
 * pieces with bounded buffers on both sides.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';

/** gRPC status codes (the numbers are part of the gRPC protocol). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A call that ended with a non-OK status; `code` and `details` as grpc-js names them. */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${details}`);
    this.name = 'GrpcStatusError';
  }
}

/**
 * The connection to the node closed before the call's status arrived. `requestSent`: the
 * whole request (its end included) had been handed to the connection first, so the node may
 * have acted on it (a write may or may not be stored); otherwise it cannot have.
 */
export class ConnectionLostError extends GrpcStatusError {
  constructor(
    details: string,
    readonly requestSent: boolean,
  ) {
    super(GrpcStatus.UNAVAILABLE, details);
    this.name = 'ConnectionLostError';
  }
}

/** Messages the reader has not taken yet before the stream is paused (HTTP/2 backpressure). */
const queuedMessagesMax = 8;
/** Per-stream receive window: large enough that a value streams without stalls on a socket. */
const streamWindowBytes = 4 * 1024 * 1024;
const sessionWindowBytes = 16 * 1024 * 1024;
const frameHeaderBytes = 5;
/** A message part at least this large is written as it is rather than copied into one buffer. */
const largePartBytes = 64 * 1024;

export interface CallOptions {
  /** The call fails with DEADLINE_EXCEEDED after this; also sent to the server as grpc-timeout. */
  deadlineMs?: number;
}

export class GrpcChannel {
  private session: ClientHttp2Session | undefined;
  /** Why the connection failed, for the error of every call it took down. */
  private connectError: Error | undefined;
  private connected = false;

  constructor(
    readonly socketPath: string,
    readonly messageBytesMax: number,
  ) {}

  private open(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    this.connectError = undefined;
    this.connected = false;
    const session = connect('http://localhost', {
      createConnection: () => netConnect(this.socketPath),
      settings: { initialWindowSize: streamWindowBytes, enablePush: false },
    });
    session.on('error', (error: Error) => (this.connectError = error));
    // The node is shutting down (GOAWAY): finish what is open and let go of the connection, or
    // the node's graceful close waits on this idle session until it gives up and forces it.
    session.on('goaway', () => session.close());
    session.once('connect', () => {
      this.connected = true;
      session.setLocalWindowSize(sessionWindowBytes);
    });
    this.session = session;
    return session;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  /** Starts a call; send messages with `write`, finish with `end`, read with `messages`. */
  call(path: string, options: CallOptions = {}): Call {
    const headers: Record<string, string> = {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    if (options.deadlineMs !== undefined) headers['grpc-timeout'] = `${Math.max(1, Math.ceil(options.deadlineMs))}m`;
    const stream = this.open().request(headers);
    // A stream that closes before the connection was ever made failed to connect (the session's
    // own error, ECONNREFUSED and the like, may arrive after the stream's close).
    return new Call(stream, this.messageBytesMax, options.deadlineMs, () => ({ connected: this.connected, error: this.connectError }));
  }
}

export class Call {
  private readonly queue: Buffer[] = [];
  private status: GrpcStatusError | null | undefined; // undefined: not known yet; null: OK
  private finished = false;
  /** The request's end was written to a connected stream ('finish'): the node may have it all. */
  private requestSent = false;
  private wake: (() => void) | undefined;
  private readonly deadline: NodeJS.Timeout | undefined;
  // Frame reassembly state.
  private header = Buffer.alloc(frameHeaderBytes);
  private headerFilled = 0;
  private body: Buffer | undefined;
  private bodyFilled = 0;

  constructor(
    private readonly stream: ClientHttp2Stream,
    private readonly messageBytesMax: number,
    deadlineMs: number | undefined,
    private readonly connection: () => { connected: boolean; error: Error | undefined },
  ) {
    if (deadlineMs !== undefined) {
      this.deadline = setTimeout(() => this.fail(new GrpcStatusError(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded')), deadlineMs);
    }
    stream.on('response', (headers) => this.onHeaders(headers, true));
    stream.on('trailers', (trailers) => this.onHeaders(trailers, false));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', () => {}); // the outcome is decided on 'close'
    stream.once('finish', () => (this.requestSent = true));
    stream.on('close', () => this.onClose());
  }

  /** Sends one message (already encoded as parts); resolves when the stream can take more. */
  async write(parts: readonly Uint8Array[], bytes: number): Promise<void> {
    if (this.finished) return; // the call already ended: its status tells why
    const header = Buffer.allocUnsafe(frameHeaderBytes);
    header[0] = 0;
    header.writeUInt32BE(bytes, 1);
    // Small parts are joined (one write); a large part (a value's piece) goes as it is, so a
    // streamed value is not copied on its way out.
    let ok = true;
    let pending: Uint8Array[] = [header];
    let pendingBytes = frameHeaderBytes;
    for (const part of parts) {
      if (part.byteLength < largePartBytes) {
        pending.push(part);
        pendingBytes += part.byteLength;
        continue;
      }
      ok = this.stream.write(Buffer.concat(pending, pendingBytes)) && ok;
      ok = this.stream.write(part) && ok;
      pending = [];
      pendingBytes = 0;
    }
    if (pendingBytes > 0) ok = this.stream.write(Buffer.concat(pending, pendingBytes)) && ok;
    if (!ok && !this.finished) await this.drained();
  }

  /** Several small messages in one write (one DATA frame, one syscall), e.g. pipelined puts. */
  async writeMany(messages: readonly { parts: readonly Uint8Array[]; bytes: number }[]): Promise<void> {
    if (this.finished || messages.length === 0) return;
    let total = 0;
    for (const m of messages) total += frameHeaderBytes + m.bytes;
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (const m of messages) {
      out[offset] = 0;
      out.writeUInt32BE(m.bytes, offset + 1);
      offset += frameHeaderBytes;
      for (const part of m.parts) {
        out.set(part, offset);
        offset += part.byteLength;
      }
    }
    if (!this.stream.write(out) && !this.finished) await this.drained();
  }

  /** One shared wait for 'drain', however many writers are waiting on it. */
  private drainWait: Promise<void> | undefined;
  private drained(): Promise<void> {
    this.drainWait ??= new Promise<void>((resolve) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        this.drainWait = undefined;
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    });
    return this.drainWait;
  }

  end(): void {
    if (!this.stream.closed && !this.stream.writableEnded) this.stream.end();
  }

  /** Gives up on the call (Ctrl-C, a reader that has seen enough): RST_STREAM CANCEL. */
  cancel(): void {
    this.fail(new GrpcStatusError(GrpcStatus.CANCELLED, 'cancelled by the client'));
  }

  get ended(): boolean {
    return this.finished;
  }

  /** The reply messages in order; throws GrpcStatusError unless the call ends OK. */
  async *messages(): AsyncGenerator<Buffer> {
    for (;;) {
      const message = this.queue.shift();
      if (message !== undefined) {
        if (this.queue.length < queuedMessagesMax / 2 && this.stream.isPaused()) this.stream.resume();
        yield message;
        continue;
      }
      if (this.finished) {
        if (this.status) throw this.status;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private onHeaders(headers: IncomingHttpHeaders, initial: boolean): void {
    if (initial) {
      const httpStatus = Number(headers[':status']);
      if (httpStatus !== 200) {
        this.fail(new GrpcStatusError(GrpcStatus.UNKNOWN, `HTTP status ${httpStatus} from the node`));
        return;
      }
    }
    const code = headers['grpc-status'];
    if (code === undefined) return;
    const number = Number(code);
    this.status = number === GrpcStatus.OK ? null : new GrpcStatusError(number, decodeMessage(headers['grpc-message']));
    // The status ends the call: close our half too, or the stream stays half-open and the
    // node (waiting for it on shutdown) cannot finish.
    this.end();
  }

  private onData(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.finished) {
      if (this.body === undefined) {
        const take = Math.min(frameHeaderBytes - this.headerFilled, chunk.length - offset);
        chunk.copy(this.header, this.headerFilled, offset, offset + take);
        this.headerFilled += take;
        offset += take;
        if (this.headerFilled < frameHeaderBytes) return;
        const length = this.header.readUInt32BE(1);
        if (this.header[0] !== 0) return this.fail(new GrpcStatusError(GrpcStatus.INTERNAL, 'compressed message, which this client never asked for'));
        if (length > this.messageBytesMax) {
          return this.fail(new GrpcStatusError(GrpcStatus.RESOURCE_EXHAUSTED, `reply message of ${length} bytes is over ${this.messageBytesMax}`));
        }
        this.headerFilled = 0;
        // A message inside this chunk is a view; one that spans chunks is gathered once.
        if (chunk.length - offset >= length) {
          this.push(chunk.subarray(offset, offset + length));
          offset += length;
          continue;
        }
        this.body = Buffer.allocUnsafe(length);
        this.bodyFilled = 0;
      }
      const take = Math.min(this.body.length - this.bodyFilled, chunk.length - offset);
      chunk.copy(this.body, this.bodyFilled, offset, offset + take);
      this.bodyFilled += take;
      offset += take;
      if (this.bodyFilled === this.body.length) {
        this.push(this.body);
        this.body = undefined;
      }
    }
  }

  private push(message: Buffer): void {
    this.queue.push(message);
    if (this.queue.length >= queuedMessagesMax) this.stream.pause();
    this.notify();
  }

  private onClose(): void {
    if (this.finished) return;
    if (this.status === undefined) {
      // Never connected: the node cannot have seen the call. Connected, then lost: it may have.
      const { connected, error } = this.connection();
      this.status = connected
        ? new ConnectionLostError(`the connection to the node closed before its reply (${error?.message ?? `HTTP/2 code ${this.stream.rstCode ?? '?'}`})`, this.requestSent)
        : new GrpcStatusError(GrpcStatus.UNAVAILABLE, `cannot connect: ${error?.message ?? 'connection refused'}`);
    } else if (this.status === null && (this.body !== undefined || this.headerFilled > 0)) {
      this.status = new GrpcStatusError(GrpcStatus.INTERNAL, 'reply ended inside a message');
    }
    this.settle();
  }

  private fail(error: GrpcStatusError): void {
    if (this.finished) return;
    this.status = error;
    this.queue.length = 0;
    if (!this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL);
    this.settle();
  }

  private settle(): void {
    this.finished = true;
    if (this.deadline) clearTimeout(this.deadline);
    this.notify();
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"). */
function decodeMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
