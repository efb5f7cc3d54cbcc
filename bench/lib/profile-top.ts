/**
 * Top self-time functions of a V8 .cpuprofile (from `node --cpu-prof`): each sample is
 * charged to the innermost frame (its self time), summed by function and source location.
 * (bench/lib/cpu-profile.ts instead charges samples to the package responsible.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../harness/index.js';
import { attributeProfile, type CpuProfile } from './cpu-profile.js';
import { unbundleFrames } from './profile-sources.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTimeRow {
  function: string;
  /** file:line, shortened to the part after node_modules/ or the repository. */
  location: string;
  selfMs: number;
  /** Share of the busy (non-idle) sampled time. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  /** Sampled time minus (idle): what the process spent on CPU. */
  busyMs: number;
  top: SelfTimeRow[];
  /** Busy time by the package responsible (bench/lib/cpu-profile.ts attribution), largest first. */
  byPackage: { owner: string; ms: number; share: number }[];
}

function shortLocation(url: string, line: number): string {
  if (url === '') return '';
  let path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) path = path.slice(nm + '/node_modules/'.length);
  else {
    const dist = path.lastIndexOf('/dist/');
    if (dist >= 0) path = path.slice(dist + 1);
  }
  return `${path}:${line + 1}`;
}

export function summarizeProfile(file: string, topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  unbundleFrames(profile.nodes.map((node) => node.callFrame)); // frames of ckv's bundles back to their modules
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const micros = deltas[i + 1] ?? 0;
    selfMicros.set(samples[i]!, (selfMicros.get(samples[i]!) ?? 0) + micros);
  }
  const byFunction = new Map<string, { fn: string; location: string; micros: number }>();
  let totalMicros = 0;
  let idleMicros = 0;
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    totalMicros += micros;
    if (frame.functionName === '(idle)') idleMicros += micros;
    const fn = frame.functionName || '(anonymous)';
    const location = shortLocation(frame.url, frame.lineNumber);
    const key = `${fn}\t${location}`;
    const slot = byFunction.get(key) ?? { fn, location, micros: 0 };
    slot.micros += micros;
    byFunction.set(key, slot);
  }
  const top = [...byFunction.values()]
    .filter((row) => row.fn !== '(idle)')
    .sort((a, b) => b.micros - a.micros)
    .slice(0, topN)
    .map((row) => ({ function: row.fn, location: row.location, selfMs: row.micros / 1000, share: totalMicros > idleMicros ? row.micros / (totalMicros - idleMicros) : 0 }));
  const busyMs = (totalMicros - idleMicros) / 1000;
  const { byOwner } = attributeProfile(profile as unknown as CpuProfile, repoRoot);
  const byPackage = [...byOwner]
    .filter(([owner]) => owner !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([owner, ms]) => ({ owner, ms, share: busyMs > 0 ? ms / busyMs : 0 }));
  return { file, totalMs: totalMicros / 1000, idleMs: idleMicros / 1000, busyMs, top, byPackage };
}

/** Every .cpuprofile under `dir` (one level of subdirectories: one per node). */
export function findProfiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (path: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const full = join(path, name);
      if (name.endsWith('.cpuprofile')) found.push(full);
      else if (depth < 2 && !name.includes('.')) walk(full, depth + 1);
    }
  };
  walk(dir, 0);
  return found;
}
