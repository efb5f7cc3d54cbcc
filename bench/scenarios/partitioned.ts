/**
 * Scenario 9, partitioned: clusters of N = 3, 5 and 9 nodes with `--replicas 3` on this machine
 * (quick: N = 3 only, fewer keys). For each N:
 *
 * 1. Aggregate acknowledged writes/s: a bounded load of `writes` puts (default consistency,
 *    quorum) spread round robin over every node, `inFlight` outstanding; "converged" when the
 *    sum of the nodes' local key counts reaches K copies of every key.
 * 2. Write-to-all-owners latency: `latencyWrites` puts one at a time with consistency `all`
 *    (acknowledged once every owner has it durably), p50/p99.
 * 3. Storage per node as a fraction of the keys (ideal K/N).
 * 4. Join: a fresh node joins; time from its spawn until every node is on the new layout with
 *    nothing pending and every key on exactly its owners; copies and sync bytes moved against
 *    the ideal 1/(N+1) of the replica data (K x keys).
 * 5. Leave: `ckv node leave` of one node; the same, against its share 1/(N+1).
 * 6. Remove: `kill -9` of one node, `ckv node remove` of it on a survivor; time until K copies
 *    of every key are back (from the survivors).
 *
 * With --profile the nodes run under --cpu-prof (per size, under the run's profile directory).
 * Moved bytes are the sum over nodes of every `*_bytes_in` counter's growth (sync and
 * partition pulls), so they include anti-entropy's own periodic traffic in the window.
 * On a machine with fewer cores than nodes the aggregate rate cannot grow with N: the machine
 * is the limit, and the notes say so. Every wait has a deadline.
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Cluster, runCli, withDeadline, type NodeProcess } from '../../harness/index.js';
import { partitionedArgs, replicasDefault, waitPlacement, waitSettled, statusJson } from '../../test/helpers/partitioned.js';
import { startCluster } from '../lib/cluster.js';
import { fmtBytes, fmtMs, fmtRate, fmtRatio, percentiles, round, type Percentiles } from '../lib/summary.js';
import { collectProfiles, profileDirFor, randomValue, rng32, type Ctx, type Scenario, type ScenarioResult } from './common.js';

interface Change {
  ms: number;
  /** Copies of the scenario's keys that arrived on a node that lacked them. */
  copiesMoved: number;
  idealCopies: number;
  bytesIn: number;
  idealBytes: number;
}

interface Point {
  n: number;
  ackedWritesPerSec: number;
  convergedWritesPerSec: number;
  allOwners: Percentiles;
  storageShare: { min: number; max: number; ideal: number };
  join: Change;
  leave: Change;
  remove: Change;
}

/** How long a change may take to settle (the remove step is the one known to stall: see notes). */
const settleDeadlineMs = 90_000;

/** Sum over nodes of every counter named `*_bytes_in`. */
async function bytesIn(nodes: NodeProcess[]): Promise<number> {
  const statuses = await Promise.all(nodes.map((node) => node.status()));
  let sum = 0;
  for (const status of statuses) for (const [name, value] of Object.entries(status.counters)) if (name.endsWith('_bytes_in')) sum += Number(value);
  return sum;
}

async function totalKeys(nodes: NodeProcess[]): Promise<number> {
  const statuses = await Promise.all(nodes.map((node) => node.status()));
  return statuses.reduce((sum, s) => sum + Number(s.keyCount), 0);
}

async function heldKeys(node: NodeProcess, prefix: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const entry of node.client.scan({ prefix, withValues: false, includeDeleted: true, from: 'local' })) keys.add(entry.key);
  return keys;
}

