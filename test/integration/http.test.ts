/**
 * The node's HTTP server, against real `ckv node start` processes: the key-value gateway
 * (GET/PUT/DELETE/list, error codes, the body limit), /healthz, /metrics, /api/status,
 * /events, the status page's DOM contract, the port fallback, the Host check, the event
 * stream limit, and a 2-node cluster seen through /api/status and /metrics.
 *
 * Requests are plain fetch calls (what curl would send); the body-limit tests use node:http
 * where they must control exactly what is sent. No fixed sleeps: waits poll with deadlines.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { hlcPack } from '../../src/core/hlc.js';
import { isLoopbackHost, parseHttpAddress } from '../../src/http/server.js';
import { quantile, WriteStats } from '../../src/node/write-stats.js';
import { fetchWithin, requestMsMax, runCliOk, startNode, waitFor, withDeadline, type NodeProcess } from '../../harness/testing.js';

const MiB = 1024 * 1024;
const valueBytesMax = 64 * MiB;
const versionPattern = /^\d+\.\d+@[0-9a-f]{16}$/;

interface Snapshot {
  time: string;
  timeMs: number;
  self: { nodeId: string; peerId: string; addresses: string[]; cluster: string; httpUrl: string; uptimeMs: number };
  totals: {
    keys: number;
    tombstones: number;
    entries: number;
    bytesOnDisk: number;
    writes: { local: number; remote: number };
    writesPerSec: { local: number; remote: number };
    syncSessions: Record<string, number>;
    syncSessionsTotal: number;
    syncBytes: { in: number; out: number };
    syncEntriesApplied: number;
    peersUp: number;
  };
  peers: { peerId: string; addresses: string[]; state: string; lastSyncMs: number; lastSyncResult: string; clockOffsetMs: number; inSync: boolean; entryCount: number | null }[];
  convergence: { samples: number; p50Ms: number | null; p99Ms: number | null };
  series: { t: number; local: number; remote: number; p50Ms: number | null; p99Ms: number | null }[];
}

/** The node's 127.0.0.1 libp2p address with /p2p/, for --bootstrap. */
async function libp2pAddress(node: NodeProcess): Promise<string> {
  const status = await node.status();
  const address = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
  assert.ok(address, `no 127.0.0.1 address in ${status.listenAddresses.join(' ')}`);
  return address;
}

