/**
 * Scenario 2, throughput: writes through the gRPC API of one node of a cluster; converged
 * writes/s = W / (first put sent -> every node holds the same root with all W keys). Four
 * cases, each run `runs` times (bulk and unary alternating, so load from elsewhere on the
 * machine falls on both):
 * - bulk, 3 nodes: W puts as PutMany calls of 1000 keys, 4 calls in flight;
 * - unary, 3 nodes: W puts as single Put calls, 64 in flight;
 * - the same two at 5 nodes, on a cluster of its own started fresh: the two sizes start from
 *   the same empty stores and take the same writes, so the 5 / 3 ratio compares cluster sizes
 *   only. (Until 2026-12-07 two nodes were added to the 3-node cluster, so the 5-node runs
 *   wrote into stores already holding the ~133k keys of the 3-node runs, each write paying
 *   the LevelDB compaction of a store ten times larger: docs/measurements.md, 2026-12-07 (9).)
 * Each cluster size gets the same warm-up before its runs, one untimed load of each mode
 * through n00, converged (`warmupWrites`: PutMany calls, then unary puts): code V8 has not
 * optimised yet is several times slower (a receiver's gossip path keeps being optimised for
 * its first thousands of writes, docs/measurements.md 2026-12-03 (late evening)), so without it
 * the first run of each mode measured its warm-up. The warm-up loads are timed too and
 * reported apart ("warm-up" rows), as what a cluster's first burst after a start gets.
 * Before that warm-up, on the fresh cluster, the issue's own burst: once every node's warm-up
 * (src/node/warm-up.ts) has ended, `firstBurstWrites` puts by PutMany through n00, timed until
 * every node holds the last (a Get of it on each node every 2 ms): issue 13's side-by-side
 * "burst of 5,000 writes until every node holds the last", on code that has run only the
 * nodes' own warm-ups. Reported on rows of its own ("first burst", JSON `firstBurst`), no target.
 * Baseline: the same keys and values written with raw `level` in batches of 1024 (the
 * replica's largest group commit) into a fresh directory, same run. Per node and case: CPU ms
 * per write, write syscalls and bytes per write (/proc), and the gossip write messages each
 * receiver got (each once, and every copy: repeats are gossipsub's forwarding).
 */
import { performance } from 'node:perf_hooks';
import type { StatusMessage } from '../../src/control/proto.js';
import { rawLevelWrite } from '../lib/baselines.js';
import { processCpuMs, processIo, type ProcessIo } from '../lib/cpu-load.js';
import { counter, putChunked, putMany, sameState, waitFor, type Cluster } from '../../harness/index.js';
import { burstUntilHeld } from '../lib/burst.js';
import { startCluster } from '../lib/cluster.js';
import { median } from '../lib/stats.js';
import { fmtMs, fmtRate, fmtRatio, round } from '../lib/summary.js';
import { collectProfiles, profileDirFor, randomValue, rng32, target, type Ctx, type Scenario, type ScenarioResult, type Target } from './common.js';

type Mode = 'bulk' | 'unary';

interface Run {
  ackMs: number;
  convergedMs: number;
  /** Per node (n00 takes the writes). */
  cpuMsPerWrite: number[];
  ioPerWrite: ProcessIo[];
  /** Per node: gossip write messages received (each once), every copy received, entries received. */
  gossipMessages: number[];
  gossipCopies: number[];
  gossipEntries: number[];
  /** Entries the receivers got by anti-entropy instead of gossip. */
  viaSync: number;
}

interface CaseResult {
  nodes: number;
  mode: Mode;
  writes: number;
  runs: Run[];
  convergedRate: number;
  ackRate: number;
}

