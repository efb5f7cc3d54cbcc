/**
 * `ckv status [--json]`: the node's identity, counts, Merkle root, clock and counters, and each
 * --bootstrap address: `bootstrap` lines for those that work, `warning` lines for those that
 * do not (the likely cause, the last error, since when, how many dials failed).
 */
import type { Command } from 'commander';
import type { BootstrapMessage, DeliveryStatusMessage, PartitionedStatusMessage } from '../control/proto.js';
import { formatAge, formatBytes, printJson, withClient, writeStdout } from './common.js';
import { statusJson, versionTime } from './json.js';
import { gcText } from './gc.js';

export function register(program: Command): void {
  program
    .command('status')
    .description("show the node's id, cluster, bootstrap addresses (a warning for each that fails), key counts, disk use, Merkle root, clock and counters")
    .option('--json', 'print as one JSON document (numbers as numbers; README "JSON output")')
    .action(async (options: { json?: boolean }, command: Command) => {
      const [s, { peers }] = await withClient(command, (client) => Promise.all([client.status(), client.peers()]));
      if (options.json) {
        await printJson(statusJson(s));
        return;
      }
      const nowMs = Date.now();
      const lastSyncMs = Math.max(0, ...peers.map((p) => Number(p.lastSyncMs)));
      const up = peers.filter((p) => p.state === 'up').length;
      const lines = [
        `node        ${s.nodeId}${s.peerId ? `  (peer ${s.peerId})` : ''}`,
        `cluster     ${s.cluster}`,
        `listening   ${s.listenAddresses.length ? s.listenAddresses.join(' ') : '-'}`,
        `http        ${s.httpUrl || 'off'}`,
        ...s.bootstrap.map(bootstrapLine),
        `peers       ${up} up of ${peers.length} known${lastSyncMs > 0 ? `; last synced ${formatAge(nowMs - lastSyncMs)}` : peers.length > 0 ? '; not synced yet' : ''}`,
        `keys        ${s.keyCount} (${s.tombstoneCount} tombstones)`,
        `disk        ${formatBytes(Number(s.bytesOnDisk))} in ${s.dataDir}`,
        `merkle root ${s.merkleRoot.slice(0, 16)}`,
        `hlc         ${s.hlcNow?.text ?? '-'}${s.hlcNow ? ` (${versionTime(s.hlcNow)})` : ''}`,
        ...(s.clockWarning ? [`clock       ${s.clockWarning}`] : []),
        `uptime      ${formatDuration(Number(s.uptimeMs))}`,
        `incarnation ${s.incarnation}`,
        `version     ${s.version}`,
        ...(s.partitioned ? partitionedLines(s.partitioned) : []),
        ...(s.delivery ? deliveryLines(s.delivery) : []),
        ...(s.gc ? [`gc          ${gcText(s.gc).split('\n')[0]!.replace(/^watermark\s+/, 'watermark ')}`] : []),
      ];
      // Every declared counter is in the reply; the text shows those that counted something.
      const counters = Object.entries(s.counters).filter(([, v]) => v !== '0');
      if (counters.length) lines.push(`counters    ${counters.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      await writeStdout(lines.join('\n') + '\n');
    });
}

/** Partitioned mode: the layout line, the change in progress, a mismatch. */
function partitionedLines(p: PartitionedStatusMessage): string[] {
  const lines = [
    `layout      v${p.layoutVersion}${p.activeVersions.length > 1 ? ` (active ${p.activeVersions.join(', ')})` : ''}, replicas ${p.replicas}, ` +
      `${p.partitionsOwned} partitions owned, ${p.partitionsUnderReplicated} under-replicated${p.conflicts > 0 ? `, ${p.conflicts} conflicts` : ''}`,
  ];
  if (p.activeVersions.length > 1) lines.push(`rebalance   ${p.rebalanceDone} partition-replicas synced, ${p.rebalancePending} pending`);
  if (p.rebalanceBlockedBy.length > 0) lines.push(`blocked by  ${p.rebalanceBlockedBy.join(' ')} (not up: ckv node remove NODE if gone)`);
  if (p.mismatch) lines.push(`error       ${p.mismatch}`);
  if (p.removedAt !== '0') lines.push(`removed     at layout v${p.removedAt}: this node refuses to serve (stop it, then ckv purge --all --data-dir DIR; it rejoins as a new member)`);
  return lines;
}

/** Partitioned mode: writes kept for owners that have not acknowledged them, per owner. */
function deliveryLines(d: DeliveryStatusMessage): string[] {
  if (d.pendingRows === '0') return ['delivery    nothing pending'];
  return [
    `delivery    ${d.pendingRows} pending (${formatBytes(Number(d.pendingBytes))}), oldest ${formatDuration(Number(d.oldestAgeMs))}`,
    ...d.targets.map((t) => `  to ${t.node}  ${t.rows} rows, ${formatBytes(Number(t.bytes))}, oldest ${formatDuration(Number(t.oldestAgeMs))}, next attempt in ${formatDuration(Number(t.nextAttemptInMs))}`),
  ];
}

function bootstrapLine(b: BootstrapMessage): string {
  if (b.state === 'failing' || b.state === 'foreign') {
    const since = new Date(Number(b.sinceMs)).toISOString();
    const failures = b.state === 'failing' ? `, ${b.failures} failed dial${b.failures === '1' ? '' : 's'}` : '';
    return `warning     bootstrap ${b.address} ${b.state} since ${since}${failures}: ${b.lastError}`;
  }
  return `bootstrap   ${b.address} ${b.state}${b.peerId && b.state === 'connected' ? ` (peer ${b.peerId})` : ''}`;
}

/** "42.0 s", "12 min 5 s", "3 h 2 min", "2 d 4 h". */
function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}
