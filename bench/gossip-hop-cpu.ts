/**
 * CPU and socket writes per gossip message between two libp2p nodes of this process, with
 * ckv's network stack (src/net/libp2p.ts: noise, yamux with its window policy, gossipsub as
 * configured): A publishes `count` 150-byte messages (about a one-write `entry` message) at
 * `rate` per second, B receives them. Both ends are in this process, so process.cpuUsage
 * covers the send and the receive; socket writes are counted at net.Socket.prototype.write.
 * No LevelDB, no gRPC: the transport's share of a write. Run a checkout against another by
 * building both and running each one's copy, interleaved.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/gossip-hop-cpu.js [--count 4000] [--rate 2000]
 */
import '../src/util/polyfill.js';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createNetwork, type CkvLibp2p } from '../src/net/libp2p.js';

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}
const count = arg('--count', 4000);
const rate = arg('--rate', 2000);
const topic = 'ckv/hop/writes/1';
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

async function node(): Promise<CkvLibp2p> {
  return createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, gossipTopic: topic });
}

const a = await node();
const b = await node();
try {
  a.services.pubsub.subscribe(topic);
  b.services.pubsub.subscribe(topic);
  await a.dial(b.getMultiaddrs()[0]!);
  const meshUntil = performance.now() + 10_000;
  while (a.services.pubsub.getSubscribers(topic).length === 0 || b.services.pubsub.getSubscribers(topic).length === 0) {
    if (performance.now() > meshUntil) throw new Error('the two nodes did not see each other subscribe within 10 s');
    await sleep(20);
  }
  let received = 0;
  b.services.pubsub.addEventListener('message', () => received++);
  let socketWrites = 0;
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function counted(this: net.Socket, ...args: Parameters<typeof write>) {
    socketWrites++;
    return write.apply(this, args);
  } as typeof write;
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  for (let i = 0; i < count; i++) {
    const data = new Uint8Array(150);
    new DataView(data.buffer).setUint32(2, i); // distinct bytes: distinct message ids
    data[0] = 1;
    data[1] = 6;
    await a.services.pubsub.publish(topic, data);
    const wait = startedAt + ((i + 1) * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
  }
  const until = performance.now() + 10_000;
  while (received < count && performance.now() < until) await sleep(10);
  const cpu = process.cpuUsage(cpuBefore);
  net.Socket.prototype.write = write;
  console.log(
    JSON.stringify({
      messages: count,
      received,
      ratePerSec: rate,
      socketWritesPerMessage: Number((socketWrites / count).toFixed(2)),
      cpuUsPerMessage: Math.round((cpu.user + cpu.system) / count),
    }),
  );
} finally {
  await a.stop();
  await b.stop();
}