/** Times `act` until the cluster `after` settles with every key on its owners; counts moved copies and bytes. */
async function timeChange(
  nodesBefore: NodeProcess[],
  keys: string[],
  replicaBytes: number,
  share: number,
  act: () => Promise<NodeProcess[]>,
): Promise<Change> {
  const held = new Map<string, Set<string>>();
  for (const node of nodesBefore) held.set(node.nodeId, await heldKeys(node, 'pb/'));
  const bytes0 = new Map(await Promise.all(nodesBefore.map(async (node): Promise<[string, number]> => [node.nodeId, await bytesIn([node])])));
  const versionBefore = (await statusJson(nodesBefore[0]!)).partitioned?.layoutVersion ?? 0;
  const t0 = performance.now();
  const after = await act();
  await waitSettled(after, settleDeadlineMs, 'the cluster to settle on a newer layout after the change', versionBefore + 1);
  await waitPlacement(after, 'pb/', keys, after.map((node) => node.nodeId), settleDeadlineMs, 'every key on exactly its owners');
  const ms = performance.now() - t0;
  // Over the nodes of the end (a stopped node's counters are gone), each from its start or the change.
  let bytes = 0;
  for (const node of after) bytes += (await bytesIn([node])) - (bytes0.get(node.nodeId) ?? 0);
  let copiesMoved = 0;
  for (const node of after) {
    const had = held.get(node.nodeId) ?? new Set<string>();
    for (const key of await heldKeys(node, 'pb/')) if (!had.has(key)) copiesMoved++;
  }
  // Fewer nodes than K after a removal: every node already holds everything, nothing to restore.
  const movable = after.length >= replicasDefault ? share : 0;
  return { ms, copiesMoved, idealCopies: replicasDefault * keys.length * movable, bytesIn: bytes, idealBytes: replicaBytes * movable };
}

const failedChange: Change = { ms: Number.NaN, copiesMoved: Number.NaN, idealCopies: Number.NaN, bytesIn: Number.NaN, idealBytes: Number.NaN };

/** Runs one measured change; a failure is recorded in `errors` (the size's other figures stand). */
async function attempt(n: number, what: string, errors: string[], run: () => Promise<Change>): Promise<Change> {
  try {
    return await run();
  } catch (error) {
    errors.push(`N=${n}, ${what}: ${error instanceof Error ? error.message.split('\n')[0]! : String(error)}`);
    return failedChange;
  }
}

