/**
 * Free TCP ports on 127.0.0.1, for `ckv demo` and tests that must name ports before they start
 * nodes: each is found by listening on port 0; all probes are held open together so the ports
 * are distinct, then closed. Another process may take a port before it is used (a race the
 * callers accept: a node that cannot listen fails with a clear error).
 */
import { createServer, type AddressInfo } from 'node:net';

/** `count` distinct TCP ports free on 127.0.0.1 now (all held at once while they are picked). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}
