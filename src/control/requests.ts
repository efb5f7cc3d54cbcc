/**
 * The control API's requests as the node's arguments: the request messages' shapes, and the
 * checks that refuse a malformed one with INVALID_ARGUMENT before anything is read or written
 * (a key, a TTL, a write condition, a read's source, an Import's entry batch). PutMany and
 * PutPipeline submit their writes here (writeResults), each answered with its own PutResult.
 */
import * as grpc from '@grpc/grpc-js';
import { ByteReader } from '../core/bytes.js';
import { checkKey, parseVersionText, readEntry, type Entry, type Version, type WriteCondition } from '../core/entry.js';
import type { LocalWrite } from '../core/replica.js';
import { checkTtlMs } from '../core/ttl.js';
import type { Consistency } from '../core/ownership.js';
import { InvalidArgumentError, kindOf } from '../errors.js';
import type { NodeApi, ReadOptions, ScanReadOptions } from '../node/api.js';
import { consistencyOf, readSources, type ReadSource } from '../node/coordinator.js';
import { importEntriesMax } from './limits.js';
import { toServiceError, versionMessage } from './messages.js';
import type { VersionMessage } from './proto.js';
import type { PutOutcome } from './watch-codec.js';

/** A request's ttl_ms (decimal text; '0' or absent: no TTL) as a checked TTL (src/core/ttl.ts). */
export function ttlOf(ttlMs: string | undefined): number | undefined {
  if (ttlMs === undefined || ttlMs === '0' || ttlMs === '') return undefined;
  const checked = checkTtlMs(Number(ttlMs));
  if (typeof checked === 'string') throw new InvalidArgumentError(checked);
  return checked;
}

export interface GetMessage {
  key: string;
  from?: string;
  allowPartial?: boolean;
}

/** A Get's read options: from ('' = the default) and allow_partial. */
export function readOptions(req: GetMessage): ReadOptions {
  const from = req.from ?? '';
  if (from !== '' && !(readSources as readonly string[]).includes(from)) {
    throw new InvalidArgumentError(`from ${JSON.stringify(from.slice(0, 40))} is not one of ${readSources.join(', ')}`);
  }
  return { ...(from === '' ? {} : { from: from as ReadSource }), allowPartial: req.allowPartial ?? false };
}

export interface PutMessage {
  key: string;
  value: Buffer;
  ifVersion: string;
  ifAbsent: boolean;
  /** PutMany and PutPipeline: a tombstone instead of the value. */
  delete: boolean;
  /** Partitioned mode's acks ('' = quorum): Put, PutStream, and each put of PutMany and PutPipeline. */
  consistency: string;
  /** TTL in ms as decimal text ('0': none). */
  ttlMs?: string;
}

/**
 * The condition of a write request ('' and false: none). A malformed version text, or both
 * conditions at once, is refused before anything is written.
 */
export function writeCondition(ifVersion: string, ifAbsent: boolean): WriteCondition | undefined {
  if (ifVersion === '') return ifAbsent ? { ifAbsent: true } : undefined;
  if (ifAbsent) throw new InvalidArgumentError('give if_version or if_absent, not both');
  const version = parseVersionText(ifVersion);
  if (!version) throw new InvalidArgumentError(`if_version ${JSON.stringify(ifVersion.slice(0, 80))} is not a version (wallMs.counter@node, as a put prints it)`);
  return { ifVersion: version };
}

/** A write of PutMany or PutPipeline with its consistency (partitioned mode; undefined: the default). */
type ManyWrite = LocalWrite & { consistency?: Consistency | undefined };

/** A put of PutMany or PutPipeline as the replica's LocalWrite, or the error of its malformed condition or consistency. */
export function localWrite(put: PutMessage): ManyWrite | Error {
  try {
    const condition = writeCondition(put.ifVersion ?? '', put.ifAbsent ?? false);
    const consistency = consistencyOf(put.consistency ?? '');
    const value = put.delete ? null : new Uint8Array(put.value.buffer, put.value.byteOffset, put.value.byteLength);
    const ttlMs = put.delete ? undefined : ttlOf(put.ttlMs);
    return ttlMs === undefined ? { key: put.key, value, condition, consistency } : { key: put.key, value, condition, consistency, ttlMs };
  } catch (error) {
    return error as Error;
  }
}

export interface PutResultMessage {
  version?: VersionMessage;
  error: string;
  code: number;
}

