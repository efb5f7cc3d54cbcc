/**
 * `ckv demo [--nodes 3] [--base-port P]`: a whole cluster on this machine in one command, to
 * try ckv and its status page. It starts N nodes (`ckv node start` child processes) on
 * 127.0.0.1, each in a temporary directory with its own HTTP port, joined into a full mesh by
 * --bootstrap (no mDNS, so nothing on the LAN joins), waits until every node is up and sees
 * every other, prints how to reach each one, and runs until Ctrl-C or SIGTERM; then it stops
 * every node cleanly and removes the directories.
 *
 * The nodes run in their own process group, so the terminal's Ctrl-C reaches only this
 * command, which then stops them in order (a node that got the signal twice would skip its
 * clean stop). A second Ctrl-C kills them at once.
 *
 * Start-up is bounded: a node that exits or does not answer within the deadline ends the demo:
 * its last log lines are shown (indented, as `ckv demo:` output), then the error as one
 * `ckv: demo failed: ...` line that carries the node's own error line, e.g. `cannot listen on
 * /ip4/127.0.0.1/tcp/4101: address in use` for a busy --base-port (exit 5).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ControlClient } from '../control/client.js';
import type { StatusMessage } from '../control/proto.js';
import { freePorts } from '../util/free-ports.js';
import { ckvChildEnv } from '../util/child-env.js';
import { CliError, writeStdout } from './common.js';

const ckvBin = fileURLToPath(new URL('../../../bin/ckv.js', import.meta.url));
const nodesMax = 16;
const readyTimeoutMs = 30_000;
const meshTimeoutMs = 20_000;
const stopTimeoutMs = 15_000;
const logTailLines = 30;
/** Base port layout: HTTP on P, P+1, ...; libp2p on P+100, P+101, ... */
const libp2pPortOffset = 100;

interface DemoOptions {
  nodes: string;
  basePort?: string;
}

interface DemoNode {
  index: number;
  dir: string;
  socket: string;
  child: ChildProcess;
  log: string[];
  exited: Promise<void>;
  status?: StatusMessage;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('run a local cluster of N nodes on 127.0.0.1 in temporary directories until Ctrl-C')
    .option('--nodes <n>', `how many nodes (1..${nodesMax})`, '3')
    .option('--base-port <port>', `fixed ports: HTTP on P, P+1, ...; libp2p on P+${libp2pPortOffset}, ... (default: free ports)`)
    .action(async (options: DemoOptions) => {
      const count = Number(options.nodes);
      if (!Number.isInteger(count) || count < 1 || count > nodesMax) {
        throw new CliError(`--nodes must be a whole number from 1 to ${nodesMax}, not ${options.nodes}`, 'usage');
      }
      let basePort: number | undefined;
      if (options.basePort !== undefined) {
        basePort = Number(options.basePort);
        if (!Number.isInteger(basePort) || basePort < 1024 || basePort + libp2pPortOffset + count > 65535) {
          throw new CliError(`--base-port must be a whole number from 1024 to ${65535 - libp2pPortOffset - count}, not ${options.basePort}`, 'usage');
        }
      }
      await runDemo(count, basePort);
    });
}

