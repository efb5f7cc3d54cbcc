/**
 * The libp2p layer over real TCP sockets on 127.0.0.1 (no mDNS): gossip between dialled and
 * bootstrapped nodes, FramedStream request/response with large frames, backpressure and the
 * frame limit, the pnet cluster key, and peer id persistence. Every wait has a deadline.
 */
import '../../src/util/polyfill.js';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { KEEP_ALIVE, type Connection, type PrivateKey, type Stream } from '@libp2p/interface';
import { CODE_P2P, type Multiaddr } from '@multiformats/multiaddr';
import { createNetwork, generateClusterKey, type CkvLibp2p, type NetworkOptions } from '../../src/net/libp2p.js';
import { FramedStream, FrameTooLargeError, encodeVarint } from '../../src/net/framed-stream.js';
import { FrameBudget } from '../../src/net/frame-budget.js';
import { waitFor, withDeadline } from '../../harness/testing.js';

const topic = 'ckv/test/v1';
const framesProtocol = '/ckv-test/frames/1.0.0';
const limitProtocol = '/ckv-test/limit/1.0.0';
const floodProtocol = '/ckv-test/flood/1.0.0';
const budgetProtocol = '/ckv-test/budget/1.0.0';
const MiB = 1024 * 1024;

const started: CkvLibp2p[] = [];

async function node(options: Partial<NetworkOptions> = {}): Promise<CkvLibp2p> {
  const privateKey: PrivateKey = options.privateKey ?? (await generateKeyPair('Ed25519'));
  const created = await createNetwork({
    privateKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    gossipTopic: topic,
    ...options,
  });
  started.push(created);
  return created;
}

async function stopAll(): Promise<void> {
  await Promise.allSettled(started.splice(0).map((n) => n.stop()));
}

function tcpAddress(n: CkvLibp2p): Multiaddr {
  const address = n.getMultiaddrs().find((ma) => ma.toString().includes('/tcp/'));
  assert.ok(address, 'node listens on tcp');
  return address;
}

/** Polling for the in-process conditions below: every 10 ms, 5 s unless a test says otherwise. */
const poll = { deadlineMs: 5_000, intervalMs: 10 };

function connected(a: CkvLibp2p, b: CkvLibp2p): boolean {
  return a.getConnections(b.peerId).some((c) => c.status === 'open');
}

/** Resolves with the data of the first message on `topic` at `n` that matches `data`. */
function nextMessage(n: CkvLibp2p, data: Uint8Array, timeoutMs = 5_000): Promise<Uint8Array> {
  return withDeadline(
    new Promise<Uint8Array>((resolve) => {
      const onMessage = (event: CustomEvent<{ topic: string; data: Uint8Array }>): void => {
        if (event.detail.topic !== topic || Buffer.compare(event.detail.data, data) !== 0) return;
        n.services.pubsub.removeEventListener('message', onMessage);
        resolve(event.detail.data);
      };
      n.services.pubsub.addEventListener('message', onMessage);
    }),
    timeoutMs,
    `message at ${n.peerId.toString()}`,
  );
}

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

after(stopAll);

