/**
 * `ckv keys [PREFIX] [--limit N] [--deleted] [--json]`: keys in order, one a line. With
 * --deleted, a deleted key (tombstone) is marked: ` (deleted)` after it, or `"deleted": true`
 * in --json (the unambiguous form: a key may itself end in " (deleted)").
 */
import type { Command } from 'commander';
import { CliError, withClient, writeStdout } from './common.js';
import { scannedJson } from './json.js';

export function register(program: Command): void {
  program
    .command('keys')
    .description('list keys in order, one a line')
    .argument('[prefix]', 'only keys that start with this', '')
    .option('--limit <n>', 'at most this many keys')
    .option('--deleted', "include deleted keys (tombstones), each followed by ' (deleted)'")
    .option('--json', 'one JSON object a line: key, found, deleted (true for a tombstone), version, time')
    .action(async (prefix: string, options: { limit?: string; deleted?: boolean; json?: boolean }, command: Command) => {
      const limit = options.limit === undefined ? 0 : Number(options.limit);
      if (!Number.isInteger(limit) || limit < 0) throw new CliError(`--limit must be a whole number, not ${options.limit}`, 'usage');
      await withClient(command, async (client) => {
        let lines: string[] = [];
        for await (const entry of client.scan({ prefix, limit, withValues: false, includeDeleted: options.deleted ?? false })) {
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
      });
    });
}
