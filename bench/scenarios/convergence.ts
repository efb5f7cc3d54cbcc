/**
 * Scenario 1, convergence: W writes at a steady rate to random nodes of an N-node cluster
 * (N = 3 and 5); per write, the time until every other node has applied it, on the bench's
 * clock (see convergence-run.ts). Baseline: one raw gossipsub hop between two bare libp2p
 * nodes (baselines.ts), same message rate, same run.
 *
 * Each cluster first takes `warmupWrites` at the same rate, reported on a row of its own and
 * left out of the summary and the targets: what the targets judge is a running cluster. A
 * fresh node's code is not optimised yet, and at 500 writes/s every write takes the whole
 * per-message path alone (gRPC, commit, gossip, noise, watch), so its first seconds cost about
 * twice the CPU a write and several times the p99 (3 nodes, 5 runs of 2,000 in a row: p99 29 /
 * 15 / 7 / 8 / 11 ms, CPU 2.4 -> 1.5 ms a write; docs/measurements.md, 2026-12-07 (8)). With
 * 200 writes of warm-up, the first measured run was still that cold phase.
 */
import { rawGossipHop } from '../lib/baselines.js';
import { startCluster } from '../lib/cluster.js';
import { median } from '../lib/stats.js';
import { cdfPoints, fmtMs, fmtRatio, medianPercentiles, percentiles, round, type Percentiles } from '../lib/summary.js';
import { collectProfiles, profileDirFor, rng32, target, type Ctx, type DetailTable, type Scenario, type ScenarioResult, type SummaryRow } from './common.js';
import { convergenceRun, type ConvergenceRun } from './convergence-run.js';
import { sequentialRun, type SequentialRun } from './sequential-run.js';

export interface ConvergenceConfig {
  sizes: number[];
  writes: number;
  ratePerSec: number;
  valueBytes: number;
  runs: number;
  warmupWrites: number;
  /** Writes from one client one at a time after the timed runs (sequential-run.ts). */
  sequentialWrites: number;
}

export function convergenceConfig(quick: boolean): ConvergenceConfig {
  return quick
    ? { sizes: [3, 5], writes: 300, ratePerSec: 500, valueBytes: 100, runs: 2, warmupWrites: 300, sequentialWrites: 200 }
    : { sizes: [3, 5], writes: 2000, ratePerSec: 500, valueBytes: 100, runs: 3, warmupWrites: 2000, sequentialWrites: 1000 };
}

/** Percentiles of each part of a run, then field-wise medians over runs. */
export function summarizeRuns(runs: ConvergenceRun[]): Record<'converge' | 'hop' | 'local' | 'ack' | 'remoteMinusLocal', Percentiles> & { missing: number } {
  const pick = (f: (r: ConvergenceRun) => number[]): Percentiles => medianPercentiles(runs.map((r) => percentiles(f(r))));
  return {
    converge: pick((r) => r.convergeMs),
    hop: pick((r) => r.hopMs),
    local: pick((r) => r.localMs),
    ack: pick((r) => r.ackMs),
    remoteMinusLocal: pick((r) => r.remoteMinusLocalMs),
    missing: runs.reduce((sum, r) => sum + r.missing, 0),
  };
}

/** A row of the scenario's table under `label`: runs summarized (summarizeRuns) and their CPU a write. */
function tableRow(label: string, s: ReturnType<typeof summarizeRuns>, nodeCpuMsPerWrite: number, hopP50Ms: number): string[] {
  return [
    label,
    fmtMs(s.converge.p50),
    fmtMs(s.converge.p90),
    fmtMs(s.converge.p99),
    fmtMs(s.converge.max),
    fmtMs(s.ack.p50),
    fmtMs(s.local.p50),
    fmtMs(s.remoteMinusLocal.p50),
    fmtRatio(s.converge.p50 / hopP50Ms),
    String(s.missing),
    nodeCpuMsPerWrite.toFixed(2),
  ];
}

/** A row of the scenario's table for a one-at-a-time run (no origin watch or remote split: n00 is always the origin). */
function sequentialRow(label: string, run: SequentialRun, hopP50Ms: number): string[] {
  const converge = percentiles(run.convergeMs);
  return [label, fmtMs(converge.p50), fmtMs(converge.p90), fmtMs(converge.p99), fmtMs(converge.max), fmtMs(percentiles(run.ackMs).p50), '', '', fmtRatio(converge.p50 / hopP50Ms), String(run.missing), run.nodeCpuMsPerWrite.toFixed(2)];
}

export function roundPercentiles(p: Percentiles): Record<string, number> {
  return { count: p.count, p50: round(p.p50), p90: round(p.p90), p99: round(p.p99), max: round(p.max), mean: round(p.mean) };
}

