/** `ckv whereis KEY` and `ckv haskey KEY`: which nodes hold a key, and this node's version of it. */
import type { Command } from 'commander';
import { CliError, printJson, versionText, withClient, writeStdout } from './common.js';
import { holderJson, versionFields, versionTime } from './json.js';

export function register(program: Command): void {
  program
    .command('whereis')
    .description('list the nodes that hold a key, with their versions')
    .argument('<key>', 'the key')
    .option('--json', 'one JSON document: key and holders (nodeId, peerId, deleted, version, time, error)')
    .action(async (key: string, options: { json?: boolean }, command: Command) => {
      const { holders } = await withClient(command, (client) => client.whereIs(key));
      if (options.json) await printJson({ key, holders: holders.map(holderJson) });
      if (holders.length === 0) throw new CliError(`no node holds ${key}`, 'notFound');
      if (options.json) return;
      const rows = holders.map((h) => `${h.nodeId || '-'}  ${h.peerId || '-'}  ${h.error ? `error: ${h.error}` : `${versionText(h.version)} (${versionTime(h.version)})${h.deleted ? ' (deleted)' : ''}`}`);
      await writeStdout(rows.join('\n') + '\n');
    });

  program
    .command('haskey')
    .description("print this node's version of a key (exit 1 if it has none or it was deleted)")
    .argument('<key>', 'the key')
    .option('--json', 'one JSON document: key, found, deleted, version, time')
    .action(async (key: string, options: { json?: boolean }, command: Command) => {
      const reply = await withClient(command, (client) => client.hasKey(key));
      if (options.json) await printJson({ key, found: reply.found && !reply.deleted, deleted: reply.deleted, ...versionFields(reply.version) });
      if (!reply.found) throw new CliError(`key not found: ${key}`, 'notFound');
      // A tombstone is this node's version of a deleted key: not found, like `get` (exit 1).
      if (reply.deleted) throw new CliError(`key was deleted: ${key} (tombstone ${versionText(reply.version)})`, 'notFound');
      if (!options.json) await writeStdout(`${versionText(reply.version)}\n`);
    });
}
