/**
 * One ckv node as a real process: `node bin/ckv.js node start --data-dir DIR ...`, spawned
 * exactly as a user runs it, and registered with the cleanup registry (processes.ts).
 *
 * Start-up: `startNode()` spawns the process and resolves once it is ready, which means all
 * three of: the control socket `<data dir>/ckv.sock` exists, it accepts connections (a stale
 * socket left by a killed node exists but refuses), and a `Status` call on it answers. That
 * Status reply gives the node's peer id, node id and listen addresses. If the process exits
 * first, the wait ends at once; either way a failed start throws with the node's log.
 *
 * Defaults keep a node off the network (`isolated`): `--listen /ip4/127.0.0.1/tcp/0` (no
 * fixed port), `--http off` and `--no-mdns`, each only when the given args do not say
 * otherwise. `launcher` runs it through a wrapper (`ip netns exec NS` for the LAN tests:
 * that execs, so the pid is the node's). stderr (the node's log) is kept in memory, or
 * appended to `logFile`; with `keepLines`, matching log lines are also kept with their
 * arrival time on this process's clock (`performance.now()`), which benches use to time
 * events inside the node; stderr is a pipe, written synchronously by the node, so a line
 * arrives as soon as it is logged.
 *
 * Afterwards: `stop()` (SIGTERM, a clean stop; SIGKILL and throw past the grace period),
 * `kill()` (SIGKILL), `freeze()` / `thaw()` (SIGSTOP / SIGCONT: the process stops running,
 * the kernel keeps its sockets open), `respawn()` (start again on the same data dir and
 * flags) and `restart()` (stop, then respawn). `client` is a control client on the socket,
 * opened on first use and closed at stop, kill and cleanup.
 */
import { type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ControlClient } from '../src/control/client.js';
import type { PeerMessage, StatusMessage } from '../src/control/proto.js';
import { ckvChildEnv } from '../src/util/child-env.js';
import { addCleanup, ckvBin, exitOf, hasExited, repoRoot, socketPathBytesMax, spawnTracked, tempDir, type Exit } from './processes.js';
import { GiveUp, waitFor, withDeadline } from './wait.js';

export interface NodeOptions {
  /** For messages (and the --cpu-prof subdirectory). Default 'node'. */
  name?: string;
  /** Data directory; default a fresh temp directory. Pass an old one to restart a node on it. */
  dataDir?: string;
  /** Extra `node start` flags. */
  args?: string[];
  /** Adds `--bootstrap <127.0.0.1 address>` for each of these nodes. */
  bootstrap?: NodeProcess[];
  /** Add the loopback-only flags the args do not set (see the top comment). Default true. */
  isolated?: boolean;
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', NS]. */
  launcher?: string[];
  /** Run the node with `--cpu-prof --cpu-prof-dir <cpuProfDir>/<name>`. */
  cpuProfDir?: string;
  /**
   * Flags for Node.js itself (before the script), e.g. V8 flags to try (`--max-semi-space-size=64`):
   * V8 flags are refused in NODE_OPTIONS. For benches; none by default.
   */
  nodeFlags?: string[];
  /** Append stdout and stderr to this file instead of keeping stderr in memory; `{name}` in it is the node's name (a cluster's nodes each get their own). */
  logFile?: string;
  /** Keep at most the last this many characters of stderr in memory. Default: all. */
  stderrCharsMax?: number;
  /** Keep log lines matching this with their arrival time (`lines`, `waitLine`, `linesSince`). */
  keepLines?: RegExp;
  /** How long the node may take to answer Status. Default 20 s. */
  readyDeadlineMs?: number;
  /** Readiness polling interval. Default 25 ms. */
  readyIntervalMs?: number;
}

export interface LogLine {
  /** performance.now() in this process when the line arrived. */
  atMs: number;
  text: string;
}

const liveNodes = new Set<NodeProcess>();
addCleanup(() => {
  for (const node of liveNodes) node.closeClient();
  liveNodes.clear();
});

