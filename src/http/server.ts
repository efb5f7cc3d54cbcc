/**
 * The node's HTTP server (node:http): the status page, its live feed, /metrics, /healthz and a
 * small key-value gateway. Bound to 127.0.0.1:7070 by default (`--http HOST:PORT`, `--http
 * off`); if the default port is taken the next ones are tried, up to 20. An address given with
 * `--http` is bound as given or not at all (ListenError: exit 5), never moved elsewhere.
 *
 * Routes:
 *   GET  /               status page (src/http/page.ts)
 *   GET  /api/status     the status snapshot, JSON (src/http/snapshot.ts)
 *   GET  /events         server-sent events: one snapshot a second (at most 64 clients)
 *   GET  /metrics        Prometheus text (src/http/metrics.ts)
 *   GET  /healthz        `ok` (503 `stopping` while the node stops)
 *   GET  /kv/<key>       the raw value, header X-Ckv-Version: wallMs.counter@node; 404 if
 *                        missing or deleted. Partitioned mode: `?from=local|one|quorum|all`
 *                        and `&allow_partial=1` as `ckv get`; header X-Ckv-Answered: the
 *                        owners that answered (node ids, comma-separated); a value with a
 *                        TTL adds X-Ckv-Expires-At-Ms (wall ms); once expired it is a 404
 *   PUT  /kv/<key>       body = value; {"version": "..."}; `?ttl=30s` (ms, s, m, h, d; at
 *                        most 365d; a bad one is a 400) makes it expire. Partitioned mode:
 *                        `?consistency=one|quorum|all` as `ckv put`; the reply adds "owners"
 *                        and "acked"; too few acks: 503 (the write may be on those that acked)
 *   DELETE /kv/<key>     {"version": "..."}; `?consistency=` and the reply as PUT
 *   GET  /kv?prefix=P&limit=N[&after=K][&deleted=1][&values=1][&from=local][&allow_partial=1]
 *                        [{"key","version","deleted"?}, ...]; limit 1..10,000, default 100;
 *                        header X-Ckv-Truncated: true when more keys follow. With values=1
 *                        (the page's key browser) each item also has "timeMs" and "time"
 *                        (the version's wall time, ISO), "bytes", "preview" (the first 200 bytes if UTF-8 text,
 *                        src/http/preview.ts), "binary" and "truncated"; limit then 1..1,000
 *   GET  /api/cluster    every node's view side by side (JSON): this node's `health()` (each
 *                        member up asked for its report over the query protocol, which carries
 *                        that member's view of its peers); one round at a time, reused for 1 s,
 *                        so any number of pages cost at most one round a second
 *   GET  /api/events?after=SEQ[&limit=N]
 *                        the node's recent events with seq > SEQ, oldest first (ring of 500,
 *                        src/node/events.ts): {"lastSeq","dropped","events":[...]}, each event
 *                        {"seq","timeMs","time","kind","nodeId","peerId","detail"}; limit 1..500
 * Keys are the URL-decoded rest of the path after /kv/ (so `/kv/a/b` is the key `a/b`).
 *
 * Errors are one line of JSON, `{"error": "..."}`, with the status of their kind in the error
 * table (src/errors.ts): 400 invalid key or parameter, 404 not found, 409 peer connected, 413
 * value over the limit, 503 node stopping, 500 anything else; and HTTP's own: 403 foreign Host
 * header, 405 (with Allow), 503 too many event streams.
 *
 * Bounds: a request body larger than the value limit is refused with 413 as soon as its
 * Content-Length says so (nothing is read), or as soon as the bytes read pass the limit (the
 * connection is then closed); never more than one value is buffered per request. SSE clients
 * are limited, and one that does not read its stream is dropped.
 *
 * DNS rebinding: while bound to a loopback address, requests must name a loopback host
 * (localhost, 127.x.x.x, [::1]) in their Host header, so a web page from elsewhere cannot
 * reach the gateway through a DNS name that resolves to 127.0.0.1. Cross-origin PUT and
 * DELETE from a browser need a CORS preflight, which this server never grants.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { ConditionFailedError, InvalidKeyError } from '../core/errors.js';
import { checkKey, parseVersionText, versionToText, type Version, type WriteCondition } from '../core/entry.js';
import { hlcWallMs } from '../core/hlc.js';
import { membersMax } from '../core/limits.js';
import { parseTtl } from '../core/ttl.js';
import { errorKinds, InvalidArgumentError, kindOf, listenProblem, ListenError, NodeStoppingError, NotFoundError, UsageError, type ErrorKind } from '../errors.js';
import type { NodeApi, WriteReply } from '../node/api.js';
import { consistencyOf, readSources, type ReadSource } from '../node/coordinator.js';
import { createMetrics, type NodeMetrics } from './metrics.js';
import type { ClusterHealth } from '../node/health.js';
import { eventsReadMax } from '../node/events.js';
import { pageSecurityPolicy, renderPage } from './page.js';
import { valuePreview } from './preview.js';
import { toSnapshot, type StatusSnapshot } from './snapshot.js';

/** Ports tried from the configured one when it is taken. */
export const httpPortAttempts = 20;
/** Server-sent-event clients served at once; more get 503. */
export const sseClientsMax = 64;
/** A client whose unread stream exceeds this is dropped. */
const sseBufferBytesMax = 1024 * 1024;
const snapshotIntervalMs = 1000;
const listLimitDefault = 100;
export const listLimitMax = 10_000;
/** With values=1 each item carries a 200-byte preview: fewer per page. */
export const valuesListLimitMax = 1_000;
/** A cluster round (`/api/cluster`) is reused this long: pages never make nodes ask more often. */
const clusterRoundReuseMs = 1000;
const eventsLimitDefault = 100;
/** How long close() lets requests in flight finish before cutting them. */
const closeGraceMs = 2000;

