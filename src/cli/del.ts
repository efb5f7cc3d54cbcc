/** `ckv del KEY`: delete (write a tombstone, which replicates like any write). */
import type { Command } from 'commander';
import { versionText, withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('del')
    .alias('delete')
    .description('delete a key (a tombstone that replicates like a write)')
    .argument('<key>', 'the key')
    .action(async (key: string, _options: object, command: Command) => {
      const reply = await withClient(command, (client) => client.delete(key));
      await writeStdout(`${versionText(reply.version)}\n`);
    });
}
