/**
 * Helpers for tests that run real ckv processes: a node (`ckv node start`) in the
 * background, one-shot CLI invocations, background CLI commands (watch), polling with
 * deadlines, and a cleanup registry.
 *
 * Everything a helper starts is registered: an `after()` hook (registered when this module is
 * first imported by a test file) SIGKILLs every process still running and removes every temp
 * directory, even when a test failed or threw half-way. A process 'exit' handler does the same
 * synchronously as a last resort (e.g. the test process is killed by the runner's timeout).
 *
 * No fixed sleeps: waits poll a condition every `intervalMs` until a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import type { StatusMessage } from '../../src/control/proto.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root: this file runs from dist/test/helpers/. */
export const repoRoot = resolve(here, '..', '..', '..');
/** The ckv command, as a user runs it (`node bin/ckv.js`). */
export const ckvBin = join(repoRoot, 'bin', 'ckv.js');

/** Socket paths must fit sockaddr_un (108 bytes with the NUL); stay well under. */
const socketPathBytesMax = 100;

// ---------------------------------------------------------------------------------------------
// Cleanup registry

const liveProcesses = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function track(child: ChildProcess): void {
  liveProcesses.add(child);
  child.once('exit', () => liveProcesses.delete(child));
}

/** Whether the process has exited (or was never started). */
function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGKILLs every tracked process still running, waits for them, removes every temp dir. */
export async function cleanupAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of liveProcesses) {
    if (hasExited(child)) continue;
    const exited = exitOf(child);
    child.kill('SIGKILL');
    waits.push(withDeadline(exited, 5000, `process ${child.pid} to exit after SIGKILL`).catch(() => undefined));
  }
  await Promise.all(waits);
  liveProcesses.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

