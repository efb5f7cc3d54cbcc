/**
 * Checks a node's configuration before anything opens, so a bad flag fails at once with a
 * one-line usage error (exit 2) rather than half-way through the start as a failure.
 */
import type { NodeConfig } from '../config.js';
import { parseHttpAddress, type HttpAddress } from '../http/server.js';

/** Socket paths longer than this do not fit in sockaddr_un on Linux. */
const socketPathBytesMax = 107;

export function checkConfig(config: NodeConfig): { httpAddress: HttpAddress | undefined } {
  const { socketPath } = config;
  if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
    throw new Error(`control socket path is ${Buffer.byteLength(socketPath)} bytes, over the ${socketPathBytesMax}-byte limit of Unix sockets: ${socketPath}`);
  }
  return { httpAddress: parseHttpAddress(config.http) };
}
