/**
 * `ckv get KEY [-o FILE] [--json]`: the raw value to stdout (binary-safe), a file, or JSON.
 * Several keys, or `--prefix P`, go to get-many.ts (partitioned mode: several keys are each
 * read from their owners; `--prefix` reads every partition from its owners, or `--from local`).
 *
 * Partitioned mode: `--from local|one|quorum|all` (default: local when this node is a read owner of the key,
 * else one owner) reads from that many of the key's owners, newest version wins; fewer answers
 * than asked exits 3 unless `--allow-partial`; `--json` adds `from`, `owners`, `asked` and
 * `answers` (each owner's version, or why it did not answer).
 * The value arrives as a GetStream and is written out piece by piece, so a 64 MiB value is
 * never whole in this process (except for --json, which needs it whole).
 *
 * `-o FILE` is checked before the node is asked (a directory, or a directory that does not
 * exist, is a usage error). The value is written to a temporary file in FILE's directory
 * (`.FILE.ckv-XXXXXXXX`) and renamed over FILE once it is whole: FILE never holds part of a
 * value, and its old content stays until the new one is complete. The temporary file is
 * removed if the transfer fails, the key does not exist, or the command is interrupted
 * (SIGINT, SIGTERM, SIGHUP). A FILE that exists and is not a regular file (`/dev/null`, a
 * FIFO, a terminal) is written in place; a symbolic link is kept and its target replaced.
 *
 * On a terminal, a value that does not end in a newline gets one, so the prompt does not
 * land after it; into a pipe or a file the bytes are exactly the value's.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, type Stats } from 'node:fs';
import { open, realpath, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import type { GetStreamResult, ReadFields, ReadOptionsText } from '../control/client.js';
import { errnoReason } from '../util/errno.js';
import { CliError, printJson, withClient } from './common.js';
import { prefixReadRequest } from './prefix-read.js';
import { getMany, type GetOptions } from './get-many.js';
import { entryJson, versionFields } from './json.js';

export function register(program: Command): void {
  program
    .command('get')
    .description('print a value (raw bytes), or write it to a file; several keys, or every key under a prefix (--prefix)')
    .argument('[keys...]', 'the key (or several keys)')
    .option('-o, --output <file>', 'write the value to this file instead of standard output (replaced only once the whole value has arrived)')
    .option('--prefix <prefix>', 'every live key that starts with this, in key order, streamed')
    .option('--limit <n>', 'with --prefix: at most this many keys')
    .option('--from <where>', "partitioned mode: local, one, quorum or all of the key's owners (default: local if this node is one of the owners reads ask, else one); too few answers: exit 3. With --prefix: local (this node's copy) or, by default, every partition from its owners")
    .option('--allow-partial', 'partitioned mode: accept fewer owner answers than --from asks (with --prefix: list what the reachable owners hold)')
    .option('--json', 'JSON (README "JSON output"): key, found, deleted, value (UTF-8 or base64), encoding, valueBytes, version, time; one object a line for several keys; partitioned mode: from, owners, asked, answers')
    .action(async (keys: string[], options: GetOptions & { from?: string; allowPartial?: boolean }, command: Command) => {
      const read = options.prefix === undefined ? readOption(options.from, options.allowPartial) : {};
      if (options.prefix !== undefined || keys.length !== 1) {
        if (options.prefix !== undefined) {
          await getMany(command, keys, options, prefixReadRequest(options));
          return;
        }
        await getMany(command, keys, options, read);
        return;
      }
      if (options.limit !== undefined) throw new CliError('--limit goes with --prefix', 'usage');
      const key = keys[0]!;
      const output = options.output !== undefined && !options.json ? await OutputFile.open(options.output) : undefined;
      try {
        await withClient(command, async (client) => {
          if (options.json) {
            const reply = await client.get(key, read);
            await printJson({ ...entryJson(key, reply), ...readJson(reply) });
            if (!reply.found) throw notFound(key, reply.deleted);
            return;
          }
          const head = await client.getStream(key, read);
          if (!head.found) throw notFound(key, head.deleted);
          if (output) await output.write(head);
          else await toStdout(head);
        });
      } finally {
        await output?.discard(); // nothing left behind unless the value was written whole
      }
    });
}

const readSources = ['local', 'one', 'quorum', 'all'];

/** `--from` and `--allow-partial` checked here (a usage error, exit 2). */
function readOption(from: string | undefined, allowPartial: boolean | undefined): ReadOptionsText {
  if (from !== undefined && !readSources.includes(from)) throw new CliError(`--from must be one of ${readSources.join(', ')}, not ${JSON.stringify(from)}`, 'usage');
  return { ...(from === undefined ? {} : { from }), ...(allowPartial ? { allowPartial: true } : {}) };
}

/** The partitioned read's fields for --json (none in full-replication mode). */
function readJson(reply: ReadFields): object {
  if (reply.owners.length === 0) return {};
  return {
    from: reply.from,
    owners: reply.owners,
    asked: reply.asked,
    answers: reply.answers.map((a) =>
      a.error ? { nodeId: a.nodeId, error: a.error } : { nodeId: a.nodeId, found: a.found && !a.deleted, deleted: a.deleted, ...(a.found ? versionFields(a.version) : {}) },
    ),
  };
}

export function notFound(key: string, deleted: boolean): CliError {
  return new CliError(deleted ? `key was deleted: ${key}` : `key not found: ${key}`, 'notFound');
}

