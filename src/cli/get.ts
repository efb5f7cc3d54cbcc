/**
 * `ckv get KEY [-o FILE] [--json]`: the raw value to stdout (binary-safe), a file, or JSON.
 * The value arrives as a GetStream and is written out piece by piece, so a 64 MiB value is
 * never whole in this process (except for --json, which needs it whole).
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import type { GetStreamResult } from '../control/client.js';
import { CliError, printJson, withClient } from './common.js';

export function register(program: Command): void {
  program
    .command('get')
    .description('print a value (raw bytes), or write it to a file')
    .argument('<key>', 'the key')
    .option('-o, --output <file>', 'write the value to this file instead of standard output')
    .option('--json', 'print key, value (UTF-8 or base64), version and deleted as JSON')
    .action(async (key: string, options: { output?: string; json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        if (options.json) {
          const reply = await client.get(key);
          if (!reply.found) throw notFound(key, reply.deleted);
          const text = reply.value.toString('utf8');
          const isText = Buffer.from(text, 'utf8').equals(reply.value);
          await printJson({
            key,
            value: isText ? text : reply.value.toString('base64'),
            encoding: isText ? 'utf8' : 'base64',
            version: reply.version,
            deleted: false,
          });
          return;
        }
        const head = await client.getStream(key);
        if (!head.found) throw notFound(key, head.deleted);
        if (options.output) await toFile(head, options.output);
        else await pipeChunks(head, process.stdout);
      });
    });
}

function notFound(key: string, deleted: boolean): CliError {
  return new CliError(deleted ? `key was deleted: ${key}` : `key not found: ${key}`, 'notFound');
}

/** The file is created only once the key is known to exist, and removed if the transfer fails. */
async function toFile(head: GetStreamResult, path: string): Promise<void> {
  const file = createWriteStream(path);
  try {
    await pipeChunks(head, file);
    await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
  } catch (error) {
    file.destroy();
    await rm(path, { force: true });
    throw error;
  }
}

/** Writes each piece as it arrives, waiting when the destination is full. */
async function pipeChunks(head: GetStreamResult, out: Writable): Promise<void> {
  let failure: Error | undefined;
  const onError = (error: Error): void => {
    failure = error;
  };
  out.on('error', onError);
  try {
    for await (const chunk of head.chunks) {
      if (failure) break;
      if (!out.write(chunk)) await new Promise<void>((resolve) => {
        const done = (): void => {
          out.off('drain', done);
          out.off('error', done);
          resolve();
        };
        out.on('drain', done);
        out.on('error', done);
      });
    }
    if (out === process.stdout) await new Promise<void>((resolve) => out.write('', () => resolve()));
    if (failure) throw new CliError(`cannot write the value: ${failure.message}`, 'failed');
  } finally {
    out.off('error', onError);
  }
}
