/**
 * Scenario 4, new node: a cluster of 2 nodes holding `keys` entries (100k; 100-byte values);
 * a fresh node (empty data dir) bootstrapped to them joins; time and bytes until it holds
 * everything (root equal; rejoin.ts). Each run is a new fresh node (the previous one is
 * stopped and deleted). Baseline: raw `level` batched write of the same entries.
 */
import { rawLevelWrite } from '../lib/baselines.js';
import { putMany } from '../../harness/index.js';
import { startCluster } from '../lib/cluster.js';
import { median } from '../lib/stats.js';
import { fmtBytes, fmtMs, fmtRatio, round } from '../lib/summary.js';
import { wireBytesOf } from './catch-up.js';
import { collectProfiles, profileDirFor, randomValue, rng32, target, type Ctx, type Scenario, type ScenarioResult } from './common.js';
import { timeJoin, type JoinResult } from './rejoin.js';

export const newNode: Scenario = {
  name: 'new-node',
  title: 'A fresh node joining a cluster that holds many keys',
  estimateS: (quick) => (quick ? 9 : 75),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    const config = { nodes: 2, keys: ctx.quick ? 2000 : 100_000, valueBytes: 100, runs: ctx.quick ? 2 : 3, inFlight: 256, levelBatchOps: 1024 };
    const { progress } = ctx;
    const rng = rng32(ctx.seed ^ 0x4e);
    const values = Array.from({ length: 4096 }, () => randomValue(rng, config.valueBytes));
    const keys = Array.from({ length: config.keys }, (_, i) => `nn/${String(i).padStart(7, '0')}`);
    const valueOf = (i: number): Uint8Array => values[i % values.length]!;
    const rawBytes = wireBytesOf(keys, config.valueBytes);
    const profileDir = profileDirFor(ctx, 'new-node');
    progress.detail('starting 2 nodes', 0.02);
    const cluster = await startCluster(config.nodes, { cpuProfDir: profileDir });
    const runs: (JoinResult & { levelMs: number })[] = [];
    let writeMs = 0;
    try {
      await cluster.waitMesh(30_000);
      progress.detail(`writing ${config.keys} entries`, 0.05);
      writeMs = await putMany(cluster.nodes[0]!.client, config.keys, (i) => keys[i]!, valueOf, config.inFlight);
      const [status] = await cluster.waitConverged(180_000);
      for (let run = 0; run < config.runs; run++) {
        progress.detail(`run ${run + 1}/${config.runs}: raw level baseline`, 0.3 + (0.65 * run) / config.runs);
        const levelMs = await rawLevelWrite({ keys, values: keys.map((_, i) => valueOf(i)), batchOps: config.levelBatchOps });
        progress.detail(`run ${run + 1}/${config.runs}: fresh node joining`, 0.3 + (0.65 * (run + 0.4)) / config.runs);
        const result = await timeJoin(cluster, async () => (await cluster.add(1))[0]!, status!.merkleRoot, status!.keyCount, 300_000);
        runs.push({ ...result, levelMs });
        await cluster.remove(result.node);
      }
    } finally {
      await cluster.stop();
    }
    const profiles = collectProfiles(profileDir, ['n00', 'n02']);
    const catchUpMs = median(runs.map((r) => r.catchUpMs));
    const totalMs = median(runs.map((r) => r.totalMs));
    const levelMs = median(runs.map((r) => r.levelMs));
    const bytesIn = median(runs.map((r) => r.bytesIn));
    return {
      name: 'new-node',
      config,
      data: {
        joinMs: round(catchUpMs, 1),
        spawnToAllMs: round(totalMs, 1),
        rawLevelMs: round(levelMs, 1),
        bytesIn,
        rawBytes,
        bytesRatio: round(bytesIn / rawBytes),
        loadWriteMs: round(writeMs, 1),
        perRun: runs.map((r) => ({
          catchUpMs: round(r.catchUpMs, 1),
          totalMs: round(r.totalMs, 1),
          readyMs: round(r.readyMs, 1),
          doneBeforeReady: r.doneBeforeReady,
          bytesIn: r.bytesIn,
          bytesOut: r.bytesOut,
          entriesApplied: r.entriesApplied,
          rawLevelMs: round(r.levelMs, 1),
          sessions: r.sessions.map((s) => ({ ...s, atMs: undefined })),
        })),
      },
      summary: [
        { scenario: 'new-node', measure: `fresh node, ${config.keys} keys: peer up -> holds all`, ckv: fmtMs(catchUpMs), baseline: `raw level write ${fmtMs(levelMs)}`, ratio: fmtRatio(catchUpMs / levelMs) },
        { scenario: 'new-node', measure: `fresh node, ${config.keys} keys: sync bytes received`, ckv: fmtBytes(bytesIn), baseline: `raw entries ${fmtBytes(rawBytes)}`, ratio: fmtRatio(bytesIn / rawBytes) },
      ],
      details: [
        {
          title: `New node: a fresh node joins 2 nodes holding ${config.keys} entries (${config.valueBytes}-byte values); medians of ${config.runs} runs`,
          headers: ['peer up -> holds all', 'spawn -> holds all', 'raw level write', 'join / raw', 'sync bytes in', 'raw entries', 'in / raw', 'sessions', 'entries moved'],
          rows: [
            [
              fmtMs(catchUpMs),
              fmtMs(totalMs),
              fmtMs(levelMs),
              fmtRatio(catchUpMs / levelMs),
              fmtBytes(bytesIn),
              fmtBytes(rawBytes),
              fmtRatio(bytesIn / rawBytes),
              String(median(runs.map((r) => r.sessions.length))),
              String(median(runs.map((r) => r.sessions.reduce((sum, x) => sum + x.received + x.sent, 0)))),
            ],
          ],
          numeric: [0, 1, 2, 3, 4, 5, 6, 7, 8],
        },
      ],
      // The data path's target (issue 13): a new node receives 100k keys in 1 s (the full run only).
      targets: config.keys === 100_000 ? [target('new-node', `a fresh node receives ${config.keys.toLocaleString('en-US')} keys (peer up -> holds all) <= 1 s`, catchUpMs, '<=', 1000, 'ms', `raw level write ${fmtMs(levelMs)}`)] : [],
      notes: [
        'The fresh node bootstraps to both nodes and catches up from one of them: until its first session succeeds it runs one at a time and refuses the sessions peers start (src/core/membership.ts, acceptsInbound), so "entries moved" = keys and bytes = raw; more would mean two peers sent the same entries.',
        `Loading the ${config.keys} entries through the gRPC API (256 in flight) took ${fmtMs(writeMs)}.`],
      profiles,
    };
  },
};