export interface HttpAddress {
  host: string;
  port: number;
}

/** Parses `--http`: `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT` (host 127.0.0.1); 'off' gives undefined. */
export function parseHttpAddress(spec: string): HttpAddress | undefined {
  const text = spec.trim();
  if (text === 'off') return undefined;
  let host = '127.0.0.1';
  let portText = text;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (text.includes(':')) {
    const at = text.lastIndexOf(':');
    if (at > 0) host = text.slice(0, at);
    portText = text.slice(at + 1);
    if (host.includes(':')) throw new UsageError(`--http ${spec}: write an IPv6 address in brackets, e.g. [::1]:7070`);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--http ${spec}: expected HOST:PORT (e.g. 127.0.0.1:7070) or 'off'`);
  return { host, port };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

export function versionText(version: Version): string {
  return versionToText(version);
}

/**
 * The condition of a PUT or DELETE from its headers: `If-Match: "V"` (the ETag a GET gave,
 * quotes optional; one version, not a list or *), the key holds exactly version V;
 * `If-None-Match: *` (PUT only), the key holds nothing or a tombstone. Anything else in
 * those headers is a 400, so a condition is never silently ignored.
 */
export function conditionFromHeaders(req: IncomingMessage, method: 'PUT' | 'DELETE'): WriteCondition | undefined {
  const ifMatch = req.headers['if-match'];
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifMatch !== undefined && ifNoneMatch !== undefined) throw new InvalidArgumentError('give If-Match or If-None-Match, not both');
  if (ifNoneMatch !== undefined) {
    if (method !== 'PUT' || ifNoneMatch.trim() !== '*') throw new InvalidArgumentError('If-None-Match is supported only as "If-None-Match: *" on PUT (create if absent)');
    return { ifAbsent: true };
  }
  if (ifMatch === undefined) return undefined;
  const text = ifMatch.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  const version = parseVersionText(text);
  if (!version) throw new InvalidArgumentError(`If-Match must be one version as an ETag gives it ("wallMs.counter@node"), not ${ifMatch.slice(0, 80)}`);
  return { ifVersion: version };
}

/** A failed condition as HTTP 412, with the current version as ETag (if the key holds a live value). */
/** A write's JSON reply: its version, and in partitioned mode its owners and those that acked. */
function writeReplyJson(reply: WriteReply): Record<string, unknown> {
  return { version: versionText(reply.version), ...(reply.owners.length > 0 ? { owners: reply.owners, acked: reply.acked } : {}) };
}

async function preconditionChecked<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if (!(error instanceof ConditionFailedError)) throw error;
    const headers: Record<string, string> = {};
    if (error.current !== undefined) headers['X-Ckv-Version'] = error.current;
    if (error.current !== undefined && !error.currentDeleted) headers.ETag = `"${error.current}"`;
    throw new HttpError('conditionFailed', error.message, headers);
  }
}

/**
 * An error of HTTP itself (foreign Host 403, method 405, too many event streams 503, a body
 * over the limit 413): its status is given, or taken from the error table (src/errors.ts) when
 * it is one of its kinds. Every other error is mapped by the table in fail().
 */
class HttpError extends Error {
  readonly status: number;
  constructor(status: number | ErrorKind, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.status = typeof status === 'number' ? status : errorKinds[status].http;
    this.name = 'HttpError';
  }
}

interface SseClient {
  res: ServerResponse;
}

export class HttpServer {
  private server: Server | undefined;
  private address: HttpAddress | undefined;
  private readonly metrics: NodeMetrics;
  private readonly sseClients = new Set<SseClient>();
  private ticker: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  /** The last cluster round (in flight or done) and when it started. */
  private clusterRound: { startedMs: number; result: Promise<ClusterHealth>; done: boolean } | undefined;
  /** http://host:port/, set once listening. */
  url = '';

  constructor(private readonly node: NodeApi) {
    this.metrics = createMetrics(node, { eventStreams: () => this.sseClients.size, eventStreamsMax: sseClientsMax });
  }

  /**
   * Binds `host:port` and resolves with the URL. With `portFallback` (the default address,
   * not one the user gave) a busy port moves to the next free one of the 20 from it;
   * otherwise a port that cannot be bound is a ListenError.
   */
  async listen(wanted: HttpAddress, options: { portFallback: boolean } = { portFallback: false }): Promise<string> {
    let lastError: unknown;
    const attempts = options.portFallback ? httpPortAttempts : 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const port = wanted.port === 0 ? 0 : wanted.port + attempt;
      if (port > 65535) break;
      const server = createServer((req, res) => this.handle(req, res));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: wanted.host, port, exclusive: true }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (error) {
        lastError = error;
        if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE' && wanted.port !== 0 && options.portFallback) continue;
        const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        throw new ListenError(
          `cannot serve HTTP on ${hostPort(wanted.host, port)}: ${listenProblem(error)}` +
            (inUse ? ' (choose another with --http HOST:PORT, or --http off)' : ''),
        );
      }
      server.maxConnections = 1024;
      // `Expect: 100-continue` (curl, for large bodies): refuse an oversized PUT before its body is sent.
      server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
        const declared = Number(req.headers['content-length']);
        if (req.method === 'PUT' && declared > this.node.valueBytesMax) {
          res.setHeader('Connection', 'close');
          sendJson(res, req, errorKinds.valueTooLarge.http, { error: `value is ${declared} bytes; the limit is ${this.node.valueBytesMax} bytes` });
          return;
        }
        res.writeContinue();
        this.handle(req, res);
      });
      server.on('clientError', (_error, socket) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        else socket.destroy();
      });
      this.server = server;
      const bound = server.address() as AddressInfo;
      this.address = { host: wanted.host, port: bound.port };
      this.url = `http://${urlHost(wanted.host)}:${bound.port}/`;
      return this.url;
    }
    const last = Math.min(65535, wanted.port + httpPortAttempts - 1);
    throw new ListenError(
      `cannot serve HTTP: ports ${wanted.port}..${last} on ${wanted.host} are all in use (${(lastError as Error | undefined)?.message ?? 'no port left'}); ` +
        "choose one with --http HOST:PORT, or --http off",
    );
  }

  /** Idempotent. Ends event streams, lets requests in flight finish for up to 2 s, then cuts them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.metrics.close();
    clearInterval(this.ticker);
    for (const client of [...this.sseClients]) this.dropSse(client);
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      // Keep-alive connections go idle as their last response ends (the event streams just
      // ended too): close each as soon as it does, rather than waiting for its timeout.
      const sweep = setInterval(() => server.closeIdleConnections(), 20);
      const force = setTimeout(() => {
        clearInterval(sweep);
        server.closeAllConnections();
        resolve();
      }, closeGraceMs);
      force.unref();
      server.close(() => {
        clearInterval(sweep);
        clearTimeout(force);
        resolve();
      });
      server.closeIdleConnections();
    });
  }

  // --- dispatch -----------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((error: unknown) => this.fail(req, res, error));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkHost(req);
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const path = queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt);
    const query = new URLSearchParams(queryAt < 0 ? '' : rawUrl.slice(queryAt + 1));
    const method = req.method ?? 'GET';

    if (path === '/healthz') {
      allow(method, ['GET', 'HEAD']);
      const stopping = this.node.isStopping;
      return send(res, req, stopping ? 503 : 200, stopping ? 'stopping\n' : 'ok\n', 'text/plain; charset=utf-8');
    }
    if (this.node.isStopping || this.closed) throw new NodeStoppingError();

    if (path === '/kv' || (path === '/kv/' && (method === 'GET' || method === 'HEAD'))) {
      allow(method, ['GET', 'HEAD']);
      return this.list(req, res, query);
    }
    if (path.startsWith('/kv/')) {
      allow(method, ['GET', 'HEAD', 'PUT', 'DELETE']);
      let key: string;
      try {
        key = decodeURIComponent(path.slice('/kv/'.length));
      } catch {
        throw new InvalidKeyError('the key is not valid percent-encoded UTF-8');
      }
      checkKey(key);
      if (method === 'PUT') return this.put(req, res, key, query);
      if (method === 'DELETE') {
        const consistency = consistencyOf(query.get('consistency') ?? '');
        const reply = await preconditionChecked(this.node.write(key, null, { condition: conditionFromHeaders(req, 'DELETE'), consistency }));
        return sendJson(res, req, 200, writeReplyJson(reply));
      }
      return this.get(req, res, key, query);
    }
    switch (path) {
      case '/':
      case '/index.html': {
        allow(method, ['GET', 'HEAD']);
        const page = renderPage(await this.snapshot());
        res.setHeader('Content-Security-Policy', pageSecurityPolicy);
        res.setHeader('X-Frame-Options', 'DENY');
        return send(res, req, 200, page, 'text/html; charset=utf-8');
      }
      case '/api/status':
        allow(method, ['GET', 'HEAD']);
        return sendJson(res, req, 200, await this.snapshot());
      case '/events':
        allow(method, ['GET']);
        return this.events(req, res);
      case '/api/cluster':
        allow(method, ['GET', 'HEAD']);
        return sendJson(res, req, 200, clusterJson(await this.clusterHealth()));
      case '/api/events': {
        allow(method, ['GET', 'HEAD']);
        const after = wholeParam(query, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
        const limit = wholeParam(query, 'limit', 1, eventsReadMax, eventsLimitDefault);
        const recent = this.node.recentEvents(after, limit);
        return sendJson(res, req, 200, { ...recent, events: recent.events.map((e) => ({ ...e, time: isoTime(e.timeMs) })) });
      }
      case '/metrics': {
        allow(method, ['GET', 'HEAD']);
        const text = await this.metrics.scrape();
        return send(res, req, 200, text, this.metrics.contentType);
      }
      default:
        throw new NotFoundError(`no such path: ${path.slice(0, 200)}`);
    }
  }

  private checkHost(req: IncomingMessage): void {
    const host = req.headers.host;
    if (host === undefined || !this.address || !isLoopbackHost(this.address.host)) return;
    const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
    if (!isLoopbackHost(name)) {
      throw new HttpError(403, `this node serves HTTP on a loopback address; Host ${host.slice(0, 100)} is refused (use localhost or 127.0.0.1)`);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    let message = error instanceof Error ? error.message : String(error);
    let status: number;
    let headers: Record<string, string> = {};
    if (error instanceof HttpError) {
      status = error.status;
      headers = error.headers;
    } else {
      const kind = kindOf(error);
      status = errorKinds[kind].http;
      if (kind === 'stopping') message = 'the node is stopping';
      if (kind === 'failed') this.node.logger.warn('http request failed', { method: req.method, url: (req.url ?? '').slice(0, 200), error: message });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    sendJson(res, req, status, { error: message.split('\n')[0] });
  }

  /** This node's health(): one round at a time, a round reused for clusterRoundReuseMs. */
  private clusterHealth(): Promise<ClusterHealth> {
    const now = Date.now();
    const round = this.clusterRound;
    if (round && now - round.startedMs < clusterRoundReuseMs) return round.result;
    if (round && !round.done) return round.result;
    const result = this.node.health();
    const next = { startedMs: now, result, done: false };
    this.clusterRound = next;
    result.then(
      () => (next.done = true),
      () => {
        next.done = true;
        if (this.clusterRound === next) this.clusterRound = undefined;
      },
    );
    return result;
  }

  private async snapshot(): Promise<StatusSnapshot> {
    return toSnapshot(await this.node.status());
  }

  // --- the key-value gateway ----------------------------------------------------------------

  private async get(req: IncomingMessage, res: ServerResponse, key: string, query: URLSearchParams): Promise<void> {
    const from = query.get('from') ?? '';
    if (from !== '' && !(readSources as readonly string[]).includes(from)) throw new InvalidArgumentError(`from must be one of ${readSources.join(', ')}`);
    const reply = await this.node.read(key, { ...(from === '' ? {} : { from: from as ReadSource }), allowPartial: query.get('allow_partial') === '1' });
    const entry = reply.entry;
    if (reply.owners.length > 0) res.setHeader('X-Ckv-Answered', reply.answers.filter((a) => a.error === undefined).map((a) => a.nodeId).join(','));
    if (!entry) throw new NotFoundError('not found');
    if (entry.value === null) throw new HttpError('notFound', 'not found (deleted)', { 'X-Ckv-Version': versionText(entry.version) });
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': entry.value.byteLength,
      'X-Ckv-Version': versionText(entry.version),
      ETag: `"${versionText(entry.version)}"`,
      'Cache-Control': 'no-store',
      ...(entry.expiresAtMs === undefined ? {} : { 'X-Ckv-Expires-At-Ms': String(entry.expiresAtMs) }),
    });
    res.end(req.method === 'HEAD' ? undefined : Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength));
  }

  private async put(req: IncomingMessage, res: ServerResponse, key: string, query: URLSearchParams): Promise<void> {
    const condition = conditionFromHeaders(req, 'PUT'); // before the body: a bad header costs no upload
    const consistency = consistencyOf(query.get('consistency') ?? '');
    const ttlMs = ttlFromQuery(query.get('ttl')); // before the body, as the condition
    const value = await readBody(req, res, this.node.valueBytesMax);
    const reply = await preconditionChecked(this.node.write(key, new Uint8Array(value.buffer, value.byteOffset, value.byteLength), { condition, consistency, ttlMs }));
    res.setHeader('ETag', `"${versionText(reply.version)}"`);
    sendJson(res, req, 200, writeReplyJson(reply));
  }

  private async list(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const prefix = query.get('prefix') ?? '';
    const after = query.get('after') ?? '';
    const limitText = query.get('limit');
    const limit = limitText === null ? listLimitDefault : Number(limitText);
    const withValues = ['1', 'true', 'yes'].includes(query.get('values') ?? '');
    const limitMax = withValues ? valuesListLimitMax : listLimitMax;
    if (limitText !== null && (!/^\d+$/.test(limitText) || limit < 1 || limit > limitMax)) {
      throw new InvalidArgumentError(`limit must be a whole number from 1 to ${limitMax}${withValues ? ' with values=1' : ''}, not ${limitText.slice(0, 20)}`);
    }
    const withDeleted = ['1', 'true', 'yes'].includes(query.get('deleted') ?? '');
    const items: string[] = [];
    let truncated = false;
    // Partitioned mode: every partition from its owners (from=local: this node's copy).
    const from = query.get('from') ?? '';
    if (from !== '' && from !== 'local') throw new InvalidArgumentError(`from must be local or absent, not ${from.slice(0, 20)}`);
    const partial = { partitionsMissing: 0 };
    const read = { ...(from === 'local' ? { from: 'local' as const } : {}), allowPartial: ['1', 'true', 'yes'].includes(query.get('allow_partial') ?? ''), partial };
    for await (const entry of this.node.scan({ prefix, ...(after ? { startAfter: after } : {}), withValues, ...read })) {
      if (entry.value === null && !withDeleted) continue;
      if (items.length >= limit) {
        truncated = true;
        break;
      }
      const item: Record<string, unknown> = { key: entry.key, version: versionText(entry.version) };
      if (entry.value === null) item.deleted = true;
      else if (entry.expiresAtMs !== undefined) item.expiresAtMs = entry.expiresAtMs;
      if (withValues) {
        item.timeMs = hlcWallMs(entry.version.hlc);
        item.time = isoTime(item.timeMs as number);
        const preview = entry.value === null ? undefined : valuePreview(entry.value);
        item.bytes = preview?.bytes ?? 0;
        item.preview = preview?.text ?? '';
        item.binary = preview?.binary ?? false;
        item.truncated = preview?.truncated ?? false;
      }
      items.push(JSON.stringify(item));
    }
    if (truncated) res.setHeader('X-Ckv-Truncated', 'true');
    if (partial.partitionsMissing > 0) res.setHeader('X-Ckv-Partitions-Missing', String(partial.partitionsMissing));
    send(res, req, 200, items.length ? `[\n${items.join(',\n')}\n]\n` : '[]\n', 'application/json; charset=utf-8');
  }

  // --- server-sent events -------------------------------------------------------------------

  private async events(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.sseClients.size >= sseClientsMax) {
      throw new HttpError(503, `too many event streams open (${sseClientsMax}); poll /api/status instead`, { 'Retry-After': '5' });
    }
    const client: SseClient = { res };
    this.sseClients.add(client);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const drop = (): void => {
      this.sseClients.delete(client);
      if (this.sseClients.size === 0) this.stopTicker();
    };
    req.on('close', drop);
    res.on('close', drop);
    this.startTicker();
    // The first snapshot at once, not a second later.
    writeEvent(client, await this.snapshot());
  }

  private startTicker(): void {
    if (this.ticker || this.closed) return;
    this.ticker = setInterval(() => void this.tick(), snapshotIntervalMs);
    this.ticker.unref();
  }

  private stopTicker(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.sseClients.size === 0) return;
    this.ticking = true;
    try {
      const snap = await this.snapshot();
      for (const client of this.sseClients) {
        if (client.res.writableLength > sseBufferBytesMax) this.dropSse(client);
        else writeEvent(client, snap);
      }
    } catch (error) {
      this.node.logger.warn('status snapshot failed', { error: (error as Error).message });
    } finally {
      this.ticking = false;
    }
  }

  private dropSse(client: SseClient): void {
    this.sseClients.delete(client);
    client.res.end();
    if (this.sseClients.size === 0) this.stopTicker();
  }
}

