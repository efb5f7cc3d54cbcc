/**
 * Checks a node's configuration before anything opens, so a bad flag (`--cluster`, `--http`,
 * `--listen`, `--bootstrap`) fails at once with a one-line usage error (UsageError: exit 2)
 * rather than half-way through the start as a failure (exit 5). A well-formed address that cannot be
 * bound (in use, not ours) is still a failure: that is the host, not the command line.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { NodeConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { parseHttpAddress, type HttpAddress } from '../http/server.js';

/** Socket paths longer than this do not fit in sockaddr_un on Linux. */
const socketPathBytesMax = 107;

/**
 * A cluster name: 1..64 of A-Z a-z 0-9 . _ -. It is part of the sync and query protocol ids
 * (`/ckv/<cluster>/sync/1.0.0`) and of the gossip topic, and it is kept in the data directory:
 * no slashes, spaces or empty names.
 */
export const clusterNamePattern = /^[A-Za-z0-9._-]{1,64}$/;

export function checkClusterName(name: string): void {
  if (!clusterNamePattern.test(name)) {
    throw new UsageError(`--cluster ${JSON.stringify(name)}: a cluster name is 1 to 64 characters of A-Z a-z 0-9 . _ -`);
  }
}

export function checkConfig(config: NodeConfig): { httpAddress: HttpAddress | undefined } {
  const { socketPath } = config;
  checkClusterName(config.cluster);
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