/** An error reply: the status and one line of JSON `{"error": "..."}`. */
async function assertError(response: Response, status: number, pattern?: RegExp): Promise<void> {
  if (response.status !== status && (response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    await response.body?.cancel(); // an event stream never ends: reading it to the end would hang
    assert.fail(`expected ${status}, got ${response.status} and an event stream`);
  }
  const text = await response.text();
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${text}`);
  assert.match(text, /^\{[^\n]*\}\n$/, `error body is not one line of JSON: ${JSON.stringify(text)}`);
  const body = JSON.parse(text) as { error?: unknown };
  assert.equal(typeof body.error, 'string', `no "error" in ${text}`);
  if (pattern) assert.match(body.error as string, pattern);
}

/** Reads server-sent events from `url` until `count` data events came; returns them parsed. */
async function readEvents(url: string, count: number, timeoutMs: number): Promise<{ events: Snapshot[]; firstMs: number }> {
  const controller = new AbortController();
  const startedMs = Date.now();
  let firstMs = -1;
  const work = (async () => {
    const response = await fetchWithin(url, { signal: controller.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const events: Snapshot[] = [];
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) throw new Error('event stream ended');
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => line.slice(6))
          .join('\n');
        if (data) {
          if (firstMs < 0) firstMs = Date.now() - startedMs;
          events.push(JSON.parse(data) as Snapshot);
        }
      }
    }
    return events;
  })();
  try {
    return { events: await withDeadline(work, timeoutMs, `${count} event(s) from ${url}`), firstMs };
  } finally {
    controller.abort();
    work.catch(() => undefined);
  }
}

/**
 * PUT `totalBytes` to `url` with node:http, in 64 KiB chunks, declaring Content-Length or
 * chunked. Resolves with the status, the body and how many bytes had been written when the
 * answer came.
 */
function putStream(url: string, totalBytes: number, declareLength: boolean): Promise<{ status: number; body: string; sentAtAnswer: number }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    let answered = false;
    const req = request(url, { method: 'PUT', headers: declareLength ? { 'Content-Length': String(totalBytes) } : {} }, (res) => {
      answered = true;
      const sentAtAnswer = sent;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (data: string) => (body += data));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sentAtAnswer }));
      res.on('error', reject);
    });
    // The server closes the connection after an early answer: write errors are expected then.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    // A server that stops reading and never answers fails the test instead of hanging it.
    req.setTimeout(requestMsMax, () => req.destroy(new Error(`PUT ${url}: no answer and no progress in ${requestMsMax} ms (${sent} bytes sent)`)));
    const write = (): void => {
      while (sent < totalBytes && !answered && !req.destroyed) {
        sent += chunk.byteLength;
        if (!req.write(chunk)) {
          req.once('drain', write);
          return;
        }
      }
      if (!answered && !req.destroyed) req.end();
    };
    write();
  });
}

describe('HTTP helpers (in process)', () => {
  it('parses --http addresses', () => {
    assert.equal(parseHttpAddress('off'), undefined);
    assert.deepEqual(parseHttpAddress('127.0.0.1:7070'), { host: '127.0.0.1', port: 7070 });
    assert.deepEqual(parseHttpAddress('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
    assert.deepEqual(parseHttpAddress('[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseHttpAddress('localhost:9000'), { host: 'localhost', port: 9000 });
    assert.deepEqual(parseHttpAddress(':7071'), { host: '127.0.0.1', port: 7071 });
    assert.deepEqual(parseHttpAddress('7072'), { host: '127.0.0.1', port: 7072 });
    for (const bad of ['127.0.0.1:', '127.0.0.1:70000', 'host:port', '::1:80', 'on']) {
      assert.throws(() => parseHttpAddress(bad), /--http/, bad);
    }
    assert.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('127.1.2.3') && isLoopbackHost('[::1]') && isLoopbackHost('localhost'));
    assert.ok(!isLoopbackHost('0.0.0.0') && !isLoopbackHost('192.168.1.2') && !isLoopbackHost('attacker.example'));
  });

  it('keeps a minute of per-second write stats, bounded, with convergence percentiles', () => {
    let now = 1_000_000_000_000;
    const stats = new WriteStats(() => now, () => 0.5);
    const stamp = (wallMs: number): bigint => hlcPack(wallMs, 0);
    // Second 0: 3 local writes, remote writes converging in 10, 20, 30 ms and one "from the future".
    for (let i = 0; i < 3; i++) stats.record('local', stamp(now), now);
    for (const lag of [10, 20, 30]) stats.record('remote', stamp(now - lag), now);
    stats.record('remote', stamp(now + 50), now); // writer's clock ahead: clamped at 0
    const seen: number[] = [];
    const unsubscribe = stats.observe((ms) => seen.push(ms));
    stats.record('remote', stamp(now - 5), now);
    unsubscribe();
    stats.record('remote', stamp(now - 5), now);
    assert.deepEqual(seen, [5]);

    now += 1000;
    let view = stats.view();
    assert.equal(view.series.length, 60);
    const last = view.series[59]!;
    assert.equal(last.t, now - 1000);
    assert.equal(last.local, 3);
    assert.equal(last.remote, 6);
    assert.equal(last.p50Ms, 5);
    assert.equal(last.p99Ms, 30);
    assert.deepEqual(view.convergence, { samples: 6, p50Ms: 5, p99Ms: 30, maxMs: 30 });
    assert.deepEqual(view.writesPerSec, { local: 0.6, remote: 1.2 });

    // A burst is sampled, not stored whole.
    for (let i = 0; i < 10_000; i++) stats.record('remote', stamp(now - 7), now);
    now += 1000;
    view = stats.view();
    assert.equal(view.series[59]!.remote, 10_000);
    assert.ok(view.convergence.samples <= 6 + 512, `kept ${view.convergence.samples} samples`);

    // A minute later it has all aged out.
    now += 61_000;
    view = stats.view();
    assert.equal(view.convergence.samples, 0);
    assert.ok(view.series.every((s) => s.local === 0 && s.remote === 0 && s.p50Ms === null));
    assert.equal(quantile([], 0.5), null);
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2);
    assert.equal(quantile([1, 2, 3, 4], 0.99), 4);
  });
});

describe('HTTP server of one node', () => {
  let node: NodeProcess;
  let base: string; // http://127.0.0.1:PORT/
  const url = (path: string): string => new URL(path, base).href;

  before(async () => {
    // Tombstone GC only when asked: the listing tests look at tombstones (a lone node collects them at its next run).
    node = await startNode({ args: ['--http', '127.0.0.1:0', '--gc-interval-ms', '0'] });
    base = (await node.status()).httpUrl;
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/, `status reports httpUrl ${JSON.stringify(base)}`);
  });

  after(async () => {
    if (node) await node.kill();
  });

  it('logs its URL; `ckv status` and `status --json` show it', async () => {
    assert.match(node.stderrText(), new RegExp(`http listening url=${base.replace(/[.]/g, '\\.')}`));
    const text = (await runCliOk(['status'], { socket: node.socket })).stdout.toString();
    assert.match(text, new RegExp(`^http +${base.replace(/[.]/g, '\\.')}$`, 'm'));
    const json = JSON.parse((await runCliOk(['status', '--json'], { socket: node.socket })).stdout.toString()) as { httpUrl: string };
    assert.equal(json.httpUrl, base);
  });

  it('GET /healthz answers ok', async () => {
    const response = await fetchWithin(url('/healthz'));
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'ok\n');
  });

  it('PUT, GET, HEAD and DELETE a key; 404 for missing and deleted keys', async () => {
    const put = await fetchWithin(url('/kv/greeting'), { method: 'PUT', body: 'hello, world' });
    assert.equal(put.status, 200);
    const { version } = (await put.json()) as { version: string };
    assert.match(version, versionPattern);

    const get = await fetchWithin(url('/kv/greeting'));
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('x-ckv-version'), version);
    assert.equal(get.headers.get('content-type'), 'application/octet-stream');
    assert.equal(await get.text(), 'hello, world');

    const head = await fetchWithin(url('/kv/greeting'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '12');
    assert.equal(head.headers.get('x-ckv-version'), version);

    // Binary values round-trip byte for byte; the empty value is a value.
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x0d]);
    assert.equal((await fetchWithin(url('/kv/binary'), { method: 'PUT', body: binary })).status, 200);
    assert.deepEqual(Buffer.from(await (await fetchWithin(url('/kv/binary'))).arrayBuffer()), binary);
    assert.equal((await fetchWithin(url('/kv/empty'), { method: 'PUT', body: '' })).status, 200);
    const empty = await fetchWithin(url('/kv/empty'));
    assert.equal(empty.status, 200);
    assert.equal(await empty.text(), '');

    // Keys are the URL-decoded rest of the path: slashes and Unicode included.
    const key = 'dir/sub/ключ ✓?#%';
    assert.equal((await fetchWithin(url(`/kv/${encodeURIComponent(key).replace(/%2F/g, '/')}`), { method: 'PUT', body: 'deep' })).status, 200);
    assert.equal(await (await fetchWithin(url(`/kv/${encodeURIComponent(key)}`))).text(), 'deep');
    const viaCli = await runCliOk(['get', key], { socket: node.socket });
    assert.equal(viaCli.stdout.toString(), 'deep', 'the HTTP write is the same key for the CLI');

    const del = await fetchWithin(url('/kv/greeting'), { method: 'DELETE' });
    assert.equal(del.status, 200);
    const deleted = (await del.json()) as { version: string };
    assert.match(deleted.version, versionPattern);
    assert.notEqual(deleted.version, version);

    const gone = await fetchWithin(url('/kv/greeting'));
    await assertError(gone, 404);
    assert.equal(gone.headers.get('x-ckv-version'), deleted.version, 'a tombstone still tells its version');
    await assertError(await fetchWithin(url('/kv/never-written')), 404, /not found/);
  });

  it('GET /kv lists keys by prefix, with limit, after and deleted', async () => {
    for (let i = 0; i < 12; i++) {
      assert.equal((await fetchWithin(url(`/kv/list/${String(i).padStart(2, '0')}`), { method: 'PUT', body: `v${i}` })).status, 200);
    }
    assert.equal((await fetchWithin(url('/kv/list/05'), { method: 'DELETE' })).status, 200);
    assert.equal((await fetchWithin(url('/kv/listing-other'), { method: 'PUT', body: 'x' })).status, 200);

    const all = await fetchWithin(url('/kv?prefix=list/'));
    assert.equal(all.status, 200);
    assert.match(all.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(all.headers.get('x-ckv-truncated'), null);
    const items = (await all.json()) as { key: string; version: string; deleted?: boolean }[];
    assert.deepEqual(
      items.map((i) => i.key),
      ['00', '01', '02', '03', '04', '06', '07', '08', '09', '10', '11'].map((n) => `list/${n}`),
    );
    for (const item of items) {
      assert.match(item.version, versionPattern);
      assert.equal(item.deleted, undefined);
    }

    const page = await fetchWithin(url('/kv?prefix=list/&limit=3'));
    assert.equal(page.headers.get('x-ckv-truncated'), 'true');
    assert.deepEqual(((await page.json()) as { key: string }[]).map((i) => i.key), ['list/00', 'list/01', 'list/02']);
    const next = (await (await fetchWithin(url('/kv?prefix=list/&limit=3&after=list/04'))).json()) as { key: string }[];
    assert.deepEqual(next.map((i) => i.key), ['list/06', 'list/07', 'list/08']);

    const withDeleted = (await (await fetchWithin(url('/kv?prefix=list/0&deleted=1'))).json()) as { key: string; deleted?: boolean }[];
    assert.equal(withDeleted.find((i) => i.key === 'list/05')?.deleted, true, 'deleted=1 lists tombstones, marked');
    assert.equal(withDeleted.length, 10);

    assert.deepEqual(await (await fetchWithin(url('/kv?prefix=nothing-here/'))).json(), []);
    await assertError(await fetchWithin(url('/kv?limit=0')), 400, /limit/);
    await assertError(await fetchWithin(url('/kv?limit=10001')), 400, /limit/);
    await assertError(await fetchWithin(url('/kv?limit=abc')), 400, /limit/);
    assert.equal((await fetchWithin(url('/kv?limit=10000'))).status, 200);
  });

  it('refuses bad requests with one-line JSON errors: 400, 404, 405', async () => {
    const longKey = 'k'.repeat(2048);
    await assertError(await fetchWithin(url(`/kv/${longKey}`), { method: 'PUT', body: 'v' }), 400, /key is 2048 bytes; the limit is 1024 bytes/);
    await assertError(await fetchWithin(url(`/kv/${longKey}`)), 400, /1024/);
    await assertError(await fetchWithin(url('/kv/%E0%A4%A')), 400, /percent-encoded/);
    await assertError(await fetchWithin(url('/kv/'), { method: 'PUT', body: 'v' }), 400, /empty/);
    const post = await fetchWithin(url('/kv/x'), { method: 'POST', body: 'v' });
    assert.equal(post.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
    await assertError(post, 405);
    await assertError(await fetchWithin(url('/metrics'), { method: 'DELETE' }), 405);
    await assertError(await fetchWithin(url('/no/such/page')), 404);
  });

  it('refuses a value over the limit with 413, without reading it all', async () => {
    // Declared too large: refused from the header, before the body is read.
    const declared = await putStream(url('/kv/too-big'), valueBytesMax + MiB, true);
    assert.equal(declared.status, 413, declared.body);
    assert.match(declared.body, /^\{"error":"value is 68157440 bytes; the limit is 67108864 bytes"\}\n$/);
    assert.ok(declared.sentAtAnswer < 32 * MiB, `the answer came after ${declared.sentAtAnswer} bytes were sent`);

    // Chunked (no length): refused once the bytes read pass the limit, then cut off: a
    // client that would send 256 MiB is stopped well before that.
    const chunked = await putStream(url('/kv/too-big'), 4 * valueBytesMax, false);
    assert.equal(chunked.status, 413, chunked.body);
    assert.match(chunked.body, /"error":"value is over \d+ bytes; the limit is 67108864 bytes"/);
    assert.ok(chunked.sentAtAnswer < 2 * valueBytesMax, `the answer came after ${chunked.sentAtAnswer} bytes were sent`);

    // The same through fetch, streaming 65 MiB.
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= valueBytesMax + MiB) return controller.close();
        pulled += 256 * 1024;
        controller.enqueue(new Uint8Array(256 * 1024));
      },
    });
    const viaFetch = await fetchWithin(url('/kv/too-big'), { method: 'PUT', body, duplex: 'half' } as RequestInit);
    await assertError(viaFetch, 413, /limit is 67108864 bytes/);

    await assertError(await fetchWithin(url('/kv/too-big')), 404);
    assert.equal((await fetchWithin(url('/healthz'))).status, 200, 'the node still serves');
    // A large value under the limit is fine.
    const big = Buffer.alloc(3 * MiB, 0x5a);
    assert.equal((await fetchWithin(url('/kv/big'), { method: 'PUT', body: big })).status, 200);
    assert.equal(Buffer.from(await (await fetchWithin(url('/kv/big'))).arrayBuffer()).equals(big), true);
  });

  it('GET /metrics is Prometheus text with the node metrics and process metrics', async () => {
    const response = await fetchWithin(url('/metrics'));
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await response.text();
    for (const name of [
      'ckv_writes_applied_total{origin="local"}',
      'ckv_writes_applied_total{origin="remote"}',
      'ckv_gossip_messages_rejected_total',
      'ckv_sync_sessions_total{result="synced"}',
      'ckv_sync_bytes_in_total',
      'ckv_sync_bytes_out_total',
      'ckv_sync_entries_applied_total',
      'ckv_convergence_lag_seconds_bucket{le="0.001"}',
      'ckv_convergence_lag_seconds_bucket{le="10"}',
      'ckv_convergence_lag_seconds_count',
      'ckv_keys',
      'ckv_tombstones',
      'ckv_peers_connected',
      'ckv_http_event_streams',
      'ckv_clock_drift_rejected_total',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.ok(text.includes(`\n${name} `) || text.startsWith(`${name} `), `/metrics has no sample ${name}`);
    }
    const status = await node.status();
    const value = (name: string): number => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('ckv_keys'), Number(status.keyCount));
    assert.equal(value('ckv_tombstones'), Number(status.tombstoneCount));
    assert.equal(value('ckv_writes_applied_total{origin="local"}'), Number(status.counters.writes_local ?? 0));
  });

  it('GET /api/status is the JSON snapshot', async () => {
    const response = await fetchWithin(url('/api/status'));
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const snap = (await response.json()) as Snapshot;
    const status = await node.status();
    assert.ok(!Number.isNaN(Date.parse(snap.time)));
    assert.equal(snap.self.nodeId, status.nodeId);
    assert.equal(snap.self.peerId, status.peerId);
    assert.equal(snap.self.httpUrl, base);
    assert.equal(snap.totals.keys, Number(status.keyCount));
    assert.equal(snap.totals.tombstones, Number(status.tombstoneCount));
    assert.ok(snap.totals.bytesOnDisk > 0);
    assert.ok(snap.totals.writes.local > 0);
    assert.equal(typeof snap.totals.writesPerSec.local, 'number');
    assert.equal(typeof snap.totals.syncBytes.in, 'number');
    assert.deepEqual(snap.peers, []);
    assert.equal(snap.series.length, 60);
    assert.equal(snap.convergence.samples, 0);
  });

  it('GET /events delivers a snapshot within 2 s, then one a second', async () => {
    const { events, firstMs } = await readEvents(url('/events'), 2, 5000);
    assert.ok(firstMs <= 2000, `first event after ${firstMs} ms`);
    assert.equal(events[0]!.self.peerId, (await node.status()).peerId);
    assert.ok(Date.parse(events[1]!.time) > Date.parse(events[0]!.time), 'snapshot times move on');
  });

  it('serves the status page with the DOM contract', async () => {
    const response = await fetchWithin(url('/'));
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await response.text();
    const status = await node.status();
    assert.match(html, /<table id="nodes">/);
    const self = new RegExp(`<tr class="node" data-peer-id="${status.peerId}" data-state="self" data-in-sync="true">`);
    assert.match(html, self);
    assert.equal(/<span id="total-keys">(\d+)<\/span>/.exec(html)?.[1], status.keyCount);
    const lastUpdate = /<span id="last-update"[^>]*>([^<]+)<\/span>/.exec(html)?.[1];
    assert.ok(lastUpdate && !Number.isNaN(Date.parse(lastUpdate)), `#last-update: ${lastUpdate}`);
    assert.match(html, /new EventSource\('\/events'\)/);
    assert.match(html, /<svg class="chart" id="chart-convergence"/);
    // Self-contained: nothing loaded from elsewhere.
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
    assert.doesNotMatch(html, /@import|url\(/);
  });

  it('refuses a foreign Host header (DNS rebinding) while bound to loopback', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url('/api/status'), { headers: { Host: 'attacker.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.setTimeout(requestMsMax, () => req.destroy(new Error(`GET /api/status with a foreign Host: no answer in ${requestMsMax} ms`)));
      req.end();
    });
    assert.equal(status, 403);
    const viaLocalhost = await fetchWithin(url('/healthz').replace('127.0.0.1', 'localhost')).catch(() => undefined);
    if (viaLocalhost) assert.equal(viaLocalhost.status, 200); // when localhost resolves to 127.0.0.1
  });

  it('serves at most 64 event streams; the next gets 503', async () => {
    const streamsOpen = async (): Promise<number> => {
      const text = await (await fetchWithin(url('/metrics'))).text();
      return Number(/^ckv_http_event_streams (\d+)$/m.exec(text)?.[1]);
    };
    // The earlier tests' streams are closed by their clients; the server counts a stream until
    // it sees the close. Start from none, or one of the 64 would get the 503.
    await waitFor(async () => (await streamsOpen()) === 0, { deadlineMs: 5000, what: 'no event stream open' });
    const controllers: AbortController[] = [];
    // The responses stay referenced until the end: Node's fetch cancels the body of a response
    // that is garbage-collected unread, which closes its stream and frees a slot mid-test.
    const streams: Response[] = [];
    try {
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          const controller = new AbortController();
          controllers.push(controller);
          streams.push(await fetchWithin(url('/events'), { signal: controller.signal }));
        }),
      );
      assert.deepEqual(new Set(streams.map((r) => r.status)), new Set([200]));
      assert.equal(await streamsOpen(), 64);
      await assertError(await fetchWithin(url('/events')), 503, /too many event streams/);
    } finally {
      for (const controller of controllers) controller.abort();
    }
    await waitFor(async () => (await streamsOpen()) === 0, { deadlineMs: 5000, what: 'the aborted event streams to close' });
    const again = await fetchWithin(url('/events'));
    assert.equal(again.status, 200, 'a slot is free again');
    await again.body?.cancel();
  });

  it('stops promptly with an event stream open; /healthz is gone after', async () => {
    const controller = new AbortController();
    const stream = await fetchWithin(url('/events'), { signal: controller.signal });
    assert.equal(stream.status, 200);
    const startedMs = Date.now();
    const exit = await node.stop();
    assert.equal(exit.code, 0, node.stderrText());
    assert.ok(Date.now() - startedMs < 10_000);
    controller.abort();
    await assert.rejects(fetchWithin(url('/healthz')));
  });
});

