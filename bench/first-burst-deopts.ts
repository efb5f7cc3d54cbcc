/**
 * Which functions V8 throws compiled code away for ("deoptimizes") during a fresh cluster's
 * first burst of writes, node by node: code the warm-up (src/node/warm-up.ts) compiled for
 * objects or values of another shape than the node's own, or for branches it never took, is
 * thrown away at the node's first real writes and runs uncompiled until V8 compiles it again.
 * A fresh cluster of `--nodes` runs under `--trace-deopt` (each node's output in a log file of
 * its own), waits for the mesh and `--settle-ms` (the warm-ups run then), and sends issue 13's
 * burst (`--writes` puts by PutMany of 1,000, 4 in flight, until every node holds the last);
 * the deopts logged between the burst's start and end are printed per node as
 * function(reason), then a second burst's, which should have few.
 *
 *   npm run build && node dist/bench/first-burst-deopts.js [--nodes 3] [--writes 5000] [--settle-ms 2000]
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cluster, cleanupNow, exitOnSignals, sleep } from '../harness/index.js';
import { burstUntilHeld } from './lib/burst.js';
import { assertNodeBundleFresh } from './lib/node-code.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    writes: { type: 'string', default: '5000' },
    'settle-ms': { type: 'string', default: '2000' },
  },
});
const nodes = Number(values.nodes);
const writes = Number(values.writes);
const settleMs = Number(values['settle-ms']);
const value = new Uint8Array(100).fill(0x62);
const bursts = ['first', 'second'] as const;

/** `[bailout (kind: ..., reason: R): begin. deoptimizing 0x.. <JSFunction NAME (sfi = ..)>` -> NAME(R). */
function deoptsBetween(log: string, from: string, to: string): string[] {
  const start = log.indexOf(from);
  const end = log.indexOf(to, start);
  if (start < 0 || end < 0) return ['(markers not found)'];
  const found: string[] = [];
  for (const line of log.slice(start, end).split('\n')) {
    const match = /^\[bailout \(kind: [^,]+, reason: ([^)]*)\): begin\. deoptimizing \S+ <JSFunction ([^ >(]*)/.exec(line);
    if (match) found.push(`${match[2] || '(anonymous)'}(${match[1]})`);
  }
  return found;
}

exitOnSignals('first-burst-deopts');
assertNodeBundleFresh();
const logDir = mkdtempSync(join(tmpdir(), 'ckv-deopts-'));
const logOf = (name: string): string => join(logDir, `${name}.log`);
try {
  const cluster = await Cluster.start(nodes, { node: { logFile: logOf('{name}'), nodeFlags: ['--trace-deopt'], readyIntervalMs: 10 } });
  try {
    await cluster.waitMesh(30_000);
    await sleep(settleMs);
    // The nodes append to their logs as they run; the markers go in between, in order.
    const mark = (text: string): void => {
      for (const node of cluster.nodes) appendFileSync(logOf(node.name), `=== ${text}\n`);
    };
    for (const burst of bursts) {
      mark(`${burst} burst begins`);
      const { heldMs } = await burstUntilHeld(cluster, writes, (i) => `${burst}/${i}`, () => value, 1000, 4);
      mark(`${burst} burst ends`);
      console.log(`${burst} burst: ${writes} writes held by every node after ${heldMs.toFixed(0)} ms`);
      await sleep(500);
    }
    for (const node of cluster.nodes) {
      const log = readFileSync(logOf(node.name), 'utf8');
      for (const burst of bursts) {
        const deopts = deoptsBetween(log, `=== ${burst} burst begins`, `=== ${burst} burst ends`);
        console.log(`${node.name}, ${burst} burst: ${deopts.length} deopts${deopts.length > 0 ? `: ${deopts.join(' ')}` : ''}`);
      }
    }
  } finally {
    await cluster.stop();
  }
} finally {
  rmSync(logDir, { recursive: true, force: true });
  cleanupNow();
}
