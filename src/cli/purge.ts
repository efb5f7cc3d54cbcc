/**
 * `ckv purge [--yes] [--json]` (partitioned mode): hand the partitions this node no longer
 * holds to their current owners, then drop their rows (only those unchanged since the hand-off
 * began), now rather than at the node's next rebalance round (it purges by itself after a
 * layout change retires). First a dry run counts what would go; that is confirmed (a prompt on
 * a terminal; without one, --yes is required), then the purge runs and says what it dropped.
 * Partitions whose owners are not up are kept and named (exit 0: the node retries them by itself).
 * A full-replication node refuses (exit 4): nothing is un-held there.
 *
 * `ckv purge --all [--data-dir DIR] [--yes] [--json]`: a stopped node's data directory is
 * emptied (every row, its identity and its removal mark; ./purge-all.ts), so that a node
 * removed from the layout can come back as a new member. It does not talk to a node.
 */
import type { Command } from 'commander';
import type { ControlClient } from '../control/client.js';
import type { PurgeReplyMessage } from '../control/proto.js';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultDataDir } from '../config.js';
import { CliError, printJson, withClient, writeStdout } from './common.js';
import { confirm } from './confirm.js';
import { inspectDataDir, purgeDataDir } from './purge-all.js';

export function register(program: Command): void {
  program
    .command('purge')
    .description('partitioned mode: hand the partitions this node no longer holds to their owners, then drop them (asks first; --yes to skip)')
    .option('-y, --yes', 'do not ask')
    .option('--json', 'one JSON document: partitions, entries and bytes dropped, blocked partitions and the owners blocking them')
    .option('--all', "a stopped node's data directory: delete every row, its identity and its removal mark (it joins again as a new member)")
    .option('--data-dir <dir>', 'with --all: the data directory (default as for node start)')
    .action(async (options: { yes?: boolean; json?: boolean; all?: boolean; dataDir?: string }, command: Command) => {
      if (options.all) {
        await purgeAll(resolve(options.dataDir ?? defaultDataDir()), options);
        return;
      }
      if (options.dataDir !== undefined) throw new CliError('--data-dir is for purge --all (a stopped node); a running node is reached by --socket', 'usage');
      await withClient(command, async (client) => {
        const found = await purgeCall(client, true);
        if (Number(found.entries) === 0 && found.partitions === 0) {
          if (options.json) await printJson(purgeJson(found, true));
          else await writeStdout('nothing to purge: this node holds no rows of partitions it does not own\n');
          return;
        }
        if (!options.yes) await confirm(`hand ${found.partitions} partition${found.partitions === 1 ? '' : 's'} (${found.entries} entries, ${found.bytes} bytes) to their owners and drop them here?`, 'dropped');
        const done = await purgeCall(client, false);
        if (options.json) {
          await printJson(purgeJson(done, false));
          return;
        }
        const kept = done.blocked > 0 ? `; ${done.blocked} partition${done.blocked === 1 ? '' : 's'} kept: owner${done.blockedBy.length === 1 ? '' : 's'} not reachable: ${done.blockedBy.join(' ') || '(none)'}` : '';
        await writeStdout(`dropped ${done.entries} entries (${done.bytes} bytes) of ${done.partitions - done.blocked} partition${done.partitions - done.blocked === 1 ? '' : 's'}${kept}\n`);
      });
    });
}

async function purgeAll(dataDir: string, options: { yes?: boolean; json?: boolean }): Promise<void> {
  if (!existsSync(join(dataDir, 'db'))) throw new CliError(`${dataDir} is not a ckv data directory (it has no db/): nothing purged`, 'usage');
  const found = await inspectDataDir(dataDir);
  const removed = found.removedAt === undefined ? '' : `, removed from its cluster at layout v${found.removedAt}`;
  if (!options.yes) await confirm(`delete every entry (${found.entries}) and the node identity in ${dataDir}${removed}?`, 'purged');
  const done = await purgeDataDir(dataDir);
  if (options.json) {
    await printJson({ dataDir, entries: done.entries, removedAt: done.removedAt ?? null });
    return;
  }
  await writeStdout(`purged ${dataDir}: ${done.entries} entries and the node identity deleted; it starts as a new member\n`);
}

async function purgeCall(client: ControlClient, dryRun: boolean): Promise<PurgeReplyMessage> {
  let reply: PurgeReplyMessage | undefined;
  for await (const message of client.purge(dryRun)) reply = message;
  if (reply === undefined) throw new CliError('the node ended the purge without a reply', 'failed');
  return reply;
}

function purgeJson(reply: PurgeReplyMessage, dryRun: boolean): object {
  return {
    dryRun,
    partitions: reply.partitions,
    entries: Number(reply.entries),
    bytes: Number(reply.bytes),
    blocked: reply.blocked,
    blockedBy: reply.blockedBy,
  };
}