describe('HTTP in a 2-node cluster, port fallback, --http off', () => {
  let a: NodeProcess;
  let b: NodeProcess;
  let blocker: Server | undefined;
  // Only the default address falls back (an explicit --http that is taken fails the start:
  // test/integration/start-errors.test.ts): B runs without --http, with its default port taken.
  const blockedPort = 7070;

  before(async () => {
    a = await startNode({ args: ['--http', '127.0.0.1:0', '--sync-interval-ms', '200'] });
    // Take the default port; if something else holds it, it is taken all the same.
    const server = createServer();
    blocker = await new Promise<Server | undefined>((resolve) => {
      server.once('error', () => resolve(undefined));
      server.listen({ port: blockedPort, host: '127.0.0.1', exclusive: true }, () => resolve(server));
    });
    b = await startNode({
      isolated: false,
      args: ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--bootstrap', await libp2pAddress(a), '--sync-interval-ms', '200'],
    });
  });

  after(async () => {
    if (blocker) await new Promise<void>((resolve) => blocker!.close(() => resolve()));
  });

  it('takes the next free port when the default one is in use', async () => {
    const httpUrl = (await b.status()).httpUrl;
    const port = Number(/:(\d+)\/$/.exec(httpUrl)?.[1]);
    assert.ok(port > blockedPort && port < blockedPort + 20, `B serves on ${httpUrl}; ${blockedPort} was taken`);
    assert.equal((await fetchWithin(new URL('/healthz', httpUrl))).status, 200);
  });

  it("shows the peer in /api/status; a write through B's gateway reaches A, with a convergence sample", async () => {
    const aUrl = (await a.status()).httpUrl;
    const bUrl = (await b.status()).httpUrl;
    const bPeer = (await b.status()).peerId;
    let snap: Snapshot | undefined;
    await waitFor(
      async () => {
        snap = (await (await fetchWithin(new URL('/api/status', aUrl))).json()) as Snapshot;
        return snap.peers.some((p) => p.peerId === bPeer && p.state === 'up' && p.inSync);
      },
      { deadlineMs: 15_000, what: `A's /api/status to list B as up and in sync (last: ${JSON.stringify(snap?.peers)})` },
    );
    const peer = snap!.peers.find((p) => p.peerId === bPeer)!;
    assert.ok(peer.lastSyncMs > 0);
    assert.equal(typeof peer.clockOffsetMs, 'number');
    assert.ok(Array.isArray(peer.addresses));
    assert.equal(snap!.totals.peersUp, 1);

    const page = await (await fetchWithin(aUrl)).text();
    assert.match(page, new RegExp(`<tr class="node" data-peer-id="${bPeer}" data-state="up" data-in-sync="true">`));

    assert.equal((await fetchWithin(new URL('/kv/from-b', bUrl), { method: 'PUT', body: 'hello from B' })).status, 200);
    await waitFor(async () => (await fetchWithin(new URL('/kv/from-b', aUrl))).status === 200, { deadlineMs: 10_000, what: 'the write on B to reach A' });
    assert.equal(await (await fetchWithin(new URL('/kv/from-b', aUrl))).text(), 'hello from B');

    await waitFor(
      async () => {
        snap = (await (await fetchWithin(new URL('/api/status', aUrl))).json()) as Snapshot;
        return snap.convergence.samples > 0;
      },
      { deadlineMs: 5000, what: "the remote write to show in A's convergence stats" },
    );
    assert.ok(snap!.totals.writes.remote >= 1);
    assert.ok(snap!.convergence.p50Ms !== null && snap!.convergence.p50Ms >= 0 && snap!.convergence.p50Ms < 10_000);
    const metrics = await (await fetchWithin(new URL('/metrics', aUrl))).text();
    assert.ok(Number(/^ckv_convergence_lag_seconds_count (\d+)$/m.exec(metrics)?.[1]) >= 1, 'the histogram counted the remote write');
    assert.ok(Number(/^ckv_writes_applied_total\{origin="remote"\} (\d+)$/m.exec(metrics)?.[1]) >= 1);
    assert.equal(Number(/^ckv_peers_connected (\d+)$/m.exec(metrics)?.[1]), 1);
  });

  it('--http off serves nothing; status says off', async () => {
    const off = await startNode(); // the helper passes --http off
    try {
      assert.equal((await off.status()).httpUrl, '');
      assert.match((await runCliOk(['status'], { socket: off.socket })).stdout.toString(), /^http +off$/m);
      assert.match(off.stderrText(), /http=off/);
    } finally {
      await off.kill();
    }
  });
});
