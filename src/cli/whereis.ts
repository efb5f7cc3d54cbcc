/** `ckv whereis KEY` and `ckv haskey KEY`: which nodes hold a key, and this node's version of it. */
import type { Command } from 'commander';
import { CliError, versionText, withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('whereis')
    .description('list the nodes that hold a key, with their versions')
    .argument('<key>', 'the key')
    .action(async (key: string, _options: object, command: Command) => {
      const { holders } = await withClient(command, (client) => client.whereIs(key));
      if (holders.length === 0) throw new CliError(`no node holds ${key}`, 'notFound');
      const rows = holders.map((h) => `${h.nodeId || '-'}  ${h.peerId || '-'}  ${h.error ? `error: ${h.error}` : `${versionText(h.version)}${h.deleted ? ' (deleted)' : ''}`}`);
      await writeStdout(rows.join('\n') + '\n');
    });

  program
    .command('haskey')
    .description("print this node's version of a key (exit 1 if it has none or it was deleted)")
    .argument('<key>', 'the key')
    .action(async (key: string, _options: object, command: Command) => {
      const reply = await withClient(command, (client) => client.hasKey(key));
      if (!reply.found) throw new CliError(`key not found: ${key}`, 'notFound');
      // A tombstone is this node's version of a deleted key: not found, like `get` (exit 1).
      if (reply.deleted) throw new CliError(`key was deleted: ${key} (tombstone ${versionText(reply.version)})`, 'notFound');
      await writeStdout(`${versionText(reply.version)}\n`);
    });
}
