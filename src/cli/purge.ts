/**
 * `ckv purge [--yes] [--json]` (partitioned mode): hand the partitions this node no longer
 * holds to their current owners, then drop their rows (only those unchanged since the hand-off
 * began), now rather than at the node's next rebalance round (it purges by itself after a
 * layout change retires). First a dry run counts what would go; that is confirmed (a prompt on
 * a terminal; without one, --yes is required), then the purge runs and says what it dropped.
 * Partitions whose owners are not up are kept and named (exit 0: the node retries them by itself).
 * A full-replication node refuses (exit 4): nothing is un-held there.
 */
import type { Command } from 'commander';
import type { ControlClient } from '../control/client.js';
import type { PurgeReplyMessage } from '../control/proto.js';
import { CliError, printJson, withClient, writeStdout } from './common.js';
import { confirm } from './confirm.js';

export function register(program: Command): void {
  program
    .command('purge')
    .description('partitioned mode: hand the partitions this node no longer holds to their owners, then drop them (asks first; --yes to skip)')
    .option('-y, --yes', 'do not ask')
    .option('--json', 'one JSON document: partitions, entries and bytes dropped, blocked partitions and the owners blocking them')
    .action(async (options: { yes?: boolean; json?: boolean }, command: Command) => {
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
