/**
 * The replicate protocol (/ckv/<cluster>/replicate/1.0.0) against a real node process, from a
 * raw libp2p node: the real ReplicateClient stores entries (batched: 2,000 concurrent writes
 * on one stream) and reads them back, with per-entry outcomes (applied, then older for the
 * same version); malformed frames (random bytes, a bad version, an unknown type, an empty
 * batch, trailing bytes, a length prefix over the frame limit) reset the stream and are
 * counted (`replicate_rejected`); the node stays up and keeps serving the protocol and the CLI.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { createNetwork, type CkvLibp2p } from '../../src/net/libp2p.js';
import { FramedStream, encodeVarint } from '../../src/net/framed-stream.js';
import { ByteWriter } from '../../src/core/bytes.js';
import { hlcPack } from '../../src/core/hlc.js';
import { frameBytesMax } from '../../src/core/limits.js';
import type { Entry } from '../../src/core/entry.js';
import { gossipTopic } from '../../src/net/gossip.js';
import { ReplicateClient, decodeReply, encodeApply, encodeRead, replicateProtocolId } from '../../src/net/replicate-protocol.js';
import { Counters } from '../../src/util/counters.js';
import { counter, runCliOk, waitFor, withDeadline, type NodeProcess } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

const protocol = replicateProtocolId('default');
const writer = 'aaaaaaaaaaaaaaaa';

const entry = (key: string, value: string, wallMs = Date.now()): Entry => ({
  key,
  value: new TextEncoder().encode(value),
  version: { hlc: hlcPack(wallMs, 0), node: writer },
});

describe('the replicate protocol against a real node', () => {
  let target: NodeProcess;
  let raw: CkvLibp2p;

  before(async () => {
    target = await startPeer('target', { args: ['--sync-interval-ms', '200'] });
    raw = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, gossipTopic: gossipTopic('default') });
    await raw.dial(multiaddr(target.address));
  });
  after(async () => {
    await raw?.stop();
    await target?.stop();
  });

  it('stores batched entries durably and answers per entry; reads them back', async () => {
    const peerId = target.status().then((s) => s.peerId);
    const client = new ReplicateClient(
      { counters: new Counters() },
      { cluster: 'default', dial: (_peer, proto, signal) => raw.dialProtocol(multiaddr(target.address), proto, { signal }) },
    );
    const id = await peerId;
    const entries = Array.from({ length: 2_000 }, (_, i) => entry(`rep-${i}`, `value-${i}`));
    const outcomes = await withDeadline(Promise.all(entries.map((e) => client.apply(id, e))), 30_000, '2,000 applies');
    assert.ok(outcomes.every((o) => o === 'applied'), `all applied: ${[...new Set(outcomes)].join(', ')}`);
    const again = await client.apply(id, entries[7]!);
    assert.equal(again, 'older', 'the same version again is an ack, not a new write');
    const read = await client.read(id, 'rep-7');
    assert.equal(new TextDecoder().decode(read!.value!), 'value-7');
    assert.equal(await client.read(id, 'no-such-key'), undefined);
    // Stored on the node: the CLI sees it.
    assert.equal((await runCliOk(['get', 'rep-1999'], { socket: target.socket })).stdout.toString('utf8'), 'value-1999');
    assert.ok(counter(await target.status(), 'replicate_entries_received') >= 2_000);
    // Stamped an hour ahead: refused (clock drift), per entry.
    assert.equal(await client.apply(id, entry('future', 'x', Date.now() + 3_600_000)), 'refused-clock');
    client.stop();
  });

  it('malformed frames reset the stream and are counted; the node keeps serving', async () => {
    const address = multiaddr(target.address);
    const rejected = async (): Promise<number> => counter(await target.status(), 'replicate_rejected');
    const start = await rejected();
    const frames: Uint8Array[] = [
      new Uint8Array(randomBytes(300)),
      (() => {
        const f = encodeRead(1, 'k');
        f[0] = 9;
        return f;
      })(),
      new ByteWriter().u8(1).u8(0x55).varint(1).finish(),
      new ByteWriter().u8(1).u8(1).varint(1).varint(0).finish(),
      new Uint8Array([...encodeRead(1, 'k'), 0, 0]),
    ];
    let expected = 0;
    for (const frame of frames) {
      const stream = await raw.dialProtocol(address, protocol, { signal: AbortSignal.timeout(10_000) });
      const framed = new FramedStream(stream, { frameBytesMax: 1024 * 1024, signal: AbortSignal.timeout(10_000) });
      await framed.write(frame);
      const outcome = await framed.read().then(
        (reply) => (reply === undefined ? 'end' : 'reply'),
        (error: unknown) => `reset: ${(error as Error).message}`,
      );
      assert.match(outcome, /^reset/, `a malformed frame resets the stream (${outcome})`);
      expected++;
    }
    await waitFor(async () => (await rejected()) - start >= expected, { deadlineMs: 5_000, what: 'replicate_rejected to count every malformed frame' });

    // A length prefix over the frame limit: reset before any body is buffered.
    {
      const stream = await raw.dialProtocol(address, protocol, { signal: AbortSignal.timeout(10_000) });
      const framed = new FramedStream(stream, { frameBytesMax: 1024, signal: AbortSignal.timeout(10_000) });
      stream.send(encodeVarint(frameBytesMax + 1));
      const outcome = await framed.read().then(
        () => 'not reset',
        () => 'reset',
      );
      assert.equal(outcome, 'reset');
    }

    // Still serving: a good request on a fresh stream, and the CLI.
    const stream = await raw.dialProtocol(address, protocol, { signal: AbortSignal.timeout(10_000) });
    const framed = new FramedStream(stream, { frameBytesMax, signal: AbortSignal.timeout(10_000) });
    await framed.write(encodeApply(41, [entry('after-garbage', 'ok')]));
    const reply = decodeReply((await framed.read())!);
    assert.deepEqual(reply, { type: 'applied', id: 41, outcomes: ['applied'] });
    await framed.close();
    assert.equal((await runCliOk(['get', 'after-garbage'], { socket: target.socket })).stdout.toString('utf8'), 'ok');
    assert.equal(target.process.exitCode, null);
  });
});
