/**
 * Helpers for the LAN tests: a private "LAN" of network namespaces joined by a bridge, real
 * `ckv node start` processes running inside them, nftables partitions, polling with deadlines
 * and a cleanup registry.
 *
 * Layout of one LAN (prefix P, subnet 10.77.X.0/24):
 *
 *   P-br  (namespace holding bridge br0 and the host ends veth1..vethN)
 *   P-h1 .. P-hN  (one namespace per host: lo, eth0 = 10.77.X.i/24, multicast route for mDNS)
 *
 * Nothing is connected to the root namespace: traffic only flows between these namespaces.
 * The control sockets are Unix sockets on the shared filesystem, so this process (in the root
 * namespace) talks to every node's gRPC API directly.
 *
 * Partitions: an `inet ckvpart` nftables table in each affected host namespace, dropping
 * (and counting) packets from and to the cut-off addresses on input and output. Deleting the
 * tables heals.
 *
 * Cleanup: every namespace and process is registered. `cleanupLan()` (an `after()` hook in the
 * test file) SIGKILLs the nodes, waits for them, deletes the namespaces (their nft tables go
 * with them) and removes the data directories; a process 'exit' handler and SIGINT/SIGTERM
 * handlers do the same synchronously as a last resort.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../src/control/client.js';
import type { EntryMessage, StatusMessage } from '../../src/control/proto.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root: this file runs from dist/test/lan/. */
export const repoRoot = resolve(here, '..', '..', '..');
export const ckvBin = join(repoRoot, 'bin', 'ckv.js');

// ---------------------------------------------------------------------------------------------
// Prerequisites

function commandExists(command: string, versionArgs: string[]): boolean {
  const result = spawnSync(command, versionArgs, { stdio: 'ignore' });
  return !(result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT');
}

/**
 * Why the LAN tests cannot run here, or undefined if they can: needs root, iproute2 (`ip`),
 * nftables (`nft`), and a kernel/container that lets us create network namespaces and
 * nftables tables in them (probed by creating and deleting one namespace).
 */
export function lanUnavailableReason(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root (network namespaces need root)';
  if (!commandExists('ip', ['-V'])) return "'ip' (iproute2) is not installed";
  if (!commandExists('nft', ['--version'])) return "'nft' (nftables) is not installed (apt-get install nftables)";
  const probe = `ckvlan-probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot create network namespaces (ip netns add: ${add.stderr.trim() || `exit ${add.status}`})`;
  try {
    const nft = spawnSync('ip', ['netns', 'exec', probe, 'nft', 'add', 'table', 'inet', 'ckvprobe'], { encoding: 'utf8' });
    if (nft.status !== 0) return `cannot use nftables in a network namespace (nft add table: ${nft.stderr.trim() || `exit ${nft.status}`})`;
  } finally {
    spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Cleanup registry

const liveNodes = new Set<LanNode>();
const liveLans = new Set<Lan>();
const tempDirs = new Set<string>();
let handlersInstalled = false;

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Synchronous last resort: SIGKILL every node, delete every namespace, remove every dir. */
function cleanupSync(): void {
  for (const node of liveNodes) node.killSync();
  liveNodes.clear();
  for (const lan of liveLans) lan.destroy();
  liveLans.clear();
  if (!process.env.CKV_LAN_KEEP) for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** Kills every node (waiting for each to exit), deletes every namespace, removes temp dirs. */
export async function cleanupLan(): Promise<void> {
  await Promise.all([...liveNodes].map((node) => node.kill().catch(() => undefined)));
  cleanupSync();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupSync();
      process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[signal]);
    });
  }
}

/** This run's name prefix: `ckvlan-<pid>-<random>`. */
export const runPrefix = `ckvlan-${process.pid}-${randomBytes(2).toString('hex')}`;
/** The third octet of this run's 10.77.X.0/24, derived from the pid (1..250). */
export const subnetOctet = 1 + (process.pid % 250);

/** A fresh directory /tmp/<runPrefix>-<tag>, removed by the cleanup (kept if CKV_LAN_KEEP is set). */
export function tempDir(tag: string): string {
  const dir = join('/tmp', `${runPrefix}-${tag}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  tempDirs.add(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Waiting

export interface WaitOptions {
  timeoutMs: number;
  what: string;
  intervalMs?: number;
}

/** Polls `condition` until it returns true; throws `timed out ... waiting for <what>` at the deadline. */
export async function waitFor(condition: () => Promise<boolean> | boolean, options: WaitOptions): Promise<void> {
  const { timeoutMs, what, intervalMs = 50 } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const cause = lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await new Promise((done) => setTimeout(done, intervalMs));
  }
}

/** `promise`, or a rejection naming `what` if it takes longer than `timeoutMs`. */
export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// The LAN

function run(args: string[]): string {
  const result = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status}: ${result.stderr.trim()}`);
  return result.stdout;
}

