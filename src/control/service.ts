/**
 * Service ckv.v1.Kv as the control server registers it with grpc-js: every rpc of wire.ts's
 * table with wire.ts's codecs, the same hand encoding the CLI's client uses.
 *
 * Why not protobufjs (./proto.ts, which proto-loader's definition mirrors): a node built it at
 * every start, parsing the JSON form of ckv.proto into a Root, resolving it and then generating
 * each message type's encode and fromObject functions with `new Function` on their first use,
 * code V8's code cache cannot hold: ~15-20 ms of a restarted node's CPU before and during its
 * first catch-up (docs/measurements.md, 2026-12-07). The decoded shapes are proto-loader's
 * (camelCase fields, 64-bit integers as decimal strings, defaults filled in), and
 * test/unit/wire.test.ts checks this definition against ckv.proto and protobufjs rpc by rpc,
 * both ways. protobufjs is still loaded, on the first call, by server reflection
 * (./reflection.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcMessageBytesMax } from './limits.js';
import { decode, encode, methods, type Method } from './wire.js';

/** The service's full name, as in paths: /ckv.v1.Kv/Put. */
export const kvServiceName = 'ckv.v1.Kv';

/** The control server's grpc-js options: messages up to the API's own limit. */
export const channelOptions: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': grpcMessageBytesMax,
  'grpc.max_send_message_length': grpcMessageBytesMax,
};

let cached: grpc.ServiceDefinition | undefined;

/** Every rpc of ckv.v1.Kv, for grpc.Server.addService (made once). */
export function kvServiceDefinition(): grpc.ServiceDefinition {
  if (cached) return cached;
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const name of Object.keys(methods) as Method[]) {
    const { request, reply, streaming } = methods[name];
    definition[name] = {
      path: `/${kvServiceName}/${name}`,
      requestStream: streaming === 'requests' || streaming === 'both',
      responseStream: streaming === 'replies' || streaming === 'both',
      requestSerialize: (value: object) => encode(request, value),
      requestDeserialize: (bytes: Buffer) => decode(request, bytes),
      responseSerialize: (value: object) => encode(reply, value),
      responseDeserialize: (bytes: Buffer) => decode(reply, bytes),
      // proto-loader's camelCase of the PascalCase rpc names: Put -> put, PutMany -> putMany.
      originalName: name.charAt(0).toLowerCase() + name.slice(1),
    };
  }
  cached = definition;
  return cached;
}
