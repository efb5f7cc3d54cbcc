/**
 * `ckv del KEY [--if-version V] [--consistency one|quorum|all]`: delete (write a tombstone,
 * which replicates like any write; partitioned mode: acknowledged by that many owners, as put).
 *
 * `ckv del --prefix P [--yes]`: every live key under P. The keys are listed first (one Scan,
 * keys and versions only, at most `prefixKeysMax`), the count is confirmed (a prompt on a
 * terminal; without one, --yes is required), then each key is deleted in PutMany batches of
 * `deleteBatchKeys` with the condition `if_version` = the version listed: a key written again
 * since it was listed is kept, not deleted unseen, and counted as changed.
 */
import type { Command } from 'commander';
import type { ControlClient } from '../control/client.js';
import { GrpcStatus } from '../control/h2.js';
import { CliError, conditionOption, printJson, versionText, withClient, writeStdout } from './common.js';
import { confirm } from './confirm.js';
import { versionFields } from './json.js';
import { consistencyOption } from './put.js';

/** Keys one `del --prefix` deletes at most (they are held in memory between the listing and the deletes). */
const prefixKeysMax = 1_000_000;
/** Deletes per PutMany call. */
const deleteBatchKeys = 1000;

export function register(program: Command): void {
  program
    .command('del')
    .alias('delete')
    .description('delete a key (a tombstone that replicates like a write), or every key under a prefix (--prefix)')
    .argument('[key]', 'the key')
    .option('--if-version <version>', 'only if the key holds exactly this version (as put prints it); else exit 7, nothing written')
    .option('--consistency <level>', 'partitioned mode: owners that must acknowledge: one, quorum (default) or all; too few in time: exit 3')
    .option('--prefix <prefix>', 'delete every live key that starts with this (asks first; --yes to skip the question)')
    .option('-y, --yes', 'with --prefix: do not ask')
    .option('--json', 'one JSON document: key, version, time (with --prefix: prefix, listed, deleted, changed)')
    .action(async (key: string | undefined, options: { ifVersion?: string; consistency?: string; prefix?: string; yes?: boolean; json?: boolean }, command: Command) => {
      if (options.prefix !== undefined) {
        if (key !== undefined) throw new CliError('give KEY or --prefix, not both', 'usage');
        if (options.ifVersion !== undefined) throw new CliError('--if-version takes one KEY, not --prefix', 'usage');
        if (options.consistency !== undefined) throw new CliError('--consistency takes one KEY, not --prefix', 'usage');
        await deletePrefix(command, options.prefix, options.yes ?? false, options.json ?? false);
        return;
      }
      if (key === undefined) throw new CliError('missing key: give KEY, or --prefix PREFIX', 'usage');
      const condition = conditionOption(options);
      const consistency = consistencyOption(options.consistency);
      const reply = await withClient(command, (client) => client.delete(key, condition, consistency));
      if (options.json) await printJson({ key, ...versionFields(reply.version) });
      else await writeStdout(`${versionText(reply.version)}\n`);
    });
}

async function deletePrefix(command: Command, prefix: string, yes: boolean, json: boolean): Promise<void> {
  await withClient(command, async (client) => {
    const listed: { key: string; version: string }[] = [];
    for await (const entry of client.scan({ prefix, withValues: false, includeDeleted: false })) {
      if (listed.length === prefixKeysMax) {
        throw new CliError(`more than ${prefixKeysMax} keys start with ${JSON.stringify(prefix)}; delete them in parts (longer prefixes); nothing was deleted`, 'invalidArgument');
      }
      listed.push({ key: entry.key, version: entry.version?.text ?? '' });
    }
    if (listed.length > 0 && !yes) await confirm(`delete ${listed.length} key${listed.length === 1 ? '' : 's'} starting with ${JSON.stringify(prefix)}?`, 'deleted');
    const { deleted, changed } = await deleteListed(client, listed);
    if (json) await printJson({ prefix, listed: listed.length, deleted, changed });
    else await writeStdout(`deleted ${deleted} key${deleted === 1 ? '' : 's'}${changed > 0 ? `; ${changed} written again since listed, kept` : ''}\n`);
  });
}

async function deleteListed(client: ControlClient, listed: readonly { key: string; version: string }[]): Promise<{ deleted: number; changed: number }> {
  let deleted = 0;
  let changed = 0;
  for (let at = 0; at < listed.length; at += deleteBatchKeys) {
    const batch = listed.slice(at, at + deleteBatchKeys);
    const { results } = await client.putMany(batch.map(({ key, version }) => ({ key, delete: true, ...(version ? { ifVersion: version } : {}) })));
    for (const [i, result] of results.entries()) {
      if (result.version) deleted++;
      else if (result.code === GrpcStatus.ABORTED) changed++;
      else throw new CliError(`deleting ${batch[i]!.key}: ${result.error} (${deleted} deleted before it)`, 'failed');
    }
  }
  return { deleted, changed };
}
