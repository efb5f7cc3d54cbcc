/**
 * `ckv health [--json]`: the whole cluster on one screen, from the node asked (src/node/
 * health.ts): every member it knows, its state, software version, incarnation, keys, disk,
 * whether its data equals this node's, its clock offset and the last sync with it. Exit 0 when
 * healthy; exit 8 (degraded) with the reasons otherwise, for scripts and monitors.
 *
 * Data "in sync" compares Merkle roots, which differ for a moment while writes are in flight:
 * a verdict that rests only on that is asked again, up to `attempts` times `retryDelayMs`
 * apart, before it is reported.
 */
import type { Command } from 'commander';
import type { HealthReplyMessage, MemberHealthMessage } from '../control/proto.js';
import { CliError, formatAge, formatBytes, printJson, withClient, writeStdout } from './common.js';

const attempts = 3;
const retryDelayMs = 300;

export function register(program: Command): void {
  program
    .command('health')
    .description('every node this node knows: state, version, keys, disk, data in sync, clock, last sync; exit 0 healthy, 8 degraded')
    .option('--json', 'one JSON document: healthy, problems, members (README "JSON output")')
    .action(async (options: { json?: boolean }, command: Command) => {
      const health = await withClient(command, async (client) => {
        let reply = await client.health();
        for (let attempt = 1; attempt < attempts && !reply.healthy && onlyDataDiffers(reply); attempt++) {
          await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
          reply = await client.health();
        }
        return reply;
      });
      if (options.json) await printJson(healthJson(health));
      else await writeStdout(renderHealth(health));
      if (!health.healthy) throw new CliError(`degraded: ${health.problems.join('; ')}`, 'degraded');
    });
}

/** Every problem is a member that answered with other data (writes in flight, most likely). */
function onlyDataDiffers(reply: HealthReplyMessage): boolean {
  const differing = reply.members.filter((m) => m.reported && !m.inSync).length;
  return differing > 0 && differing === reply.problems.length;
}

function healthJson(h: HealthReplyMessage): object {
  return {
    healthy: h.healthy,
    problems: h.problems,
    time: new Date(Number(h.timeMs)).toISOString(),
    members: h.members.map((m) => ({
      nodeId: m.nodeId,
      peerId: m.peerId,
      self: m.self,
      state: m.state,
      reported: m.reported,
      ...(m.reported
        ? {
            version: m.version,
            incarnation: Number(m.incarnation),
            keyCount: Number(m.keyCount),
            tombstoneCount: Number(m.tombstoneCount),
            bytesOnDisk: Number(m.bytesOnDisk),
            merkleRoot: m.merkleRoot,
            uptimeMs: Number(m.uptimeMs),
            peersUp: Number(m.peersUp),
            clockWarning: m.clockWarning,
          }
        : {}),
      inSync: m.inSync,
      clockOffsetMs: Number(m.clockOffsetMs),
      lastSyncMs: Number(m.lastSyncMs),
      lastSyncResult: m.lastSyncResult,
      ...(m.error ? { error: m.error } : {}),
    })),
  };
}

function renderHealth(h: HealthReplyMessage): string {
  const nowMs = Number(h.timeMs);
  const up = h.members.filter((m) => m.state === 'up').length;
  const known = h.members.filter((m) => m.state !== 'left').length;
  const head = h.healthy
    ? `healthy: ${up} of ${known} node${known === 1 ? '' : 's'} up, data in sync`
    : `DEGRADED: ${up} of ${known} node${known === 1 ? '' : 's'} up\n${h.problems.map((p) => `  - ${p}`).join('\n')}`;
  const header = ['NODE', 'STATE', 'VERSION', 'INC', 'KEYS', 'DISK', 'DATA', 'CLOCK', 'LAST SYNC'];
  const rows = h.members.map((m) => row(m, nowMs));
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return `${head}\n\n${[line(header), ...rows.map(line)].join('\n')}\n`;
}

function row(m: MemberHealthMessage, nowMs: number): string[] {
  const name = `${m.nodeId || m.peerId.slice(0, 16)}${m.self ? '*' : ''}`;
  const data = m.self ? 'this node' : !m.reported ? (m.state === 'up' ? `no answer: ${m.error}` : '-') : m.inSync ? 'in sync' : `differs (${m.merkleRoot.slice(0, 8)})`;
  return [
    name,
    m.state,
    m.reported ? m.version : '-',
    m.reported ? m.incarnation : '-',
    m.reported ? Number(m.keyCount).toLocaleString('en-US') : '-',
    m.reported ? formatBytes(Number(m.bytesOnDisk)) : '-',
    data,
    m.self ? '-' : `${Number(m.clockOffsetMs) >= 0 ? '+' : ''}${m.clockOffsetMs} ms`,
    m.self ? '-' : Number(m.lastSyncMs) === 0 ? 'never' : `${formatAge(nowMs - Number(m.lastSyncMs))} (${m.lastSyncResult || '-'})`,
  ];
}
