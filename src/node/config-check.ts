/**
 * Checks a node's configuration before anything opens, so a bad flag (`--http`, `--listen`,
 * `--bootstrap`) fails at once with a one-line usage error (UsageError: exit 2) rather than
 * half-way through the start as a failure (exit 5). A well-formed address that cannot be
 * bound (in use, not ours) is still a failure: that is the host, not the command line.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { NodeConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { parseHttpAddress, type HttpAddress } from '../http/server.js';

/** Socket paths longer than this do not fit in sockaddr_un on Linux. */
const socketPathBytesMax = 107;

export function checkConfig(config: NodeConfig): { httpAddress: HttpAddress | undefined } {
  const { socketPath } = config;
  if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
    throw new UsageError(`control socket path is ${Buffer.byteLength(socketPath)} bytes, over the ${socketPathBytesMax}-byte limit of Unix sockets: ${socketPath}`);
  }
  for (const address of config.listen) {
    const parsed = parseAddress('--listen', address);
    if (!parsed.getComponents().some((c) => c.name === 'tcp')) {
      throw new UsageError(`--listen ${address}: ckv listens on TCP only, e.g. /ip4/0.0.0.0/tcp/4455`);
    }
  }
  for (const address of config.bootstrap) parseAddress('--bootstrap', address);
  return { httpAddress: parseHttpAddress(config.http) };
}

/** A multiaddr, and its `/p2p/<peer id>` part (if any) a valid peer id. */
function parseAddress(flag: string, address: string): Multiaddr {
  let parsed: Multiaddr;
  try {
    parsed = multiaddr(address);
  } catch (error) {
    throw new UsageError(`${flag} ${address}: not a multiaddr (${(error as Error).message}), e.g. /ip4/127.0.0.1/tcp/4455`);
  }
  for (const component of parsed.getComponents()) {
    if (component.name !== 'p2p') continue;
    try {
      peerIdFromString(component.value ?? '');
    } catch {
      throw new UsageError(`${flag} ${address}: ${component.value ?? ''} is not a peer id`);
    }
  }
  return parsed;
}
