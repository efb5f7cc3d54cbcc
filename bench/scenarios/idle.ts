/**
 * Scenario 5, idle cost: 3 nodes in sync (holding `keys` entries). (a) Anti-entropy sessions
 * run on demand through the control API (ControlClient.sync = `ckv sync PEER`), which
 * reports each session's round trips and framed bytes both ways; (b) what the background
 * scheduler spends on its own over an idle window (counters: sessions and sync bytes);
 * (c) the idle put acknowledgement: single puts to one node, `ackGapMs` apart so each finds
 * the cluster idle, timed from the bench's send to the reply (gRPC over the Unix socket, the
 * replica's commit, LevelDB, and whatever the node does before it answers). Baseline in the
 * same run: a Get of a stored key on the same connection (the gRPC round trip and one
 * LevelDB read: the floor a put cannot beat by much), and the same call to a bare node:http2
 * server in a process of its own (bench/lib/http2-floor.ts: what this machine charges any
 * server for a call after an idle pause). Before the timed calls, `ackWarmup` calls of each
 * kind run back to back: the target is a process already running, and V8 keeps compiling
 * the put path for a few thousand calls after a start (bench/sequential-puts.ts: a lone
 * node's back-to-back put took 0.78 ms at the median after 300 puts, 0.29 ms after 3,000).
 */
import { performance } from 'node:perf_hooks';
import { counter, putMany, sleep, type NodeProcess } from '../../harness/index.js';
import { timeCalls } from '../lib/ab.js';
import { startCluster } from '../lib/cluster.js';
import { Http2Floor } from '../lib/http2-floor.js';
import { median, quantile } from '../lib/stats.js';
import { fmtBytes, fmtMs, fmtRatio, round } from '../lib/summary.js';
import { collectProfiles, profileDirFor, randomValue, rng32, target, type Ctx, type Scenario, type ScenarioResult } from './common.js';

interface Session {
  initiator: string;
  outcome: string;
  rounds: number;
  bytesSent: number;
  bytesReceived: number;
  ms: number;
}

async function syncOnce(initiator: NodeProcess, peer: NodeProcess): Promise<Session | undefined> {
  const started = performance.now();
  for await (const step of initiator.client.sync(peer.peerId)) {
    if (step.phase === 'started') continue;
    return {
      initiator: initiator.name,
      outcome: step.outcome,
      rounds: step.rounds,
      bytesSent: Number(step.bytesSent),
      bytesReceived: Number(step.bytesReceived),
      ms: performance.now() - started,
    };
  }
  return undefined;
}

function sessionsOf(status: { counters: Record<string, string> }): number {
  return Object.entries(status.counters)
    .filter(([name]) => name.startsWith('sync_sessions_'))
    .reduce((sum, [, value]) => sum + Number(value), 0);
}