async function runDemo(count: number, basePort: number | undefined): Promise<void> {
  const root = demoRoot();
  const nodes: DemoNode[] = [];
  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));

  // Last resort (an unexpected crash of this process): no node or directory is left behind.
  const onExit = (): void => {
    for (const node of nodes) if (isRunning(node.child)) node.child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  const shutdown = async (reason: string): Promise<void> => {
    stopping = true;
    process.stderr.write(`ckv demo: ${reason}: stopping ${nodes.filter((n) => isRunning(n.child)).length} node(s)...\n`);
    await stopAll(nodes);
    rmSync(root, { recursive: true, force: true });
    process.stderr.write(`ckv demo: stopped; removed ${root}\n`);
  };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      for (const node of nodes) if (isRunning(node.child)) node.child.kill('SIGKILL');
      rmSync(root, { recursive: true, force: true });
      process.stderr.write(`ckv demo: second ${signal}: killed the nodes, removed ${root}\n`);
      process.exit(130);
    }
    void shutdown(`received ${signal}`).then(stopped);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // Free ports in one call: two calls could hand out the same port twice (the first call's
    // probes are closed before the second's open, and the kernel reuses a freed port), and a
    // node's HTTP port was then another node's libp2p port (seen in CI: exit 5, address in use).
    const free = basePort === undefined ? await freePorts(2 * count) : [];
    const httpPorts = basePort !== undefined ? range(count).map((i) => basePort + i) : free.slice(0, count);
    const p2pPorts = basePort !== undefined ? range(count).map((i) => basePort + libp2pPortOffset + i) : free.slice(count);
    process.stderr.write(`ckv demo: starting ${count} node(s) in ${root}...\n`);
    for (let i = 0; i < count; i++) {
      const dir = join(root, `node-${i + 1}`);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // Every node bootstraps to every other: a full mesh, whichever starts first.
      const bootstrap = p2pPorts.filter((_, j) => j !== i).flatMap((port) => ['--bootstrap', `/ip4/127.0.0.1/tcp/${port}`]);
      const args = [
        ckvBin, 'node', 'start', '--data-dir', dir, '--cluster', 'demo', '--no-mdns',
        '--listen', `/ip4/127.0.0.1/tcp/${p2pPorts[i]}`, '--http', `127.0.0.1:${httpPorts[i]}`, ...bootstrap,
      ];
      nodes.push(spawnNode(i + 1, dir, args, () => stopping));
    }
    if (stopping) return await done;
    await Promise.all(nodes.map((node) => waitReady(node, () => stopping)));
    if (stopping) return await done;
    await waitMesh(nodes, () => stopping);
    if (stopping) return await done;
  } catch (error) {
    if (stopping) return await done;
    stopping = true;
    await stopAll(nodes);
    rmSync(root, { recursive: true, force: true });
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    let message = error instanceof Error ? error.message : String(error);
    if (error instanceof NodeFailure) {
      const { node } = error;
      if (node.log.length > 0) {
        process.stderr.write(`ckv demo: last log lines of node ${node.index}:\n${node.log.map((line) => `  | ${line}`).join('\n')}\n`);
      }
      // The node's own one-line error (`ckv: cannot listen on ...`), if it printed one.
      const reason = node.log.findLast((line) => line.startsWith('ckv: '))?.slice('ckv: '.length);
      message += reason ? `: ${reason}` : node.log.length > 0 ? '' : ' (it logged nothing)';
    }
    throw new CliError(`demo failed: ${message}`, 'failed');
  }

  await writeStdout(describe(nodes, root));
  // When every node has gone (each stopped by hand), there is nothing left to show.
  void Promise.all(nodes.map((n) => n.exited)).then(() => {
    if (!stopping) void shutdown('every node has stopped').then(stopped);
  });
  await done;
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

/** `<os.tmpdir()>/ckv-demo-XXXXXX`, or under /tmp if that would make socket paths too long. */
function demoRoot(): string {
  let base = tmpdir();
  if (Buffer.byteLength(join(base, 'ckv-demo-XXXXXX', 'node-16', 'ckv.sock')) > 100 && existsSync('/tmp')) base = '/tmp';
  return mkdtempSync(join(base, 'ckv-demo-'));
}

