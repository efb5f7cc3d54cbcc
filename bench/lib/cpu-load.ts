/**
 * How busy the machine was during a scenario, and how much of that was not the bench: the
 * whole machine's busy time (/proc/stat) against the CPU time of the bench process, its
 * reaped children (cutime/cstime) and its live children (each /proc/<pid>/stat). "Other
 * processes" = machine busy - ours, in cores: a noise indicator printed with every scenario
 * (Linux only; elsewhere the figures are NaN).
 */
import { readFileSync } from 'node:fs';

const ticksPerSecond = 100; // USER_HZ on Linux

export interface CpuSnapshot {
  atMs: number;
  machineBusy: number;
  machineTotal: number;
  ours: number;
}

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0); // without guest (counted in user)
  return { busy: total - idle, total };
}

/**
 * /proc/<pid>/stat's fields from the state field on (index 0: state; stat's field n is index
 * n - 3: minflt 7, utime 11, stime 12, cutime 13, cstime 14); undefined if unreadable.
 */
function procStatFields(pid: number | 'self'): number[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command may contain spaces: fields start after the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ').map(Number);
  } catch {
    return undefined;
  }
}

function processTicks(pid: number | 'self', withChildren: boolean): number {
  const fields = procStatFields(pid);
  if (fields === undefined) return 0;
  const own = (fields[11] ?? 0) + (fields[12] ?? 0);
  return withChildren ? own + (fields[13] ?? 0) + (fields[14] ?? 0) : own;
}

export function cpuSnapshot(livePids: readonly number[]): CpuSnapshot {
  try {
    const { busy, total } = machineTicks();
    let ours = processTicks('self', true);
    for (const pid of livePids) ours += processTicks(pid, false);
    return { atMs: Date.now(), machineBusy: busy, machineTotal: total, ours };
  } catch {
    return { atMs: Date.now(), machineBusy: Number.NaN, machineTotal: Number.NaN, ours: Number.NaN };
  }
}

export interface CpuUse {
  seconds: number;
  /** Average cores busy on the whole machine. */
  machineCores: number;
  /** Average cores used by the bench and its node processes. */
  benchCores: number;
  /** Average cores used by everything else: noise. */
  otherCores: number;
}

/**
 * CPU use between two snapshots. Children that exited in between and were reaped are in the
 * bench's cutime; a child alive at `a` but gone at `b` would count twice, so `b` must be taken
 * with the children alive at `a` removed only once they are reaped (the runner takes `b`
 * after every node of the scenario has stopped, when all of them are reaped).
 */
export function cpuUse(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const seconds = (b.atMs - a.atMs) / 1000;
  const machineCores = (b.machineBusy - a.machineBusy) / ticksPerSecond / seconds;
  const benchCores = (b.ours - a.ours) / ticksPerSecond / seconds;
  return { seconds, machineCores, benchCores, otherCores: Math.max(0, machineCores - benchCores) };
}

/** CPU time (user + system) a live process has used so far, in ms; NaN if unreadable. */
export function processCpuMs(pid: number): number {
  const fields = procStatFields(pid);
  return fields === undefined ? Number.NaN : (((fields[11] ?? 0) + (fields[12] ?? 0)) * 1000) / ticksPerSecond;
}

/**
 * What a live process has cost so far: user and system CPU ms (all its threads) and its minor
 * page faults (memory it touched for the first time). On the reference VM a first touch of
 * anonymous memory costs ~11 us a 4 KiB page (docs/measurements.md, 2026-12-06 (8)), so the
 * faults say how much of the system time is memory. Undefined where /proc is not there.
 */
export interface ProcessCost {
  userMs: number;
  sysMs: number;
  minorFaults: number;
}

export function processCost(pid: number): ProcessCost | undefined {
  const fields = procStatFields(pid);
  if (fields === undefined) return undefined;
  return { minorFaults: fields[7] ?? 0, userMs: ((fields[11] ?? 0) * 1000) / ticksPerSecond, sysMs: ((fields[12] ?? 0) * 1000) / ticksPerSecond };
}

/** Summed CPU ms of `pids` (NaN if any is unreadable). */
export function processesCpuMs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
}

export interface ProcessIo {
  /** write/read system calls (sockets, files, pipes). */
  syscw: number;
  syscr: number;
  /** Bytes passed to write/read calls. */
  wchar: number;
  rchar: number;
}

/** /proc/<pid>/io counters of a live process (zeros if unreadable). */
export function processIo(pid: number): ProcessIo {
  const io: ProcessIo = { syscw: 0, syscr: 0, wchar: 0, rchar: 0 };
  try {
    for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
      const [name, value] = line.split(': ');
      if (name === 'syscw' || name === 'syscr' || name === 'wchar' || name === 'rchar') io[name] = Number(value);
    }
  } catch {
    // not Linux, or the process is gone
  }
  return io;
}