after(cleanupAll);
process.on('exit', () => {
  for (const child of liveProcesses) if (!hasExited(child)) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh temp directory `<os.tmpdir()>/ckv-it-XXXXXX`, removed after the test file. Falls
 * back to /tmp if os.tmpdir() is so long that a socket inside would not fit sockaddr_un.
 */
export function tempDir(): string {
  let base = tmpdir();
  if (Buffer.byteLength(join(base, 'ckv-it-XXXXXX', 'ckv.sock')) > socketPathBytesMax && existsSync('/tmp')) base = '/tmp';
  const dir = mkdtempSync(join(base, 'ckv-it-'));
  tempDirs.add(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Waiting

export interface WaitOptions {
  timeoutMs: number;
  /** What we are waiting for, for the error message: "node to answer status". */
  what: string;
  intervalMs?: number;
}

/** Thrown by a waitFor condition to stop waiting at once (other errors count as "not yet"). */
export class GiveUp extends Error {
  override name = 'GiveUp';
}

/**
 * Polls `condition` until it returns true; throws `timed out ... waiting for <what>` at the
 * deadline. A condition that throws counts as "not yet" (the last error is reported on
 * timeout), except a GiveUp error, which ends the wait at once.
 */
export async function waitFor(condition: () => Promise<boolean> | boolean, options: WaitOptions): Promise<void> {
  const { timeoutMs, what, intervalMs = 25 } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
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

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when the process has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<Exit> {
  if (hasExited(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
}

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
 * socket), and closes it after. For test setup that is not itself under test: a CLI
 * invocation costs a Node.js start, a client call a few milliseconds.
 */
export async function withControlClient<T>(socket: string, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = ControlClient.connect(socket);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** `Status` through the control client, with a short deadline. */
export function statusOf(socket: string, timeoutMs = 5000): Promise<StatusMessage> {
  return withControlClient(socket, (client) => withDeadline(client.status(), timeoutMs, `status from ${socket}`));
}

// ---------------------------------------------------------------------------------------------
// Nodes

export interface StartNodeOptions {
  /** Data directory; default a fresh temp directory. Pass an old one to restart a node. */
  dataDir?: string;
  /** Extra `node start` flags. */
  args?: string[];
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
  /**
   * Keep the node off the network unless `args` says otherwise: adds
   * `--listen /ip4/127.0.0.1/tcp/0` (no fixed port), `--http off` and `--no-mdns` when `args`
   * has no `--listen` / `--http` / `--mdns`/`--no-mdns`. Default true; false adds nothing.
   */
  isolated?: boolean;
  /** How long the node may take to answer `status`. Default 20 s. */
  readyTimeoutMs?: number;
}

export interface RunningNode {
  dataDir: string;
  socket: string;
  process: ChildProcess;
  /** Resolves when the process has exited and its output is all read. */
  exited: Promise<Exit>;
  /** Everything the node wrote to stderr (its log) so far; all of it once `exited` resolved. */
  stderrText(): string;
  /** SIGTERM, then wait for the exit (SIGKILL and throw if it takes over `timeoutMs`). */
  stop(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL (kill -9), then wait for the exit. */
  kill(): Promise<Exit>;
  /** `Status` through the control client. */
  status(): Promise<StatusMessage>;
}

function isolationArgs(args: string[]): string[] {
  const extra: string[] = [];
  if (!args.includes('--listen')) extra.push('--listen', '/ip4/127.0.0.1/tcp/0');
  if (!args.some((a) => a === '--http' || a.startsWith('--http='))) extra.push('--http', 'off');
  if (!args.includes('--mdns') && !args.includes('--no-mdns')) extra.push('--no-mdns');
  return extra;
}

/**
 * Spawns `node bin/ckv.js node start --data-dir DIR ...` and resolves once the control socket
 * exists, accepts connections and answers `Status`. Throws (with the node's stderr) if the
 * process exits first or the deadline passes.
 */
export async function startNode(options: StartNodeOptions = {}): Promise<RunningNode> {
  const dataDir = options.dataDir ?? tempDir();
  const socket = join(dataDir, 'ckv.sock');
  if (Buffer.byteLength(socket) > socketPathBytesMax) throw new Error(`socket path too long for a Unix socket: ${socket}`);
  const args = options.args ?? [];
  const startArgs = ['node', 'start', '--data-dir', dataDir, ...args, ...(options.isolated === false ? [] : isolationArgs(args))];
  const child = spawn(process.execPath, [ckvBin, ...startArgs], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  child.stdout!.resume();
  // 'close' comes after 'exit' once stdout and stderr are drained: then the whole log is in.
  const closed = new Promise<void>((done) => child.once('close', () => done()));
  const exited = exitOf(child).then(async (exit) => {
    await withDeadline(closed, 5000, 'the node output to close').catch(() => undefined);
    return exit;
  });

  const node: RunningNode = {
    dataDir,
    socket,
    process: child,
    exited,
    stderrText: () => stderr,
    async stop(timeoutMs = 15_000) {
      if (!hasExited(child)) child.kill('SIGTERM');
      try {
        return await withDeadline(exited, timeoutMs, `node ${child.pid} to exit after SIGTERM`);
      } catch (error) {
        child.kill('SIGKILL');
        await exited;
        throw error;
      }
    },
    async kill() {
      if (!hasExited(child)) child.kill('SIGKILL');
      return withDeadline(exited, 10_000, `node ${child.pid} to exit after SIGKILL`);
    },
    status: () => statusOf(socket),
  };

  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  try {
    await waitFor(
      async () => {
        if (hasExited(child)) {
          throw new GiveUp(`node exited before answering status (code ${child.exitCode}, signal ${child.signalCode})`);
        }
        // A stale socket of a killed node may still exist: it must also accept connections.
        if (!existsSync(socket) || !(await canConnect(socket))) return false;
        await statusOf(socket, 2000);
        return true;
      },
      { timeoutMs: readyTimeoutMs, what: `the node at ${socket} to answer status` },
    );
  } catch (error) {
    if (!hasExited(child)) child.kill('SIGKILL');
    await exited;
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\nnode stderr:\n${stderr}`);
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// The CLI

export interface CliOptions {
  /** `--socket S` (before the command). Omitted: no --socket flag. */
  socket?: string;
  /** Written to standard input, then it is closed. Omitted: standard input is empty. */
  input?: Buffer;
  env?: NodeJS.ProcessEnv;
  /** runCli only: SIGKILL and reject if the command runs longer. Default 30 s. */
  timeoutMs?: number;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface BackgroundCli {
  process: ChildProcess;
  exited: Promise<Exit>;
  stdout(): Buffer;
  stdoutText(): string;
  stderrText(): string;
  /** Resolves with everything once the process exits. */
  result: Promise<CliResult>;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
}

/** Spawns `node bin/ckv.js [--socket S] ...args` in the background (e.g. `watch`). */
export function spawnCli(args: string[], options: CliOptions = {}): BackgroundCli {
  const argv = [ckvBin, ...(options.socket !== undefined ? ['--socket', options.socket] : []), ...args];
  const child = spawn(process.execPath, argv, {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  track(child);
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (err += chunk));
  child.stdin!.on('error', () => undefined); // EPIPE if the command exits before reading
  child.stdin!.end(options.input ?? Buffer.alloc(0));
  const exited = exitOf(child);
  // 'close' fires after the exit and after stdout/stderr are fully read.
  const closed = new Promise<Exit>((done) => child.once('close', (code, signal) => done({ code, signal })));
  const stdout = (): Buffer => Buffer.concat(out);
  return {
    process: child,
    exited,
    stdout,
    stdoutText: () => stdout().toString('utf8'),
    stderrText: () => err,
    result: closed.then(({ code, signal }) => ({ code, signal, stdout: stdout(), stderr: err })),
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (!hasExited(child)) child.kill(signal);
      return withDeadline(exited, 10_000, `ckv ${args.join(' ')} to exit after ${signal}`);
    },
  };
}

/** Runs `node bin/ckv.js [--socket S] ...args` to completion. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const cli = spawnCli(args, options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  try {
    return await withDeadline(cli.result, timeoutMs, `ckv ${args.join(' ').slice(0, 200)} to finish`);
  } catch (error) {
    cli.process.kill('SIGKILL');
    throw error;
  }
}

/** Like runCli, but throws (with stderr) unless the command exits 0. */
export async function runCliOk(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await runCli(args, options);
  if (result.code !== 0) {
    throw new Error(`ckv ${args.join(' ').slice(0, 200)} exited ${result.code ?? result.signal}: ${result.stderr}`);
  }
  return result;
}