/** Whether something accepts connections on the Unix socket at `path`. */
export function canConnect(path: string): Promise<boolean> {
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

/**
 * Runs `fn` with a control client for the node at `socket` (in this process, over the real
 * socket), and closes it after.
 */
export async function withControlClient<T>(socket: string, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = ControlClient.connect(socket);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** `Status` through a fresh control client, with a short deadline. */
export function statusOf(socket: string, deadlineMs = 5000): Promise<StatusMessage> {
  return withControlClient(socket, (client) => withDeadline(client.status(), deadlineMs, `status from ${socket}`));
}

function isolationArgs(args: string[]): string[] {
  const extra: string[] = [];
  if (!args.includes('--listen')) extra.push('--listen', '/ip4/127.0.0.1/tcp/0');
  if (!args.some((a) => a === '--http' || a.startsWith('--http='))) extra.push('--http', 'off');
  if (!args.includes('--mdns') && !args.includes('--no-mdns')) extra.push('--no-mdns');
  return extra;
}

/** The node's 127.0.0.1 TCP address with /p2p/<peer id> (what others bootstrap to), if any. */
export function loopbackAddress(status: StatusMessage): string | undefined {
  return status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
}

export class NodeProcess {
  readonly name: string;
  readonly socket: string;
  /** performance.now() just before spawn(). */
  readonly spawnedAtMs = performance.now();
  /** performance.now() when it first answered Status. */
  readyAtMs = Number.NaN;
  peerId = '';
  nodeId = '';
  /** The Status reply that made it ready. */
  readyStatus: StatusMessage | undefined;
  /** Kept log lines (options.keepLines), at most 20,000. */
  readonly lines: LogLine[] = [];
  frozen = false;
  /** Resolves when the process has exited and its output is all read. */
  readonly exited: Promise<Exit>;
  private stderr = '';
  private partialLine = '';
  private readonly lineWaiters: { pattern: RegExp; sinceMs: number; resolve: (line: LogLine) => void }[] = [];
  private clientInstance: ControlClient | undefined;

  /** Use startNode(). `options` has dataDir set and bootstrap resolved into args. */
  constructor(
    readonly options: NodeOptions & { dataDir: string; args: string[] },
    readonly process: ChildProcess,
  ) {
    this.name = options.name ?? 'node';
    this.socket = join(options.dataDir, 'ckv.sock');
    if (process.stderr) {
      process.stderr.setEncoding('utf8');
      process.stderr.on('data', (chunk: string) => this.onStderr(chunk));
    }
    // 'close' comes after 'exit' once the output pipes are drained: then the whole log is in.
    const closed = new Promise<void>((done) => process.once('close', () => done()));
    this.exited = exitOf(process).then(async (exit) => {
      await withDeadline(closed, 5000, `${this.name}'s output to close`).catch(() => undefined);
      return exit;
    });
    process.once('error', () => undefined);
  }

  get dataDir(): string {
    return this.options.dataDir;
  }

  get args(): string[] {
    return this.options.args;
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  get running(): boolean {
    return !hasExited(this.process);
  }

  /** The 127.0.0.1 TCP address with /p2p/<peer id>; throws if the node has none. */
  get address(): string {
    const address = this.readyStatus && loopbackAddress(this.readyStatus);
    if (address === undefined) throw new Error(`${this.name} has no 127.0.0.1 tcp address: ${this.readyStatus?.listenAddresses.join(' ')}`);
    return address;
  }

  /** A control client on the node's socket, opened on first use. */
  get client(): ControlClient {
    this.clientInstance ??= new ControlClient(this.socket);
    return this.clientInstance;
  }

  closeClient(): void {
    this.clientInstance?.close();
    this.clientInstance = undefined;
  }

  /** Everything the node wrote to stderr so far (bounded by stderrCharsMax; the log file with logFile). */
  stderrText(): string {
    if (this.options.logFile === undefined) return this.stderr;
    try {
      return readFileSync(this.options.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** The last `count` lines of the node's log, indented. */
  logTail(count = 40): string {
    return this.stderrText().trimEnd().split('\n').slice(-count).map((line) => `  | ${line}`).join('\n');
  }

  status(deadlineMs = 10_000): Promise<StatusMessage> {
    return withDeadline(this.client.status(), deadlineMs, `status of ${this.name}`);
  }

  async peers(deadlineMs = 10_000): Promise<PeerMessage[]> {
    return (await withDeadline(this.client.peers(), deadlineMs, `peers of ${this.name}`)).peers;
  }

  /** The first kept log line matching `pattern` that arrived at or after `sinceMs` (waits for it). */
  waitLine(pattern: RegExp, sinceMs: number, deadlineMs: number): Promise<LogLine> {
    const seen = this.lines.find((line) => line.atMs >= sinceMs && pattern.test(line.text));
    if (seen) return Promise.resolve(seen);
    const found = new Promise<LogLine>((resolve) => this.lineWaiters.push({ pattern, sinceMs, resolve }));
    return withDeadline(found, deadlineMs, `${this.name} to log ${pattern}`);
  }

  linesSince(sinceMs: number, pattern: RegExp): LogLine[] {
    return this.lines.filter((line) => line.atMs >= sinceMs && pattern.test(line.text));
  }

  /** SIGSTOP: the process stops running; the kernel keeps its sockets open. */
  freeze(): void {
    if (this.running) this.process.kill('SIGSTOP');
    this.frozen = true;
  }

  /** SIGCONT. */
  thaw(): void {
    if (this.running) this.process.kill('SIGCONT');
    this.frozen = false;
  }

  /**
   * SIGTERM (a clean stop: the node gossips its leave, flushes writes, writes its CPU
   * profile), then wait for the exit; past `graceMs`, SIGKILL and throw.
   */
  async stop(graceMs = 15_000): Promise<Exit> {
    if (this.frozen) this.thaw();
    this.closeClient();
    liveNodes.delete(this);
    if (this.running) this.process.kill('SIGTERM');
    try {
      return await withDeadline(this.exited, graceMs, `${this.name} (pid ${this.pid}) to exit after SIGTERM`);
    } catch (error) {
      this.process.kill('SIGKILL');
      await this.exited;
      throw error;
    }
  }

  /** SIGKILL (kill -9), then wait for the exit. */
  async kill(): Promise<Exit> {
    this.closeClient();
    liveNodes.delete(this);
    if (this.running) this.process.kill('SIGKILL');
    return withDeadline(this.exited, 10_000, `${this.name} (pid ${this.pid}) to exit after SIGKILL`);
  }

  /** Starts the node again on its data dir with the same flags (after it has exited). */
  respawn(): Promise<NodeProcess> {
    return startNode(this.options);
  }

  /** stop(), then respawn(). */
  async restart(): Promise<NodeProcess> {
    await this.stop();
    return this.respawn();
  }

  /** Resolves once the node answers Status (see the top comment); throws with its log otherwise. */
  async waitReady(): Promise<void> {
    const child = this.process;
    try {
      await waitFor(
        async () => {
          if (hasExited(child)) {
            throw new GiveUp(`${this.name} exited before answering status (code ${child.exitCode}, signal ${child.signalCode})`);
          }
          // A stale socket of a killed node may still exist: it must also accept connections.
          if (!existsSync(this.socket) || !(await canConnect(this.socket))) return false;
          this.readyStatus = await statusOf(this.socket, 2000);
          return true;
        },
        { deadlineMs: this.options.readyDeadlineMs ?? 20_000, intervalMs: this.options.readyIntervalMs ?? 25, what: `${this.name} (${this.socket}) to answer status` },
      );
    } catch (error) {
      if (!hasExited(child)) child.kill('SIGKILL');
      await this.exited;
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`${message}\n${this.name} stderr:\n${this.stderrText()}`);
    }
    this.readyAtMs = performance.now();
    this.peerId = this.readyStatus!.peerId;
    this.nodeId = this.readyStatus!.nodeId;
    liveNodes.add(this);
  }

  private onStderr(chunk: string): void {
    const atMs = performance.now();
    const max = this.options.stderrCharsMax;
    this.stderr += chunk;
    if (max !== undefined && this.stderr.length > max) this.stderr = this.stderr.slice(-max);
    const keep = this.options.keepLines;
    if (keep === undefined) return;
    const parts = (this.partialLine + chunk).split('\n');
    this.partialLine = parts.pop() ?? '';
    for (const text of parts) {
      if (!keep.test(text)) continue;
      const line = { atMs, text };
      if (this.lines.length < 20_000) this.lines.push(line);
      for (let i = this.lineWaiters.length - 1; i >= 0; i--) {
        const waiter = this.lineWaiters[i]!;
        if (atMs >= waiter.sinceMs && waiter.pattern.test(text)) {
          this.lineWaiters.splice(i, 1);
          waiter.resolve(line);
        }
      }
    }
  }
}

/**
 * Spawns `node bin/ckv.js node start --data-dir DIR ...` and resolves once it is ready (see
 * the top comment). Throws (with the node's log) if the process exits first or the deadline
 * passes.
 */
export async function startNode(options: NodeOptions = {}): Promise<NodeProcess> {
  const dataDir = options.dataDir ?? tempDir('ckv-node-');
  const socket = join(dataDir, 'ckv.sock');
  if (Buffer.byteLength(socket) > socketPathBytesMax) throw new Error(`socket path too long for a Unix socket: ${socket}`);
  const args = [...(options.args ?? [])];
  for (const peer of options.bootstrap ?? []) args.push('--bootstrap', peer.address);
  const name = options.name ?? 'node';
  const logFile = options.logFile?.replaceAll('{name}', name);
  const resolved = { ...options, dataDir, args, bootstrap: [], ...(logFile !== undefined ? { logFile } : {}) };
  const nodeFlags: string[] = [...(options.nodeFlags ?? [])];
  if (options.cpuProfDir !== undefined) {
    // One directory per node name: the profile is written there when the process exits.
    const dir = join(options.cpuProfDir, name);
    mkdirSync(dir, { recursive: true });
    nodeFlags.push('--cpu-prof', '--cpu-prof-dir', dir);
  }
  const argv = [...nodeFlags, ckvBin, 'node', 'start', '--data-dir', dataDir, ...args, ...(options.isolated === false ? [] : isolationArgs(args))];
  const [command, ...prefix] = options.launcher ?? [];
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  let stdio: StdioOptions = ['ignore', 'ignore', 'pipe'];
  let logFd: number | undefined;
  if (logFile !== undefined) {
    logFd = openSync(logFile, 'a');
    stdio = ['ignore', logFd, logFd];
  }
  let child: ChildProcess;
  try {
    child = command === undefined
      ? spawnTracked(process.execPath, argv, { cwd: repoRoot, env: ckvChildEnv(process.env, options.env), stdio })
      : spawnTracked(command, [...prefix, process.execPath, ...argv], { cwd: repoRoot, env: ckvChildEnv(process.env, options.env), stdio });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
  const node = new NodeProcess(resolved, child);
  await node.waitReady();
  return node;
}