function spawnNode(index: number, dir: string, args: string[], isStopping: () => boolean): DemoNode {
  const child = spawn(process.execPath, args, { env: ckvChildEnv(), stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const log: string[] = [];
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    log.push(...lines);
    if (log.length > logTailLines) log.splice(0, log.length - logTailLines);
  });
  const exited = new Promise<void>((resolve) =>
    child.once('close', (code, signal) => {
      if (partial) log.push(partial);
      if (!isStopping()) process.stderr.write(`ckv demo: node ${index} exited (${signal ?? `code ${code}`})\n`);
      resolve();
    }),
  );
  child.once('error', (error) => log.push(`spawn failed: ${error.message}`));
  return { index, dir, socket: join(dir, 'ckv.sock'), child, log, exited };
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

/** A node that exited or did not answer: the demo shows its log before the one-line error. */
class NodeFailure extends Error {
  constructor(message: string, readonly node: DemoNode) {
    super(message);
    this.name = 'NodeFailure';
  }
}

async function withClient<T>(socket: string, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = new ControlClient(socket);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Until the node answers Status; throws with its log if it exits or the deadline passes. */
async function waitReady(node: DemoNode, isStopping: () => boolean): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  let lastError = '';
  while (!isStopping()) {
    if (!isRunning(node.child)) {
      throw new NodeFailure(`node ${node.index} exited before it was ready (${node.child.signalCode ?? `code ${node.child.exitCode}`})`, node);
    }
    if (existsSync(node.socket)) {
      try {
        node.status = await withClient(node.socket, (client) => client.status());
        return;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
      }
    }
    if (Date.now() > deadline) {
      throw new NodeFailure(`node ${node.index} did not answer within ${readyTimeoutMs / 1000} s${lastError ? ` (${lastError})` : ''}`, node);
    }
    await pause(100);
  }
}

/** Until every node lists every other as up. */
async function waitMesh(nodes: DemoNode[], isStopping: () => boolean): Promise<void> {
  const deadline = Date.now() + meshTimeoutMs;
  const peerIds = new Map(nodes.map((n) => [n.index, n.status!.peerId]));
  let missing: string[] = [];
  while (!isStopping()) {
    missing = [];
    for (const node of nodes) {
      if (!isRunning(node.child)) throw new NodeFailure(`node ${node.index} exited while the cluster formed`, node);
      const up = new Set(
        (await withClient(node.socket, (client) => client.peers())).peers.filter((p) => p.state === 'up').map((p) => p.peerId),
      );
      for (const other of nodes) if (other !== node && !up.has(peerIds.get(other.index)!)) missing.push(`${node.index}->${other.index}`);
    }
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the nodes did not all connect within ${meshTimeoutMs / 1000} s (not seen: ${missing.join(', ')})`);
    await pause(100);
  }
}

/** SIGTERM to every running node (a clean stop), SIGKILL to any still running after 15 s. */
async function stopAll(nodes: DemoNode[]): Promise<void> {
  await Promise.all(
    nodes.map(async (node) => {
      if (!isRunning(node.child)) return node.exited;
      node.child.kill('SIGTERM');
      const timer = setTimeout(() => node.child.kill('SIGKILL'), stopTimeoutMs);
      await node.exited;
      clearTimeout(timer);
    }),
  );
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A word for a POSIX shell: as is if safe, else single-quoted. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_/.:@%+=,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function describe(nodes: DemoNode[], root: string): string {
  const lines = [`ckv demo: ${nodes.length} node(s) on 127.0.0.1, cluster "demo", data in ${root}`, ''];
  for (const node of nodes) {
    const s = node.status!;
    const socket = shellWord(node.socket);
    lines.push(
      `node ${node.index}  peer ${s.peerId}`,
      `  pid     ${node.child.pid}`,
      `  socket  ${node.socket}`,
      `  http    ${s.httpUrl || 'off'}`,
      `  try     ckv --socket ${socket} put hello world`,
      '',
    );
  }
  const first = nodes[0]!;
  const last = nodes[nodes.length - 1]!;
  lines.push(
    'Open a status page in a browser. Write on one node, read on another:',
    `  ckv --socket ${shellWord(first.socket)} put hello world`,
    `  ckv --socket ${shellWord(last.socket)} get hello`,
    `  curl -X PUT --data-binary 'hi there' ${last.status!.httpUrl}kv/greeting`,
    `Stop one (ckv --socket ${shellWord(last.socket)} node stop) and watch the other pages.`,
    '(From a checkout, run ckv as npx ckv.)',
    `ready: Ctrl-C stops every node and removes ${root}`,
    '',
  );
  return lines.join('\n');
}
