/** `ckv peers [--json]`: known nodes, their state, last sync and clock offset. */
import type { Command } from 'commander';
import { printJson, withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('peers')
    .description('list known peers: state, last sync, clock offset, whether in sync')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { peers } = await withClient(command, (client) => client.peers());
      if (options.json) {
        await printJson(peers);
        return;
      }
      if (peers.length === 0) {
        await writeStdout('no peers\n');
        return;
      }
      const rows = peers.map((p) =>
        [p.peerId, p.state, p.inSync ? 'in-sync' : 'differs', p.lastSyncResult || '-', `${p.clockOffsetMs}ms`, p.addresses.join(',')].join('  '),
      );
      await writeStdout(rows.join('\n') + '\n');
    });
}
