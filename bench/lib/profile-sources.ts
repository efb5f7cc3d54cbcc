/**
 * Frames of ckv's bundles in a V8 .cpuprofile, mapped back to the files they were built from.
 *
 * Since `ckv node start` loads one bundle (dist/src/cli/ckv.node.cjs; the other commands the
 * ESM bundle and its chunks, scripts/bundle.mjs), every frame of ckv and of its packages in a
 * node's profile names that one file: attributing samples by package or by ckv module, as the
 * bench's profile summaries and per-write-cpu.ts's categories do, saw a single owner. Each
 * bundle has a source map beside it; `unbundleFrames` rewrites each bundled frame's url, line
 * and column to the original's: a package's file under node_modules/ as the package's own source
 * map names it (its TypeScript source, for packages that ship one), and a ckv source
 * (src/**\/*.ts) under the name of the module tsc makes of it (dist/src/**\/*.js), where the
 * bench's tools look for ckv's files, with the line and column of the TypeScript source (what
 * the bundle's map gives). A frame's position is where its function begins, so a function
 * maps to the file that defines it. Frames with no map, or a position the map does not cover,
 * are left as they are.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { repoRoot } from '../../harness/index.js';

export interface ProfileFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

/** The bundles: scripts/bundle.mjs writes them here, each with a `.map` beside it. */
const bundleDir = join(repoRoot, 'dist', 'src', 'cli');
const bundleName = /^ckv\.(node\.cjs|bundle\.mjs|chunk-[A-Z0-9]+\.mjs)$/;

/** A bundle's source map and the directory its sources are relative to; undefined: none. */
type Loaded = { map: SourceMap; dir: string } | undefined;

/** Rewrites, in place, every frame of `frames` that lies in one of ckv's bundles (see the top comment). */
export function unbundleFrames(frames: Iterable<ProfileFrame>): void {
  const maps = new Map<string, Loaded>();
  for (const frame of frames) {
    const path = bundlePath(frame.url);
    if (path === undefined) continue;
    let loaded = maps.get(path);
    if (!maps.has(path)) {
      loaded = loadMap(path);
      maps.set(path, loaded);
    }
    if (loaded === undefined) continue;
    const entry = loaded.map.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (entry.originalSource === undefined || entry.originalLine === undefined) continue;
    frame.url = pathToFileURL(moduleOf(resolve(loaded.dir, entry.originalSource))).href;
    frame.lineNumber = entry.originalLine;
    frame.columnNumber = entry.originalColumn ?? 0;
  }
}

/** The bundle file a frame's url names (a path or a file: URL), or undefined. */
function bundlePath(url: string): string | undefined {
  if (url === '') return undefined;
  let path: string;
  try {
    path = url.startsWith('file:') ? fileURLToPath(url) : url;
  } catch {
    return undefined;
  }
  if (dirname(path) !== bundleDir) return undefined;
  return bundleName.test(path.slice(bundleDir.length + 1)) ? path : undefined;
}

function loadMap(bundle: string): Loaded {
  const file = `${bundle}.map`;
  if (!existsSync(file)) return undefined;
  try {
    return { map: new SourceMap(JSON.parse(readFileSync(file, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]), dir: dirname(file) };
  } catch {
    return undefined;
  }
}

/** A ckv source under src/ as its compiled module under dist/src/; any other path as it is. */
function moduleOf(source: string): string {
  const fromSrc = relative(join(repoRoot, 'src'), source);
  if (fromSrc.startsWith('..') || !fromSrc.endsWith('.ts')) return source;
  return join(repoRoot, 'dist', 'src', fromSrc.split(sep).join('/').replace(/\.ts$/, '.js'));
}