const interruptions = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * The destination of `-o FILE`: a temporary file renamed over FILE on success, or FILE itself
 * if it is not a regular file. Also used by `ckv export -o FILE` (export.ts).
 */
export class OutputFile {
  private settled = false;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.settle();
    this.removeTempSync();
    // Die of the signal as if we had not caught it, so the shell sees what happened.
    process.kill(process.pid, signal);
  };
  private readonly onExit = (): void => this.removeTempSync();

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    /** The temporary file, renamed to `target` on commit; undefined when writing in place. */
    private readonly temp: string | undefined,
    private readonly target: string,
    /** What is written, for messages: 'the value', 'the backup'. */
    private readonly what: string,
  ) {
    if (temp === undefined) return;
    for (const signal of interruptions) process.once(signal, this.onSignal);
    process.once('exit', this.onExit);
  }

  /**
   * Checks `path` and opens where the value will go; a path that cannot be written is a usage
   * error. `newFileMode`: the mode a new FILE is created with (before the umask).
   */
  static async open(path: string, options: { what?: string; newFileMode?: number } = {}): Promise<OutputFile> {
    const what = options.what ?? 'the value';
    let existing: Stats | undefined;
    try {
      existing = await stat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(`cannot write -o ${path}: ${errnoReason(error)}`, 'usage');
    }
    if (existing?.isDirectory()) throw new CliError(`-o ${path} is a directory; give a file name`, 'usage');
    try {
      if (existing && !existing.isFile()) return new OutputFile(path, await open(path, 'w'), undefined, path, what);
      const target = existing ? await realpath(path) : path;
      const dir = dirname(target);
      const temp = join(dir, `.${basename(target)}.ckv-${randomBytes(4).toString('hex')}`);
      // A new file is created as any would be (0666 less the umask); a replaced one keeps its mode.
      let handle: FileHandle;
      try {
        handle = await open(temp, 'wx', existing ? 0o600 : (options.newFileMode ?? 0o666));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') throw error;
        throw new CliError(`cannot write -o ${path}: cannot create a temporary file in ${dir} (${errnoReason(error)})`, 'usage');
      }
      try {
        if (existing) await handle.chmod(existing.mode & 0o7777);
      } catch (error) {
        await handle.close();
        await rm(temp, { force: true });
        throw error;
      }
      return new OutputFile(path, handle, temp, target, what);
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw new CliError(`cannot write -o ${path}: ${errnoReason(error)}`, 'usage');
    }
  }

  /** Writes the value, then puts it in place (rename); on any failure the temporary file goes. */
  async write(head: { chunks: AsyncIterable<Uint8Array> }): Promise<void> {
    // A failed transfer throws its own error; a failed write says so. Either way discard() follows.
    for await (const chunk of head.chunks) await this.append(chunk);
    await this.commit();
  }

  /** Appends bytes to the temporary file (or FILE itself when written in place). */
  async append(chunk: Uint8Array): Promise<void> {
    try {
      for (let at = 0; at < chunk.byteLength; ) at += (await this.handle.write(chunk, at)).bytesWritten;
    } catch (error) {
      const unchanged = this.temp === undefined ? '' : ` (${this.path} is unchanged)`;
      throw new CliError(`cannot write ${this.what} to ${this.path}: ${errnoReason(error)}${unchanged}`, 'failed');
    }
  }

  /** Everything is written: close, and rename the temporary file over FILE. */
  async commit(): Promise<void> {
    await this.handle.close();
    if (this.temp !== undefined) {
      try {
        await rename(this.temp, this.target);
      } catch (error) {
        throw new CliError(`cannot replace ${this.path}: ${errnoReason(error)}`, 'failed');
      }
    }
    this.settle();
  }

  /** Closes and removes the temporary file unless write() put it in place. Idempotent. */
  async discard(): Promise<void> {
    if (this.settled) return;
    this.settle();
    await this.handle.close().catch(() => undefined);
    if (this.temp !== undefined) await rm(this.temp, { force: true });
  }

  private settle(): void {
    this.settled = true;
    for (const signal of interruptions) process.off(signal, this.onSignal);
    process.off('exit', this.onExit);
  }

  private removeTempSync(): void {
    if (this.temp !== undefined) rmSync(this.temp, { force: true });
  }
}

/** The value to stdout piece by piece; on a terminal, a final newline if the value lacks one. */
async function toStdout(head: GetStreamResult): Promise<void> {
  const out = process.stdout;
  let last: number | undefined;
  await pipeChunks(head, out, (chunk) => {
    if (chunk.byteLength > 0) last = chunk[chunk.byteLength - 1];
  });
  if (out.isTTY && last !== undefined && last !== 0x0a) await pipeChunks({ chunks: [Buffer.from('\n')] }, out);
}

/** Writes each piece as it arrives, waiting when the destination is full. */
async function pipeChunks(head: { chunks: AsyncIterable<Buffer> | Iterable<Buffer> }, out: Writable, seen?: (chunk: Buffer) => void): Promise<void> {
  let failure: Error | undefined;
  const onError = (error: Error): void => {
    failure = error;
  };
  out.on('error', onError);
  try {
    for await (const chunk of head.chunks) {
      if (failure) break;
      seen?.(chunk);
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
    await new Promise<void>((resolve) => out.write('', () => resolve()));
    if (failure) throw new CliError(`cannot write the value: ${failure.message}`, 'failed');
  } finally {
    out.off('error', onError);
  }
}
