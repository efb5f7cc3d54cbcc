/**
 * Real ckv node processes for the cluster bench (`bench/run.ts`): spawn `node bin/ckv.js node
 * start` on loopback in temp dirs, wait until each answers Status, form clusters, freeze
 * (SIGSTOP) and thaw (SIGCONT), stop and restart, and clean everything up on every exit path.
 *
 * Adapted from test/helpers/process.ts and test/helpers/cluster.ts (bench code does not import
 * from test/): the same readiness rule (socket exists, accepts connections, answers Status),
 * the same "no fixed sleeps, every wait has a deadline" rule.
 *
 * Each node's stderr (its log, one line per event) is read line by line and interesting lines
 * are kept with the bench process's clock (`performance.now()` at arrival): 'peer up' and
 * 'sync' lines let scenarios time events inside the node on the bench's one clock. stderr is
 * a pipe, which Node writes synchronously on Linux, so a line arrives as soon as it is logged.
 */
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../src/control/client.js';
import type { PeerMessage, StatusMessage } from '../../src/control/proto.js';
import { ProcessTracker, stopChild, waitExit } from './process.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root: this file runs from dist/bench/lib/. */
export const repoRoot = resolve(here, '..', '..', '..');
export const ckvBin = join(repoRoot, 'bin', 'ckv.js');

/** sockaddr_un holds 108 bytes with the NUL; stay well under. */
const socketPathBytesMax = 100;

// ---------------------------------------------------------------------------------------------
// Cleanup: every process and temp dir, on every exit path.

export const tracker = new ProcessTracker();
const tempDirs = new Set<string>();
const openClients = new Set<ControlClient>();

export function cleanupNow(): void {
  for (const client of openClients) client.close();
  openClients.clear();
  tracker.killAllNow();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.clear();
}

