/**
 * Any gRPC client can discover and call the control API through server reflection. This test
 * is such a client, written by hand: it speaks grpc.reflection.v1 (the .proto ships inside
 * @grpc/reflection), lists the services, fetches the FileDescriptorProto of ckv.v1.Kv and
 * builds its Kv client from those bytes alone; src/control/ckv.proto is not used for it.
 * (The shared helper's readiness check uses ControlClient; the client under test does not.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { runCliOk, startNode, withDeadline, type NodeProcess } from '../../harness/testing.js';

const loaderOptions: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

const require = createRequire(import.meta.url);
const reflectionProto = join(
  dirname(require.resolve('@grpc/reflection/package.json')),
  'build',
  'proto',
  'grpc',
  'reflection',
  'v1',
  'reflection.proto',
);

interface ReflectionResponse {
  messageResponse: 'fileDescriptorResponse' | 'listServicesResponse' | 'errorResponse' | 'allExtensionNumbersResponse';
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** One ServerReflectionInfo stream, asked one question at a time. */
class ReflectionClient {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, ReflectionResponse>;
  private readonly waiting: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];

  constructor(socket: string) {
    const definition = protoLoader.loadSync(reflectionProto, loaderOptions);
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    this.client = new loaded.grpc.reflection.v1.ServerReflection(`unix:${socket}`, grpc.credentials.createInsecure());
    const info = (this.client as unknown as Record<string, () => grpc.ClientDuplexStream<object, ReflectionResponse>>).ServerReflectionInfo!;
    this.call = info.call(this.client);
    this.call.on('data', (response: ReflectionResponse) => this.waiting.shift()?.resolve(response));
    this.call.on('error', (error: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(error);
    });
  }

  ask(request: Record<string, string>): Promise<ReflectionResponse> {
    const answer = new Promise<ReflectionResponse>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.call.write({ host: '', ...request });
    return withDeadline(answer, 10_000, `a reflection answer to ${JSON.stringify(request)}`);
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

/** A FileDescriptorSet (`repeated FileDescriptorProto file = 1`) from encoded files. */
function fileDescriptorSet(files: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    const length: number[] = [];
    let n = file.length;
    while (n > 0x7f) {
      length.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    length.push(n);
    parts.push(Buffer.from([0x0a, ...length]), file);
  }
  return Buffer.concat(parts);
}

function unary<Res>(client: grpc.Client, method: string, request: object): Promise<Res> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
  assert.ok(fn, `the discovered client has no ${method} method`);
  return new Promise((resolve, reject) =>
    fn.call(client, request, { deadline: new Date(Date.now() + 10_000) }, (error: grpc.ServiceError | null, reply: Res) =>
      error ? reject(error) : resolve(reply),
    ),
  );
}

describe('control API discovery through gRPC server reflection', () => {
  let node: NodeProcess;
  let reflection: ReflectionClient | undefined;
  let kv: grpc.Client | undefined;

  before(async () => {
    node = await startNode();
  });

  after(async () => {
    reflection?.close();
    kv?.close();
    if (node) await node.stop();
  });

  it('lists ckv.v1.Kv, serves its descriptor, and a client built from it calls Get and Put', async () => {
    const value = Buffer.concat([Buffer.from('put by the CLI '), randomBytes(64)]);
    await runCliOk(['put', 'reflect/key', '-'], { socket: node.socket, input: value });

    reflection = new ReflectionClient(node.socket);
    const list = await reflection.ask({ listServices: '*' });
    assert.equal(list.messageResponse, 'listServicesResponse', JSON.stringify(list.errorResponse));
    const services = list.listServicesResponse!.service.map((s) => s.name);
    assert.ok(services.includes('ckv.v1.Kv'), `services: ${services.join(', ')}`);

    const file = await reflection.ask({ fileContainingSymbol: 'ckv.v1.Kv' });
    assert.equal(file.messageResponse, 'fileDescriptorResponse', JSON.stringify(file.errorResponse));
    const files = file.fileDescriptorResponse!.fileDescriptorProto;
    assert.ok(files.length >= 1);

    const missing = await reflection.ask({ fileContainingSymbol: 'ckv.v1.NoSuchService' });
    assert.equal(missing.messageResponse, 'errorResponse');
    assert.equal(missing.errorResponse!.errorCode, grpc.status.NOT_FOUND);

    // A client from the reflected descriptor only.
    const definition = protoLoader.loadFileDescriptorSetFromBuffer(fileDescriptorSet(files), loaderOptions);
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { ckv?: { v1?: { Kv?: grpc.ServiceClientConstructor } } };
    const Kv = loaded.ckv?.v1?.Kv;
    assert.ok(Kv, 'the descriptor defines ckv.v1.Kv');
    for (const method of ['Put', 'Get', 'Delete', 'Scan', 'Watch', 'Status', 'Peers', 'HasKey', 'WhereIs', 'Sync', 'Leave']) {
      assert.ok(method in Kv.service, `ckv.v1.Kv has ${method}`);
    }
    kv = new Kv(`unix:${node.socket}`, grpc.credentials.createInsecure());

    const got = await unary<{ found: boolean; value: Buffer; deleted: boolean; version: { node: string } }>(kv, 'Get', { key: 'reflect/key' });
    assert.equal(got.found, true);
    assert.equal(got.deleted, false);
    assert.deepEqual(Buffer.from(got.value), value);

    const status = await node.status();
    assert.equal(got.version.node, status.nodeId);

    // Writes work too, and the CLI sees them.
    const written = Buffer.from('put through the reflected client');
    await unary(kv, 'Put', { key: 'reflect/put', value: written });
    const cliGet = await runCliOk(['get', 'reflect/put'], { socket: node.socket });
    assert.deepEqual(cliGet.stdout, written);

    const absent = await unary<{ found: boolean }>(kv, 'Get', { key: 'reflect/absent' });
    assert.equal(absent.found, false);
  });
});