export const convergence: Scenario = {
  name: 'convergence',
  title: 'Convergence latency (write -> applied on every other node)',
  estimateS: (quick) => (quick ? 17 : 60),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    const config = convergenceConfig(ctx.quick);
    const { progress } = ctx;
    const rng = rng32(ctx.seed ^ 0xc0);
    const totalSteps = config.runs + config.sizes.length * (config.runs + 3);
    let step = 0;
    const tick = (text: string): void => progress.detail(text, step++ / totalSteps);

    // Baseline first, with no ckv process running.
    tick('baseline: raw gossipsub hop');
    const hopRuns = await rawGossipHop({
      count: config.writes,
      ratePerSec: config.ratePerSec,
      payloadBytes: 140, // about a ckv entry message with a 100-byte value
      runs: config.runs,
      onRun: (run) => tick(`baseline: raw gossipsub hop, run ${run + 1}/${config.runs}`),
    });
    const hop = medianPercentiles(hopRuns.map((r) => percentiles(r.latenciesMs)));
    const hopAll = hopRuns.flatMap((r) => r.latenciesMs);

    const bySize: Record<string, unknown> = {};
    const cdf: { name: string; points: [number, number][] }[] = [];
    const summary: SummaryRow[] = [];
    const rows: string[][] = [];
    const warmupRows: string[][] = [];
    const sequentialRows: string[][] = [];
    const targets = [];
    const profiles = [];
    for (const n of config.sizes) {
      tick(`N=${n}: starting nodes`);
      const profileDir = profileDirFor(ctx, 'convergence', `n${n}`);
      const cluster = await startCluster(n, { cpuProfDir: profileDir });
      let runs: ConvergenceRun[];
      let warmup: ConvergenceRun;
      let sequential: SequentialRun;
      try {
        await cluster.waitMesh(30_000);
        tick(`N=${n}: warm-up`);
        warmup = await convergenceRun(cluster, { writes: config.warmupWrites, ratePerSec: config.ratePerSec, valueBytes: config.valueBytes, tag: `w${n}`, rng, drainTimeoutMs: 10_000 });
        runs = [];
        for (let run = 0; run < config.runs; run++) {
          tick(`N=${n}: run ${run + 1}/${config.runs}, ${config.writes} writes at ${config.ratePerSec}/s`);
          runs.push(await convergenceRun(cluster, { writes: config.writes, ratePerSec: config.ratePerSec, valueBytes: config.valueBytes, tag: `n${n}r${run}`, rng, drainTimeoutMs: 15_000 }));
        }
        tick(`N=${n}: ${config.sequentialWrites} writes one at a time on n00`);
        sequential = await sequentialRun(cluster, { writes: config.sequentialWrites, valueBytes: config.valueBytes, tag: `n${n}`, rng, perWriteDeadlineMs: 10_000 });
      } finally {
        await cluster.stop();
      }
      if (profileDir !== undefined) profiles.push(...collectProfiles(profileDir, ['n00', 'n01']));
      const s = summarizeRuns(runs);
      bySize[`n${n}`] = {
        n,
        converge: roundPercentiles(s.converge),
        perNode: roundPercentiles(s.hop),
        originWatch: roundPercentiles(s.local),
        putAck: roundPercentiles(s.ack),
        remoteMinusLocal: roundPercentiles(s.remoteMinusLocal),
        missing: s.missing,
        nodeCpuMsPerWrite: round(median(runs.map((r) => r.nodeCpuMsPerWrite))),
        sendLagP99Ms: runs.map((r) => round(r.sendLagP99Ms)),
        perRun: runs.map((r) => roundPercentiles(percentiles(r.convergeMs))),
        warmup: { writes: config.warmupWrites, converge: roundPercentiles(percentiles(warmup.convergeMs)), nodeCpuMsPerWrite: round(warmup.nodeCpuMsPerWrite) },
        oneAtATime: {
          writes: sequential.sent,
          converge: roundPercentiles(percentiles(sequential.convergeMs)),
          putAck: roundPercentiles(percentiles(sequential.ackMs)),
          missing: sequential.missing,
          writesPerSec: round(sequential.writesPerSec),
          nodeCpuMsPerWrite: round(sequential.nodeCpuMsPerWrite),
        },
        watchErrors: runs.flatMap((r) => r.watchErrors).concat(sequential.watchErrors),
      };
      cdf.push({ name: `ckv N=${n}, ${config.ratePerSec} writes/s: write -> all other nodes`, points: cdfPoints(runs.flatMap((r) => r.convergeMs)) });
      rows.push(tableRow(`N=${n}`, s, median(runs.map((r) => r.nodeCpuMsPerWrite)), hop.p50));
      summary.push({
        scenario: 'convergence',
        measure: `N=${n} write -> all nodes p50 / p99`,
        ckv: `${fmtMs(s.converge.p50)} / ${fmtMs(s.converge.p99)}`,
        baseline: `raw gossipsub hop ${fmtMs(hop.p50)} / ${fmtMs(hop.p99)}`,
        ratio: `${fmtRatio(s.converge.p50 / hop.p50)} / ${fmtRatio(s.converge.p99 / hop.p99)}`,
      });
      const oneAtATime = percentiles(sequential.convergeMs);
      summary.push({
        scenario: 'convergence',
        measure: `N=${n} one write at a time on n00 -> all nodes p50 / p99`,
        ckv: `${fmtMs(oneAtATime.p50)} / ${fmtMs(oneAtATime.p99)}`,
        baseline: `raw gossipsub hop ${fmtMs(hop.p50)} / ${fmtMs(hop.p99)}`,
        ratio: `${fmtRatio(oneAtATime.p50 / hop.p50)} / ${fmtRatio(oneAtATime.p99 / hop.p99)}`,
      });
      sequentialRows.push(sequentialRow(`N=${n}, one write at a time on n00 (${sequential.sent}; ${Math.round(sequential.writesPerSec)}/s)`, sequential, hop.p50));
      warmupRows.push(tableRow(`warm-up: N=${n}, fresh nodes, ${config.warmupWrites} writes (not in the summary)`, summarizeRuns([warmup]), warmup.nodeCpuMsPerWrite, hop.p50));
      if (n === 5 || n === Math.max(...config.sizes)) {
        targets.push(
          target('convergence', `p50 at N=${n}, ${config.ratePerSec} writes/s, within 3x the raw gossipsub hop p50`, s.converge.p50 / hop.p50, '<=', 3, 'x', `ckv ${fmtMs(s.converge.p50)} / raw hop ${fmtMs(hop.p50)}`),
          target('convergence', `p99 at N=${n}, ${config.ratePerSec} writes/s, under 25 ms`, s.converge.p99, '<', 25, 'ms', `ckv p99 ${fmtMs(s.converge.p99)}`),
        );
      }
    }
    rows.push(['raw gossipsub hop', fmtMs(hop.p50), fmtMs(hop.p90), fmtMs(hop.p99), fmtMs(hop.max), '', '', '', '1.00x', String(hopRuns.reduce((a, r) => a + r.lost, 0)), '']);
    rows.push(...sequentialRows, ...warmupRows);
    cdf.push({ name: `raw gossipsub hop (2 bare libp2p nodes), ${config.ratePerSec} msgs/s`, points: cdfPoints(hopAll) });

    const details: DetailTable[] = [
      {
        title: `Convergence: ${config.writes} writes at ${config.ratePerSec}/s to random nodes, ${config.valueBytes}-byte values; medians of ${config.runs} runs`,
        headers: ['cluster', 'p50', 'p90', 'p99', 'max', 'put ack p50', 'origin watch p50', 'remote - origin p50', 'p50 / raw hop', 'missing', 'node CPU ms / write'],
        rows,
        numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      },
    ];
    return {
      name: 'convergence',
      config: { ...config },
      data: {
        ...bySize,
        baseline: { rawGossipHop: roundPercentiles(hop), lost: hopRuns.map((r) => r.lost), perRun: hopRuns.map((r) => roundPercentiles(percentiles(r.latenciesMs))) },
        cdf,
      },
      summary,
      details,
      targets,
      notes: [
        'Latency = the bench sends the put -> the node\'s Watch stream delivers the change to the bench, both on the bench\'s clock; so each figure includes one gRPC request (bench -> origin) and one Watch message (node -> bench). "remote - origin" cancels the watch leg: it is the gossip hop plus the receiver\'s commit.',
        '"node CPU ms / write": CPU time (user + system, /proc) of all node processes during a run divided by its writes: what one write costs the whole cluster, Watch streams included. When it times the write rate approaches the machine\'s cores, the cluster is saturated and latency is queueing.',
        `"one write at a time": after the timed runs, ${config.sequentialWrites} puts from one client to n00, each sent once every other node has delivered the one before (sequential-run.ts): issue 13's side-by-side definition ("write on node 1 until readable on every other node"). Its p50 / raw hop compares with a hop measured at ${config.ratePerSec}/s.`,
        'The raw gossipsub hop runs both libp2p nodes inside the bench process (publish() -> message event), with no gRPC, no LevelDB and no second process: it is the floor, not a like-for-like system.',
      ],
      profiles,
    };
  },
};
