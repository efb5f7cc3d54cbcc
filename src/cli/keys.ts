/**
 * `ckv keys [PREFIX] [--limit N] [--deleted] [--json]`: keys in order, one a line. With
 * --deleted, a deleted key (tombstone) is marked: ` (deleted)` after it, or `"deleted": true`
 * in --json (the unambiguous form: a key may itself end in " (deleted)"). Partitioned mode:
 * every key from the owners, or `--from local`; `--allow-partial` (prefix-read.ts).
 */
import type { Command } from 'commander';
import { CliError, withClient, writeStdout } from './common.js';
import { scannedJson } from './json.js';
import { noteMissing, prefixReadOptions, prefixReadRequest, type PrefixReadFlags } from './prefix-read.js';

export function register(program: Command): void {
  const keys = program
    .command('keys')
    .description('list keys in order, one a line')
    .argument('[prefix]', 'only keys that start with this', '')
    .option('--limit <n>', 'at most this many keys')
    .option('--deleted', "include deleted keys (tombstones), each followed by ' (deleted)'")
    .option('--json', 'one JSON object a line: key, found, deleted (true for a tombstone), version, time');
  prefixReadOptions(keys).action(async (prefix: string, options: { limit?: string; deleted?: boolean; json?: boolean } & PrefixReadFlags, command: Command) => {
      const limit = options.limit === undefined ? 0 : Number(options.limit);
      if (!Number.isInteger(limit) || limit < 0) throw new CliError(`--limit must be a whole number, not ${options.limit}`, 'usage');
      const read = prefixReadRequest(options);
      await withClient(command, async (client) => {
        let lines: string[] = [];
        let missing = 0;
        for await (const entry of client.scan({ prefix, limit, withValues: false, includeDeleted: options.deleted ?? false, ...read })) {
          if (entry.key === '' && entry.partitionsMissing > 0) {
            missing = entry.partitionsMissing;
            if (options.json) lines.push(JSON.stringify({ partitionsMissing: missing }));
            continue;
          }
          lines.push(
            options.json
              ? JSON.stringify(scannedJson(entry, false))
              : entry.deleted ? `${entry.key} (deleted)` : entry.key,
          );
          if (lines.length >= 1000) {
            await writeStdout(lines.join('\n') + '\n');
            lines = [];
          }
        }
        if (lines.length > 0) await writeStdout(lines.join('\n') + '\n');
        noteMissing(missing);
      });
  });
}