describe('gossip over dialled and bootstrapped peers', () => {
  after(stopAll);

  it('delivers a publish from A to B (dialled) and C (bootstrap), and never throws with no subscribers', async () => {
    const a = await node();
    // Alone, nobody subscribed anywhere: must not throw.
    await a.services.pubsub.publish(topic, new TextEncoder().encode('into the void'));

    const b = await node();
    await a.dial(tcpAddress(b));
    // Bootstrap by bare address (no /p2p/...): the keeper learns A's peer id on the handshake.
    const c = await node({ bootstrap: [tcpAddress(a).decapsulateCode(CODE_P2P).toString()] });
    await waitFor(() => connected(c, a), { ...poll, what: 'C to connect to A through bootstrap' });

    // Connected but nobody subscribed yet: still must not throw.
    await a.services.pubsub.publish(topic, new TextEncoder().encode('before subscribers'));

    for (const n of [a, b, c]) n.services.pubsub.subscribe(topic);
    await waitFor(
      () => [b, c].every((n) => a.services.pubsub.getSubscribers(topic).some((p) => p.equals(n.peerId))),
      { ...poll, what: 'A to see B and C subscribed' },
    );

    const data = randomBytes(64);
    const atB = nextMessage(b, data);
    const atC = nextMessage(c, data);
    const result = await a.services.pubsub.publish(topic, data);
    assert.ok(result.recipients.length >= 2, 'flood publish reaches both subscribers');
    assert.deepEqual(await atB, data);
    assert.deepEqual(await atC, data);

    // Same bytes again: same message id, dropped silently instead of throwing.
    const again = await a.services.pubsub.publish(topic, data);
    assert.equal(again.recipients.length, 0);
  });

  it('writes each noise message whole, length and ciphertext in one socket write (joined-writes.ts)', async () => {
    const a = await node();
    const b = await node();
    await a.dial(tcpAddress(b));
    for (const n of [a, b]) n.services.pubsub.subscribe(topic);
    await waitFor(() => a.services.pubsub.getSubscribers(topic).some((p) => p.equals(b.peerId)), { ...poll, what: 'A to see B subscribed' });

    // Every socket write in this process while A publishes a small and a large message (the
    // large one spans several noise messages). After the handshake, everything on these
    // sockets is noise messages: a 2-byte big-endian length, then that many bytes.
    const writes: Buffer[] = [];
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
      if (chunk instanceof Uint8Array) writes.push(Buffer.from(chunk));
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    try {
      for (const data of [randomBytes(64), randomBytes(200 * 1024)]) {
        const atB = nextMessage(b, data);
        await a.services.pubsub.publish(topic, data);
        await atB;
      }
    } finally {
      net.Socket.prototype.write = write;
    }
    assert.ok(writes.length >= 2, `socket writes seen: ${writes.length}`);
    for (const bytes of writes) {
      // A write holds one or more whole noise messages, never a length without its message.
      let at = 0;
      while (at < bytes.byteLength) {
        assert.ok(at + 2 < bytes.byteLength, `a write of ${bytes.byteLength} bytes ends with a bare length at ${at}`);
        at += 2 + bytes.readUInt16BE(at);
      }
      assert.equal(at, bytes.byteLength, `a write of ${bytes.byteLength} bytes is whole noise messages`);
    }
  });

  it('redials a bootstrap peer after the connection is lost', async () => {
    const a = await node();
    const c = await node({ bootstrap: [tcpAddress(a).toString()] });
    // Both ends: the dialler sees the connection open before the listener has registered it,
    // and a hangUp before that finds nothing to close.
    await waitFor(() => connected(c, a) && connected(a, c), { ...poll, what: 'C and A to be connected' });
    await a.hangUp(c.peerId);
    await waitFor(() => !connected(c, a), { ...poll, what: 'the connection to drop' });
    await waitFor(() => connected(c, a) && connected(a, c), { ...poll, deadlineMs: 8_000, what: 'C to redial A' });
  });

  it("redials a keep-alive peer through libp2p's reconnect queue (p-retry, on this Node)", async () => {
    // libp2p's only use of p-retry (which declares Node >= 22): ckv supports Node 20 because
    // this path works there (test/unit/node-support.test.ts tests p-retry itself).
    const a = await node();
    const b = await node();
    await a.dial(tcpAddress(b));
    await waitFor(() => connected(a, b) && connected(b, a), { ...poll, what: 'A and B to be connected' });
    await a.peerStore.merge(b.peerId, { tags: { [KEEP_ALIVE]: { value: 1 } } });
    const dropped = new Promise<void>((resolve) => {
      a.addEventListener('peer:disconnect', (event) => {
        if (event.detail.equals(b.peerId)) resolve();
      });
    });
    await b.hangUp(a.peerId);
    await withDeadline(dropped, 5_000, 'A to see B disconnect');
    await waitFor(() => connected(a, b), { ...poll, deadlineMs: 8_000, what: 'A to redial its keep-alive peer B' });
    assert.ok(
      a.getConnections(b.peerId).some((c) => c.status === 'open' && c.direction === 'outbound'),
      'A dialled B again (nobody else redials here: no bootstrap, no mDNS)',
    );
  });

  it('ignores a bootstrap address that is the node itself', async () => {
    const a = await node();
    const b = await node({ bootstrap: [tcpAddress(a).toString()] });
    await waitFor(() => connected(b, a), { ...poll, what: 'B to connect to A' });
    // B given its own address: the dial fails as "self" and is not retried; A still works.
    const self = await node({ bootstrap: [tcpAddress(b).decapsulateCode(CODE_P2P).toString()] });
    assert.equal(self.status, 'started');
  });
});