export class Lan {
  readonly bridgeNs: string;
  readonly hostNs: string[] = [];
  private readonly partitioned = new Set<number>();
  private destroyed = false;

  /** Hosts are numbered 1..hosts; host i is 10.77.X.i in namespace `<prefix>-h<i>`. */
  private constructor(
    readonly prefix: string,
    readonly hosts: number,
  ) {
    this.bridgeNs = `${prefix}-br`;
    for (let i = 1; i <= hosts; i++) this.hostNs.push(`${prefix}-h${i}`);
  }

  /** Builds the namespaces, the bridge and one veth per host (see the top comment). */
  static create(tag: string, hosts: number): Lan {
    installHandlers();
    const lan = new Lan(`${runPrefix}-${tag}`, hosts);
    liveLans.add(lan);
    const br = lan.bridgeNs;
    run(['ip', 'netns', 'add', br]);
    run(['ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
    run(['ip', '-n', br, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= hosts; i++) {
      const ns = lan.ns(i);
      run(['ip', 'netns', 'add', ns]);
      run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      run(['ip', '-n', br, 'link', 'add', `veth${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run(['ip', '-n', br, 'link', 'set', `veth${i}`, 'master', 'br0']);
      run(['ip', '-n', br, 'link', 'set', `veth${i}`, 'up']);
      run(['ip', '-n', ns, 'addr', 'add', `${lan.address(i)}/24`, 'dev', 'eth0']);
      run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      // mDNS: without a route for 224.0.0.0/4 (no default route here) multicast sends fail.
      run(['ip', '-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
    }
    return lan;
  }

  ns(host: number): string {
    const ns = this.hostNs[host - 1];
    if (ns === undefined) throw new Error(`no host ${host} on this LAN`);
    return ns;
  }

  address(host: number): string {
    return `10.77.${subnetOctet}.${host}`;
  }

  nft(host: number, args: string[]): string {
    return run(['ip', 'netns', 'exec', this.ns(host), 'nft', ...args]);
  }

  /**
   * Cuts `side` off from `rest`: on every host of either side, an `inet ckvpart` table drops
   * (and counts) packets from and to the other side's addresses, on input and on output.
   */
  partition(side: number[], rest: number[]): void {
    const apply = (host: number, others: number[]): void => {
      const set = `{ ${others.map((h) => this.address(h)).join(', ')} }`;
      this.nft(host, ['add', 'table', 'inet', 'ckvpart']);
      this.nft(host, ['add', 'chain', 'inet', 'ckvpart', 'input', '{ type filter hook input priority 0; policy accept; }']);
      this.nft(host, ['add', 'chain', 'inet', 'ckvpart', 'output', '{ type filter hook output priority 0; policy accept; }']);
      this.nft(host, ['add', 'rule', 'inet', 'ckvpart', 'input', 'ip', 'saddr', set, 'counter', 'drop']);
      this.nft(host, ['add', 'rule', 'inet', 'ckvpart', 'output', 'ip', 'daddr', set, 'counter', 'drop']);
      this.partitioned.add(host);
    };
    for (const host of side) apply(host, rest);
    for (const host of rest) apply(host, side);
  }

  /** Packets dropped so far by `host`'s partition rules (input + output). */
  droppedPackets(host: number): number {
    const text = this.nft(host, ['list', 'table', 'inet', 'ckvpart']);
    let total = 0;
    for (const match of text.matchAll(/counter packets (\d+)/g)) total += Number(match[1]);
    return total;
  }

  /** Deletes every partition table. */
  heal(): void {
    for (const host of this.partitioned) this.nft(host, ['delete', 'table', 'inet', 'ckvpart']);
    this.partitioned.clear();
  }

  /** Deletes the namespaces (and with them the nft tables and veths). Idempotent; never throws. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of [...this.hostNs, this.bridgeNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    liveLans.delete(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes

/** Whether something accepts connections on the Unix socket at `path`. */
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

/**
 * One `ckv node start` process running in a host namespace, its stderr appended to
 * `<dataDir>/node.log`. `start()` again after `kill()` restarts it on the same data dir.
 */
export class LanNode {
  readonly socket: string;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private clientInstance: ControlClient | undefined;
  /** Set by the first successful start (identities persist in the data dir). */
  peerId = '';
  nodeId = '';

  constructor(
    readonly lan: Lan,
    readonly host: number,
    readonly dataDir: string,
    readonly args: string[],
  ) {
    this.socket = join(dataDir, 'ckv.sock');
    this.logPath = join(dataDir, 'node.log');
  }

  get name(): string {
    return `host ${this.host}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The gRPC client for this node (a fresh one after every start). */
  get client(): ControlClient {
    if (!this.clientInstance) throw new Error(`${this.name} is not running`);
    return this.clientInstance;
  }

  get running(): boolean {
    return this.child !== undefined && !hasExited(this.child);
  }

  /** Spawns the node inside its namespace and resolves once it answers `Status`. */
  async start(readyTimeoutMs = 20_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    const log = openSync(this.logPath, 'a');
    const argv = ['netns', 'exec', this.lan.ns(this.host), process.execPath, ckvBin, 'node', 'start', '--data-dir', this.dataDir, ...this.args];
    let child: ChildProcess;
    try {
      // `ip netns exec` execs the command (no fork), so child.pid is the node itself.
      child = spawn('ip', argv, { cwd: repoRoot, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.child = child;
    liveNodes.add(this);
    this.exited = new Promise((done) => {
      if (hasExited(child)) done();
      else child.once('exit', () => done());
    });
    child.once('error', () => undefined);
    this.clientInstance?.close();
    this.clientInstance = undefined;
    // Fail at once (not at the deadline) if the process exits before it is ready.
    const earlyExit = this.exited.then(() => {
      throw new Error(`${this.name} exited before it was ready (code ${child.exitCode}, signal ${child.signalCode})`);
    });
    earlyExit.catch(() => undefined);
    const ready = waitFor(
      async () => {
        if (hasExited(child)) return true; // stops polling; earlyExit has already rejected
        // The stale socket of a killed node exists until the new one replaces it: it must accept.
        if (!existsSync(this.socket) || !(await canConnect(this.socket))) return false;
        const client = new ControlClient(this.socket);
        try {
          const status = await withDeadline(client.status(), 2_000, `status from ${this.name}`);
          this.peerId = status.peerId;
          this.nodeId = status.nodeId;
        } finally {
          client.close();
        }
        return true;
      },
      { timeoutMs: readyTimeoutMs, what: `${this.name} (${this.socket}) to answer status`, intervalMs: 50 },
    );
    try {
      await Promise.race([ready, earlyExit]);
      if (hasExited(child)) await earlyExit;
    } catch (error) {
      if (!hasExited(child)) child.kill('SIGKILL');
      await this.exited;
      ready.catch(() => undefined);
      throw new Error(`${(error as Error).message}\n${this.name} log tail:\n${this.logTail()}`);
    }
    this.clientInstance = new ControlClient(this.socket);
  }

  /** kill -9, then wait for the exit. */
  async kill(): Promise<void> {
    const child = this.child;
    this.clientInstance?.close();
    this.clientInstance = undefined;
    if (child && !hasExited(child)) child.kill('SIGKILL');
    await withDeadline(this.exited, 10_000, `${this.name} to exit after SIGKILL`);
    liveNodes.delete(this);
  }

  /** Synchronous SIGKILL (for the exit handler). */
  killSync(): void {
    this.clientInstance?.close();
    this.clientInstance = undefined;
    if (this.child && !hasExited(this.child)) this.child.kill('SIGKILL');
  }

  status(): Promise<StatusMessage> {
    return withDeadline(this.client.status(), 5_000, `status from ${this.name}`);
  }

  /** Every entry (tombstones included) with its value, keyed by key. */
  async entries(): Promise<Map<string, EntryMessage>> {
    const all = new Map<string, EntryMessage>();
    const scan = async (): Promise<void> => {
      for await (const entry of this.client.scan({ withValues: true, includeDeleted: true })) all.set(entry.key, entry);
    };
    await withDeadline(scan(), 10_000, `scan of ${this.name}`);
    return all;
  }

  /** The last `lines` lines of the node's log. */
  logTail(lines = 40): string {
    try {
      const text = readFileSync(this.logPath, 'utf8').trimEnd().split('\n');
      return text.slice(-lines).map((line) => `  | ${line}`).join('\n');
    } catch (error) {
      return `  (no log: ${(error as Error).message})`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The CLI, from the root namespace

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/ckv.js --socket S ...args` (in the root namespace) to completion. */
export async function runCli(socket: string, args: string[], timeoutMs = 20_000): Promise<CliResult> {
  const child = spawn(process.execPath, [ckvBin, '--socket', socket, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const closed = new Promise<CliResult>((done) => child.once('close', (code) => done({ code, stdout, stderr })));
  try {
    return await withDeadline(closed, timeoutMs, `ckv ${args.join(' ')}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}
