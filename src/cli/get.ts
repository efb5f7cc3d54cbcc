/** `ckv get KEY [-o FILE] [--json]`: the raw value to stdout (binary-safe), a file, or JSON. */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, ExitCode, printJson, withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('get')
    .description('print a value (raw bytes), or write it to a file')
    .argument('<key>', 'the key')
    .option('-o, --output <file>', 'write the value to this file instead of standard output')
    .option('--json', 'print key, value (UTF-8 or base64), version and deleted as JSON')
    .action(async (key: string, options: { output?: string; json?: boolean }, command: Command) => {
      const reply = await withClient(command, (client) => client.get(key));
      if (!reply.found) {
        throw new CliError(reply.deleted ? `key was deleted: ${key}` : `key not found: ${key}`, ExitCode.notFound);
      }
      if (options.json) {
        const text = reply.value.toString('utf8');
        const isText = Buffer.from(text, 'utf8').equals(reply.value);
        await printJson({
          key,
          value: isText ? text : reply.value.toString('base64'),
          encoding: isText ? 'utf8' : 'base64',
          version: reply.version,
          deleted: false,
        });
      } else if (options.output) {
        await writeFile(options.output, reply.value);
      } else {
        await writeStdout(reply.value);
      }
    });
}
