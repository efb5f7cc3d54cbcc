/**
 * Baselines measured in the same run as the cluster scenarios, so a slow or busy machine
 * moves both sides of each ratio:
 *
 * - raw gossipsub hop: two bare libp2p nodes made by ckv's own `createNetwork` (TCP, noise,
 *   yamux, gossipsub with ckv's settings: StrictNoSign, floodPublish, SHA-256 message ids), in
 *   this process, connected over 127.0.0.1. Latency = `publish()` called on A -> 'message'
 *   event on B, one clock (`performance.now()`), messages published at a steady rate like the
 *   convergence writes. What it leaves out of a ckv write: the gRPC put and the watch stream
 *   (bench <-> node), the LevelDB batch on both nodes, and a second process.
 * - raw level write: the same keys and values written with `level` (the library ckv stores
 *   through) in batches into a fresh directory: what merely storing the entries costs.
 * - process round trip: one byte sent to a second Node.js process over TCP on 127.0.0.1 and
 *   echoed back, at a steady rate: what the machine charges for waking a process that was
 *   idle. On this VM a round trip after 100 ms of quiet took ~0.5 ms against ~0.05 ms after 10
 *   ms (docs/measurements.md, 2026-12-04 (night)): a write that crosses several processes and
 *   LevelDB's thread pool pays it at every crossing, so at a low write rate convergence is
 *   slower than at a high one. Measured at the scenario's own rate.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { Level } from 'level';
import { createNetwork, type CkvLibp2p } from '../../src/net/libp2p.js';
import { removeTempDir, sleep, tempDir, waitFor } from '../../harness/index.js';

export interface GossipHopOptions {
  /** Messages per run. */
  count: number;
  ratePerSec: number;
  payloadBytes: number;
  runs: number;
  warmup?: number;
  onRun?: (run: number) => void;
}

export interface GossipHopRun {
  latenciesMs: number[];
  lost: number;
}

const topic = 'ckv-bench/raw/1';

/** Runs `runs` rounds of `count` messages A -> B over one pair of bare libp2p nodes. */
export async function rawGossipHop(options: GossipHopOptions): Promise<GossipHopRun[]> {
  const nodes: CkvLibp2p[] = [];
  try {
    const a = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, gossipTopic: topic });
    nodes.push(a);
    const address = a.getMultiaddrs()[0]!.toString();
    const b = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [address], mdns: false, gossipTopic: topic });
    nodes.push(b);
    a.services.pubsub.subscribe(topic);
    b.services.pubsub.subscribe(topic);
    await waitFor(
      () => a.services.pubsub.getSubscribers(topic).some((p) => p.equals(b.peerId)) && b.services.pubsub.getSubscribers(topic).some((p) => p.equals(a.peerId)),
      { what: 'two bare libp2p nodes to see each other subscribed', deadlineMs: 20_000, intervalMs: 20 },
    );

    const sentAt = new Map<number, number>();
    const latencies: number[] = [];
    b.services.pubsub.addEventListener('message', (event) => {
      const at = performance.now();
      const data = event.detail.data;
      const seq = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
      const sent = sentAt.get(seq);
      if (sent === undefined) return;
      sentAt.delete(seq);
      latencies.push(at - sent);
    });
    let seq = 0;
    const publishSteady = async (count: number): Promise<number> => {
      const first = seq;
      const started = performance.now();
      const intervalMs = 1000 / options.ratePerSec;
      let i = 0;
      while (i < count) {
        const due = started + i * intervalMs;
        const now = performance.now();
        if (now < due) {
          await sleep(Math.max(0, due - now - 0.2));
          continue;
        }
        const payload = new Uint8Array(options.payloadBytes);
        crypto.getRandomValues(payload.subarray(4));
        new DataView(payload.buffer).setUint32(0, seq);
        sentAt.set(seq, performance.now());
        seq++;
        void a.services.pubsub.publish(topic, payload).catch(() => undefined);
        i++;
      }
      await waitFor(() => [...sentAt.keys()].every((s) => s < first), { what: 'raw gossip messages to arrive', deadlineMs: 5000, intervalMs: 5 }).catch(() => undefined);
      return first;
    };

    await publishSteady(options.warmup ?? 100);
    sentAt.clear();
    const runs: GossipHopRun[] = [];
    for (let run = 0; run < options.runs; run++) {
      options.onRun?.(run);
      latencies.length = 0;
      await publishSteady(options.count);
      runs.push({ latenciesMs: [...latencies], lost: sentAt.size });
      sentAt.clear();
    }
    return runs;
  } finally {
    await Promise.all(nodes.map((node) => Promise.resolve(node.stop()).catch(() => undefined)));
  }
}

export interface LevelWriteOptions {
  keys: readonly string[];
  values: readonly Uint8Array[];
  batchOps: number;
}

/** ms to write every key/value with `level` in batches of `batchOps` into a fresh directory (open and close excluded). */
export async function rawLevelWrite(options: LevelWriteOptions): Promise<number> {
  const dir = tempDir('ckv-bench-');
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  try {
    await db.open();
    const started = performance.now();
    for (let i = 0; i < options.keys.length; i += options.batchOps) {
      const batch = db.batch();
      const end = Math.min(options.keys.length, i + options.batchOps);
      for (let j = i; j < end; j++) batch.put(options.keys[j]!, options.values[j]!);
      await batch.write();
    }
    return performance.now() - started;
  } finally {
    try {
      await db.close();
    } catch {
      // closing a db that failed to open
    }
    removeTempDir(dir);
  }
}

export interface RoundTripOptions {
  /** Round trips sent at a steady rate (one at a time). */
  count: number;
  ratePerSec: number;
}

/**
 * A second Node.js process (an echo server on 127.0.0.1) and `count` one-byte round trips to
 * it at `ratePerSec`; resolves the round trips in ms. The process is ended (by its PID) either way.
 */
export async function processRoundTrip(options: RoundTripOptions): Promise<number[]> {
  const echo = `const s=require('node:net').createServer((c)=>{c.setNoDelay(true);c.on('data',(d)=>c.write(d));});s.listen(0,'127.0.0.1',()=>process.stdout.write(s.address().port+'\\n'));`;
  const child = spawn(process.execPath, ['-e', echo], { stdio: ['ignore', 'pipe', 'inherit'] });
  let socket: Socket | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error('echo process did not listen within 10 s')), 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (!text.includes('\n')) return;
        clearTimeout(timer);
        resolve(Number(text.trim()));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`echo process exited (${code}) before listening`));
      });
    });
    const opened = connect(port, '127.0.0.1');
    socket = opened;
    opened.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      opened.once('connect', resolve);
      opened.once('error', reject);
    });
    const intervalMs = 1000 / options.ratePerSec;
    const rtts: number[] = [];
    const started = performance.now();
    for (let i = 0; i < options.count; i++) {
      const due = started + i * intervalMs;
      const waitMs = due - performance.now();
      if (waitMs > 0) await sleep(waitMs);
      const sentAt = performance.now();
      const echoed = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no echo within 5 s')), 5000);
        opened.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      opened.write('x');
      await echoed;
      rtts.push(performance.now() - sentAt);
    }
    return rtts;
  } finally {
    socket?.destroy();
    child.kill();
  }
}
