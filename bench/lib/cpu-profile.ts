/**
 * Reads V8 .cpuprofile files (from `node --cpu-prof`) and splits the sampled time by who is
 * responsible: each sample goes to the innermost frame on its stack that belongs to a
 * package (node_modules/<pkg>) or to the project's own compiled code (dist/...). Module
 * compilation and evaluation done by Node's loader on behalf of a `require`/`import` in
 * package X therefore counts for X. Samples with no such frame are split into Node's own
 * work (bootstrap, ESM loader), garbage collection, (program) and (idle) (waiting for I/O).
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** The package a script URL belongs to, or 'ckv (dist)', or undefined for Node internals. */
export function ownerOf(url: string, projectMarker: string): string | undefined {
  if (url === '') return undefined;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    const name = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : rest[0];
    return name;
  }
  if (url.includes(projectMarker)) return 'ckv (dist + bin)';
  return undefined;
}

/** Milliseconds of samples per owner, plus the profile's total duration. */
export function attributeProfile(profile: CpuProfile, projectMarker: string): { byOwner: Map<string, number>; totalMs: number } {
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const ownerCache = new Map<number, string>();
  const ownerForNode = (id: number): string => {
    const cached = ownerCache.get(id);
    if (cached !== undefined) return cached;
    const leaf = byId.get(id);
    let owner: string | undefined;
    let cursor: number | undefined = id;
    for (let hops = 0; cursor !== undefined && hops < 10_000; hops++) {
      const node = byId.get(cursor);
      if (!node) break;
      owner = ownerOf(node.callFrame.url, projectMarker);
      if (owner !== undefined) break;
      cursor = parent.get(cursor);
    }
    if (owner === undefined) {
      const name = leaf?.callFrame.functionName ?? '';
      owner = name === '(garbage collector)' || name === '(program)' || name === '(idle)' ? name : 'node internals (bootstrap; ESM loader: resolve, compile, link)';
    }
    ownerCache.set(id, owner);
    return owner;
  };
  const byOwner = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample; charge the interval that ends at the
    // next sample to this one (the last sample gets nothing).
    const micros = deltas[i + 1] ?? 0;
    const owner = ownerForNode(samples[i]!);
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + micros / 1000);
  }
  return { byOwner, totalMs: (profile.endTime - profile.startTime) / 1000 };
}