export const throughput: Scenario = {
  name: 'throughput',
  title: 'Converged write throughput (3 and 5 nodes; PutMany bulk and unary Put)',
  estimateS: (quick) => (quick ? 20 : 80),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    const config = {
      writes: { bulk: ctx.quick ? 10_000 : 30_000, unary: ctx.quick ? 3000 : 10_000 },
      putManyChunk: 1000,
      putManyInFlight: 4,
      unaryInFlight: 64,
      valueBytes: 100,
      runs: ctx.quick ? 2 : 3,
      levelBatchOps: 1024,
      /** The first burst on each fresh cluster (issue 13's burst), before the warm-up loads. */
      firstBurstWrites: 5000,
      /** Untimed in the targets; reported as the "warm-up" rows. */
      warmupWrites: { bulk: ctx.quick ? 5000 : 10_000, unary: ctx.quick ? 1000 : 3000 },
    };
    const { progress } = ctx;
    const rng = rng32(ctx.seed ^ 0x7a);
    const valueCount = config.writes.bulk;
    const values = Array.from({ length: valueCount }, () => randomValue(rng, config.valueBytes));
    const valueOf = (i: number): Uint8Array => values[i % valueCount]!;

    const profileDir = profileDirFor(ctx, 'throughput');
    const cases: CaseResult[] = [];
    const warmups: { nodes: number; mode: Mode; writes: number; convergedRate: number; ackRate: number }[] = [];
    const firstBursts: FirstBurst[] = [];
    const levelMs: number[] = [];
    const steps = 2 * config.runs * 2;
    let step = 0;
    let cluster: Cluster | undefined;
    try {
      for (const nodes of [3, 5]) {
        progress.detail(`starting ${nodes} nodes`, nodes === 3 ? 0.02 : 0.5);
        await cluster?.stop();
        cluster = undefined;
        cluster = await startCluster(nodes, { cpuProfDir: profileDir });
        await cluster.waitMesh(30_000);
        progress.detail(`${nodes} nodes: first burst`, nodes === 3 ? 0.03 : 0.51);
        firstBursts.push(await firstBurst(cluster, config.firstBurstWrites, (i) => `tp/first/n${nodes}/${String(i).padStart(7, '0')}`, valueOf, config.putManyChunk, config.putManyInFlight));
        progress.detail(`${nodes} nodes: warm-up`, nodes === 3 ? 0.04 : 0.52);
        for (const mode of ['bulk', 'unary'] as const) {
          const writes = config.warmupWrites[mode];
          const keyOf = (i: number): string => `tp/warm/n${nodes}/${mode}/${String(i).padStart(7, '0')}`;
          const run = await measureRun(cluster, writes, (client) =>
            mode === 'bulk' ? putChunked(client, writes, keyOf, valueOf, config.putManyChunk, config.putManyInFlight) : putMany(client, writes, keyOf, valueOf, config.unaryInFlight),
          );
          warmups.push({ nodes, mode, writes, convergedRate: (writes / run.convergedMs) * 1000, ackRate: (writes / run.ackMs) * 1000 });
        }
        const byMode = new Map<Mode, Run[]>([
          ['bulk', []],
          ['unary', []],
        ]);
        for (let run = 0; run < config.runs; run++) {
          if (nodes === 3) {
            const keys = Array.from({ length: config.writes.bulk }, (_, i) => `tp/level/${run}/${String(i).padStart(7, '0')}`);
            levelMs.push(await rawLevelWrite({ keys, values: keys.map((_, i) => valueOf(i)), batchOps: config.levelBatchOps }));
          }
          for (const mode of ['bulk', 'unary'] as const) {
            const writes = config.writes[mode];
            progress.detail(`${nodes} nodes, run ${run + 1}/${config.runs}: ${writes} ${mode === 'bulk' ? `puts by PutMany of ${config.putManyChunk}` : `unary puts, ${config.unaryInFlight} in flight`}`, 0.05 + (0.9 * step++) / steps);
            const keyOf = (i: number): string => `tp/n${nodes}/${mode}/${run}/${String(i).padStart(7, '0')}`;
            const write = (client: Parameters<typeof putMany>[0]): Promise<number> =>
              mode === 'bulk'
                ? putChunked(client, writes, keyOf, valueOf, config.putManyChunk, config.putManyInFlight)
                : putMany(client, writes, keyOf, valueOf, config.unaryInFlight);
            byMode.get(mode)!.push(await measureRun(cluster, writes, write));
          }
        }
        for (const [mode, runs] of byMode) {
          const writes = config.writes[mode];
          cases.push({
            nodes,
            mode,
            writes,
            runs,
            convergedRate: median(runs.map((r) => (writes / r.convergedMs) * 1000)),
            ackRate: median(runs.map((r) => (writes / r.ackMs) * 1000)),
          });
        }
      }
    } finally {
      await cluster?.stop();
    }

    const profiles = collectProfiles(profileDir, ['n00', 'n01']);
    const levelRate = median(levelMs.map((ms) => (config.writes.bulk / ms) * 1000));
    const find = (nodes: number, mode: Mode): CaseResult => cases.find((c) => c.nodes === nodes && c.mode === mode)!;
    const label = (c: CaseResult): string =>
      `${c.nodes} nodes, ${c.mode === 'bulk' ? `PutMany of ${config.putManyChunk} (${config.putManyInFlight} in flight)` : `unary Put (${config.unaryInFlight} in flight)`}`;
    const perNode = (c: CaseResult) =>
      Array.from({ length: c.nodes }, (_, i) => {
        const m = (f: (r: Run) => number): number => median(c.runs.map(f));
        const messages = m((r) => r.gossipMessages[i]!);
        return {
          cpuMsPerWrite: m((r) => r.cpuMsPerWrite[i]!),
          syscwPerWrite: m((r) => r.ioPerWrite[i]!.syscw),
          wcharPerWrite: m((r) => r.ioPerWrite[i]!.wchar),
          rcharPerWrite: m((r) => r.ioPerWrite[i]!.rchar),
          gossipMessages: messages,
          entriesPerMessage: messages > 0 ? m((r) => r.gossipEntries[i]!) / messages : 0,
          copiesPerMessage: messages > 0 ? m((r) => r.gossipCopies[i]!) / messages : 0,
        };
      });
    const caseData = Object.fromEntries(
      cases.map((c) => {
        const nodesData = perNode(c);
        return [
          `n${c.nodes}${c.mode}`,
          {
            writes: c.writes,
            convergedWritesPerSec: round(c.convergedRate, 0),
            ackedWritesPerSec: round(c.ackRate, 0),
            ratioToRawLevel: round(c.convergedRate / levelRate, 4),
            nodeCpuMsPerWrite: nodesData.map((n) => round(n.cpuMsPerWrite, 4)),
            nodeWriteSyscallsPerWrite: nodesData.map((n) => round(n.syscwPerWrite, 3)),
            nodeBytesWrittenPerWrite: nodesData.map((n) => round(n.wcharPerWrite, 1)),
            gossipMessagesReceived: nodesData.map((n) => round(n.gossipMessages, 0)),
            gossipEntriesPerMessage: nodesData.map((n) => round(n.entriesPerMessage, 1)),
            gossipCopiesPerMessage: nodesData.map((n) => round(n.copiesPerMessage, 2)),
            perRun: c.runs.map((r) => ({
              ackMs: round(r.ackMs, 1),
              convergedMs: round(r.convergedMs, 1),
              cpuMsPerWrite: r.cpuMsPerWrite.map((v) => round(v, 4)),
              remoteAppliedViaSync: r.viaSync,
            })),
          },
        ];
      }),
    );
    const [bulk3, unary3, bulk5, unary5] = [find(3, 'bulk'), find(3, 'unary'), find(5, 'bulk'), find(5, 'unary')];
    const targets: Target[] = [
      target('throughput', 'converged throughput at 3 nodes, bulk API >= 30k writes/s', bulk3.convergedRate, '>=', 30_000, 'writes/s', `${bulk3.writes} writes by PutMany / (first put -> all roots equal)`),
      target('throughput', 'converged throughput at 3 nodes, unary Put >= 8k writes/s', unary3.convergedRate, '>=', 8000, 'writes/s', `${unary3.writes} unary puts, ${config.unaryInFlight} in flight`),
      target('throughput', '5 nodes >= 70% of 3 nodes, bulk API', bulk5.convergedRate / bulk3.convergedRate, '>=', 0.7, 'x', `${fmtRate(bulk5.convergedRate)} / ${fmtRate(bulk3.convergedRate)}, same run`),
      target('throughput', '5 nodes >= 70% of 3 nodes, unary Put', unary5.convergedRate / unary3.convergedRate, '>=', 0.7, 'x', `${fmtRate(unary5.convergedRate)} / ${fmtRate(unary3.convergedRate)}, same run`),
    ];
    const cpuNote = (c: CaseResult): string => {
      const cpu = perNode(c).map((n) => n.cpuMsPerWrite);
      const sum = cpu.reduce((a, b) => a + b, 0);
      return `${label(c)}: CPU ms per write ${cpu.map((v) => v.toFixed(3)).join(' / ')} (n00 takes the writes); 2 cores cannot converge more than about 2000 / ${sum.toFixed(3)} = ${fmtRate(2000 / sum)}.`;
    };
    return {
      name: 'throughput',
      config,
      data: {
        // The headline figures (3 nodes, bulk API), under the names the CI smoke check reads.
        convergedWritesPerSec: round(bulk3.convergedRate, 0),
        ackedWritesPerSec: round(bulk3.ackRate, 0),
        rawLevelWritesPerSec: round(levelRate, 0),
        ratioToRawLevel: round(bulk3.convergedRate / levelRate, 4),
        fiveToThree: { bulk: round(bulk5.convergedRate / bulk3.convergedRate), unary: round(unary5.convergedRate / unary3.convergedRate) },
        cases: caseData,
        firstBurst: Object.fromEntries(
          firstBursts.map((b) => [`n${b.nodes}`, { writes: b.writes, heldByAllMs: round(b.heldMs, 1), ackMs: round(b.ackMs, 1), writesPerSec: round(b.rate, 0), warmUpsDone: b.warmUpsDone }]),
        ),
        warmup: warmups.map((w) => ({ nodes: w.nodes, mode: w.mode, writes: w.writes, convergedWritesPerSec: round(w.convergedRate, 0), ackedWritesPerSec: round(w.ackRate, 0) })),
        rawLevelMs: levelMs.map((ms) => round(ms, 1)),
      },
      summary: [
        ...cases.map((c) => ({
          scenario: 'throughput',
          measure: `${label(c)}, ${c.writes} writes converged`,
          ckv: fmtRate(c.convergedRate),
          baseline: `raw level batch ${fmtRate(levelRate)}`,
          ratio: fmtRatio(c.convergedRate / levelRate),
        })),
        ...firstBursts.map((b) => ({
          scenario: 'throughput',
          measure: `first burst on a fresh ${b.nodes}-node cluster: ${b.writes} writes until every node holds the last`,
          ckv: `${fmtRate(b.rate)} (${fmtMs(b.heldMs)})`,
          baseline: `raw level batch ${fmtRate(levelRate)}`,
          ratio: fmtRatio(b.rate / levelRate),
        })),
      ],
      details: [
        {
          title: `Throughput: ${config.valueBytes}-byte values written to n00; medians of ${config.runs} runs`,
          headers: ['case', 'writes', 'acked writes/s', 'converged writes/s', 'converged ms', 'vs raw level', '5 / 3 nodes'],
          rows: [
            ...cases.map((c) => [
              label(c),
              String(c.writes),
              fmtRate(c.ackRate),
              fmtRate(c.convergedRate),
              fmtMs(median(c.runs.map((r) => r.convergedMs))),
              fmtRatio(c.convergedRate / levelRate),
              c.nodes === 5 ? fmtRatio(c.convergedRate / find(3, c.mode).convergedRate) : '',
            ]),
            ...firstBursts.map((b) => [
              `first burst: ${b.nodes} nodes, fresh, PutMany, until all hold the last`,
              String(b.writes),
              fmtRate((b.writes / b.ackMs) * 1000),
              fmtRate(b.rate),
              fmtMs(b.heldMs),
              fmtRatio(b.rate / levelRate),
              '',
            ]),
            ...warmups.map((w) => [
              `warm-up: ${w.nodes} nodes, ${w.mode === 'bulk' ? 'PutMany' : 'unary Put'} (untimed)`,
              String(w.writes),
              fmtRate(w.ackRate),
              fmtRate(w.convergedRate),
              fmtMs((w.writes / w.convergedRate) * 1000),
              fmtRatio(w.convergedRate / levelRate),
              '',
            ]),
            [`raw level, batches of ${config.levelBatchOps}`, String(config.writes.bulk), '', fmtRate(levelRate), fmtMs(median(levelMs)), '1.00x', ''],
          ],
          numeric: [1, 2, 3, 4, 5, 6],
        },
        {
          title: 'Per write, on each node (during the runs; /proc/<pid>/stat and /proc/<pid>/io), and the gossip write messages each received; medians',
          headers: ['case', 'node', 'CPU ms', 'write syscalls', 'bytes written', 'bytes read', 'gossip msgs in', 'entries / msg', 'copies / msg'],
          rows: cases.flatMap((c) =>
            perNode(c).map((n, i) => [
              i === 0 ? label(c) : '',
              i === 0 ? 'n00 (writes)' : `n0${i}`,
              n.cpuMsPerWrite.toFixed(3),
              n.syscwPerWrite.toFixed(2),
              n.wcharPerWrite.toFixed(0),
              n.rcharPerWrite.toFixed(0),
              i === 0 ? '' : n.gossipMessages.toFixed(0),
              i === 0 ? '' : n.entriesPerMessage.toFixed(1),
              i === 0 ? '' : n.copiesPerMessage.toFixed(2),
            ]),
          ),
          numeric: [2, 3, 4, 5, 6, 7, 8],
        },
      ],
      targets,
      notes: [
        ...cases.map(cpuNote),
        `copies / msg: copies of each gossip write message a node received (1.00: no repeats; gossipsub's forwarding gave N-1 at N nodes). Entries by anti-entropy instead of gossip, median per run: ${cases.map((c) => `${c.nodes}/${c.mode} ${median(c.runs.map((r) => r.viaSync))}`).join(', ')}.`,
        `first burst rows: issue 13's burst (${config.firstBurstWrites} writes by PutMany of ${config.putManyChunk} through n00, until a Get of the last key finds it on every node) on each fresh cluster, once every node's own warm-up had ended (run to the end on ${firstBursts.map((b) => `${b.warmUpsDone} of ${b.nodes}`).join(' and ')} nodes; the others gave way or failed); no target.`,
        'warm-up rows: the untimed load before each cluster size\'s runs, the first of its mode (code not yet optimised: what a cluster\'s first burst after a start gets); the targets use the runs after it.',
        'Convergence is polled (Status on every node every ~10 ms) only after the last put is acknowledged, so polling does not compete with the writes.',
      ],
      profiles,
    };
  },
};

