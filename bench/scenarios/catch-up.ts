/**
 * Scenario 3, catch-up: in a 3-node cluster, stop one node (SIGTERM), write K entries
 * (100-byte values) to another, restart the stopped node on its data dir, and time until its
 * Merkle root equals the others' (rejoin.ts). Bytes: the restarted node's sync_bytes_in
 * against the raw size of the K missed entries (their canonical encoding, entryWireBytes:
 * key, flags, version, value: what any protocol must move). Baseline: a raw `level` batched
 * write of the same K entries into a fresh directory, same run.
 */
import { entryWireBytes } from '../../src/core/entry.js';
import { rawLevelWrite } from '../lib/baselines.js';
import { putMany } from '../../harness/index.js';
import { startCluster } from '../lib/cluster.js';
import { median } from '../lib/stats.js';
import { fmtBytes, fmtMs, fmtRatio, round } from '../lib/summary.js';
import { collectProfiles, profileDirFor, randomValue, rng32, target, type Ctx, type Scenario, type ScenarioResult, type Target } from './common.js';
import { timeJoin, type JoinResult } from './rejoin.js';

const valueBytes = 100;

export function wireBytesOf(keys: readonly string[], valueLength: number): number {
  const value = new Uint8Array(valueLength);
  return keys.reduce((sum, key) => sum + entryWireBytes({ key, value, version: { hlc: 0n, node: '0000000000000000' } }), 0);
}

/** The data path's catch-up targets by missed writes (issue 13): peer up -> root equal, ms. */
const issueCatchUpMs = new Map([
  [10_000, 100],
  [100_000, 1000],
]);

