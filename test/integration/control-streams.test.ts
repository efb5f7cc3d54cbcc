/**
 * The streaming calls of the control API against a real node: PutStream's size contract
 * (checked before bytes are taken; nothing stored on a wrong total), GetStream in pieces and
 * a reader that gives up early, and PutPipeline's one-result-per-put in order, a refused put
 * failing alone. Driven through the raw HTTP/2 gRPC client where a well-behaved ControlClient
 * would never send what is tested.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ControlClient } from '../../src/control/client.js';
import { GrpcChannel, GrpcStatus, GrpcStatusError } from '../../src/control/h2.js';
import { grpcMessageBytesMax, valueChunkBytes } from '../../src/control/limits.js';
import * as wire from '../../src/control/wire.js';
import { startNode, waitFor, withDeadline, type NodeProcess } from '../../harness/testing.js';

const MiB = 1024 * 1024;

/** Sends the given PutChunk messages as one PutStream and returns the node's answer or error. */
async function rawPutStream(socket: string, messages: object[]): Promise<unknown> {
  const channel = new GrpcChannel(socket, grpcMessageBytesMax);
  try {
    const call = channel.call('/ckv.v1.Kv/PutStream', { deadlineMs: 20_000 });
    for (const message of messages) {
      const { parts, bytes } = wire.encodeMessage(wire.PutChunk, message);
      await call.write(parts, bytes);
    }
    call.end();
    const replies = [];
    for await (const reply of call.messages()) replies.push(wire.decode(wire.PutReply, reply));
    return replies[0];
  } catch (error) {
    return error;
  } finally {
    channel.close();
  }
}

function assertStatus(outcome: unknown, code: number, pattern: RegExp): void {
  assert.ok(outcome instanceof GrpcStatusError, `expected a gRPC error, got ${JSON.stringify(outcome)}`);
  assert.equal(outcome.code, code, outcome.details);
  assert.match(outcome.details, pattern);
}

