/** `ckv del KEY [--if-version V]`: delete (write a tombstone, which replicates like any write). */
import type { Command } from 'commander';
import { conditionOption, versionText, withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('del')
    .alias('delete')
    .description('delete a key (a tombstone that replicates like a write)')
    .argument('<key>', 'the key')
    .option('--if-version <version>', 'only if the key holds exactly this version (as put prints it); else exit 7, nothing written')
    .action(async (key: string, options: { ifVersion?: string }, command: Command) => {
      const condition = conditionOption(options);
      const reply = await withClient(command, (client) => client.delete(key, condition));
      await writeStdout(`${versionText(reply.version)}\n`);
    });
}
