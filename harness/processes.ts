/**
 * The cleanup registry: every child process and temp directory a test or bench creates is
 * registered here, and removed on every exit path.
 *
 * - `track(child)` registers a spawned process; it leaves the registry when it exits.
 * - `tempDir(prefix)` creates `<tmp>/<prefix>XXXXXX` and registers it for removal.
 * - `addCleanup(fn)` registers a synchronous cleanup step (close clients, delete network
 *   namespaces); steps run after the processes are killed, before temp dirs are removed.
 * - `cleanupAll()` SIGKILLs every live process, waits for the exits (bounded), runs the
 *   steps and removes the temp dirs; `cleanupNow()` does the same synchronously without
 *   waiting. A process 'exit' handler, installed when this module is loaded, calls
 *   `cleanupNow()` as a last resort; `exitOnSignals()` makes Ctrl-C / SIGTERM / SIGHUP exit
 *   through it too (benches and harness/testing.ts call it). The node:test hook that calls
 *   `cleanupAll()` after each test file lives in harness/testing.ts, so benches never load
 *   node:test.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withDeadline } from './wait.js';

/** The repository root: this file runs from dist/harness/. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * The ckv command, as a user runs it: the harness starts `node bin/ckv.js` with the environment
 * bin/ckv.js's launcher line gives it when executed (`npx ckv`, an installed `ckv`): without
 * NODE_EXTRA_CA_CERTS (src/util/child-env.ts).
 */
export const ckvBin = join(repoRoot, 'bin', 'ckv.js');

/** Socket paths must fit sockaddr_un (108 bytes with the NUL); stay well under. */
export const socketPathBytesMax = 100;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const liveProcesses = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanupSteps: (() => void)[] = [];

/** Whether the process has exited (or was never started). */
export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves when the process has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<Exit> {
  if (hasExited(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
}

/** Registers `child` until it exits (or fails to spawn). */
export function track(child: ChildProcess): ChildProcess {
  liveProcesses.add(child);
  child.once('exit', () => liveProcesses.delete(child));
  child.once('error', () => liveProcesses.delete(child));
  return child;
}

/** `spawn()` + `track()`. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, options));
}

/** Registers a synchronous cleanup step, run by cleanupAll/cleanupNow after the kills. */
export function addCleanup(step: () => void): void {
  cleanupSteps.push(step);
}

/**
 * A fresh temp directory `<os.tmpdir()>/<prefix>XXXXXX` (or under /tmp if os.tmpdir() is so
 * long that a node socket inside would not fit sockaddr_un), removed by the cleanup unless
 * `keep` is set.
 */
export function tempDir(prefix = 'ckv-', options: { keep?: boolean } = {}): string {
  let base = tmpdir();
  if (Buffer.byteLength(join(base, `${prefix}XXXXXX`, 'n00', 'ckv.sock')) > socketPathBytesMax && existsSync('/tmp')) base = '/tmp';
  const dir = mkdtempSync(join(base, prefix));
  if (!options.keep) tempDirs.add(dir);
  return dir;
}

/** Removes a temp directory now (and forgets it). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

function runStepsAndRemoveDirs(): void {
  for (const step of cleanupSteps) {
    try {
      step();
    } catch {
      // a cleanup step must not stop the others
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.clear();
}

/** SIGKILLs every tracked process still running, waits for them, runs the steps, removes every temp dir. */
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
  runStepsAndRemoveDirs();
}

/** The same, synchronously (SIGKILL without waiting): usable from an 'exit' handler. */
export function cleanupNow(): void {
  for (const child of liveProcesses) if (!hasExited(child)) child.kill('SIGKILL');
  liveProcesses.clear();
  runStepsAndRemoveDirs();
}

process.on('exit', cleanupNow);

let signalsHandled = false;

/** On SIGINT, SIGTERM or SIGHUP: say so on stderr and exit (128 + signal number) through cleanupNow. */
export function exitOnSignals(label: string): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${label}: ${signal}: stopping processes and removing temp dirs\n`);
      process.exit(128 + number); // the 'exit' handler runs cleanupNow
    });
  }
}
