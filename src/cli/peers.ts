/** `ckv peers [--json]`: known nodes, their state, last sync and clock offset. */
import type { Command } from 'commander';
import { CliError, formatAge, printJson, withClient, writeStdout } from './common.js';
import { peerJson } from './json.js';

export function register(program: Command): void {
  program
    .command('peers')
    .description("list known peers (state, last sync, clock offset, in sync or not); 'peers forget PEER' drops a dead one")
    .argument('[action]', "'forget' to remove a peer from the list")
    .argument('[peer]', 'the peer id (or node id) to forget; refused while it is connected')
    .option('--json', 'print as one JSON array (README "JSON output")')
    .action(async (action: string | undefined, peer: string | undefined, options: { json?: boolean }, command: Command) => {
      if (action !== undefined) {
        if (action !== 'forget' || !peer) throw new CliError("usage: ckv peers [--json] | ckv peers forget PEER", 'usage');
        const { forgotten } = await withClient(command, (client) => client.forgetPeer(peer));
        if (!forgotten) throw new CliError(`not a known peer: ${peer}`, 'notFound');
        await writeStdout(`forgot ${peer}\n`);
        return;
      }
      const { peers } = await withClient(command, (client) => client.peers());
      if (options.json) {
        await printJson(peers.map(peerJson));
        return;
      }
      if (peers.length === 0) {
        await writeStdout('no peers\n');
        return;
      }
      const nowMs = Date.now();
      const rows = peers.map((p) =>
        [
          p.peerId,
          p.nodeId,
          p.state,
          `inc ${p.incarnation}`,
          p.inSync ? 'in-sync' : 'differs',
          p.lastSyncMs === '0' ? 'never synced' : `synced ${formatAge(nowMs - Number(p.lastSyncMs))} (${p.lastSyncResult || '-'})`,
          `${p.clockOffsetMs}ms`,
          p.addresses.join(','),
        ].join('  '),
      );
      await writeStdout(rows.join('\n') + '\n');
    });
}