export const catchUp: Scenario = {
  name: 'catch-up',
  title: 'Catch-up of a restarted node that missed K writes',
  estimateS: (quick) => (quick ? 14 : 120),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    // 100k entries take ~40 s to load through the API on a 2-core machine: 2 runs there.
    const config = ctx.quick
      ? { nodes: 3, ks: [2000], runs: [2], valueBytes, inFlight: 256, levelBatchOps: 1024 }
      : { nodes: 3, ks: [10_000, 100_000], runs: [3, 2], valueBytes, inFlight: 256, levelBatchOps: 1024 };
    const { progress } = ctx;
    const rng = rng32(ctx.seed ^ 0xca);
    const profileDir = profileDirFor(ctx, 'catch-up');
    progress.detail('starting 3 nodes', 0.02);
    const cluster = await startCluster(config.nodes, { cpuProfDir: profileDir });
    const byK: { k: number; runs: (JoinResult & { rawBytes: number; levelMs: number; writeMs: number })[] }[] = [];
    const totalRuns = config.runs.reduce((a, b) => a + b, 0);
    let done = 0;
    try {
      await cluster.waitMesh(30_000);
      for (const [index, k] of config.ks.entries()) {
        const runCount = config.runs[index]!;
        const entry = { k, runs: [] as (JoinResult & { rawBytes: number; levelMs: number; writeMs: number })[] };
        byK.push(entry);
        const values = Array.from({ length: Math.min(k, 4096) }, () => randomValue(rng, config.valueBytes));
        for (let run = 0; run < runCount; run++) {
          const label = `K=${k} run ${run + 1}/${runCount}`;
          const frac = (extra: number): number => 0.03 + (0.95 * (done + extra)) / totalRuns;
          const keys = Array.from({ length: k }, (_, i) => `cu/${k}/${run}/${String(i).padStart(6, '0')}`);
          const valueOf = (i: number): Uint8Array => values[i % values.length]!;
          progress.detail(`${label}: raw level baseline`, frac(0));
          const levelMs = await rawLevelWrite({ keys, values: keys.map((_, i) => valueOf(i)), batchOps: config.levelBatchOps });

          const victim = cluster.nodes[2]!;
          progress.detail(`${label}: stopping ${victim.name}, writing ${k} entries`, frac(0.1));
          await victim.stop();
          const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
          const writeMs = await putMany(a.client, k, (i) => keys[i]!, valueOf, config.inFlight);
          const [statusA] = await cluster.waitConverged(120_000, 25, [a, b]);
          progress.detail(`${label}: restarting ${victim.name}`, frac(0.7));
          const result = await timeJoin(cluster, () => cluster.respawn(victim), statusA!.merkleRoot, statusA!.keyCount, 180_000);
          entry.runs.push({ ...result, rawBytes: wireBytesOf(keys, config.valueBytes), levelMs, writeMs });
          done++;
          // Everyone equal again before the next run (the rejoined node may still be meeting the third).
          await cluster.waitConverged(60_000);
        }
      }
    } finally {
      await cluster.stop();
    }
    const profiles = collectProfiles(profileDir, ['n00', 'n02']);

    const rows: string[][] = [];
    const points: { k: number; catchUpMs: number; rawLevelMs: number; targetMs: number }[] = [];
    const targets: Target[] = [];
    const summary = [];
    const data: Record<string, unknown> = {};
    for (const { k, runs } of byK) {
      const catchUpMs = median(runs.map((r) => r.catchUpMs));
      const levelMs = median(runs.map((r) => r.levelMs));
      const bytesIn = median(runs.map((r) => r.bytesIn));
      const bytesOut = median(runs.map((r) => r.bytesOut));
      const rawBytes = runs[0]!.rawBytes;
      const limitMs = 2 * levelMs + 100;
      points.push({ k, catchUpMs, rawLevelMs: levelMs, targetMs: limitMs });
      rows.push([
        String(k),
        fmtMs(catchUpMs),
        fmtMs(median(runs.map((r) => r.totalMs))),
        fmtMs(median(runs.map((r) => r.readyMs))),
        fmtMs(levelMs),
        fmtRatio(catchUpMs / levelMs),
        fmtBytes(bytesIn),
        fmtBytes(bytesOut),
        fmtBytes(rawBytes),
        fmtRatio(bytesIn / rawBytes),
        String(median(runs.map((r) => r.sessions.length))),
        String(median(runs.map((r) => r.sessions.reduce((sum, x) => sum + x.received + x.sent, 0)))),
        runs.some((r) => r.doneBeforeReady) ? 'yes' : 'no',
      ]);
      summary.push(
        { scenario: 'catch-up', measure: `K=${k}: peer up -> root equal`, ckv: fmtMs(catchUpMs), baseline: `raw level write ${fmtMs(levelMs)}`, ratio: fmtRatio(catchUpMs / levelMs) },
        { scenario: 'catch-up', measure: `K=${k}: sync bytes received`, ckv: fmtBytes(bytesIn), baseline: `raw entries ${fmtBytes(rawBytes)}`, ratio: fmtRatio(bytesIn / rawBytes) },
      );
      if (k === 10_000 || (ctx.quick && k === config.ks[0])) {
        targets.push(
          target('catch-up', `catch-up of K=${k} under 2 x raw level write + 100 ms`, catchUpMs, '<', limitMs, 'ms', `2 x ${fmtMs(levelMs)} + 100 ms`),
          target('catch-up', `sync bytes for K=${k} under 1.5 x raw`, bytesIn / rawBytes, '<', 1.5, 'x', `${fmtBytes(bytesIn)} received / ${fmtBytes(rawBytes)} raw`),
        );
      }
      // The data-path targets (issue 13): 10k in 100 ms, 100k in 1 s, bytes <= 1.2x the raw entries.
      const issueLimitMs = issueCatchUpMs.get(k);
      if (issueLimitMs !== undefined) {
        targets.push(
          target('catch-up', `catch-up of K=${k} (peer up -> root equal) <= ${fmtMs(issueLimitMs)}`, catchUpMs, '<=', issueLimitMs, 'ms', `raw level write ${fmtMs(levelMs)}`),
          target('catch-up', `sync bytes for K=${k} <= 1.2 x raw`, bytesIn / rawBytes, '<=', 1.2, 'x', `${fmtBytes(bytesIn)} received / ${fmtBytes(rawBytes)} raw`),
        );
      }
      data[`k${k}`] = {
        k,
        catchUpMs: round(catchUpMs, 1),
        rawLevelMs: round(levelMs, 1),
        bytesIn,
        bytesOut,
        rawBytes,
        bytesRatio: round(bytesIn / rawBytes),
        perRun: runs.map((r) => ({
          catchUpMs: round(r.catchUpMs, 1),
          totalMs: round(r.totalMs, 1),
          readyMs: round(r.readyMs, 1),
          peerUpMs: round(r.peerUpMs, 1),
          doneBeforeReady: r.doneBeforeReady,
          bytesIn: r.bytesIn,
          bytesOut: r.bytesOut,
          entriesApplied: r.entriesApplied,
          rawLevelMs: round(r.levelMs, 1),
          writeMs: round(r.writeMs, 1),
          sessions: r.sessions.map((s) => ({ ...s, atMs: undefined })),
        })),
      };
    }
    return {
      name: 'catch-up',
      config,
      data: { ...data, catchUp: { points } },
      summary,
      details: [
        {
          title: `Catch-up: one of 3 nodes stopped, K entries (${config.valueBytes}-byte values) written, node restarted; medians of ${config.runs.join(' / ')} runs`,
          headers: ['K', 'peer up -> root equal', 'spawn -> root equal', 'spawn -> ready', 'raw level write', 'catch-up / raw', 'sync bytes in', 'sync bytes out', 'raw entries', 'in / raw', 'sessions', 'entries moved', 'done before ready'],
          rows,
          numeric: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        },
      ],
      targets,
      notes: [
        'Catch-up time starts at the restarted node\'s first "member up" log line (its first connection is identified and the member is up; the sync session starts right after) and ends at the first Status poll (every 10 ms, every 50 ms after 2 s) that shows its root equal to the others\'. "spawn -> root equal" adds process start (Node.js, module load, LevelDB open, Merkle rebuild).',
        '"done before ready": the node had caught up before its control socket answered, so the catch-up figure is an upper bound for that run.',
        '"sessions" / "entries moved": sync sessions that carried entries while the node caught up (from the initiators\' log lines) and the entries they moved; more entries than K means two peers pushed the same entries at once.',
        'sync bytes are the restarted node\'s sync_bytes_in / sync_bytes_out counters (framed sync protocol payload; libp2p noise/yamux framing not included) since its start.',
      ],
      profiles,
    };
  },
};