async function runSize(n: number, config: { writes: number; inFlight: number; latencyWrites: number; valueBytes: number }, rng: () => number, log: (text: string) => void, errors: string[], cpuProfDir: string | undefined): Promise<Point> {
  const cluster: Cluster = await startCluster(n, { args: partitionedArgs(), bootstrap: n > 5 ? 'all' : 'seeds', cpuProfDir });
  try {
    await waitSettled(cluster.nodes, settleDeadlineMs, `${n} nodes to settle on one layout`);
    const value = Buffer.from(randomValue(rng, config.valueBytes));
    const keyOf = (i: number): string => `pb/${String(i).padStart(7, '0')}`;

    // 1. Aggregate acknowledged and converged writes/s.
    log(`N=${n}: ${config.writes} writes`);
    const keysBefore = await totalKeys(cluster.nodes);
    const t0 = performance.now();
    let done = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < config.writes; i = next++) {
        await cluster.nodes[i % n]!.client.put(keyOf(i), value);
        done++;
      }
    };
    await Promise.all(Array.from({ length: config.inFlight }, () => worker()));
    const ackedMs = performance.now() - t0;
    const want = keysBefore + replicasDefault * done;
    const deadline = performance.now() + settleDeadlineMs;
    while ((await totalKeys(cluster.nodes)) < want) {
      if (performance.now() > deadline) throw new Error(`N=${n}: the copies of ${done} writes did not all arrive in ${settleDeadlineMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const convergedMs = performance.now() - t0;
    const keys = Array.from({ length: config.writes }, (_, i) => keyOf(i));
    const replicaBytes = replicasDefault * keys.reduce((sum, key) => sum + Buffer.byteLength(key) + config.valueBytes + 26, 0);

    // 2. Write-to-all-owners latency (consistency all), one write at a time.
    log(`N=${n}: ${config.latencyWrites} writes with --consistency all`);
    const latencies: number[] = [];
    for (let i = 0; i < config.latencyWrites; i++) {
      const node = cluster.nodes[i % n]!;
      latencies.push(await putAllOwners(node, `pl/${i}`, value));
    }

    // 3. Storage per node.
    const shares = await Promise.all(cluster.nodes.map(async (node) => (await heldKeys(node, 'pb/')).size / config.writes));

    // 4. Join.
    log(`N=${n}: a node joins`);
    const join = await timeChange(cluster.nodes, keys, replicaBytes, 1 / (n + 1), async () => {
      await cluster.add(1);
      return cluster.nodes;
    });
    // 5. Leave (not n00 or n01: they are the others' bootstrap addresses).
    log(`N=${n}: a node leaves`);
    const leaver = cluster.nodes[2]!;
    const leave = await timeChange(cluster.nodes, keys, replicaBytes, 1 / (n + 1), async () => {
      const result = await runCli(['node', 'leave'], { socket: leaver.socket, timeoutMs: settleDeadlineMs });
      if (result.code !== 0) throw new Error(`ckv node leave exited ${result.code}: ${result.stderr}`);
      await withDeadline(leaver.exited, settleDeadlineMs, 'the leaving node to stop once it handed off');
      cluster.nodes.splice(cluster.nodes.indexOf(leaver), 1);
      return cluster.nodes;
    });
    // 6. kill -9, then node remove: K copies restored from the survivors.
    log(`N=${n}: a node killed and removed`);
    const dead = cluster.nodes[cluster.nodes.length - 1]!;
    const remove = await attempt(n, 'kill + node remove', errors, () => timeChange(cluster.nodes, keys, replicaBytes, 1 / n, async () => {
      await dead.kill();
      cluster.nodes.splice(cluster.nodes.indexOf(dead), 1);
      const result = await runCli(['node', 'remove', dead.nodeId], { socket: cluster.nodes[0]!.socket, timeoutMs: 60_000 });
      if (result.code !== 0) throw new Error(`ckv node remove exited ${result.code}: ${result.stderr}`);
      return cluster.nodes;
    }));
    return {
      n,
      ackedWritesPerSec: (done / ackedMs) * 1000,
      convergedWritesPerSec: (done / convergedMs) * 1000,
      allOwners: percentiles(latencies),
      storageShare: { min: Math.min(...shares), max: Math.max(...shares), ideal: Math.min(1, replicasDefault / n) },
      join,
      leave,
      remove,
    };
  } finally {
    await cluster.stop();
  }
}

/**
 * One put with consistency `all` through the control API (the CLI would add a process start
 * to every write); resolves with its latency. Throws if the reply says an owner did not ack.
 */
async function putAllOwners(node: NodeProcess, key: string, value: Uint8Array): Promise<number> {
  const started = performance.now();
  const reply = await node.client.put(key, value, {}, 'all');
  const ms = performance.now() - started;
  if (reply.acked.length < reply.owners.length) {
    throw new Error(`put ${key} with consistency all: ${reply.acked.length} of ${reply.owners.length} owners acked`);
  }
  return ms;
}

function changeJson(c: Change): object {
  return { ms: round(c.ms, 1), copiesMoved: c.copiesMoved, idealCopies: round(c.idealCopies, 1), copiesRatio: round(c.copiesMoved / c.idealCopies), bytesIn: c.bytesIn, idealBytes: Math.round(c.idealBytes), bytesRatio: round(c.bytesIn / c.idealBytes) };
}

export const partitioned: Scenario = {
  name: 'partitioned',
  title: 'Partitioned mode (K = 3): write rate and latency against N, storage share, rebalancing on join, leave and remove',
  estimateS: (quick) => (quick ? 40 : 300),
  async run(ctx: Ctx): Promise<ScenarioResult> {
    const config = ctx.quick
      ? { sizes: [3], writes: 300, inFlight: 32, latencyWrites: 20, valueBytes: 100, replicas: replicasDefault }
      : { sizes: [3, 5, 9], writes: 5000, inFlight: 64, latencyWrites: 200, valueBytes: 100, replicas: replicasDefault };
    const rng = rng32(ctx.seed ^ 0x9a);
    const points: Point[] = [];
    const failed: { n: number; error: string }[] = [];
    const changeErrors: string[] = [];
    for (const [index, n] of config.sizes.entries()) {
      try {
        points.push(await runSize(n, config, rng, (text) => ctx.progress.detail(text, index / config.sizes.length), changeErrors, profileDirFor(ctx, 'partitioned', `n${n}`)));
      } catch (error) {
        failed.push({ n, error: error instanceof Error ? error.message.split('\n')[0]! : String(error) });
        ctx.progress.log(`bench: partitioned N=${n} failed: ${failed[failed.length - 1]!.error}`);
      }
    }
    if (points.length === 0) throw new Error(`every size failed: ${failed.map((f) => `N=${f.n}: ${f.error}`).join('; ')}`);
    const cores = availableParallelism();
    const machineBound = config.sizes.filter((n) => n + 1 > cores);
    const data: Record<string, unknown> = { failed, changeErrors, cores };
    for (const p of points) {
      data[`n${p.n}`] = {
        ackedWritesPerSec: round(p.ackedWritesPerSec, 1),
        convergedWritesPerSec: round(p.convergedWritesPerSec, 1),
        allOwnersP50Ms: round(p.allOwners.p50),
        allOwnersP99Ms: round(p.allOwners.p99),
        storageShareMin: round(p.storageShare.min),
        storageShareMax: round(p.storageShare.max),
        storageShareIdeal: round(p.storageShare.ideal),
        join: changeJson(p.join),
        leave: changeJson(p.leave),
        remove: changeJson(p.remove),
      };
    }
    const changeRow = (p: Point, what: string, c: Change): string[] => [
      String(p.n),
      what,
      fmtMs(c.ms),
      `${c.copiesMoved} / ${Math.round(c.idealCopies)}`,
      fmtRatio(c.copiesMoved / c.idealCopies),
      `${fmtBytes(c.bytesIn)} / ${fmtBytes(c.idealBytes)}`,
      fmtRatio(c.bytesIn / c.idealBytes),
    ];
    const first = points[0]!;
    return {
      name: 'partitioned',
      config,
      data,
      summary: [
        {
          scenario: 'partitioned',
          measure: `acked writes/s (quorum) at N = ${points.map((p) => p.n).join(', ')}`,
          ckv: points.map((p) => fmtRate(p.ackedWritesPerSec)).join(', '),
          baseline: `N=${first.n}`,
          ratio: points.map((p) => fmtRatio(p.ackedWritesPerSec / first.ackedWritesPerSec)).join(', '),
        },
        ...points.map((p) => ({
          scenario: 'partitioned',
          measure: `N=${p.n}: copies moved by a join`,
          ckv: String(p.join.copiesMoved),
          baseline: `ideal 1/${p.n + 1} of K x keys = ${Math.round(p.join.idealCopies)}`,
          ratio: fmtRatio(p.join.copiesMoved / p.join.idealCopies),
        })),
      ],
      details: [
        {
          title: `Writes: ${config.writes} puts of ${config.valueBytes}-byte values, ${config.inFlight} in flight, round robin over the nodes; ${config.latencyWrites} puts one at a time with consistency all`,
          headers: ['N', 'acked writes/s', 'converged writes/s (K copies)', 'all owners p50', 'all owners p99', 'storage per node (min-max)', 'ideal K/N'],
          rows: points.map((p) => [
            String(p.n),
            fmtRate(p.ackedWritesPerSec),
            fmtRate(p.convergedWritesPerSec),
            fmtMs(p.allOwners.p50),
            fmtMs(p.allOwners.p99),
            `${(p.storageShare.min * 100).toFixed(0)}%-${(p.storageShare.max * 100).toFixed(0)}%`,
            `${(p.storageShare.ideal * 100).toFixed(0)}%`,
          ]),
          numeric: [0, 1, 2, 3, 4, 5, 6],
        },
        {
          title: 'Rebalancing: time from the change until every node settled and every key is on exactly its owners; copies and bytes moved against the ideal (1/(N+1) of the replica data for a join or leave, the dead node\'s 1/N for a remove)',
          headers: ['N', 'change', 'time', 'copies moved / ideal', 'ratio', 'bytes in / ideal', 'ratio'],
          rows: points.flatMap((p) => [changeRow(p, 'join', p.join), changeRow(p, 'leave', p.leave), changeRow(p, 'kill + node remove', p.remove)]),
          numeric: [0, 2, 3, 4, 5, 6],
        },
      ],
      targets: [],
      notes: [
        machineBound.length > 0
          ? `This machine has ${cores} cores: at N = ${machineBound.join(', ')} (plus the bench process) the nodes share them, so the aggregate write rate is bounded by the machine, not by ckv, and cannot grow with N here; on one core per node it should grow about N/K times.`
          : `Every size had a core per node (${cores} cores).`,
        'Bytes in = growth of every *_bytes_in counter over all nodes in the window, periodic anti-entropy included; ideal bytes = the moved share of K x (key + value + 26 bytes) per key.',
        `"Every key on exactly its owners" is checked against the rendezvous placement (K = ${config.replicas}) of each key over the node ids expected in the layout, on each node's own store.`,
        ...failed.map((f) => `N=${f.n} failed: ${f.error}`),
        ...changeErrors.map((e) => `failed: ${e}`),
      ],
      // With --profile: the first size's nodes n00 and n01 (whole life: writes, joins, leaves).
      profiles: collectProfiles(profileDirFor(ctx, 'partitioned', `n${config.sizes[0]}`), ['n00', 'n01']),
    };
  },
};

