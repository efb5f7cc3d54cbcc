/**
 * Timed runs of a command for benches: wall time from spawn() to exit, a hard timeout
 * (SIGKILL), captured output, and peak RSS read from /proc (Linux) or `/usr/bin/time -v`.
 * The processes are registered with the harness cleanup registry (harness/processes.ts).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { exitOf, spawnTracked } from '../../harness/index.js';

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
export async function runTimed(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const stdoutBytesMax = options.stdoutBytesMax ?? 1024 * 1024;
  const started = performance.now();
  const child = spawnTracked(command, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
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
    const { code, signal } = await Promise.race([exitOf(child), spawnError]);
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