/** ISO 8601 of epoch ms ('' if out of Date's range). */
function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

/** A whole-number query parameter in [min, max], or `fallback` when absent; anything else is a 400. */
function wholeParam(query: URLSearchParams, name: string, min: number, max: number, fallback: number): number {
  const text = query.get(name);
  if (text === null || text === '') return fallback;
  const value = Number(text);
  if (!/^\d{1,16}$/.test(text) || value < min || value > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}, not ${text.slice(0, 20)}`);
  return value;
}

/**
 * The matrix on the page is at most this many nodes square: `/api/cluster` lists the first
 * 64 members (this node first) and, in each report, only its views of those 64; `nodesTotal`
 * and each report's `peersTotal` say how many there were. A cluster of membersMax (1024) nodes
 * thus answers in a few MB, not a million cells. `problems` (ckv health's) still names them all.
 */
export const clusterMatrixNodesMax = 64;

/** `/api/cluster`: every node's report and view of its peers, beside this node's view of it. */
export function clusterJson(health: ClusterHealth): unknown {
  const shown = health.members.slice(0, clusterMatrixNodesMax);
  const columns = new Set(shown.map((m) => m.nodeId));
  return {
    time: new Date(health.timeMs).toISOString(),
    timeMs: health.timeMs,
    healthy: health.healthy,
    problems: health.problems.slice(0, membersMax + 1),
    nodesTotal: health.members.length,
    nodes: shown.map((m) => ({
      nodeId: m.nodeId,
      peerId: m.peerId,
      self: m.self,
      // As this node sees it.
      state: m.self ? 'self' : m.state,
      inSync: m.inSync,
      lastSyncMs: m.lastSyncMs,
      lastSyncResult: m.lastSyncResult,
      clockOffsetMs: m.clockOffsetMs,
      // What it says of itself (null if it is not up or did not answer: then `error`).
      answered: m.report !== undefined,
      error: m.error,
      report: m.report
        ? {
            version: m.report.version,
            incarnation: m.report.incarnation,
            keys: m.report.keys,
            tombstones: m.report.tombstones,
            bytesOnDisk: m.report.bytesOnDisk,
            merkleRoot: m.report.merkleRoot,
            uptimeMs: m.report.uptimeMs,
            timeMs: m.report.timeMs,
            peersUp: m.report.peersUp,
            clockWarning: m.report.clockWarning,
            peersTotal: m.report.peers.length,
            peers: m.report.peers.filter((p) => columns.has(p.nodeId)),
          }
        : null,
    })),
  };
}

function writeEvent(client: SseClient, snap: StatusSnapshot): void {
  if (client.res.writableEnded || client.res.destroyed) return;
  client.res.write(`data: ${JSON.stringify(snap)}\n\n`);
}

/** `host:port`, an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new HttpError(405, `method ${method.slice(0, 20)} not allowed here`, { Allow: methods.join(', ') });
}

function send(res: ServerResponse, req: IncomingMessage, status: number, body: string, contentType: string): void {
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': bytes.byteLength,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

function sendJson(res: ServerResponse, req: IncomingMessage, status: number, value: unknown): void {
  send(res, req, status, JSON.stringify(value) + '\n', 'application/json; charset=utf-8');
}

/**
 * The request body, at most `limit` bytes. Beyond the limit: 413 at once (from the declared
 * Content-Length, before reading anything) or as soon as the bytes read pass it; then the
 * connection closes, so the rest is never read.
 */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (bytes: number, known: boolean): void => {
      req.pause();
      reject(new HttpError('valueTooLarge', `value is ${known ? '' : 'over '}${bytes} bytes; the limit is ${limit} bytes`));
      res.once('finish', () => lingerAndClose(req));
    };
    const declaredText = req.headers['content-length'];
    const declared = declaredText === undefined ? undefined : Number(declaredText);
    if (declared !== undefined && declared > limit) {
      tooLarge(declared, true);
      return;
    }
    const fixed = declared !== undefined && Number.isSafeInteger(declared) ? Buffer.allocUnsafe(declared) : undefined;
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const onData = (chunk: Buffer): void => {
      if (done) return;
      if (total + chunk.byteLength > limit) {
        done = true;
        req.off('data', onData);
        tooLarge(total + chunk.byteLength, false);
        return;
      }
      if (fixed) {
        if (total + chunk.byteLength > fixed.byteLength) {
          done = true;
          reject(new HttpError('invalidArgument', 'request body longer than its Content-Length'));
          return;
        }
        chunk.copy(fixed, total);
      } else chunks.push(chunk);
      total += chunk.byteLength;
    };
    req.on('data', onData);
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve(fixed ? fixed.subarray(0, total) : Buffer.concat(chunks, total));
    });
    req.once('error', (error) => {
      if (done) return;
      done = true;
      reject(error);
    });
  });
}

/**
 * What lingerAndClose discards at most before it closes the connection. Discarding holds no
 * memory; the bound is on wasted reads. It was 8 MiB: a client on loopback sends that in a few
 * milliseconds, the close then came before the client had read our 413, and the reset threw
 * the answer away (the client saw EPIPE). 256 MiB outlasts the 2 s on any link we serve.
 */
const lingerBytesMax = 256 * 1024 * 1024;
const lingerMs = 2000;

/**
 * After an early answer (413) the client may still be sending. Closing at once would reset
 * the connection (unread data) and many clients would then report the reset, not our answer.
 * So, as web servers do (a "lingering close"): stop sending (FIN), discard what still arrives
 * for up to 2 s or 256 MiB, then close. The rest of the body is never stored.
 */
function lingerAndClose(req: IncomingMessage): void {
  const socket = req.socket;
  if (socket.destroyed) return;
  let discarded = 0;
  const close = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(close, lingerMs);
  timer.unref();
  socket.on('data', (chunk: Buffer) => {
    discarded += chunk.byteLength;
    if (discarded > lingerBytesMax) close();
  });
  socket.once('end', close);
  socket.once('close', () => clearTimeout(timer));
  socket.end();
  req.resume();
}

/** `?ttl=30s` of a PUT (src/core/ttl.ts parseTtl): its ms, undefined without one; a bad one is a 400. */
function ttlFromQuery(text: string | null): number | undefined {
  if (text === null) return undefined;
  const ttlMs = parseTtl(text);
  if (typeof ttlMs === 'string') throw new InvalidArgumentError(ttlMs);
  return ttlMs;
}