process.on('exit', cleanupNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}: stopping nodes and removing temp dirs\n`);
    process.exit(130);
  });
}

/** A fresh temp dir `<tmp>/ckv-bench-XXXXXX` (removed at exit); short, so sockets fit. */
export function benchTempDir(): string {
  let base = tmpdir();
  if (Buffer.byteLength(join(base, 'ckv-bench-XXXXXX', 'n00', 'ckv.sock')) > socketPathBytesMax && existsSync('/tmp')) base = '/tmp';
  const dir = mkdtempSync(join(base, 'ckv-bench-'));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------
// Waiting

/** Polls `condition` until true; throws `timed out after N ms waiting for <what>`. Errors count as "not yet". */
export async function waitFor(condition: () => Promise<boolean> | boolean, what: string, timeoutMs: number, intervalMs = 25): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      lastError = error;
    }
    if (performance.now() >= deadline) {
      const cause = lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(intervalMs);
  }
}

/** Thrown by a waitFor condition to stop waiting at once. */
export class GiveUp extends Error {
  override name = 'GiveUp';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => {
      socket.destroy();
      done(false);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Nodes

export interface LogLine {
  /** performance.now() in the bench process when the line arrived. */
  atMs: number;
  text: string;
}

/** Log events kept with their arrival time (others only go to the bounded text buffer). */
const keptEvents = / info (peer up|peer down|peer left|sync|node started) | warn | error /;

export interface SpawnOptions {
  name: string;
  dataDir: string;
  /** Flags after `node start --data-dir D` (listen, bootstrap, ...). */
  args: string[];
  /** `--cpu-prof --cpu-prof-dir DIR` on the node process. */
  cpuProfDir?: string;
  readyTimeoutMs?: number;
}

export class BenchNode {
  readonly socket: string;
  client!: ControlClient;
  peerId = '';
  nodeId = '';
  /** 127.0.0.1 tcp address with /p2p/<peer id>: what others bootstrap to. */
  address = '';
  /** performance.now() just before spawn(). */
  readonly spawnedAtMs: number;
  readyAtMs = Number.NaN;
  readonly lines: LogLine[] = [];
  private stderrTail = '';
  private partial = '';
  private readonly lineWaiters: { pattern: RegExp; sinceMs: number; resolve: (line: LogLine) => void }[] = [];
  frozen = false;

  private constructor(
    readonly options: SpawnOptions,
    readonly child: ChildProcess,
  ) {
    this.socket = join(options.dataDir, 'ckv.sock');
    this.spawnedAtMs = performance.now();
  }

  get name(): string {
    return this.options.name;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Spawns the node and resolves once it answers Status (throws with its stderr otherwise). */
  static async start(options: SpawnOptions): Promise<BenchNode> {
    const socket = join(options.dataDir, 'ckv.sock');
    if (Buffer.byteLength(socket) > socketPathBytesMax) throw new Error(`socket path too long: ${socket}`);
    mkdirSync(options.dataDir, { recursive: true });
    const nodeFlags: string[] = [];
    if (options.cpuProfDir !== undefined) {
      // One directory per node name: the profile is written there when the process exits.
      const dir = join(options.cpuProfDir, options.name);
      mkdirSync(dir, { recursive: true });
      nodeFlags.push('--cpu-prof', '--cpu-prof-dir', dir);
    }
    const argv = [...nodeFlags, ckvBin, 'node', 'start', '--data-dir', options.dataDir, ...options.args];
    const child = tracker.spawn(process.execPath, argv, { cwd: repoRoot, env: process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    const node = new BenchNode(options, child);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => node.onStderr(chunk));
    const timeoutMs = options.readyTimeoutMs ?? 30_000;
    try {
      await waitFor(
        async () => {
          if (node.exited) throw new GiveUp(`${options.name} exited before answering status (code ${child.exitCode}, signal ${child.signalCode})`);
          if (!existsSync(socket) || !(await canConnect(socket))) return false;
          const probe = new ControlClient(socket);
          try {
            await withDeadline(probe.status(), 2000, 'status');
          } finally {
            probe.close();
          }
          return true;
        },
        `${options.name} to answer status`,
        timeoutMs,
        10,
      );
    } catch (error) {
      if (!node.exited) child.kill('SIGKILL');
      await waitExit(child);
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${options.name} stderr:\n${node.stderrTail}`);
    }
    node.readyAtMs = performance.now();
    node.client = new ControlClient(socket);
    openClients.add(node.client);
    const status = await node.status();
    node.peerId = status.peerId;
    node.nodeId = status.nodeId;
    const address = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
    if (address === undefined) throw new Error(`${options.name} has no 127.0.0.1 address: ${status.listenAddresses.join(' ')}`);
    node.address = address;
    return node;
  }

  private onStderr(chunk: string): void {
    const atMs = performance.now();
    this.stderrTail = (this.stderrTail + chunk).slice(-32 * 1024);
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!keptEvents.test(line)) continue;
      const entry = { atMs, text: line };
      if (this.lines.length < 20_000) this.lines.push(entry);
      for (let i = this.lineWaiters.length - 1; i >= 0; i--) {
        const waiter = this.lineWaiters[i]!;
        if (atMs >= waiter.sinceMs && waiter.pattern.test(line)) {
          this.lineWaiters.splice(i, 1);
          waiter.resolve(entry);
        }
      }
    }
  }

  /** The first kept log line matching `pattern` that arrived at or after `sinceMs` (waits for it). */
  waitLine(pattern: RegExp, sinceMs: number, timeoutMs: number): Promise<LogLine> {
    const seen = this.lines.find((line) => line.atMs >= sinceMs && pattern.test(line.text));
    if (seen) return Promise.resolve(seen);
    const found = new Promise<LogLine>((resolve) => this.lineWaiters.push({ pattern, sinceMs, resolve }));
    return withDeadline(found, timeoutMs, `${this.name} to log ${pattern}`);
  }

  linesSince(sinceMs: number, pattern: RegExp): LogLine[] {
    return this.lines.filter((line) => line.atMs >= sinceMs && pattern.test(line.text));
  }

  stderrText(): string {
    return this.stderrTail;
  }

  status(timeoutMs = 10_000): Promise<StatusMessage> {
    return withDeadline(this.client.status(), timeoutMs, `status of ${this.name}`);
  }

  async peers(timeoutMs = 10_000): Promise<PeerMessage[]> {
    return (await withDeadline(this.client.peers(), timeoutMs, `peers of ${this.name}`)).peers;
  }

  /** SIGSTOP: the process stops running; the kernel keeps its sockets open. */
  freeze(): void {
    if (!this.exited) this.child.kill('SIGSTOP');
    this.frozen = true;
  }

  thaw(): void {
    if (!this.exited) this.child.kill('SIGCONT');
    this.frozen = false;
  }

  /** SIGTERM (a clean stop: the node gossips its leave, flushes writes, writes its CPU profile). */
  async stop(graceMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
    if (this.frozen) this.thaw();
    this.client?.close();
    if (this.client) openClients.delete(this.client);
    return stopChild(this.child, graceMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Clusters

export interface ClusterOptions {
  /** Extra flags for every node (e.g. --sync-interval-ms). */
  args?: string[];
  /** Nodes started at once (each takes ~0.5-1 s of CPU to start). Default 4. */
  startBatch?: number;
  /** Profile every node with --cpu-prof into this directory. */
  cpuProfDir?: string;
  /** Called after each node is up (progress). */
  onNode?: (started: number, total: number) => void;
  /**
   * 'seeds' (default): each node bootstraps to n00 and n01 and learns the rest from the
   * members gossip. 'all': each node bootstraps to every node started before it, so the full
   * mesh is formed by direct dials (used where N is large: see README, "members gossip").
   */
  bootstrap?: 'seeds' | 'all';
}

export class Cluster {
  readonly nodes: BenchNode[] = [];
  private nextIndex = 0;

  private constructor(
    readonly dir: string,
    readonly options: ClusterOptions,
  ) {}

  /**
   * Starts `n` nodes: node 0 first, then the rest in batches, each bootstrapped to node 0 (and
   * node 1 when there is one, so losing one bootstrap peer does not isolate anyone), or to
   * every earlier node (options.bootstrap 'all'). Members gossip their addresses, so the
   * cluster becomes a full mesh; `waitMesh` waits for it.
   */
  static async start(n: number, options: ClusterOptions = {}): Promise<Cluster> {
    const cluster = new Cluster(benchTempDir(), options);
    try {
      // n00, then n01 on their own, so that every later node lists both as bootstrap peers.
      await cluster.add(1);
      if (n > 1) await cluster.add(1);
      if (n > 2) await cluster.add(n - 2);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Starts `count` more nodes bootstrapped to the first ones; resolves when all answer Status. */
  async add(count: number, extraArgs: string[] = []): Promise<BenchNode[]> {
    // With bootstrap 'all', nodes of one batch would not know each other: start one at a time.
    const batch = this.options.bootstrap === 'all' ? 1 : Math.max(1, this.options.startBatch ?? 4);
    const added: BenchNode[] = [];
    for (let i = 0; i < count; i += batch) {
      const size = Math.min(batch, count - i);
      const started = await Promise.all(Array.from({ length: size }, () => this.startOne(extraArgs)));
      added.push(...started);
      // Keep nodes in start order (n00, n01, ...) whatever order they became ready in.
      this.nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.options.onNode?.(this.nodes.length, this.nodes.length + count - i - size);
    }
    return added;
  }

  private async startOne(extraArgs: string[]): Promise<BenchNode> {
    const index = this.nextIndex++;
    const name = `n${String(index).padStart(2, '0')}`;
    const args = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http', 'off', ...(this.options.args ?? []), ...extraArgs];
    const seeds = this.options.bootstrap === 'all' ? this.nodes : this.nodes.slice(0, 2);
    for (const seed of seeds) args.push('--bootstrap', seed.address);
    const node = await BenchNode.start({
      name,
      dataDir: join(this.dir, name),
      args,
      ...(this.options.cpuProfDir !== undefined ? { cpuProfDir: this.options.cpuProfDir } : {}),
    });
    this.nodes.push(node);
    return node;
  }

  /** Stops `node` (SIGTERM) and starts it again on its data dir with the same flags. */
  async restart(node: BenchNode, afterStop?: () => Promise<void>): Promise<BenchNode> {
    await node.stop();
    await afterStop?.();
    const fresh = await BenchNode.start(node.options);
    this.nodes[this.nodes.indexOf(node)] = fresh;
    return fresh;
  }

  /** Spawns `node` again on its data dir and flags without waiting for it (see BenchNode.start). */
  respawn(node: BenchNode): Promise<BenchNode> {
    return BenchNode.start(node.options).then((fresh) => {
      this.nodes[this.nodes.indexOf(node)] = fresh;
      return fresh;
    });
  }

  /** Removes a node from the cluster (stops it) and deletes its data dir. */
  async remove(node: BenchNode): Promise<void> {
    await node.stop();
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
    rmSync(node.options.dataDir, { recursive: true, force: true, maxRetries: 3 });
  }

  /** Waits until every node lists every other node as up. */
  async waitMesh(timeoutMs: number, nodes: BenchNode[] = this.nodes): Promise<void> {
    let missing = '';
    await waitFor(
      async () => {
        const views = await Promise.all(nodes.map((node) => node.peers()));
        for (const [i, view] of views.entries()) {
          const up = new Set(view.filter((p) => p.state === 'up').map((p) => p.peerId));
          for (const other of nodes) {
            if (other !== nodes[i] && !up.has(other.peerId)) {
              missing = `${nodes[i]!.name} does not list ${other.name} as up`;
              return false;
            }
          }
        }
        return true;
      },
      `a full mesh of ${nodes.length} nodes (${missing || 'no answer yet'})`,
      timeoutMs,
      100 + 10 * nodes.length,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; last: ${missing}`);
    });
  }

  /** Waits until all nodes report the same Merkle root and key count; returns the statuses. */
  async waitConverged(timeoutMs: number, intervalMs = 25, nodes: BenchNode[] = this.nodes): Promise<StatusMessage[]> {
    let last: StatusMessage[] = [];
    await waitFor(
      async () => {
        last = await Promise.all(nodes.map((node) => node.status()));
        return sameState(last);
      },
      `${nodes.length} nodes to converge`,
      timeoutMs,
      intervalMs,
    ).catch((error: unknown) => {
      const keys = last.map((s, i) => `${nodes[i]?.name}: ${s.keyCount} keys root ${s.merkleRoot.slice(0, 12)}`).join(', ');
      throw new Error(`${(error as Error).message} (last: ${keys})`);
    });
    return last;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop(10_000).catch(() => undefined)));
    this.nodes.length = 0;
    removeTempDir(this.dir);
  }
}

export function sameState(statuses: readonly StatusMessage[]): boolean {
  const first = statuses[0];
  return first !== undefined && statuses.every((s) => s.merkleRoot === first.merkleRoot && s.keyCount === first.keyCount);
}

export function counter(status: StatusMessage, name: string): number {
  return Number(status.counters[name] ?? 0);
}

/**
 * The node's Status once its sync byte counters have settled. A session adds its bytes only
 * when it ends, after it applied its entries, and a second session started at the same time
 * (another peer pushing the same entries) may still be running when the roots already match.
 * Settled = sync_bytes_in grew by under 1 KiB (periodic in-sync sessions add ~60 B each) over
 * a quiet window of `quietMs`, clamped to 1-15 s (callers pass the duration of the transfer,
 * so a concurrent session that started with it has ended); at most 60 s in all.
 */
export async function settledStatus(node: BenchNode, quietMs: number): Promise<StatusMessage> {
  const window = Math.min(15_000, Math.max(1000, quietMs));
  const until = performance.now() + 60_000;
  let mark = await node.status();
  let markAt = performance.now();
  for (;;) {
    await sleep(Math.min(500, window / 4));
    const status = await node.status();
    if (counter(status, 'sync_bytes_in') - counter(mark, 'sync_bytes_in') >= 1024) {
      mark = status;
      markAt = performance.now();
    } else if (performance.now() - markAt >= window) {
      return status;
    }
    if (performance.now() >= until) return status;
  }
}

/** `count` puts through one client with `inFlight` outstanding; resolves with the ms the last ack took. */
export async function putMany(
  client: ControlClient,
  count: number,
  keyOf: (i: number) => string,
  valueOf: (i: number) => Uint8Array,
  inFlight = 256,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) await client.put(keyOf(i), valueOf(i));
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return performance.now() - started;
}
