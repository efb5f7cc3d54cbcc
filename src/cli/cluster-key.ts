/** `ckv cluster-key > FILE`: a new pre-shared cluster key; give every node `--cluster-key FILE`. */
import type { Command } from 'commander';
import { writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('cluster-key')
    .description('print a new pre-shared cluster key (save it to a file; nodes without it cannot connect)')
    .action(async () => {
      const { generateClusterKey } = await import('../net/libp2p.js');
      await writeStdout(generateClusterKey());
    });
}