interface FirstBurst {
  nodes: number;
  writes: number;
  ackMs: number;
  /** First put sent -> every node holds the last put's key. */
  heldMs: number;
  rate: number;
  /** Nodes whose warm-up ran to the end before the burst. */
  warmUpsDone: number;
}

/** Issue 13's burst (../lib/burst.ts) on a fresh cluster, once every node's warm-up has ended (Status counters; at most 20 s). */
async function firstBurst(cluster: Cluster, writes: number, keyOf: (i: number) => string, valueOf: (i: number) => Uint8Array, chunk: number, inFlight: number): Promise<FirstBurst> {
  const ended = (status: StatusMessage): boolean => counter(status, 'warmup_done') + counter(status, 'warmup_interrupted') + counter(status, 'warmup_failed') > 0;
  let statuses: StatusMessage[] = [];
  await waitFor(
    async () => {
      statuses = await Promise.all(cluster.nodes.map((n) => n.status()));
      return statuses.every(ended);
    },
    { what: 'every node to end its warm-up', deadlineMs: 20_000, intervalMs: 50 },
  );
  const warmUpsDone = statuses.filter((status) => counter(status, 'warmup_done') > 0).length;
  const { ackMs, heldMs } = await burstUntilHeld(cluster, writes, keyOf, valueOf, chunk, inFlight);
  return { nodes: cluster.nodes.length, writes, ackMs, heldMs, rate: (writes / heldMs) * 1000, warmUpsDone };
}