describe('FramedStream over a custom protocol', () => {
  after(stopAll);

  it('exchanges three rounds each way on one stream, including an 8 MiB frame', async () => {
    const server = await node();
    const client = await node();
    const serverDone = new Promise<{ rounds: number; bytesRead: number; bytesWritten: number }>((resolve, reject) => {
      void server.handle(framesProtocol, async (stream: Stream, connection: Connection) => {
        assert.ok(connection.remotePeer.equals(client.peerId));
        const framed = new FramedStream(stream, { frameBytesMax: 16 * MiB });
        try {
          let rounds = 0;
          for (;;) {
            const request = await framed.read();
            if (request === undefined) break;
            rounds += 1;
            // Response: the request reversed (an 8 MiB request gets an 8 MiB response).
            await framed.write(Uint8Array.from(request).reverse());
          }
          await framed.closeWrite();
          resolve({ rounds, bytesRead: framed.bytesRead, bytesWritten: framed.bytesWritten });
        } catch (err) {
          framed.abort(err as Error);
          reject(err as Error);
        }
      });
    });

    const stream = await client.dialProtocol(tcpAddress(server), framesProtocol);
    const framed = new FramedStream(stream, { frameBytesMax: 16 * MiB, signal: AbortSignal.timeout(20_000) });
    const requests = [new TextEncoder().encode('hello, round one'), randomBytes(8 * MiB), new Uint8Array(0)];
    for (const request of requests) {
      await framed.write(request);
      const response = await withDeadline(framed.read(), 10_000, 'a response frame');
      assert.ok(response, 'a response for every request');
      assert.equal(response.byteLength, request.byteLength);
      assert.equal(sha(response), sha(Uint8Array.from(request).reverse()));
    }
    await framed.closeWrite();
    assert.equal(await framed.read(), undefined, 'clean end after the server closes');

    const wire = requests.reduce((sum, r) => sum + encodeVarint(r.byteLength).byteLength + r.byteLength, 0);
    assert.equal(framed.bytesWritten, wire);
    assert.equal(framed.bytesRead, wire);
    const done = await withDeadline(serverDone, 5_000, 'the server handler');
    assert.deepEqual(done, { rounds: 3, bytesRead: wire, bytesWritten: wire });
  });

  it('holds back a writer that outruns its reader, without resetting the stream', async () => {
    const server = await node();
    const client = await node();
    const frameCount = 32; // 32 MiB: more than the reader's read-ahead plus a full yamux window
    let writesDone = 0;
    let lastWriteAtMs = Date.now();
    void server.handle(floodProtocol, async (stream: Stream) => {
      const framed = new FramedStream(stream, { frameBytesMax: 2 * MiB });
      try {
        for (let i = 0; i < frameCount; i++) {
          const frame = new Uint8Array(MiB).fill(i);
          await framed.write(frame);
          writesDone += 1;
          lastWriteAtMs = Date.now();
        }
        await framed.closeWrite();
      } catch (err) {
        framed.abort(err as Error);
      }
    });
    const framed = new FramedStream(await client.dialProtocol(tcpAddress(server), floodProtocol), { frameBytesMax: 2 * MiB });
    // Let the writer run until it stalls (no completed write for 300 ms) without reading.
    await waitFor(() => writesDone > 0 && Date.now() - lastWriteAtMs > 300, { ...poll, deadlineMs: 10_000, what: 'the writer to stall' });
    assert.ok(writesDone < frameCount, `backpressure held the writer back (${writesDone}/${frameCount} written)`);
    for (let i = 0; i < frameCount; i++) {
      const frame = await withDeadline(framed.read(), 5_000, `frame ${i}`);
      assert.ok(frame);
      assert.equal(frame.byteLength, MiB);
      assert.ok(frame[0] === i && frame[MiB - 1] === i, `frame ${i} intact and in order`);
    }
    assert.equal(await framed.read(), undefined);
    assert.equal(writesDone, frameCount);
  });

  it('rejects a frame announced over frameBytesMax without buffering it, and keeps serving', async () => {
    const server = await node();
    const client = await node();
    const limitErrors: Error[] = [];
    let serverStream: Stream | undefined;
    void server.handle(limitProtocol, async (stream: Stream) => {
      serverStream = stream;
      const framed = new FramedStream(stream, { frameBytesMax: MiB });
      try {
        await framed.read();
      } catch (err) {
        limitErrors.push(err as Error);
      }
    });
    void server.handle(framesProtocol, async (stream: Stream) => {
      const framed = new FramedStream(stream, { frameBytesMax: MiB });
      const request = await framed.read();
      if (request !== undefined) await framed.write(request);
      await framed.close();
    });

    const raw = await client.dialProtocol(tcpAddress(server), limitProtocol);
    const resetSeen = new Promise<Error | undefined>((resolve) =>
      raw.addEventListener('close', (event) => resolve(event.error), { once: true }),
    );
    // Announce a 1 GiB frame, then start sending its body.
    raw.send(encodeVarint(1024 * MiB));
    raw.send(new Uint8Array(64 * 1024));
    await waitFor(() => limitErrors.length === 1, { ...poll, what: 'the reader to fail' });
    const [limitError] = limitErrors;
    assert.equal(limitError?.name, 'FrameTooLargeError');
    assert.equal((limitError as FrameTooLargeError).frameBytes, 1024 * MiB);
    assert.ok(serverStream);
    assert.equal(serverStream.status, 'aborted', 'the offending stream is reset');
    assert.equal(serverStream.readBufferLength, 0, 'nothing of the frame is buffered');
    assert.ok((await withDeadline(resetSeen, 5_000, 'the reset to reach the sender')) !== undefined, 'the sender sees a reset');

    // A local write over the limit is refused before anything is sent.
    const ok = new FramedStream(await client.dialProtocol(tcpAddress(server), framesProtocol), { frameBytesMax: MiB });
    await assert.rejects(ok.write(new Uint8Array(MiB + 1)), { name: 'FrameTooLargeError' });

    // The node is still up and serves a new stream.
    const echo = randomBytes(1000);
    await ok.write(echo);
    assert.deepEqual(await withDeadline(ok.read(), 5_000, 'the echo'), new Uint8Array(echo));
    await ok.close();
  });

  it('aborts a pending read when the signal aborts', async () => {
    const server = await node();
    const client = await node();
    void server.handle(framesProtocol, async (stream: Stream) => {
      // Never answers; holds the stream open until the client resets it.
      const framed = new FramedStream(stream, { frameBytesMax: MiB });
      await framed.read().catch(() => undefined);
    });
    const controller = new AbortController();
    const framed = new FramedStream(await client.dialProtocol(tcpAddress(server), framesProtocol), {
      frameBytesMax: MiB,
      signal: controller.signal,
    });
    const pending = framed.read();
    controller.abort(new Error('deadline'));
    await assert.rejects(withDeadline(pending, 5_000, 'the aborted read'), /deadline/);
    await assert.rejects(framed.write(new Uint8Array(1)), /deadline/);
  });
});

