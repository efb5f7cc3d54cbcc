/**
 * What every ckv command shares: exit codes, finding the node's socket, turning errors into
 * one line on stderr and the right exit code.
 */
import type { Command } from 'commander';
import { CkvError, StoreLockedError } from '../core/errors.js';
import { defaultDataDir, socketPathFor } from '../config.js';
import { ControlClient, NodeUnreachableError } from '../control/client.js';
import { GrpcStatus, GrpcStatusError } from '../control/h2.js';
import type { VersionMessage } from '../control/proto.js';

/** Exit codes. Documented in `ckv --help` and the README; scripts rely on them. */
export const ExitCode = {
  ok: 0,
  notFound: 1,
  usage: 2,
  unreachable: 3,
  refused: 4,
  failed: 5,
} as const;

export const exitCodeHelp = `Exit codes:
  0  ok
  1  key not found
  2  usage error
  3  node unreachable (no node at the socket)
  4  request refused (invalid key, value too large, no peers, ...)
  5  the node failed (could not start, internal error)`;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
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

/** One line for the user and the exit code that goes with it. */
export function describeError(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: error.message, exitCode: error.exitCode };
  if (error instanceof NodeUnreachableError) return { message: error.message, exitCode: ExitCode.unreachable };
  if (error instanceof StoreLockedError) return { message: error.message, exitCode: ExitCode.failed };
  if (error instanceof CkvError) return { message: error.message, exitCode: ExitCode.refused };
  if (error instanceof GrpcStatusError) {
    const message = error.details || 'request failed';
    switch (error.code) {
      case GrpcStatus.NOT_FOUND:
        return { message, exitCode: ExitCode.notFound };
      case GrpcStatus.INVALID_ARGUMENT:
      case GrpcStatus.RESOURCE_EXHAUSTED:
      case GrpcStatus.FAILED_PRECONDITION:
        return { message, exitCode: ExitCode.refused };
      case GrpcStatus.UNAVAILABLE:
        return { message: `node unavailable: ${message}`, exitCode: ExitCode.unreachable };
      default:
        return { message, exitCode: ExitCode.failed };
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message, exitCode: ExitCode.failed };
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
