/** What every cluster-bench scenario receives and returns. */
import { join } from 'node:path';
import type { CpuUse } from '../lib/cpu-load.js';
import type { Progress } from '../lib/progress.js';
import { findProfiles, summarizeProfile, type ProfileSummary } from '../lib/profile-top.js';

export interface Ctx {
  quick: boolean;
  progress: Progress;
  /** Seed of the bench's own random choices (which node gets a write, values). */
  seed: number;
  /** Set with --profile: nodes run with --cpu-prof into a directory under it. */
  profileRoot: string | undefined;
}

export interface Target {
  scenario: string;
  name: string;
  /** The measured figure the target is about. */
  value: number;
  limit: number;
  unit: string;
  /** '<' : value must be under the limit; '>=' : at least the limit. */
  comparison: '<' | '<=' | '>=';
  pass: boolean;
  /** How the limit was derived (e.g. "2 x raw level 41 ms + 100 ms"). */
  detail: string;
}

export function target(scenario: string, name: string, value: number, comparison: Target['comparison'], limit: number, unit: string, detail: string): Target {
  const pass = comparison === '<' ? value < limit : comparison === '<=' ? value <= limit : value >= limit;
  return { scenario, name, value, limit, unit, comparison, pass: Number.isFinite(value) && pass, detail };
}

/** One line of the overall summary table. */
export interface SummaryRow {
  scenario: string;
  measure: string;
  ckv: string;
  baseline: string;
  ratio: string;
}

export interface DetailTable {
  title: string;
  headers: string[];
  rows: string[][];
  /** Right-align these columns (by index). */
  numeric?: number[];
}

export interface ScenarioResult {
  name: string;
  /** The parameters it ran with. */
  config: Record<string, unknown>;
  /** Everything measured, for the JSON file. */
  data: Record<string, unknown>;
  summary: SummaryRow[];
  details: DetailTable[];
  targets: Target[];
  notes: string[];
  /** Seconds the scenario took. */
  seconds?: number;
  /** Machine CPU use during the scenario (noise indicator). */
  cpu?: CpuUse;
  profiles?: ProfileSummary[];
}

export interface Scenario {
  name: string;
  title: string;
  /** Estimated seconds (for the progress bar). */
  estimateS(quick: boolean): number;
  run(ctx: Ctx): Promise<ScenarioResult>;
}

/** The --cpu-prof directory for a scenario's nodes (undefined without --profile). */
export function profileDirFor(ctx: Ctx, scenario: string, sub = ''): string | undefined {
  return ctx.profileRoot === undefined ? undefined : join(ctx.profileRoot, scenario, sub);
}

/** Summaries of the profiles written under `dir` by nodes named in `names` (all when omitted). */
export function collectProfiles(dir: string | undefined, names?: string[]): ProfileSummary[] {
  if (dir === undefined) return [];
  return findProfiles(dir)
    .filter((file) => names === undefined || names.some((name) => file.includes(`/${name}/`)))
    .map((file) => summarizeProfile(file));
}

/** mulberry32: a small seeded PRNG, so runs pick the same nodes and values. */
export function rng32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` bytes from `rng` (values are random so LevelDB's compression cannot shrink them). */
export function randomValue(rng: () => number, n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const word = Math.floor(rng() * 2 ** 32);
    for (let j = 0; j < 4 && i + j < n; j++) bytes[i + j] = (word >>> (8 * j)) & 0xff;
  }
  return bytes;
}
