/**
 * The status page's partitioned line (partitioned mode only; a full-replication page has
 * none): K, the layout version (and the active versions during a change), partitions this
 * node owns, partitions under-replicated (fewer than K owners up), and the rebalance's
 * progress (partition-replicas of the newest layout synced and pending, the nodes blocking it);
 * a node removed from the layout or refusing to serve says so.
 *
 * DOM contract: `<div id="partitioned" class="health ok|warn" data-replicas data-layout-version
 * data-owned data-under-replicated data-pending data-done data-blocked-by data-removed-at>`
 * (data-blocked-by: node ids joined by ','; data-removed-at: 0 unless removed), its text the line below.
 *
 * `partitionedLine` is also the page's own: page.ts puts its source text into the page's inline
 * script (the server renders the line, the script keeps it current), so it must stay
 * self-contained (no imports, no other module names, plain ES2017 once compiled).
 */

/** The part of the status's `partitioned` block the line shows. */
export interface PartitionedLineInput {
  replicas: number;
  layoutVersion: number;
  activeVersions: number[];
  partitionsOwned: number;
  partitionsUnderReplicated: number;
  rebalance: { pending: number; done: number; blockedBy?: string[] };
  mismatch: string;
  /** The layout version this node was removed at (it refuses to serve), or 0. */
  removedAt: number;
}

/** The line's text, its state ('ok' or 'warn') and its data attributes. */
export function partitionedLine(p: PartitionedLineInput): { text: string; state: string; data: Record<string, string> } {
  const parts = ['replicas ' + String(p.replicas)];
  parts.push(p.layoutVersion === 0 ? 'no layout yet' : 'layout v' + String(p.layoutVersion) + (p.activeVersions.length > 1 ? ' (active v' + p.activeVersions.join(', v') + ')' : ''));
  parts.push(String(p.partitionsOwned) + ' partitions owned');
  parts.push(String(p.partitionsUnderReplicated) + ' under-replicated');
  const blockedBy = p.rebalance.blockedBy || [];
  if (p.activeVersions.length > 1) {
    parts.push('rebalance: ' + String(p.rebalance.done) + ' done, ' + String(p.rebalance.pending) + ' pending' + (blockedBy.length > 0 ? ', blocked by ' + blockedBy.join(', ') : ''));
  } else {
    parts.push('rebalance: none in progress');
  }
  if (p.mismatch) parts.push('refusing to serve: ' + p.mismatch);
  if (p.removedAt > 0) parts.push('removed at layout v' + String(p.removedAt) + ': refusing to serve');
  const warn = p.removedAt > 0 || p.mismatch !== '' || p.layoutVersion === 0 || p.partitionsUnderReplicated > 0 || blockedBy.length > 0;
  return {
    text: 'partitioned \u00b7 ' + parts.join(' \u00b7 '),
    state: warn ? 'warn' : 'ok',
    data: {
      'data-replicas': String(p.replicas),
      'data-layout-version': String(p.layoutVersion),
      'data-owned': String(p.partitionsOwned),
      'data-under-replicated': String(p.partitionsUnderReplicated),
      'data-pending': String(p.rebalance.pending),
      'data-done': String(p.rebalance.done),
      'data-blocked-by': blockedBy.join(','),
      'data-removed-at': String(p.removedAt),
    },
  };
}

/** The server-rendered line ('' in full-replication mode); `escape` escapes text for HTML. */
export function partitionedLineHtml(p: PartitionedLineInput | undefined, escape: (text: string) => string): string {
  if (!p) return '';
  const line = partitionedLine(p);
  const attributes = Object.entries(line.data)
    .map(([name, value]) => `${name}="${escape(value)}"`)
    .join(' ');
  return `<div id="partitioned" class="health ${line.state}" ${attributes}>${escape(line.text)}</div>`;
}

/** The page script's part: keeps #partitioned current from each snapshot (absent: nothing to do). */
export const partitionedScript = `
  ${partitionedLine.toString()}
  function renderPartitioned(p) {
    var node = document.getElementById('partitioned');
    if (!node || !p) return;
    var line = partitionedLine(p);
    if (node.textContent !== line.text) node.textContent = line.text;
    node.className = 'health ' + line.state;
    for (var name in line.data) node.setAttribute(name, line.data[name]);
  }
`;
