/**
 * What the prefix reads (`keys`, `get --prefix`, `export`) share in partitioned mode: the
 * `--from local` and `--allow-partial` options and the note of partitions missing.
 *
 * By default a partitioned node reads every partition from one of its read owners
 * (scatter-gather, src/core/scatter-read.ts), so every key is listed whichever node is asked;
 * `--from local` lists this node's copy only (today's behaviour in full replication, where the
 * two are the same). Partitions no owner answers for fail the command (exit 3) unless
 * `--allow-partial`: then the node's last message says how many, and the command says so on
 * stderr (and, with --json, in a last line `{"partitionsMissing": N}`).
 */
import type { Command } from 'commander';
import { CliError } from './common.js';

export interface PrefixReadFlags {
  from?: string;
  allowPartial?: boolean;
}

export function prefixReadOptions(command: Command): Command {
  return command
    .option('--from <where>', "partitioned mode: 'local' for this node's copy only (default: every partition from its owners)")
    .option('--allow-partial', 'partitioned mode: list what the reachable owners hold when every owner of some partitions is down (else exit 3)');
}

/** The request fields (usage error, exit 2, for a --from other than local). */
export function prefixReadRequest(flags: PrefixReadFlags): { from?: string; allowPartial?: boolean } {
  if (flags.from !== undefined && flags.from !== 'local') {
    throw new CliError(`--from with a prefix read takes only 'local' (default: every partition from its owners), not ${JSON.stringify(flags.from)}`, 'usage');
  }
  return { ...(flags.from !== undefined ? { from: flags.from } : {}), ...(flags.allowPartial ? { allowPartial: true } : {}) };
}

/** Says on stderr that keys of `partitions` partitions are missing. */
export function noteMissing(partitions: number): void {
  if (partitions > 0) process.stderr.write(`ckv: ${partitions} of 256 partitions had no read owner up: their keys are missing (--allow-partial)\n`);
}
