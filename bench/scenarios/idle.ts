/**
 * Scenario 5, idle cost: 3 nodes in sync (holding `keys` entries). (a) Anti-entropy sessions
 * run on demand through the control API (ControlClient.sync = `ckv sync PEER`), which
 * reports each session's round trips and framed bytes both ways; (b) what the background
 * scheduler spends on its own over an idle window (counters: sessions and sync bytes).
 */
import { performance } from 'node:perf_hooks';
import { counter, putMany, sleep, type NodeProcess } from '../../harness/index.js';
import { startCluster } from '../lib/cluster.js';
import { median } from '../lib/stats.js';
import { fmtBytes, round } from '../lib/summary.js';
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
  estimateS: (quick) => (quick ? 9 : 25),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    const config = { nodes: 3, keys: ctx.quick ? 1000 : 10_000, syncs: ctx.quick ? 12 : 30, idleWindowS: ctx.quick ? 3 : 10, valueBytes: 100 };
    const { progress } = ctx;
    const rng = rng32(ctx.seed ^ 0x1d);
    const value = randomValue(rng, config.valueBytes);
    const profileDir = profileDirFor(ctx, 'idle');
    progress.detail('starting 3 nodes', 0.02);
    const cluster = await startCluster(config.nodes, { cpuProfDir: profileDir });
    const sessions: Session[] = [];
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
      },
      summary: [
        { scenario: 'idle', measure: 'one sync between nodes in sync: round trips, bytes', ckv: `${rounds} RT, ${fmtBytes(total)}`, baseline: 'target: 1 RT, < 200 B', ratio: `${(total / 200).toFixed(2)}x of 200 B` },
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
          title: `Idle background over ${window?.seconds ?? '-'} s (default --sync-interval-ms 1000: one session per node per second +-25%)`,
          headers: ['node', 'sessions initiated / s', 'sync bytes in+out / s'],
          rows: (window?.perNode ?? []).map((p) => [p.node, p.sessionsPerS.toFixed(2), p.bytesPerS.toFixed(0)]),
          numeric: [1, 2],
        },
      ],
      targets: [
        target('idle', 'idle sync: one round trip', rounds, '<=', 1, 'round trips', `outcome ${outcomes}`),
        target('idle', 'idle sync: under 200 bytes (both directions)', total, '<', 200, 'B', `${sent} B sent + ${received} B received`),
      ],
      notes: ['Bytes are the sync protocol\'s framed payload as the node counts it (bytes_sent / bytes_received of the session); noise and yamux framing and TCP/IP headers come on top.'],
      profiles,
    };
  },
};
