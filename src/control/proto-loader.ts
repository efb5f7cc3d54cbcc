/**
 * ckv.proto through @grpc/proto-loader: every message's descriptor, for server reflection
 * (loaded on its first call, ./reflection.ts) and for the test that checks wire.ts and the
 * server's service definition (./proto.ts) against it. Not loaded when a node starts:
 * proto-loader builds and encodes a descriptor of every message.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { loaderOptions, protoPath } from './proto.js';

let cached: { definition: protoLoader.PackageDefinition; kv: grpc.ServiceClientConstructor } | undefined;

/** The API as written in ckv.proto (snake_case names), for server reflection. */
export function loadReflectionDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(protoPath, { ...loaderOptions, keepCase: true });
}

/** ckv.proto as proto-loader defines it (camelCase fields), with its client constructor. */
export function loadKvService(): { definition: protoLoader.PackageDefinition; kv: grpc.ServiceClientConstructor } {
  if (!cached) {
    const definition = protoLoader.loadSync(protoPath, loaderOptions);
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { ckv: { v1: { Kv: grpc.ServiceClientConstructor } } };
    cached = { definition, kv: loaded.ckv.v1.Kv };
  }
  return cached;
}