/** A write's outcome as a PutResult message (grpc-js's PutMany path; the others encode outcomes by hand: encodePutManyReply). */
export function putResultMessage(outcome: PutOutcome): PutResultMessage {
  return 'error' in outcome ? { error: outcome.error, code: outcome.code } : { version: versionMessage(outcome), error: '', code: grpc.status.OK };
}

/**
 * Each write's outcome: its version, or the error's message and status code. A write given as
 * an Error (a malformed condition) is answered with it and not submitted.
 */
export async function writeOutcomes(node: NodeApi, writes: readonly (ManyWrite | Error)[], onStopping?: () => void): Promise<PutOutcome[]> {
  // One writeMany per consistency asked (normally one: every put of a call says the same).
  const groups = new Map<Consistency | undefined, number[]>();
  writes.forEach((write, i) => {
    if (write instanceof Error) return;
    const group = groups.get(write.consistency);
    if (group) group.push(i);
    else groups.set(write.consistency, [i]);
  });
  const outcomes = new Map<number, Version | Error>();
  await Promise.all(
    [...groups].map(async ([consistency, at]) => {
      let results: (Version | Error)[];
      try {
        results = await node.writeMany(
          at.map((i) => {
            const { key, value, condition, ttlMs } = writes[i] as ManyWrite;
            return ttlMs === undefined ? { key, value, condition } : { key, value, condition, ttlMs };
          }),
          consistency,
        );
      } catch (error) {
        results = at.map(() => error as Error); // the node is stopping: every write fails alike
      }
      at.forEach((i, n) => outcomes.set(i, results[n]!));
    }),
  );
  if (onStopping && [...outcomes.values()].some((outcome) => outcome instanceof Error && kindOf(outcome) === 'stopping')) onStopping();
  return writes.map((write, i) => {
    const outcome = write instanceof Error ? write : outcomes.get(i)!;
    if (!(outcome instanceof Error)) return outcome;
    const status = toServiceError(outcome);
    return { error: status.details, code: status.code };
  });
}

export interface PutChunk {
  consistency?: string;
  key: string;
  valueBytes: string;
  data: Buffer;
  ifVersion: string;
  ifAbsent: boolean;
  ttlMs?: string;
}

export interface ExportRequest {
  prefix: string;
  includeDeleted: boolean;
  from?: string;
  allowPartial?: boolean;
}

/**
 * An Import's entries (the core encoding, back to back), each decoded with the core's limits:
 * more than importEntriesMax, a count that does not match, or bytes that are not entries
 * are refused (INVALID_ARGUMENT) before anything is applied.
 */
export function decodeEntryBatch(bytes: Buffer, count: number, valueBytesMax: number): Entry[] {
  if (count > importEntriesMax) throw new InvalidArgumentError(`${count} entries in one Import; the limit is ${importEntriesMax}`);
  const reader = new ByteReader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const entries: Entry[] = [];
  while (reader.remaining > 0) {
    if (entries.length === count) throw new InvalidArgumentError(`Import holds more than the ${count} entries it announced (nothing was applied)`);
    try {
      entries.push(readEntry(reader, valueBytesMax));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new InvalidArgumentError(`Import entry ${entries.length} does not decode: ${reason} (nothing was applied)`);
    }
  }
  if (entries.length !== count) throw new InvalidArgumentError(`Import holds ${entries.length} entries, not the ${count} it announced (nothing was applied)`);
  return entries;
}

export interface ScanRequest {
  prefix: string;
  startAfter: string;
  limit: number;
  withValues: boolean;
  includeDeleted: boolean;
  from?: string;
  allowPartial?: boolean;
}

/** A prefix read's source (ScanRequest and ExportRequest `from`, `allow_partial`): '' or 'local'. */
export function scanReadOptions(req: { from?: string; allowPartial?: boolean }): ScanReadOptions & { partial: { partitionsMissing: number } } {
  const from = req.from ?? '';
  if (from !== '' && from !== 'local') throw new InvalidArgumentError(`from ${JSON.stringify(from.slice(0, 40))} is not "local" (empty: every partition from its owners)`);
  return { ...(from === 'local' ? { from } : {}), allowPartial: req.allowPartial ?? false, partial: { partitionsMissing: 0 } };
}

/** Read paths validate keys too, so `get ''` is INVALID_ARGUMENT, not "not found". */
export function checkedKey(key: string): string {
  checkKey(key);
  return key;
}
