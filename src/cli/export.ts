/**
 * `ckv export [PREFIX] [-o FILE] [--include-deleted]`: every entry under PREFIX (key, value,
 * version; tombstones only with --include-deleted) from one snapshot of the node's store, as
 * a backup file (docs/backup-format.md; src/cli/backup-format.ts) to FILE or stdout.
 *
 * The node streams the entries in the core encoding, ~1 MiB a message (the Export RPC, from
 * one LevelDB snapshot, so concurrent writes never give a mix of before and after); each
 * message becomes one block, deflated on the thread pool (a few at once) and written in order
 * behind the running CRC. `-o FILE` writes a temporary file beside FILE (mode 0600 for a new
 * one: a backup holds every value) and renames it over FILE only after the trailer, as
 * `ckv get -o` does (get.ts OutputFile): an interrupted export leaves no file that looks
 * complete, and an old FILE stays as it was. Progress (entries, bytes) on stderr when it is a
 * terminal; a one-line summary on stderr at the end.
 *
 * Partitioned mode: every partition from one of its read owners, in key order (the owners'
 * pages, not one snapshot), or `--from local` (this node's copy, one snapshot);
 * `--allow-partial` goes on without partitions no owner answers for (prefix-read.ts).
 */
import type { Command } from 'commander';
import { BackupWriter } from './backup-format.js';
import { CliError, withClient } from './common.js';
import { OutputFile } from './get.js';
import { bytesText, count, counted, Progress } from './progress.js';
import { noteMissing, prefixReadOptions, prefixReadRequest, type PrefixReadFlags } from './prefix-read.js';

export function register(program: Command): void {
  const command = program
    .command('export')
    .description('write a backup of every key (or those under PREFIX) with its version, from one snapshot, to a file or stdout')
    .argument('[prefix]', 'only keys that start with this', '')
    .option('-o, --output <file>', 'write the backup to this file (replaced only once it is complete) instead of standard output')
    .option('--include-deleted', 'include tombstones, so that an import also deletes');
  prefixReadOptions(command).action(async (prefix: string, options: { output?: string; includeDeleted?: boolean } & PrefixReadFlags, command: Command) => {
      const read = prefixReadRequest(options);
      if (options.output === undefined && process.stdout.isTTY) {
        throw new CliError('the backup is binary: give -o FILE, or redirect standard output', 'usage');
      }
      const output = options.output !== undefined ? await OutputFile.open(options.output, { what: 'the backup', newFileMode: 0o600 }) : undefined;
      const startedMs = performance.now();
      try {
        await withClient(command, async (client) => {
          const { nodeId } = await client.status();
          const sink = output ? (bytes: Buffer) => output.append(bytes) : writeToStdout;
          const writer = new BackupWriter(sink, { includesDeleted: options.includeDeleted === true, createdAtMs: Date.now(), sourceNodeId: nodeId, prefix });
          const progress = new Progress();
          let received = 0;
          let missing = 0;
          for await (const batch of client.exportEntries({ prefix, includeDeleted: options.includeDeleted === true, ...read })) {
            if (batch.count === 0) {
              missing = Math.max(missing, batch.partitionsMissing);
              continue;
            }
            // The message's buffer is the block's raw bytes; it is read only by the compressor.
            await writer.add(batch.entries, batch.count);
            received += batch.count;
            progress.update(() => `exporting: ${count(received)} entries, ${bytesText(writer.bytes)} written`);
          }
          const trailer = await writer.finish();
          progress.done();
          noteMissing(missing);
          if (output) await output.commit();
          const seconds = (performance.now() - startedMs) / 1000;
          const where = output ? ` to ${options.output}` : '';
          process.stderr.write(
            `exported ${counted(trailer.entries, 'entry', 'entries')} in ${counted(trailer.blocks, 'block')}: ${bytesText(trailer.rawBytes)} of entries, ` +
              `${bytesText(writer.bytes)} written${where} in ${seconds.toFixed(1)} s\n`,
          );
        });
      } finally {
        await output?.discard(); // nothing left behind unless the backup was written whole
      }
  });
}

/**
 * Writes to stdout, resolving once the bytes are handed to the system (a block at a time, so
 * a slow reader holds the export back). A reader that goes away (EPIPE) is an error here
 * (exit 5), not the quiet exit 0 of other commands (main.ts): the backup is not complete.
 */
function writeToStdout(bytes: Buffer): Promise<void> {
  if (!stdoutErrorsCaught) {
    process.stdout.removeAllListeners('error');
    process.stdout.on('error', () => undefined); // each write's callback reports it
    stdoutErrorsCaught = true;
  }
  return new Promise((resolve, reject) => {
    process.stdout.write(bytes, (error) => {
      if (error) reject(new CliError(`cannot write the backup to standard output: ${error.message} (it is not complete)`, 'failed'));
      else resolve();
    });
  });
}

let stdoutErrorsCaught = false;