describe('FramedStreams sharing a frame budget', () => {
  after(stopAll);

  /** A server whose streams share `budget`; the test reads them itself. */
  async function budgetServer(budget: FrameBudget): Promise<{ server: CkvLibp2p; served: FramedStream[] }> {
    const server = await node();
    const served: FramedStream[] = [];
    await server.handle(budgetProtocol, (stream: Stream) => {
      served.push(new FramedStream(stream, { frameBytesMax: 4 * MiB, budget }));
    });
    return { server, served };
  }

  it('buffers no more than the budget across streams; a waiting frame arrives once a read frees budget', async () => {
    const budget = new FrameBudget(5 * MiB);
    const { server, served } = await budgetServer(budget);
    const client = await node();
    // Three streams, one 2 MiB frame each, one after another: two fit in 5 MiB, the third waits.
    const frames = [1, 2, 3].map((fill) => new Uint8Array(2 * MiB).fill(fill));
    const sent: Promise<void>[] = [];
    for (const [i, frame] of frames.entries()) {
      const framed = new FramedStream(await client.dialProtocol(tcpAddress(server), budgetProtocol), { frameBytesMax: 4 * MiB });
      const write = framed.write(frame);
      write.catch(() => undefined); // awaited below; handled here in case the test fails first
      sent.push(write);
      const reserved = Math.min(i + 1, 2) * 2 * MiB;
      await waitFor(() => budget.reservedBytes === reserved && budget.waiting === (i === 2 ? 1 : 0), {
        ...poll,
        what: `stream ${i}: ${reserved} bytes reserved${i === 2 ? ', one frame waiting' : ''}`,
      });
    }
    assert.equal(served.length, 3);
    assert.equal(budget.peakReservedBytes, 4 * MiB, 'the third frame was never buffered beside the other two');

    // Reading the first frame gives its 2 MiB back: the third gets them and arrives whole.
    const first = await withDeadline(served[0]!.read(), 5_000, 'the first frame');
    assert.deepEqual(first, frames[0]);
    const third = await withDeadline(served[2]!.read(), 5_000, 'the third frame, once budget freed');
    assert.deepEqual(third, frames[2]);
    assert.deepEqual(await withDeadline(served[1]!.read(), 5_000, 'the second frame'), frames[1]);
    await withDeadline(Promise.all(sent), 5_000, 'every write to complete');
    assert.equal(budget.reservedBytes, 0, 'every byte back once every frame is read');
    assert.equal(budget.waiting, 0);
    assert.ok(budget.peakReservedBytes <= budget.capacityBytes);
  });

  it('a stream holding budget with a half-sent frame gives it back when reset; the frame waiting gets it', async () => {
    const budget = new FrameBudget(5 * MiB);
    const { server, served } = await budgetServer(budget);
    const client = await node();
    // A hostile stream announces 3 MiB and sends only 1 MiB of it: 3 MiB are reserved.
    const hostile = await client.dialProtocol(tcpAddress(server), budgetProtocol);
    hostile.send(encodeVarint(3 * MiB));
    hostile.send(new Uint8Array(MiB));
    await waitFor(() => budget.reservedBytes === 3 * MiB, { ...poll, what: 'the half-sent frame to hold 3 MiB' });
    // An honest 3 MiB frame does not fit beside it: it waits, nothing of it buffered.
    const honest = new FramedStream(await client.dialProtocol(tcpAddress(server), budgetProtocol), { frameBytesMax: 4 * MiB });
    const frame = new Uint8Array(3 * MiB).fill(7);
    const sent = honest.write(frame);
    sent.catch(() => undefined); // awaited below; handled here in case the test fails first
    await waitFor(() => budget.waiting === 1, { ...poll, what: 'the honest frame to wait for budget' });
    assert.equal(budget.reservedBytes, 3 * MiB);

    const hostileRead = served[0]!.read();
    hostile.abort(new Error('hostile peer gives up'));
    await assert.rejects(withDeadline(hostileRead, 5_000, 'the reset to reach the server'));
    assert.deepEqual(await withDeadline(served[1]!.read(), 5_000, 'the honest frame'), frame);
    await withDeadline(sent, 5_000, 'the honest write');
    assert.equal(budget.reservedBytes, 0);
    assert.ok(budget.peakReservedBytes <= budget.capacityBytes);
  });

  it('refuses a frame larger than the whole budget, like one over frameBytesMax', async () => {
    const budget = new FrameBudget(MiB);
    const { server, served } = await budgetServer(budget);
    const client = await node();
    const framed = new FramedStream(await client.dialProtocol(tcpAddress(server), budgetProtocol), { frameBytesMax: 4 * MiB });
    void framed.write(new Uint8Array(2 * MiB)).catch(() => undefined);
    await waitFor(() => served.length === 1, { ...poll, what: 'the server to get the stream' });
    await assert.rejects(withDeadline(served[0]!.read(), 5_000, 'the oversized frame'), (error: Error) => {
      assert.equal(error.name, 'FrameTooLargeError');
      assert.match(error.message, /frame buffer budget/);
      return true;
    });
    assert.equal(budget.reservedBytes, 0);
  });
});

