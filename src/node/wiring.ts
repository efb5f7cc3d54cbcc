/**
 * The one place where a node and its front ends meet: startNode opens a CkvNode, starts the
 * HTTP server and the control server on it (each given the node as a NodeApi) and registers
 * them with the node, which closes them first when it stops. Neither server imports CkvNode
 * and the node imports neither server, so there is no import circle.
 *
 * Order (see ./node.ts): the configuration is checked before anything opens (a bad flag is a
 * usage error, exit 2), then the data directory (created, writable: ./data-dir.ts) and the
 * control socket path (a path another node serves on is refused: ./control-socket.ts), so a
 * node that cannot start says so before it joins the network; the store lock, replica and
 * cluster (CkvNode.open); HTTP; then the socket path is checked again, a stale socket removed
 * and the socket bound, last, so a node that answers Status is fully up. If a step fails,
 * everything opened so far is closed and the error is rethrown.
 */
import type { NodeConfig } from '../config.js';
import { ControlServer } from '../control/server.js';
import type { Logger } from '../util/logger.js';
import { checkConfig } from './config-check.js';
import { claimSocketPath } from './control-socket.js';
import { prepareDataDir } from './data-dir.js';
import { CkvNode } from './node.js';

export async function startNode(config: NodeConfig, logger: Logger): Promise<CkvNode> {
  const { httpAddress } = checkConfig(config);
  await prepareDataDir(config.dataDir);
  await claimSocketPath(config.socketPath, false);
  const node = await CkvNode.open(config, logger);
  try {
    if (httpAddress) {
      // Loaded only with HTTP on (its page, metrics and prom-client are not needed otherwise).
      const { HttpServer, isLoopbackHost } = await import('../http/server.js');
      // Before the control socket: once Status answers, it reports the HTTP URL.
      const http = new HttpServer(node);
      node.addFrontEnd(http);
      // Only the default address may move to a free port; one given with --http is bound or fails.
      node.httpUrl = await http.listen(httpAddress, { portFallback: !config.httpExplicit });
      logger.info('http listening', {
        url: node.httpUrl,
        ...(isLoopbackHost(httpAddress.host) ? {} : { warning: 'not loopback: anyone who can reach it can read and write keys' }),
      });
    }
    await claimSocketPath(config.socketPath, true); // refused if a node serves there; a stale socket is removed
    const control = new ControlServer(node);
    node.addFrontEnd(control);
    await control.listen(config.socketPath);
  } catch (error) {
    await node.abandon().catch(() => undefined);
    throw error;
  }
  const status = await node.status();
  logger.info('node started', {
    node: status.nodeId,
    peer: status.peerId,
    cluster: status.cluster,
    listen: status.listenAddresses,
    dataDir: config.dataDir,
    socket: config.socketPath,
    http: status.httpUrl || 'off',
    keys: status.keys,
    tombstones: status.tombstones,
  });
  node.logReplicaOpened();
  return node;
}
