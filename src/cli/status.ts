/**
 * `ckv status [--json]`: the node's identity, counts, Merkle root, clock and counters, and each
 * --bootstrap address: `bootstrap` lines for those that work, `warning` lines for those that
 * do not (the likely cause, the last error, since when, how many dials failed).
 */
import type { Command } from 'commander';
import type { BootstrapMessage } from '../control/proto.js';
import { printJson, withClient, writeStdout } from './common.js';
import { statusJson } from './json.js';

export function register(program: Command): void {
  program
    .command('status')
    .description("show the node's id, cluster, bootstrap addresses (a warning for each that fails), key counts, disk use, Merkle root, clock and counters")
    .option('--json', 'print as one JSON document (numbers as numbers; README "JSON output")')
    .action(async (options: { json?: boolean }, command: Command) => {
      const s = await withClient(command, (client) => client.status());
      if (options.json) {
        await printJson(statusJson(s));
        return;
      }
      const lines = [
        `node        ${s.nodeId}${s.peerId ? `  (peer ${s.peerId})` : ''}`,
        `cluster     ${s.cluster}`,
        `listening   ${s.listenAddresses.length ? s.listenAddresses.join(' ') : '-'}`,
        `http        ${s.httpUrl || 'off'}`,
        ...s.bootstrap.map(bootstrapLine),
        `keys        ${s.keyCount} (${s.tombstoneCount} tombstones)`,
        `disk        ${formatBytes(Number(s.bytesOnDisk))} in ${s.dataDir}`,
        `merkle root ${s.merkleRoot.slice(0, 16)}`,
        `hlc         ${s.hlcNow?.text ?? '-'}`,
        ...(s.clockWarning ? [`clock       ${s.clockWarning}`] : []),
        `uptime      ${(Number(s.uptimeMs) / 1000).toFixed(1)} s`,
        `incarnation ${s.incarnation}`,
        `version     ${s.version}`,
      ];
      // Every declared counter is in the reply; the text shows those that counted something.
      const counters = Object.entries(s.counters).filter(([, v]) => v !== '0');
      if (counters.length) lines.push(`counters    ${counters.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      await writeStdout(lines.join('\n') + '\n');
    });
}

function bootstrapLine(b: BootstrapMessage): string {
  if (b.state === 'failing' || b.state === 'foreign') {
    const since = new Date(Number(b.sinceMs)).toISOString();
    const failures = b.state === 'failing' ? `, ${b.failures} failed dial${b.failures === '1' ? '' : 's'}` : '';
    return `warning     bootstrap ${b.address} ${b.state} since ${since}${failures}: ${b.lastError}`;
  }
  return `bootstrap   ${b.address} ${b.state}${b.peerId && b.state === 'connected' ? ` (peer ${b.peerId})` : ''}`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