describe('FramedStream read idle timeout', () => {
  after(stopAll);

  it('aborts a read that gets no byte for readIdleMs; bytes arriving keep it alive', async () => {
    const server = await node();
    const client = await node();
    const served: FramedStream[] = [];
    await server.handle(budgetProtocol, (stream: Stream) => {
      served.push(new FramedStream(stream, { frameBytesMax: MiB, readIdleMs: 300 }));
    });
    const raw = await client.dialProtocol(tcpAddress(server), budgetProtocol);
    // A slow sender (paced on purpose, not waiting for anything): a 100-byte frame sent 10
    // bytes every 100 ms takes ~1 s, but the reader is never 300 ms without a byte.
    raw.send(encodeVarint(100));
    await waitFor(() => served.length === 1, { ...poll, what: 'the server to get the stream' });
    const read = served[0]!.read();
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      raw.send(new Uint8Array(10).fill(i));
    }
    const frame = await withDeadline(read, 5_000, 'the slowly sent frame');
    assert.equal(frame?.byteLength, 100);
    // Then silence: the next read fails after ~300 ms and the stream is reset.
    const startedMs = Date.now();
    await assert.rejects(withDeadline(served[0]!.read(), 5_000, 'the idle read'), { name: 'ReadIdleError' });
    const idleMs = Date.now() - startedMs;
    assert.ok(idleMs >= 250 && idleMs < 3_000, `idle read ended after ${idleMs} ms`);
  });
});