describe('control API streams against a running node', () => {
  let node: NodeProcess;
  let client: ControlClient;

  before(async () => {
    // Tombstone GC only when asked: GetStream of a deleted key is checked, and a lone node
    // collects its tombstones at its next GC run (every 10 s by default).
    node = await startNode({ args: ['--gc-interval-ms', '0'] });
    client = new ControlClient(node.socket);
  });

  after(async () => {
    client?.close();
    if (node) await node.stop();
  });

  it('PutStream refuses a size over the limit from the first message, and stores nothing', async () => {
    const outcome = await rawPutStream(node.socket, [{ key: 'ps/huge', valueBytes: 64 * MiB + 1 }]);
    assertStatus(outcome, GrpcStatus.RESOURCE_EXHAUSTED, /limit/);
    assert.equal((await client.hasKey('ps/huge')).found, false);
  });

  it('PutStream stores nothing when fewer or more bytes arrive than announced', async () => {
    const short = await rawPutStream(node.socket, [{ key: 'ps/short', valueBytes: 10 }, { data: Buffer.from('12345') }]);
    assertStatus(short, GrpcStatus.INVALID_ARGUMENT, /5 of the 10 bytes.*nothing was stored/);
    const long = await rawPutStream(node.socket, [{ key: 'ps/long', valueBytes: 3 }, { data: Buffer.from('1234') }]);
    assertStatus(long, GrpcStatus.INVALID_ARGUMENT, /more than the 3 bytes/);
    const badKey = await rawPutStream(node.socket, [{ key: '', valueBytes: 1 }, { data: Buffer.from('x') }]);
    assertStatus(badKey, GrpcStatus.INVALID_ARGUMENT, /key/);
    for (const key of ['ps/short', 'ps/long']) assert.equal((await client.hasKey(key)).found, false, key);
  });

  it('a large value goes in and out in pieces, byte for byte', async () => {
    const value = randomBytes(5 * MiB + 123);
    const pieces = [value.subarray(0, 1000), value.subarray(1000, 3 * MiB), value.subarray(3 * MiB)]; // odd sizes: re-cut by the client
    const { version } = await client.putStream('ps/big', value.length, pieces);
    const head = await client.getStream('ps/big');
    assert.equal(head.found, true);
    assert.equal(head.valueBytes, value.length);
    assert.deepEqual(head.version, version);
    const chunks: Buffer[] = [];
    for await (const chunk of head.chunks) chunks.push(Buffer.from(chunk));
    assert.ok(chunks.length >= 5, `${chunks.length} pieces for ${value.length} bytes`);
    assert.ok(chunks.every((c) => c.length <= valueChunkBytes));
    assert.ok(Buffer.concat(chunks).equals(value));
    assert.ok((await client.get('ps/big')).value.equals(value), 'get gathers the same value');
  });

  it('GetStream says not found, and deleted with the tombstone version', async () => {
    const missing = await client.getStream('ps/never');
    assert.deepEqual([missing.found, missing.deleted, missing.version], [false, false, null]);
    await client.put('ps/gone', Buffer.from('x'));
    const { version } = await client.delete('ps/gone');
    const gone = await client.getStream('ps/gone');
    assert.deepEqual([gone.found, gone.deleted, gone.version], [false, true, version]);
  });

  it('a reader that stops after the first piece leaves the node serving', async () => {
    const value = randomBytes(8 * MiB);
    await client.put('ps/abandoned', value);
    for (let i = 0; i < 5; i++) {
      const head = await client.getStream('ps/abandoned');
      for await (const chunk of head.chunks) {
        assert.ok(chunk.length > 0);
        break; // cancels the call
      }
    }
    const status = await withDeadline(client.status(), 5000, 'status after abandoned reads');
    assert.ok(Number(status.keyCount) >= 1);
    assert.ok((await client.get('ps/abandoned')).value.equals(value));
  });

  it('PutPipeline answers every put in order; a refused put fails alone', async () => {
    const pipeline = client.pipeline();
    const count = 3000;
    const outcomes = await Promise.allSettled(
      Array.from({ length: count }, (_, i) => pipeline.put(i === 1234 ? 'k'.repeat(2048) : `pp/${i}`, Buffer.from(`v${i}`))),
    );
    await pipeline.close();
    const refused = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [[i, o.reason] as const] : []));
    assert.equal(refused.length, 1);
    assert.equal(refused[0]![0], 1234);
    assertStatus(refused[0]![1], GrpcStatus.INVALID_ARGUMENT, /key/);
    const versions = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [BigInt(o.value.version.hlc)] : []));
    for (let i = 1; i < versions.length; i++) assert.ok(versions[i]! > versions[i - 1]!, 'versions increase in the order sent');
    let stored = 0;
    for await (const entry of client.scan({ prefix: 'pp/' })) if (entry.key.startsWith('pp/')) stored++;
    assert.equal(stored, count - 1);
  });

  it('a watcher that stops reading is cut off with RESOURCE_EXHAUSTED once watchBufferBytesMax of changes wait for it', async () => {
    // Its own connection, so the stalled stream holds no window the puts need.
    const watcher = new ControlClient(node.socket);
    try {
      const changes = watcher.watch('wb/')[Symbol.asyncIterator]();
      // The Watch call may reach the node after a first put: probe until a change arrives.
      const firstChange = changes.next();
      let arrived = false;
      void firstChange.then(
        () => (arrived = true),
        () => (arrived = true),
      );
      await waitFor(
        async () => {
          if (!arrived) await client.put('wb/probe', Buffer.from('p'));
          return arrived;
        },
        { deadlineMs: 10_000, intervalMs: 100, what: 'the watch stream delivering its first change' },
      );
      const first = await firstChange;
      assert.equal(first.value?.key, 'wb/probe');
      // Stop reading. Keys of ~1 KiB make each Change message ~1.1 KiB, so 30,000 changes are
      // ~33 MiB: more than the node's limit (16 MiB) plus what the client's HTTP/2 window
      // (4 MiB) and the socket take. Counted in messages (as grpc-js's object-mode stream
      // counts), the limit would never be reached.
      const total = 30_000;
      const perCall = 1000;
      for (let at = 0; at < total; at += perCall) {
        const puts = Array.from({ length: perCall }, (_, i) => ({ key: `wb/${String(at + i).padStart(6, '0')}/${'k'.repeat(1000)}`, value: Buffer.from('v') }));
        const { results } = await withDeadline(client.putMany(puts), 30_000, 'a PutMany while a watcher is stalled');
        assert.ok(results.every((r) => r.error === ''));
      }
      // Now read: the changes queued before the cut, then the status.
      let received = 0;
      const outcome = await withDeadline(
        (async () => {
          try {
            for (let next = await changes.next(); !next.done; next = await changes.next()) received++;
            return 'ended without an error';
          } catch (error) {
            return error;
          }
        })(),
        60_000,
        'the stalled watcher reading to its end',
      );
      assertStatus(outcome, GrpcStatus.RESOURCE_EXHAUSTED, /behind/);
      assert.ok(received < total, `${received} of ${total} changes delivered: the watcher was not cut off`);
      assert.ok(received * 1000 > 16 * MiB, `cut off after ${received} changes: before 16 MiB of them`);
      // The node serves on.
      await withDeadline(client.status(), 5000, 'status after the watcher was cut off');
    } finally {
      watcher.close();
    }
  });

  it('a node stopping ends an open PutPipeline with UNAVAILABLE, and stops promptly', async () => {
    const pipeline = client.pipeline();
    await pipeline.put('pp/before-stop', Buffer.from('x'));
    const startedMs = Date.now();
    const exit = await node.stop(10_000);
    assert.equal(exit.code, 0, node.stderrText());
    assert.ok(Date.now() - startedMs < 2000, `stop took ${Date.now() - startedMs} ms with a pipeline open`);
    await assert.rejects(pipeline.put('pp/after-stop', Buffer.from('x')), (error: Error) => /UNAVAILABLE|stopping|closed|no node/i.test(`${(error as GrpcStatusError).code === GrpcStatus.UNAVAILABLE ? 'UNAVAILABLE' : ''} ${error.message}`));
  });
});
