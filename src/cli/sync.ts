/** `ckv sync [PEER]`: run anti-entropy now and print each session's progress. */
import type { Command } from 'commander';
import { withClient, writeStdout } from './common.js';
import { syncJson } from './json.js';

export function register(program: Command): void {
  program
    .command('sync')
    .description('run anti-entropy now with one peer, or every connected peer')
    .argument('[peer]', 'peer id (default: every connected peer)', '')
    .option('--json', 'one JSON object a line per step (README "JSON output")')
    .action(async (peer: string, options: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        for await (const p of client.sync(peer)) {
          if (options.json) {
            await writeStdout(`${JSON.stringify(syncJson(p))}\n`);
            continue;
          }
          const detail =
            p.phase === 'started'
              ? ''
              : ` ${p.outcome} rounds=${p.rounds} sent=${p.entriesSent} received=${p.entriesReceived} bytes_out=${p.bytesSent} bytes_in=${p.bytesReceived}${p.message ? ` (${p.message})` : ''}`;
          await writeStdout(`${p.peerId} ${p.phase}${detail}\n`);
        }
      });
    });
}
