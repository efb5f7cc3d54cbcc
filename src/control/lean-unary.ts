/**
 * The hot unary calls (Put, PutMany, Get, and Status, which pollers call often) answered straight on
 * node:http2, on the same HTTP/2 sessions as grpc-js, which keeps every other method,
 * reflection and the connections themselves.
 *
 * Why: grpc-js costs ~100 us of CPU per call on the server (interceptor chain, metadata
 * objects, a read queue, a promise per message, channelz bookkeeping) and sends a unary
 * call's status one event-loop turn after its message (when the message's write completes).
 * Here a call is: collect the request's DATA, check its one length-prefixed message, decode
 * it with the service's own deserializer, run the handler, and answer with the response
 * headers and the message in one step; the status trailers follow as soon as node:http2 asks
 * for them ('wantTrailers', once the message's DATA is out; node:http2 writes them in a
 * second socket write), not after the message's write callback as grpc-js does.
 *
 * How: grpc-js listens for 'stream' on the node:http2 server it binds. `interceptStreams`
 * replaces that listener with one that offers each stream to a router first and passes the
 * others to grpc-js's listener unchanged. The server is found through grpc-js's private
 * `http2Servers` map (1.9 - 1.14); if it is not there, nothing is intercepted and grpc-js
 * answers every call as before (slower, same behaviour).
 *
 * What a client sees is what grpc-js would send: the same response headers, `grpc-status`
 * and `grpc-message` (percent-encoded with encodeURI; 'OK' on success), a trailers-only
 * response for an error, DEADLINE_EXCEEDED after `grpc-timeout`, RESOURCE_EXHAUSTED past the
 * message size limits, UNIMPLEMENTED for no or two request messages, INTERNAL for a message
 * that does not decode or claims compression it does not have. A stream with another
 * content type, or a compressed request (`grpc-encoding` other than identity), is left to
 * grpc-js, which answers it.
 */
import * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

/** gRPC status codes used here (grpc.status, without loading grpc-js in this module's type-only import). */
const code = { ok: 0, internal: 13, unimplemented: 12, deadlineExceeded: 4, resourceExhausted: 8 } as const;

/** A unary method served here: its path's decoder and encoder, and the handler (which throws ServiceErrors). */
export interface LeanMethod<Req = unknown, Res = unknown> {
  path: string;
  deserialize(bytes: Buffer): Req;
  serialize(reply: Res): Buffer;
  handle(request: Req): Promise<Res>;
  /** The gRPC status for a handler's error (the error table's code and one-line message). */
  statusOf(error: unknown): { code: number; details: string };
}

export interface LeanLimits {
  receiveBytesMax: number;
  sendBytesMax: number;
}

const responseHeaders = {
  ':status': 200,
  'content-type': 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'grpc-encoding': 'identity',
};
const okTrailers = { 'grpc-status': String(code.ok), 'grpc-message': 'OK' };
const deadlineRegex = /(\d{1,8})\s*([HMSmun])/;
const deadlineUnitsMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/**
 * Makes `route` see every stream of `server`'s HTTP/2 listeners first: a stream it takes
 * (returns true) is its own; the others go to grpc-js. Returns false (and changes nothing)
 * when grpc-js's listeners cannot be found.
 */
export function interceptStreams(server: grpc.Server, route: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean): boolean {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  const listening = [...servers.keys()] as http2.Http2Server[];
  if (!listening.every((s) => typeof s.listeners === 'function' && s.listeners('stream').length === 1)) return false;
  for (const http2Server of listening) {
    const grpcListener = http2Server.listeners('stream')[0] as StreamListener;
    http2Server.removeListener('stream', grpcListener);
    http2Server.on('stream', function (this: http2.Http2Server, ...[stream, headers, flags, rawHeaders]: Parameters<StreamListener>) {
      if (!route(stream, headers)) grpcListener.call(this, stream, headers, flags, rawHeaders);
    });
  }
  return true;
}

/** Whether a stream is for this fast path: a gRPC content type, no request compression. */
export function leanEligible(headers: http2.IncomingHttpHeaders): boolean {
  const contentType = headers['content-type'];
  if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return false;
  const encoding = headers['grpc-encoding'];
  return encoding === undefined || encoding === 'identity';
}