/** One timed load on n00 of `cluster`: until every node holds the same root with all `writes` keys. */
async function measureRun(cluster: Cluster, writes: number, write: (client: Cluster['nodes'][number]['client']) => Promise<number>): Promise<Run> {
  const nodes = cluster.nodes;
  const before = await Promise.all(nodes.map((n) => n.status()));
  const expected = Number(before[0]!.keyCount) + writes;
  const cpu0 = nodes.map((n) => processCpuMs(n.pid));
  const io0 = nodes.map((n) => processIo(n.pid));
  const t0 = performance.now();
  const ackMs = await write(nodes[0]!.client);
  let last: StatusMessage[] = before;
  await waitFor(
    async () => {
      last = await Promise.all(nodes.map((n) => n.status()));
      return sameState(last) && Number(last[0]!.keyCount) === expected;
    },
    { what: `${nodes.length} nodes to converge on ${expected} keys`, deadlineMs: 120_000, intervalMs: 10 },
  );
  const convergedMs = performance.now() - t0;
  const delta = (i: number, name: string): number => counter(last[i]!, name) - counter(before[i]!, name);
  return {
    ackMs,
    convergedMs,
    cpuMsPerWrite: nodes.map((n, i) => (processCpuMs(n.pid) - cpu0[i]!) / writes),
    ioPerWrite: nodes.map((n, i) => {
      const io = processIo(n.pid);
      const per = (k: keyof ProcessIo): number => (io[k] - io0[i]![k]) / writes;
      return { syscw: per('syscw'), syscr: per('syscr'), wchar: per('wchar'), rchar: per('rchar') };
    }),
    gossipMessages: nodes.map((_, i) => delta(i, 'gossip_write_messages_received')),
    gossipCopies: nodes.map((_, i) => delta(i, 'gossip_write_copies_received')),
    gossipEntries: nodes.map((_, i) => delta(i, 'gossip_entries_received')),
    viaSync: nodes.slice(1).reduce((sum, _, j) => sum + delta(j + 1, 'sync_entries_applied'), 0),
  };
}
