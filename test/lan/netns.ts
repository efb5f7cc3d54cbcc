/**
 * The network-namespace part of the LAN tests: a private "LAN" of network namespaces joined
 * by a bridge, nftables partitions, and ckv nodes placed in those namespaces. Processes,
 * readiness, waiting, the CLI and cleanup come from the harness (harness/).
 *
 * Layout of one LAN (prefix P, subnet 10.77.X.0/24):
 *
 *   P-br  (namespace holding bridge br0 and the host ends veth1..vethN)
 *   P-h1 .. P-hN  (one namespace per host: lo, eth0 = 10.77.X.i/24, multicast route for mDNS)
 *
 * Nothing is connected to the root namespace: traffic only flows between these namespaces.
 * The control sockets are Unix sockets on the shared filesystem, so this process (in the root
 * namespace) talks to every node's gRPC API directly. A node is `ckv node start` launched
 * through `ip netns exec <host namespace>` (harness startNode with a launcher), its stderr
 * appended to `<dataDir>/node.log`.
 *
 * Partitions: an `inet ckvpart` nftables table in each affected host namespace, dropping
 * (and counting) packets from and to the cut-off addresses on input and output. Deleting the
 * tables heals.
 *
 * Cleanup: the nodes are harness processes; every LAN registers with the harness cleanup
 * registry, which deletes the namespaces (their nft tables go with them) after killing the
 * processes, on every exit path (after() hook, 'exit' handler, SIGINT/SIGTERM/SIGHUP).
 * Data directories are kept if CKV_LAN_KEEP is set.
 *
 * Running: `lanSuite` defines a test file's suite only where namespaces can be made (else one
 * skipped or failing test says why); `runLanNodes` starts a test's nodes, runs it, and always
 * tears the LAN down, printing the nodes' logs on failure.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EntryMessage, StatusMessage } from '../../src/control/proto.js';
import type { ControlClient } from '../../src/control/client.js';
import { addCleanup, exitOnSignals, startNode, tempDir, withDeadline, type NodeProcess } from '../../harness/index.js';
import { whenMissing } from '../helpers/prerequisites.js';

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
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'network namespaces need root';
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
// Naming and cleanup

const liveLans = new Set<Lan>();
addCleanup(() => {
  for (const lan of liveLans) lan.destroy();
});

/** This run's name prefix: `ckvlan-<pid>-<random>`. */
export const runPrefix = `ckvlan-${process.pid}-${randomBytes(2).toString('hex')}`;
/** The third octet of this run's 10.77.X.0/24, derived from the pid (1..250). */
export const subnetOctet = 1 + (process.pid % 250);

/** A fresh directory <tmp>/<runPrefix>-<tag>-XXXXXX, removed by the cleanup (kept if CKV_LAN_KEEP is set). */
export function lanTempDir(tag: string): string {
  return tempDir(`${runPrefix}-${tag}-`, { keep: Boolean(process.env.CKV_LAN_KEEP) });
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
    exitOnSignals('LAN tests');
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
// Nodes in host namespaces

/**
 * One `ckv node start` process running in a host namespace, its stderr appended to
 * `<dataDir>/node.log`. `start()` again after `kill()` restarts it on the same data dir.
 */
export class LanNode {
  readonly socket: string;
  readonly logPath: string;
  private current: NodeProcess | undefined;
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
    return this.current?.pid;
  }

  get running(): boolean {
    return this.current?.running ?? false;
  }

  /** The gRPC client for this node (a fresh one after every start). */
  get client(): ControlClient {
    if (!this.current?.running) throw new Error(`${this.name} is not running`);
    return this.current.client;
  }

  /** Spawns the node inside its namespace and resolves once it answers `Status`. */
  async start(readyTimeoutMs = 20_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.current = await startNode({
      name: this.name,
      dataDir: this.dataDir,
      args: this.args,
      isolated: false,
      launcher: ['ip', 'netns', 'exec', this.lan.ns(this.host)],
      logFile: this.logPath,
      readyDeadlineMs: readyTimeoutMs,
      readyIntervalMs: 50,
    });
    this.peerId = this.current.peerId;
    this.nodeId = this.current.nodeId;
  }

  /** kill -9, then wait for the exit. */
  async kill(): Promise<void> {
    await this.current?.kill();
  }

  status(): Promise<StatusMessage> {
    return withDeadline(this.client.status(), 5_000, `status from ${this.name}`);
  }

  /** Every entry of this node's own store (tombstones included) with its value, keyed by key. */
  async entries(): Promise<Map<string, EntryMessage>> {
    const all = new Map<string, EntryMessage>();
    const scan = async (): Promise<void> => {
      for await (const entry of this.client.scan({ withValues: true, includeDeleted: true, from: 'local' })) all.set(entry.key, entry);
    };
    await withDeadline(scan(), 10_000, `scan of ${this.name}`);
    return all;
  }

  /** The last `lines` lines of the node's log. */
  logTail(lines = 40): string {
    return this.current?.logTail(lines) ?? '  (not started)';
  }
}

// ---------------------------------------------------------------------------------------------
// Running LAN tests

/**
 * Defines the LAN suite (`suite` calls describe/it) when network namespaces can be made here;
 * otherwise one test named `name` that is skipped or fails, saying why (helpers/prerequisites.ts).
 */
export function lanSuite(name: string, suite: () => void): void {
  const notRun = lanUnavailableReason();
  if (notRun === undefined) return suite();
  const outcome = whenMissing(notRun, notRun.includes('is not installed'));
  console.log(`LAN tests not run: ${notRun}`);
  if ('skip' in outcome) test(name, { skip: outcome.skip }, () => undefined);
  else test(name, () => assert.fail(`LAN tests cannot run: ${outcome.fail}`));
}

/**
 * Starts `nodes` (each ready within `readyTimeoutMs`), runs `body`, then always kills the nodes
 * and deletes the LAN; on failure prints the tail of every node's log (`testName` says whose).
 */
export async function runLanNodes(testName: string, lan: Lan, nodes: LanNode[], body: () => Promise<void>, readyTimeoutMs?: number): Promise<void> {
  try {
    await Promise.all(nodes.map((n) => n.start(readyTimeoutMs)));
    await body();
  } catch (error) {
    const tails = nodes.map((n) => `--- ${n.name} (${lan.address(n.host)}, pid ${n.pid ?? '-'}) ${n.logPath}\n${n.logTail()}`).join('\n');
    console.error(`LAN test '${testName}' failed; node logs:\n${tails}`);
    throw error;
  } finally {
    await Promise.all(nodes.map((n) => n.kill().catch(() => undefined)));
    lan.destroy();
  }
}
