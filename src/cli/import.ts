/**
 * `ckv import [-i FILE]`: apply a backup file (docs/backup-format.md) from FILE or stdin to
 * the node, through the normal merge: each entry keeps its version, so an entry older than
 * (or equal to) what the node holds is not applied, and last writer wins as in the cluster it
 * came from. Entries the node refuses (stamped too far in its future, outside the limits)
 * are counted; if any was, the command exits 4 (refused) with the summary as its error line.
 *
 * The file is read as a stream; each block is verified (frame and payload CRC32, lengths
 * bounded before anything is allocated, inflated size, entry count) before it is sent, one
 * block per Import call (thousands of entries), up to importBlocksInFlightMax calls (and
 * importBytesInFlightMax bytes) at once. Damage (truncation, a flipped byte, trailing bytes)
 * stops the import with one line naming its byte offset (exit 9): the blocks before it may
 * have been applied (the message says how many), nothing from it on. Importing again,
 * after repairing the file or after a kill, is idempotent: what is already there counts as
 * "older than present". Progress on stderr when it is a terminal; a summary at the end.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ImportReplyMessage } from '../control/client.js';
import { GrpcStatusError } from '../control/h2.js';
import { kindOf, kindOfGrpcStatus } from '../errors.js';
import { errnoReason } from '../util/errno.js';
import { BackupDamagedError, BackupReader, ByteSource } from './backup-format.js';
import { CliError, describeError, printJson, withClient } from './common.js';
import { bytesText, count, counted, Progress } from './progress.js';

/** Import calls in flight at once: enough to keep the node's group commit busy while the next block is read. */
const importBlocksInFlightMax = 4;
/** Raw bytes of blocks in flight at once (one block is always allowed): a few 64 MiB values at most. */
const importBytesInFlightMax = 128 * 1024 * 1024;

interface Totals {
  applied: number;
  notNewer: number;
  refusedClock: number;
  refusedInvalid: number;
  refusedNotHeld: number;
}

export function register(program: Command): void {
  program
    .command('import')
    .description('apply a backup (from ckv export) to the node: each entry keeps its version; older ones than the node holds are not applied')
    .option('-i, --input <file>', 'read the backup from this file instead of standard input')
    .option('--json', 'also print the summary as one JSON document on standard output: entries, blocks, applied, olderOrEqual, refused')
    .action(async (options: { input?: string; json?: boolean }, command: Command) => {
      let fileBytes: number | undefined;
      if (options.input !== undefined) {
        try {
          const info = await stat(options.input);
          if (!info.isFile()) throw new CliError(`-i ${options.input} is not a file`, 'usage');
          fileBytes = info.size;
        } catch (error) {
          if (error instanceof CliError) throw error;
          throw new CliError(`cannot read -i ${options.input}: ${errnoReason(error)}`, 'usage');
        }
      } else if (process.stdin.isTTY) {
        throw new CliError('give -i FILE, or the backup on standard input', 'usage');
      }
      const stream = options.input !== undefined ? createReadStream(options.input, { highWaterMark: 1024 * 1024 }) : process.stdin;
      const input = new ByteSource(stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
      const reader = new BackupReader(input);
      await withClient(command, async (client) => {
        const totals: Totals = { applied: 0, notNewer: 0, refusedClock: 0, refusedInvalid: 0, refusedNotHeld: 0 };
        const progress = new Progress();
        const inFlight = new Set<Promise<void>>();
        let bytesInFlight = 0;
        let failure: unknown;
        /** Blocks whose Import was answered, and their entries. */
        let blocksDone = 0;
        let entriesDone = 0;
        const send = (raw: Buffer, entries: number): void => {
          bytesInFlight += raw.byteLength;
          const call = client.importEntries(raw, entries).then(
            (reply) => {
              add(totals, reply);
              blocksDone++;
              entriesDone += entries;
            },
            (error: unknown) => {
              failure ??= error;
            },
          );
          const tracked = call.finally(() => {
            bytesInFlight -= raw.byteLength;
            inFlight.delete(tracked);
          });
          inFlight.add(tracked);
        };
        const settle = async (): Promise<void> => {
          await Promise.all(inFlight);
        };
        let damage: BackupDamagedError | undefined;
        try {
          await reader.header();
          for await (const block of reader.blocks()) {
            while (failure === undefined && inFlight.size > 0 && (inFlight.size >= importBlocksInFlightMax || bytesInFlight + block.raw.byteLength > importBytesInFlightMax)) {
              await Promise.race(inFlight);
            }
            if (failure !== undefined) break;
            send(block.raw, block.entries);
            progress.update(() => {
              const read = fileBytes ? `${bytesText(reader.offset)} of ${bytesText(fileBytes)}` : bytesText(reader.offset);
              return `importing: ${count(entriesDone)} entries applied or checked, ${read} read`;
            });
          }
        } catch (error) {
          if (!(error instanceof BackupDamagedError)) {
            await settle();
            progress.done();
            if (error instanceof CliError) throw error;
            throw new CliError(`cannot read the backup${options.input ? ` ${options.input}` : ''}: ${errnoReason(error)}`, 'failed');
          }
          damage = error;
        }
        await settle();
        progress.done();
        if (failure !== undefined) {
          const { message } = describeError(failure);
          const kind = failure instanceof GrpcStatusError ? kindOfGrpcStatus(failure.code) : kindOf(failure);
          throw new CliError(`${message} (${counted(blocksDone, 'block')}, ${counted(entriesDone, 'entry', 'entries')} imported before it; importing again is safe)`, kind);
        }
        if (damage !== undefined) {
          throw new CliError(
            `${damage.message}; the ${counted(blocksDone, 'block')} before it (${counted(entriesDone, 'entry', 'entries')}) were imported, nothing after it ` +
              `(${summary(totals)})`,
            'backupDamaged',
          );
        }
        const line = `imported ${counted(entriesDone, 'entry', 'entries')} in ${counted(blocksDone, 'block')}: ${summary(totals)}`;
        if (options.json) {
          const refused = totals.refusedClock + totals.refusedInvalid + totals.refusedNotHeld;
          await printJson({ entries: entriesDone, blocks: blocksDone, applied: totals.applied, olderOrEqual: totals.notNewer, refused });
        }
        // A restore that left entries out is not a success: exit 4 (refused), the summary as the error line.
        if (totals.refusedClock + totals.refusedInvalid + totals.refusedNotHeld > 0) throw new CliError(line, 'invalidArgument');
        process.stderr.write(`${line}\n`);
      });
    });
}

function add(totals: Totals, reply: ImportReplyMessage): void {
  totals.applied += Number(reply.applied);
  totals.notNewer += Number(reply.notNewer);
  totals.refusedClock += Number(reply.refusedClock);
  totals.refusedInvalid += Number(reply.refusedInvalid);
  totals.refusedNotHeld += Number(reply.refusedNotHeld);
}

/** "N applied, M older than present (or equal), R refused (...)". */
function summary(totals: Totals): string {
  const refused = totals.refusedClock + totals.refusedInvalid + totals.refusedNotHeld;
  const why: string[] = [];
  if (totals.refusedClock > 0) why.push(`${count(totals.refusedClock)} stamped too far in this node's future`);
  if (totals.refusedInvalid > 0) why.push(`${count(totals.refusedInvalid)} outside the limits`);
  if (totals.refusedNotHeld > 0) why.push(`${count(totals.refusedNotHeld)} not held by this node`);
  return `${count(totals.applied)} applied, ${count(totals.notNewer)} older than present (or equal), ${count(refused)} refused${why.length ? ` (${why.join(', ')})` : ''}`;
}
