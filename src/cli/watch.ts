/** `ckv watch [PREFIX] [--json]`: one line per change as the node applies it, until Ctrl-C. */
import type { Command } from 'commander';
import { withClient, writeStdout } from './common.js';
import { expiryFields, versionFields } from './json.js';

export function register(program: Command): void {
  program
    .command('watch')
    .description('print changes (local and remote) as they are applied, until interrupted')
    .argument('[prefix]', 'only keys that start with this', '')
    .option('--json', 'one JSON object a line')
    .action(async (prefix: string, options: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const stream = client.watch(prefix);
        process.once('SIGINT', () => stream.cancel());
        try {
          for await (const change of stream) {
            const line = options.json
              ? JSON.stringify({ key: change.key, ...versionFields(change.version), origin: change.origin, deleted: change.deleted, valueBytes: Number(change.valueBytes), ...expiryFields(change.expiresAtMs) })
              : `${change.deleted ? 'del' : 'put'} ${change.key} ${change.version?.text ?? '-'} ${change.origin}`;
            await writeStdout(line + '\n');
          }
        } catch (error) {
          if ((error as { code?: number }).code === 1 /* CANCELLED: Ctrl-C */) return;
          throw error;
        }
      });
    });
}
