/**
 * Child processes for benches: every spawned process is tracked so that it can be ended on
 * any exit path (normal, error, Ctrl-C), runs have a hard timeout, and peak RSS can be read
 * from /proc (Linux) or /usr/bin/time -v.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Tracks children so they can all be killed on the way out. */
export class ProcessTracker {
  private readonly live = new Set<ChildProcess>();

  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
    const child = spawn(command, args, options);
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
    child.once('error', () => this.live.delete(child));
    return child;
  }

  /** SIGKILL every child still running (synchronous: usable from an 'exit' handler). */
  killAllNow(): void {
    for (const child of this.live) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    this.live.clear();
  }
}

/** Resolves once `child` exited (or already had), with its code and signal. */
export function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Resolves with how it ended. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode, forced: false };
  const exited = waitExit(child);
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') return { ...first, forced: false };
  child.kill('SIGKILL');
  return { ...(await exited), forced: true };
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs: number;
  /** Keep at most this many stdout bytes (default 1 MiB). */
  stdoutBytesMax?: number;
  /** Poll /proc/<pid>/status VmHWM every few ms while it runs (a lower bound on the peak). */
  pollPeakRss?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From just before spawn() to the 'exit' event, in ms. */
  wallMs: number;
  stdout: Buffer;
  stderr: string;
  timedOut: boolean;
  /** Highest VmHWM seen by polling, in bytes (only with pollPeakRss). */
  polledPeakRssBytes?: number;
}

/** Run a command to completion with a hard timeout (SIGKILL), capturing its output. */
export async function runTimed(tracker: ProcessTracker, command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const stdoutBytesMax = options.stdoutBytesMax ?? 1024 * 1024;
  const started = performance.now();
  const child = tracker.spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdoutChunks: Buffer[] = [];
  let stdoutBytes = 0;
  child.stdout!.on('data', (chunk: Buffer) => {
    if (stdoutBytes < stdoutBytesMax) stdoutChunks.push(chunk.subarray(0, stdoutBytesMax - stdoutBytes));
    stdoutBytes += chunk.byteLength;
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    if (stderr.length < 64 * 1024) stderr += text;
  });
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  let polledPeak: number | undefined;
  let poller: NodeJS.Timeout | undefined;
  if (options.pollPeakRss && child.pid !== undefined) {
    const pid = child.pid;
    poller = setInterval(() => {
      const hwm = readProcStatus(pid)?.VmHWM;
      if (hwm !== undefined) polledPeak = Math.max(polledPeak ?? 0, hwm);
    }, 5);
  }
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  try {
    const { code, signal } = await Promise.race([waitExit(child), spawnError]);
    const wallMs = performance.now() - started;
    // Let the pipes drain (bounded: they close right after exit).
    await Promise.race([
      new Promise((resolve) => child.once('close', resolve)),
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ]);
    const result: RunResult = { code, signal, wallMs, stdout: Buffer.concat(stdoutChunks), stderr, timedOut };
    if (polledPeak !== undefined) result.polledPeakRssBytes = polledPeak;
    return result;
  } finally {
    clearTimeout(killer);
    if (poller) clearInterval(poller);
  }
}

/** /proc/<pid>/status fields given in kB, as bytes (VmRSS, VmHWM, ...); undefined if gone. */
export function readProcStatus(pid: number): Record<string, number> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const fields: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (match) fields[match[1]!] = Number(match[2]) * 1024;
  }
  return fields;
}

/** Reset VmHWM to the current RSS (Linux >= 4.0, own processes). False if not possible. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Whether `/usr/bin/time -v` works here (GNU time; prints "Maximum resident set size"). */
export function gnuTimeAvailable(path = '/usr/bin/time'): boolean {
  const probe = spawnSync(path, ['-v', 'true'], { encoding: 'utf8', timeout: 5000 });
  return probe.status === 0 && /Maximum resident set size/.test(probe.stderr ?? '');
}

/** The "Maximum resident set size (kbytes)" of a `/usr/bin/time -v -o FILE` report, in bytes. */
export function parseGnuTimeMaxRss(report: string): number | undefined {
  const match = /Maximum resident set size \(kbytes\):\s*(\d+)/.exec(report);
  return match ? Number(match[1]) * 1024 : undefined;
}
