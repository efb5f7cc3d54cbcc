/**
 * The ckv CLI as a child process: `node bin/ckv.js [--socket S] ...args`, as a user runs it.
 * `spawnCli` starts a command in the background (e.g. `watch`) and collects its output;
 * `runCli` runs one to completion under a deadline (SIGKILL past it); `runCliOk` also
 * insists on exit code 0. Every process is registered with the cleanup registry.
 */
import { type ChildProcess } from 'node:child_process';
import { ckvBin, exitOf, hasExited, repoRoot, spawnTracked, type Exit } from './processes.js';
import { ckvChildEnv } from '../src/util/child-env.js';
import { withDeadline } from './wait.js';

export interface CliOptions {
  /** `--socket S` (before the command). Omitted: no --socket flag. */
  socket?: string;
  /** Written to standard input, then it is closed. Omitted: standard input is empty. */
  input?: Buffer;
  env?: NodeJS.ProcessEnv;
  /** Command prefix, e.g. ['setpriv', '--reuid=nobody', ...] to run it as another user. */
  launcher?: string[];
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
  const [command, ...prefix] = options.launcher ?? [];
  const child = spawnTracked(command ?? process.execPath, command === undefined ? argv : [...prefix, process.execPath, ...argv], {
    cwd: repoRoot,
    env: ckvChildEnv(process.env, options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
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
