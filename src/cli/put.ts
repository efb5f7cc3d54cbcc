/** `ckv put KEY VALUE | -f FILE | -`: store a value (string, whole file, or stdin). */
import { open, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { utf8 } from '../core/bytes.js';
import { valueBytesMax } from '../core/limits.js';
import { CliError, ExitCode, versionText, withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('put')
    .description('store a value: a string, a file (-f FILE) or standard input (-)')
    .argument('<key>', 'the key (1..1024 bytes of UTF-8)')
    .argument('[value]', "the value as a string, or '-' to read standard input")
    .option('-f, --file <file>', 'read the value from a file')
    .action(async (key: string, value: string | undefined, options: { file?: string }, command: Command) => {
      const bytes = await readValue(value, options.file);
      const reply = await withClient(command, (client) => client.put(key, bytes));
      await writeStdout(`${versionText(reply.version)}\n`);
    });
}

async function readValue(value: string | undefined, file: string | undefined): Promise<Uint8Array> {
  if (file !== undefined && value !== undefined) throw new CliError('give a value or -f FILE, not both', ExitCode.usage);
  if (file !== undefined) return readFileBounded(file);
  if (value === undefined) throw new CliError('missing value: give VALUE, -f FILE or - for standard input', ExitCode.usage);
  if (value === '-') return readStdinBounded();
  const bytes = utf8(value);
  checkSize(bytes.byteLength);
  return bytes;
}

function checkSize(bytes: number): void {
  if (bytes > valueBytesMax) {
    throw new CliError(`value is ${bytes} bytes; the limit is ${valueBytesMax} bytes (nothing was stored)`, ExitCode.refused);
  }
}

/** Checks the size before reading a byte, then reads into one buffer: one copy of the value. */
async function readFileBounded(path: string): Promise<Uint8Array> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new CliError(`${path} is not a regular file`, ExitCode.usage);
    size = info.size;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`, ExitCode.usage);
  }
  checkSize(size);
  const handle = await open(path, 'r');
  try {
    const buffer = new Uint8Array(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(buffer, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    return buffer.subarray(0, offset);
  } finally {
    await handle.close();
  }
}

/** Reads stdin, refusing as soon as it passes the limit rather than buffering all of it. */
async function readStdinBounded(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    checkSize(total);
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}
