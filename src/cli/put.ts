/**
 * `ckv put KEY VALUE | -f FILE | -`: store a value (string, whole file, or stdin). In
 * partitioned mode `--consistency one|quorum|all` (default quorum) says how many of the key's
 * owners must acknowledge; too few in time exits 3 (the write may be on those that acked), and
 * `--json` adds `owners` and `acked` (node ids).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { utf8 } from '../core/bytes.js';
import { valueBytesMax } from '../core/limits.js';
import { valueChunkBytes } from '../control/limits.js';
import { CliError, conditionOption, printJson, versionText, withClient, writeStdout } from './common.js';
import { expiryFields, versionFields } from './json.js';
import { parseTtl } from '../core/ttl.js';

export function register(program: Command): void {
  program
    .command('put')
    .description('store a value: a string, a file (-f FILE) or standard input (-)')
    .argument('<key>', 'the key (1..1024 bytes of UTF-8)')
    .argument('[value]', "the value as a string, or '-' to read standard input")
    .option('-f, --file <file>', 'read the value from a file')
    .option('--if-version <version>', 'only if the key holds exactly this version (as put prints it); else exit 7, nothing written')
    .option('--if-absent', 'only if the key holds nothing (or was deleted); else exit 7, nothing written')
    .option('--ttl <duration>', 'the value expires this long after the write (ms, s, m, h, d: 500ms, 30s, 5m, 2h, 7d; at most 365d); then it reads as absent everywhere')
    .option('--consistency <level>', 'partitioned mode: owners that must acknowledge: one, quorum (default) or all; too few in time: exit 3')
    .option('--json', 'one JSON document: key, version, time; partitioned mode: owners and acked (node ids)')
    .action(async (key: string, value: string | undefined, options: PutOptions, command: Command) => {
      const condition = conditionOption(options);
      const consistency = consistencyOption(options.consistency);
      const ttlMs = ttlOption(options.ttl);
      const source = await valueSource(value, options.file);
      const reply = await withClient(command, (client) =>
        source.bytes !== undefined
          ? client.put(key, source.bytes, condition, consistency, ttlMs)
          : client.putStream(key, source.size, source.chunks!, condition, consistency, ttlMs),
      );
      const expiry = ttlMs > 0 && reply.version ? expiryFields(Number(BigInt(reply.version.hlc) >> 16n) + ttlMs) : {};
      if (options.json) await printJson({ key, ...versionFields(reply.version), ...expiry, ...(reply.owners.length > 0 ? { owners: reply.owners, acked: reply.acked } : {}) });
      else await writeStdout(`${versionText(reply.version)}\n`);
    });
}

interface PutOptions {
  file?: string;
  ifVersion?: string;
  ifAbsent?: boolean;
  consistency?: string;
  ttl?: string;
  json?: boolean;
}

/** `--ttl` checked here (a usage error, exit 2); 0 when not given. */
export function ttlOption(text: string | undefined): number {
  if (text === undefined) return 0;
  const ttlMs = parseTtl(text);
  if (typeof ttlMs === 'string') throw new CliError(`--ttl: ${ttlMs}`, 'usage');
  return ttlMs;
}

const consistencyLevels = ['one', 'quorum', 'all'];

/** `--consistency` checked here (a usage error, exit 2); '' when not given. */
export function consistencyOption(level: string | undefined): string {
  if (level === undefined) return '';
  if (!consistencyLevels.includes(level)) throw new CliError(`--consistency must be one of ${consistencyLevels.join(', ')}, not ${JSON.stringify(level)}`, 'usage');
  return level;
}

/** A value in memory (a string, stdin), or a file's size and its contents in pieces. */
interface ValueSource {
  bytes?: Uint8Array;
  size: number;
  chunks?: AsyncIterable<Uint8Array>;
}

async function valueSource(value: string | undefined, file: string | undefined): Promise<ValueSource> {
  if (file !== undefined && value !== undefined) throw new CliError('give a value or -f FILE, not both', 'usage');
  if (file !== undefined) return fileSource(file);
  if (value === undefined) throw new CliError('missing value: give VALUE, -f FILE or - for standard input', 'usage');
  if (value === '-') return readStdinBounded();
  const bytes = utf8(value);
  checkSize(bytes.byteLength);
  return { bytes, size: bytes.byteLength };
}

function checkSize(bytes: number): void {
  if (bytes > valueBytesMax) {
    throw new CliError(`value is ${bytes} bytes; the limit is ${valueBytesMax} bytes (nothing was stored)`, 'valueTooLarge');
  }
}

/**
 * Checks the size before reading a byte, then streams the file in 1 MiB pieces: the CLI
 * never holds the whole value. A file that changes size meanwhile is refused by the node
 * (the announced size must match; nothing is stored).
 */
async function fileSource(path: string): Promise<ValueSource> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new CliError(`${path} is not a regular file`, 'usage');
    size = info.size;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`, 'usage');
  }
  checkSize(size);
  const chunks = size === 0 ? [] : createReadStream(path, { end: size - 1, highWaterMark: valueChunkBytes });
  return { size, chunks: chunks as AsyncIterable<Uint8Array> };
}

/**
 * Stdin has no size up front, and PutStream announces one: the pieces are kept (refusing as
 * soon as they pass the limit, not after buffering everything) and then sent as they are,
 * without joining them into one more copy.
 */
async function readStdinBounded(): Promise<ValueSource> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    checkSize(total);
    chunks.push(chunk);
  }
  return { size: total, chunks: (async function* () { yield* chunks; })() };
}
