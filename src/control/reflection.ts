/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, @grpc/reflection), loaded on its
 * first call instead of at start: building it (loading the package, proto-loader's descriptor
 * of every message of ckv.proto, parsing reflection.proto twice) was ~15 % of a node's start.
 *
 * Both services are registered at once, with methods that pass the bytes through; the first
 * call loads @grpc/reflection and hands it the call, decoding what the client sends and
 * encoding the answers with @grpc/reflection's own (de)serializers. Messages that arrive while
 * it loads wait. So a client sees the same service as if it had been built at start.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';

const serviceNames = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];
const methodName = 'ServerReflectionInfo';

/** What @grpc/reflection registers for one service: the method's definition and its handler. */
interface Registered {
  method: grpc.MethodDefinition<unknown, unknown>;
  handler: (stream: EventEmitter) => void;
}

/** The stream @grpc/reflection's handler is given: it listens for 'data' and 'end', calls write and end. */
interface HandlerStream extends EventEmitter {
  write(message: unknown): boolean;
  end(): void;
}

let loading: Promise<Map<string, Registered>> | undefined;

/** @grpc/reflection for ckv.proto, with what it would register on a server, by method path. */
async function load(): Promise<Map<string, Registered>> {
  // `.default`: the CommonJS package's exports, in Node and in esbuild's bundle alike (the bundle gives no named exports).
  const [reflection, { loadReflectionDefinition }] = await Promise.all([import('@grpc/reflection'), import('./proto-loader.js')]);
  const { ReflectionService } = reflection.default;
  const registered = new Map<string, Registered>();
  const recorder = {
    addService(service: grpc.ServiceDefinition, implementation: Record<string, (stream: EventEmitter) => void>): void {
      const method = service[methodName] as grpc.MethodDefinition<unknown, unknown>;
      registered.set(method.path, { method, handler: implementation[methodName]!.bind(implementation) });
    },
  };
  new ReflectionService(loadReflectionDefinition()).addToServer(recorder as unknown as grpc.Server);
  return registered;
}

function internal(message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code: grpc.status.INTERNAL, details: message, metadata: new grpc.Metadata() });
}

/** One reflection call: waits for @grpc/reflection, then runs its handler on the call. */
function serve(path: string, call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
  const pending: Buffer[] = [];
  let ended = false;
  let real: Registered | undefined;
  const stream = new EventEmitter() as HandlerStream;
  stream.write = (message) => call.write(real!.method.responseSerialize(message));
  stream.end = () => call.end();
  const deliver = (bytes: Buffer): void => {
    let message: unknown;
    try {
      message = real!.method.requestDeserialize(bytes);
    } catch (error) {
      call.emit('error', internal(`reflection: cannot decode the request: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    stream.emit('data', message);
  };
  call.on('data', (bytes: Buffer) => (real ? deliver(bytes) : pending.push(bytes)));
  call.on('end', () => (real ? stream.emit('end') : (ended = true)));
  (loading ??= load()).then(
    (registered) => {
      real = registered.get(path)!;
      real.handler(stream);
      for (const bytes of pending.splice(0)) deliver(bytes);
      if (ended) stream.emit('end');
    },
    (error: unknown) => {
      loading = undefined; // the next call tries again
      call.emit('error', internal(`reflection unavailable: ${error instanceof Error ? error.message : String(error)}`));
    },
  );
}

const passThrough = (bytes: Buffer): Buffer => bytes;

/** Registers server reflection on `server`; @grpc/reflection is loaded on the first call. */
export function addReflection(server: grpc.Server): void {
  for (const name of serviceNames) {
    const path = `/${name}/${methodName}`;
    const method: grpc.MethodDefinition<Buffer, Buffer> = {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: passThrough,
      originalName: 'serverReflectionInfo',
    };
    server.addService({ [methodName]: method }, { [methodName]: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => serve(path, call) });
  }
}
