/**
 * `ckv get K1 K2 ...` and `ckv get --prefix P [--limit N]`: many values in one command.
 *
 * Several keys are read with up to `getsInFlightMax` Gets in flight and printed in the order
 * given; a missing or deleted key prints a `ckv:` line on stderr (text) or its object with
 * `found: false` (--json), and the command exits 1 after printing the rest. A prefix is one
 * Scan with values, streamed: the node sends entries as the reader takes them (HTTP/2 flow
 * control), so 100k keys never sit in this process at once; output is flushed every
 * `linesPerWrite` entries.
 *
 * Text output, for people (as etcd's `get --prefix`): each key on a line, then its value's
 * bytes, with a newline added if the value does not end in one. Values may hold newlines or
 * be binary: scripts should use --json (one object a line, the value UTF-8 or base64).
 *
 * Partitioned mode: each of several keys is read like a single key (from its owners; `--from`
 * and `--allow-partial` apply to each); `--prefix` reads every partition from its owners
 * (or `--from local`: this node's copies; `--allow-partial`: see prefix-read.ts).
 */
import type { Command } from 'commander';
import type { ControlClient, GetResult, ReadOptionsText } from '../control/client.js';
import { CliError, withClient, writeStdout } from './common.js';
import { entryJson, scannedJson } from './json.js';
import { noteMissing } from './prefix-read.js';

export interface GetOptions {
  output?: string;
  json?: boolean;
  prefix?: string;
  limit?: string;
}

/** Gets in flight for `get K1 K2 ...`: enough to hide the round trip, few enough to hold their values. */
const getsInFlightMax = 16;
/** Entries gathered before one write to stdout. */
const linesPerWrite = 256;

export async function getMany(command: Command, keys: string[], options: GetOptions, read: ReadOptionsText = {}): Promise<void> {
  if (options.output !== undefined) throw new CliError('-o FILE takes one key; for several keys or --prefix, use standard output', 'usage');
  if (options.prefix !== undefined && keys.length > 0) throw new CliError('give keys or --prefix, not both', 'usage');
  if (options.prefix === undefined && keys.length === 0) throw new CliError('missing key: give KEY..., or --prefix PREFIX', 'usage');
  if (options.limit !== undefined && options.prefix === undefined) throw new CliError('--limit goes with --prefix', 'usage');
  const limit = options.limit === undefined ? 0 : Number(options.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new CliError(`--limit must be a whole number, not ${options.limit}`, 'usage');
  const json = options.json ?? false;
  await withClient(command, async (client) => {
    if (options.prefix !== undefined) await printPrefix(client, options.prefix, limit, json, read);
    else await printKeys(client, keys, json, read);
  });
}

/** One key (text: key line, value, newline) or its JSON line. */
function render(key: string, value: Buffer, json: boolean, entry: () => object): Buffer {
  if (json) return Buffer.from(`${JSON.stringify(entry())}\n`);
  const parts = [Buffer.from(`${key}\n`), value];
  if (value.byteLength === 0 || value[value.byteLength - 1] !== 0x0a) parts.push(Buffer.from('\n'));
  return Buffer.concat(parts);
}

async function printPrefix(client: ControlClient, prefix: string, limit: number, json: boolean, read: { from?: string; allowPartial?: boolean }): Promise<void> {
  let pending: Buffer[] = [];
  let missing = 0;
  for await (const entry of client.scan({ prefix, limit, withValues: true, includeDeleted: false, ...read })) {
    if (entry.key === '' && entry.partitionsMissing > 0) {
      missing = entry.partitionsMissing;
      if (json) pending.push(Buffer.from(`${JSON.stringify({ partitionsMissing: missing })}\n`));
      continue;
    }
    pending.push(render(entry.key, entry.value, json, () => scannedJson(entry, true)));
    if (pending.length >= linesPerWrite) {
      await writeStdout(Buffer.concat(pending));
      pending = [];
    }
  }
  if (pending.length > 0) await writeStdout(Buffer.concat(pending));
  noteMissing(missing);
}

async function printKeys(client: ControlClient, keys: string[], json: boolean, options: ReadOptionsText): Promise<void> {
  const missing: string[] = [];
  // A window of reads in flight; printed strictly in the order given.
  const reads: Promise<GetResult>[] = [];
  let next = 0;
  const fill = (): void => {
    while (next < keys.length && reads.length < getsInFlightMax) {
      const read = client.get(keys[next++]!, options);
      read.catch(() => undefined); // awaited in order below; a failure ends the command there
      reads.push(read);
    }
  };
  fill();
  for (const key of keys) {
    const reply = await reads.shift()!;
    fill();
    if (!reply.found) {
      missing.push(key);
      if (json) await writeStdout(`${JSON.stringify(entryJson(key, reply))}\n`);
      else process.stderr.write(`ckv: ${reply.deleted ? 'key was deleted' : 'key not found'}: ${key}\n`);
      continue;
    }
    await writeStdout(render(key, reply.value, json, () => entryJson(key, reply)));
  }
  if (missing.length > 0) {
    throw new CliError(`${missing.length} of ${keys.length} keys not found${json ? '' : ' (listed above)'}`, 'notFound');
  }
}
