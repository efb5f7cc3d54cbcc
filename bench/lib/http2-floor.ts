/**
 * The floor under an idle gRPC call on this machine: a bare node:http2 server in a process of
 * its own on a Unix socket, answering every call the way grpc-js answers a unary one (response
 * headers and one framed message, then the grpc-status trailers once the message's write has
 * completed), called through the control API's own client (src/control/h2.ts). No ckv, no
 * grpc-js, no LevelDB: only the process wake-ups, node:http2 on both sides and the socket. On a
 * VM whose idle vCPUs halt, a call after an idle pause costs several times a call made back to
 * back (docs/measurements.md, "idle put acknowledgement"), and no server on node:http2 answers
 * faster than this.
 */
import { once } from 'node:events';
import { join } from 'node:path';
import { GrpcChannel } from '../../src/control/h2.js';
import { exitOf, hasExited, spawnTracked, tempDir, withDeadline } from '../../harness/index.js';

const serverScript = `
import { createServer } from 'node:http2';
const server = createServer();
server.on('stream', (stream) => {
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.write(Buffer.alloc(5), () => stream.end());
  });
});
server.listen(process.argv[1], () => process.stdout.write('ready\\n'));
`;

export class Http2Floor {
  private constructor(
    private readonly child: ReturnType<typeof spawnTracked>,
    private readonly channel: GrpcChannel,
  ) {}

  /** Starts the server process and resolves once it listens (10 s at most). */
  static async start(): Promise<Http2Floor> {
    const socket = join(tempDir('ckv-floor-'), 'floor.sock');
    const child = spawnTracked(process.execPath, ['--input-type=module', '-e', serverScript, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.setEncoding('utf8');
    await withDeadline(once(child.stdout!, 'data'), 10_000, 'the bare http2 server to listen');
    return new Http2Floor(child, new GrpcChannel(socket, 1024));
  }

  /** One unary call with a 100-byte request; resolves when its status has arrived. */
  async call(): Promise<void> {
    const call = this.channel.call('/floor.v1.Floor/Call', { deadlineMs: 10_000 });
    const request = new Uint8Array(100);
    await call.write([request], request.byteLength);
    call.end();
    for await (const message of call.messages()) void message;
  }

  async stop(): Promise<void> {
    this.channel.close();
    if (!hasExited(this.child)) this.child.kill('SIGTERM');
    await exitOf(this.child);
  }
}