/**
 * Answers one unary call on `stream`. `guard` runs the handler as the control server runs
 * every call (refusal while stopping, counted as in flight until answered).
 */
export function serveLeanUnary<Req, Res>(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  method: LeanMethod<Req, Res>,
  limits: LeanLimits,
  guard: (run: () => Promise<Res>) => Promise<Res>,
): void {
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  const finish = (): boolean => {
    if (done) return false;
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    return !(stream.destroyed || stream.closed || stream.headersSent);
  };
  const fail = (status: number, details: string): void => {
    if (!finish()) return;
    stream.respond({ 'grpc-status': String(status), 'grpc-message': encodeURI(details), ':status': 200, 'content-type': 'application/grpc+proto' }, { endStream: true });
  };
  const reply = (message: Buffer): void => {
    if (!finish()) return;
    stream.respond(responseHeaders, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(okTrailers));
    stream.end(message);
  };

  stream.on('error', () => {}); // reset by the client: 'close' follows; nothing to send
  stream.once('close', () => {
    done = true;
    if (timer !== undefined) clearTimeout(timer);
  });

  const timeout = headers['grpc-timeout'];
  if (timeout !== undefined) {
    const match = deadlineRegex.exec(String(timeout));
    if (match === null) {
      fail(code.internal, `Invalid grpc-timeout value "${String(timeout)}"`);
      stream.resume();
      return;
    }
    const ms = (Number(match[1]) * deadlineUnitsMs[match[2]!]!) | 0;
    timer = setTimeout(() => fail(code.deadlineExceeded, 'Deadline exceeded'), ms);
  }

  // The request: one length-prefixed message (5-byte header: compressed flag, length), whole.
  // Held up to its announced length (bounded by receiveBytesMax); more is a second message.
  const chunks: Buffer[] = [];
  let received = 0;
  let length = -1;
  stream.on('data', (chunk: Buffer) => {
    if (done) return;
    chunks.push(chunk);
    received += chunk.byteLength;
    if (length < 0 && received >= 5) {
      length = (chunks.length === 1 ? chunk : Buffer.concat(chunks)).readUInt32BE(1);
      if (length > limits.receiveBytesMax) {
        fail(code.resourceExhausted, `Received message larger than max (${length} vs ${limits.receiveBytesMax})`);
        return;
      }
    }
    if (length >= 0 && received > 5 + length) fail(code.unimplemented, `Received a second request message for server streaming method ${method.path}`);
  });
  stream.on('end', () => {
    if (done) return;
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (bytes.byteLength < 5) {
      if (bytes.byteLength === 0) fail(code.unimplemented, `Received no request message for server streaming method ${method.path}`);
      else fail(code.internal, 'Received an incomplete message');
      return;
    }
    if (bytes.byteLength < 5 + length) {
      fail(code.internal, 'Received an incomplete message');
      return;
    }
    if (bytes[0] !== 0) {
      fail(code.internal, 'Received compressed message but "grpc-encoding" header was identity');
      return;
    }
    let request: Req;
    try {
      request = method.deserialize(bytes.subarray(5));
    } catch {
      fail(code.internal, 'Error deserializing request');
      return;
    }
    guard(() => method.handle(request)).then(
      (response) => {
        if (done) return;
        let message: Buffer;
        try {
          message = frame(method.serialize(response));
        } catch {
          fail(code.internal, 'Error serializing response');
          return;
        }
        if (message.byteLength - 5 > limits.sendBytesMax) {
          fail(code.resourceExhausted, `Sent message larger than max (${message.byteLength} vs. ${limits.sendBytesMax})`);
          return;
        }
        reply(message);
      },
      (error: unknown) => {
        const status = method.statusOf(error);
        fail(status.code, status.details);
      },
    );
  });
}

/** A message with its gRPC length prefix (uncompressed). */
function frame(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.byteLength);
  framed[0] = 0;
  framed.writeUInt32BE(message.byteLength, 1);
  message.copy(framed, 5);
  return framed;
}
