/**
 * What every ckv command shares: exit codes, finding the node's socket, turning errors into
 * one line on stderr and the right exit code.
 */
import type { Command } from 'commander';
import { defaultDataDir, socketPathFor } from '../config.js';
import { ControlClient, type WriteConditionText } from '../control/client.js';
import { parseVersionText } from '../core/entry.js';
import { GrpcStatus, GrpcStatusError } from '../control/h2.js';
import type { VersionMessage } from '../control/proto.js';
import { errorKinds, ExitCode, kindOf, kindOfGrpcStatus, type ErrorKind } from '../errors.js';

export { ExitCode };

export const exitCodeHelp = `Exit codes:
  0  ok
  1  not found (the key, or it was deleted; the peer)
  2  usage error (bad arguments, an -o FILE that cannot be written; a node start flag that
     cannot be used: --cluster, --http, --listen, --bootstrap, an unreadable --cluster-key
     file, a --data-dir that cannot be created or written; a data directory of another
     cluster without --rebind-cluster)
  3  node unreachable (no node at the socket, or it is stopping; permission denied on the
     socket: the node runs as another user)
  4  request refused (invalid key, value too large, no peers, peer still connected, a write
     while this node's clock is too far ahead, a layout change that cannot be made, a
     --replicas that disagrees with the cluster's layout: reads and writes, and the start
     on a data directory that holds that layout, ...)
  5  failed (the node could not start, e.g. its data directory is in use, another node
     answers on its control socket, or a --listen or --http address cannot be bound;
     internal error)
  6  outcome unknown: the node went away after a write was sent; it may or may not be
     stored (check with ckv get)
  7  condition failed: put --if-version/--if-absent or del --if-version found another
     version (the message names it); nothing was written
  8  degraded: ckv health found a node down or silent, data out of sync, or a clock off
  9  backup damaged: ckv import found a truncated or corrupt file (the message names the
     byte offset); blocks before it may have been applied, nothing after it`;

/** An error the CLI itself finds; its exit code is its kind's (src/errors.ts). */
export class CliError extends Error {
  constructor(message: string, readonly kind: ErrorKind) {
    super(message);
    this.name = 'CliError';
  }
}

export interface GlobalOptions {
  socket?: string;
}

/** `--socket PATH`, else `$CKV_SOCKET`, else the default data directory's socket. */
export function resolveSocket(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  return options.socket ?? env.CKV_SOCKET ?? socketPathFor(defaultDataDir(env));
}

export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

/** Run `fn` with a client for the node this command talks to, and close it after. */
export async function withClient<T>(command: Command, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = ControlClient.connect(resolveSocket(globalOptions(command)));
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** One line for the user and the exit code that goes with it: the kind's, from the error table. */
export function describeError(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: error.message, exitCode: errorKinds[error.kind].exit };
  if (error instanceof GrpcStatusError) {
    const message = error.details || 'request failed';
    const { exit } = errorKinds[kindOfGrpcStatus(error.code)];
    return { message: error.code === GrpcStatus.UNAVAILABLE ? `node unavailable: ${message}` : message, exitCode: exit };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message: message.split('\n')[0]!, exitCode: errorKinds[kindOf(error)].exit };
}

/**
 * `--if-version V` / `--if-absent` as the client's condition; a malformed version or both
 * flags at once is a usage error (exit 2) before anything is sent.
 */
export function conditionOption(options: { ifVersion?: string; ifAbsent?: boolean }): WriteConditionText {
  if (options.ifVersion !== undefined && options.ifAbsent) throw new CliError('give --if-version or --if-absent, not both', 'usage');
  if (options.ifAbsent) return { ifAbsent: true };
  if (options.ifVersion === undefined) return {};
  if (!parseVersionText(options.ifVersion)) {
    throw new CliError(`--if-version ${options.ifVersion.slice(0, 80)} is not a version (wallMs.counter@node, as put prints it)`, 'usage');
  }
  return { ifVersion: options.ifVersion };
}

/** "850 ms ago", "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function formatAge(ms: number): string {
  const age = Math.max(0, ms);
  if (age < 1000) return `${Math.round(age)} ms ago`;
  if (age < 120_000) return `${Math.round(age / 1000)} s ago`;
  if (age < 7_200_000) return `${Math.round(age / 60_000)} min ago`;
  if (age < 172_800_000) return `${Math.round(age / 3_600_000)} h ago`;
  return `${Math.round(age / 86_400_000)} d ago`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

export function versionText(version: VersionMessage | null | undefined): string {
  return version ? version.text : '-';
}

/** Write to stdout and resolve once it is flushed (binary-safe; large outputs included). */
export function writeStdout(data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (error) => (error ? reject(error) : resolve()));
  });
}

export function printJson(value: unknown): Promise<void> {
  return writeStdout(JSON.stringify(value, null, 2) + '\n');
}