export const idle: Scenario = {
  name: 'idle',
  title: 'Idle cost of anti-entropy between nodes in sync',
  estimateS: (quick) => (quick ? 12 : 40),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    const config = { nodes: 3, keys: ctx.quick ? 1000 : 10_000, syncs: ctx.quick ? 12 : 30, idleWindowS: ctx.quick ? 3 : 10, valueBytes: 100, acks: ctx.quick ? 100 : 400, ackGapMs: 10, ackWarmup: ctx.quick ? 500 : 3000 };
    const { progress } = ctx;
    const rng = rng32(ctx.seed ^ 0x1d);
    const value = randomValue(rng, config.valueBytes);
    const profileDir = profileDirFor(ctx, 'idle');
    progress.detail('starting 3 nodes', 0.02);
    const cluster = await startCluster(config.nodes, { cpuProfDir: profileDir });
    const sessions: Session[] = [];
    let ackMs: number[] = [];
    let getMs: number[] = [];
    let floorMs: number[] = [];
    let window: { seconds: number; perNode: { node: string; sessionsPerS: number; bytesPerS: number }[] } | undefined;
    try {
      await cluster.waitMesh(30_000);
      progress.detail(`loading ${config.keys} keys`, 0.1);
      await putMany(cluster.nodes[0]!.client, config.keys, (i) => `idle/${i}`, () => value, 256);
      await cluster.waitConverged(60_000);
      const nodes = cluster.nodes;
      for (let i = 0; sessions.length < config.syncs && i < config.syncs * 3; i++) {
        progress.detail(`on-demand session ${sessions.length + 1}/${config.syncs}`, 0.2 + (0.4 * sessions.length) / config.syncs);
        const session = await syncOnce(nodes[i % nodes.length]!, nodes[(i + 1) % nodes.length]!);
        // 'skipped': the peer was syncing with us at that moment (its session covered both): try again.
        if (session && session.outcome !== 'skipped') sessions.push(session);
        else await sleep(20);
      }
      // Interleaved, so load from elsewhere on the machine hits both alike.
      progress.detail(`idle put acknowledgement: ${config.ackWarmup} calls of each kind to warm up, then ${config.acks} puts, ${config.ackGapMs} ms apart`, 0.6);
      const client = nodes[0]!.client;
      const floor = await Http2Floor.start();
      try {
        for (let i = 0; i < config.ackWarmup; i++) await client.put(`idle-warmup/${i}`, value);
        for (let i = 0; i < config.ackWarmup; i++) await client.get(`idle/${i % config.keys}`);
        for (let i = 0; i < config.ackWarmup; i++) await floor.call();
        for (let round = 0; round < 4; round++) {
          ackMs = ackMs.concat(await timeCalls(config.acks / 4, config.ackGapMs, (i) => client.put(`idle-ack/${round}/${i}`, value)));
          getMs = getMs.concat(await timeCalls(config.acks / 4, config.ackGapMs, (i) => client.get(`idle/${i}`)));
          floorMs = floorMs.concat(await timeCalls(config.acks / 4, config.ackGapMs, () => floor.call()));
        }
      } finally {
        await floor.stop();
      }
      progress.detail(`idle window of ${config.idleWindowS} s`, 0.65);
      const before = await Promise.all(nodes.map((n) => n.status()));
      const t0 = performance.now();
      await sleep(config.idleWindowS * 1000);
      const after = await Promise.all(nodes.map((n) => n.status()));
      const seconds = (performance.now() - t0) / 1000;
      window = {
        seconds: round(seconds, 2),
        perNode: nodes.map((n, i) => ({
          node: n.name,
          sessionsPerS: round((sessionsOf(after[i]!) - sessionsOf(before[i]!)) / seconds, 2),
          bytesPerS: round(
            (counter(after[i]!, 'sync_bytes_in') + counter(after[i]!, 'sync_bytes_out') - counter(before[i]!, 'sync_bytes_in') - counter(before[i]!, 'sync_bytes_out')) / seconds,
            1,
          ),
        })),
      };
    } finally {
      await cluster.stop();
    }
    const profiles = collectProfiles(profileDir, ['n00']);
    const rounds = median(sessions.map((s) => s.rounds));
    const total = median(sessions.map((s) => s.bytesSent + s.bytesReceived));
    const sent = median(sessions.map((s) => s.bytesSent));
    const received = median(sessions.map((s) => s.bytesReceived));
    const ms = median(sessions.map((s) => s.ms));
    const ackP50 = quantile(ackMs, 50 / 100);
    const ackP99 = quantile(ackMs, 99 / 100);
    const getP50 = quantile(getMs, 50 / 100);
    const floorP50 = quantile(floorMs, 50 / 100);
    const outcomes = [...new Set(sessions.map((s) => s.outcome))].join(', ');
    const bytesPerNodePerS = median(window?.perNode.map((p) => p.bytesPerS) ?? []);
    const sessionsPerNodePerS = median(window?.perNode.map((p) => p.sessionsPerS) ?? []);
    return {
      name: 'idle',
      config,
      data: {
        rounds,
        bytesSent: sent,
        bytesReceived: received,
        bytesTotal: total,
        sessionMs: round(ms, 2),
        outcomes,
        sessions: sessions.map((s) => ({ ...s, ms: round(s.ms, 2) })),
        background: window,
        ack: { p50Ms: round(ackP50, 3), p90Ms: round(quantile(ackMs, 90 / 100), 3), p99Ms: round(ackP99, 3), getP50Ms: round(getP50, 3), floorP50Ms: round(floorP50, 3) },
      },
      summary: [
        { scenario: 'idle', measure: 'one sync between nodes in sync: round trips, bytes', ckv: `${rounds} RT, ${fmtBytes(total)}`, baseline: 'target: 1 RT, < 200 B', ratio: `${(total / 200).toFixed(2)}x of 200 B` },
        { scenario: 'idle', measure: 'idle put acknowledged (3 nodes, gRPC) p50 / p99', ckv: `${fmtMs(ackP50)} / ${fmtMs(ackP99)}`, baseline: `Get p50 ${fmtMs(getP50)}; bare http2 ${fmtMs(floorP50)}`, ratio: fmtRatio(ackP50 / getP50) },
        { scenario: 'idle', measure: 'background anti-entropy per node (idle)', ckv: `${bytesPerNodePerS.toFixed(0)} B/s`, baseline: `${sessionsPerNodePerS.toFixed(2)} sessions/s`, ratio: '' },
      ],
      details: [
        {
          title: `Idle: ${config.syncs} on-demand sessions (ControlClient.sync, i.e. \`ckv sync PEER\`) between 3 nodes in sync holding ${config.keys} keys; medians`,
          headers: ['round trips', 'bytes sent', 'bytes received', 'total', 'session ms (incl. gRPC)', 'outcomes'],
          rows: [[String(rounds), String(sent), String(received), String(total), ms.toFixed(2), outcomes]],
          numeric: [0, 1, 2, 3, 4],
        },
        {
          title: `Idle put acknowledgement: ${ackMs.length} single puts of ${config.valueBytes} B to n00 of 3 nodes, ${config.ackGapMs} ms apart, interleaved with as many Gets and bare http2 calls`,
          headers: ['call', 'p50 ms', 'p90 ms', 'p99 ms'],
          rows: [
            ['Put (acknowledged once durable)', ackP50.toFixed(3), quantile(ackMs, 90 / 100).toFixed(3), ackP99.toFixed(3)],
            ['Get of a stored key (baseline)', getP50.toFixed(3), quantile(getMs, 90 / 100).toFixed(3), quantile(getMs, 99 / 100).toFixed(3)],
            ['bare node:http2 server, same client (the machine\'s floor)', floorP50.toFixed(3), quantile(floorMs, 90 / 100).toFixed(3), quantile(floorMs, 99 / 100).toFixed(3)],
          ],
          numeric: [1, 2, 3],
        },
        {
          title: `Idle background over ${window?.seconds ?? '-'} s (default --sync-interval-ms 1000: one session per node per second +-25%)`,
          headers: ['node', 'sessions initiated / s', 'sync bytes in+out / s'],
          rows: (window?.perNode ?? []).map((p) => [p.node, p.sessionsPerS.toFixed(2), p.bytesPerS.toFixed(0)]),
          numeric: [1, 2],
        },
      ],
      targets: [
        target('idle', 'idle sync: one round trip', rounds, '<=', 1, 'round trips', `outcome ${outcomes}`),
        target('idle', 'idle put acknowledged p50 (gRPC, 3 nodes)', round(ackP50, 3), '<=', 1, 'ms', `Get p50 ${fmtMs(getP50)} on the same connection; a bare node:http2 server ${fmtMs(floorP50)}`),
        target('idle', 'idle sync: under 200 bytes (both directions)', total, '<', 200, 'B', `${sent} B sent + ${received} B received`),
      ],
      notes: [
        'Bytes are the sync protocol\'s framed payload as the node counts it (bytes_sent / bytes_received of the session); noise and yamux framing and TCP/IP headers come on top.',
        'The bare node:http2 server (bench/lib/http2-floor.ts) answers each call as grpc-js answers a unary one, in a process of its own, through the same client: what any server pays here for a call after an idle pause (process wake-ups, node:http2 on both sides), with no ckv, grpc-js or LevelDB.',
      ],
      profiles,
    };
  },
};