describe('cluster key (pnet)', () => {
  after(stopAll);

  it('admits a node with the same key and rejects one with a different key', async () => {
    const key = await generateClusterKey();
    assert.equal(key.byteLength, 95);
    const p = await node({ clusterKey: key });
    const q = await node({ clusterKey: Uint8Array.from(key) });
    const r = await node({ clusterKey: await generateClusterKey() });
    const open = await node();

    await withDeadline(q.dial(tcpAddress(p)), 5_000, 'Q to dial P');
    assert.ok(connected(q, p));

    const startedAtMs = Date.now();
    await assert.rejects(withDeadline(r.dial(tcpAddress(p)), 8_000, 'R (wrong key) to be refused'), (err: Error) => {
      assert.doesNotMatch(err.message, /timed out after/, 'refused by the handshake, not our deadline');
      return true;
    });
    assert.ok(Date.now() - startedAtMs < 8_000);
    await assert.rejects(withDeadline(open.dial(tcpAddress(p)), 8_000, 'a node without a key to be refused'), (err: Error) => {
      assert.doesNotMatch(err.message, /timed out after/);
      return true;
    });
    assert.ok(!connected(r, p) && !connected(p, r));
  });

  it('refuses a malformed key at creation', async () => {
    await assert.rejects(node({ clusterKey: new TextEncoder().encode('not a key') }), /invalid cluster key/);
  });
});

describe('identity', () => {
  after(stopAll);

  it('keeps its peer id across a restart with the persisted private key', async () => {
    const persisted = privateKeyToProtobuf(await generateKeyPair('Ed25519'));
    const first = await node({ privateKey: privateKeyFromProtobuf(persisted) });
    const firstId = first.peerId.toString();
    await first.stop();

    const second = await node({ privateKey: privateKeyFromProtobuf(persisted) });
    assert.equal(second.peerId.toString(), firstId);
    // And peers see the same id on the wire.
    const other = await node();
    const connection = await other.dial(tcpAddress(second));
    assert.equal(connection.remotePeer.toString(), firstId);
  });
});
