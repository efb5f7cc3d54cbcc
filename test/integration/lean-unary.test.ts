/**
 * Put, PutMany, Get and Status are answered by the lean HTTP/2 path (src/control/lean-unary.ts), not grpc-js;
 * every other call, and a compressed one, by grpc-js. A client must not be able to tell: the
 * same answers, headers, status codes and messages. Checked against a real node:
 * - a grpc-js client (built from ckv.proto by proto-loader, as any other language's stub
 *   would be) puts, puts many and pipelined (a refused put among them, and too many in one
 *   call), gets,
 *   reads the status, and gets the error table's codes; the same with gzip compression,
 *   which the lean path leaves to grpc-js;
 * - raw HTTP/2 requests, each sent twice: as is (the lean path) and with `grpc-encoding: gzip`
 *   (uncompressed messages, which grpc-js accepts; the lean path declines such streams), and
 *   the two answers compared: a good call, no message, two messages, a message over the size
 *   limit, one that does not decode, an invalid grpc-timeout;
 * - the node did not log that it fell back to grpc-js for these methods.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from '../../src/control/proto.js';
import { grpcMessageBytesMax, putManyCountMax } from '../../src/control/limits.js';
import { startNode, withDeadline, type NodeProcess } from '../../harness/testing.js';

const loaderOptions: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

function unary<Res>(client: grpc.Client, method: string, request: object): Promise<Res> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!;
  return new Promise((resolve, reject) =>
    fn.call(client, request, { deadline: new Date(Date.now() + 10_000) }, (error: grpc.ServiceError | null, reply: Res) => (error ? reject(error) : resolve(reply))),
  );
}

async function refusal(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  assert.fail('the call succeeded');
}

interface RawAnswer {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

/** One raw HTTP/2 request on `session`: the given DATA, then the answer's headers, body and trailers. */
function raw(session: http2.ClientHttp2Session, path: string, data: Buffer, extraHeaders: http2.OutgoingHttpHeaders = {}): Promise<RawAnswer> {
  const request = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extraHeaders });
  const chunks: Buffer[] = [];
  let headers: http2.IncomingHttpHeaders = {};
  let trailers: http2.IncomingHttpHeaders = {};
  const answered = new Promise<RawAnswer>((resolve, reject) => {
    request.on('response', (h) => (headers = h));
    request.on('trailers', (t) => (trailers = t));
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('close', () => resolve({ headers, body: Buffer.concat(chunks), trailers }));
    request.on('error', reject);
  });
  request.end(data);
  return withDeadline(answered, 10_000, `an answer on ${path}`);
}

function framed(message: Buffer, lengthField = message.byteLength): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(lengthField, 1);
  return Buffer.concat([head, message]);
}

/** grpc-status and grpc-message of an answer: in the trailers, or in the headers of a trailers-only one. */
function statusOf(answer: RawAnswer): { status: string; message: string } {
  const from = answer.trailers['grpc-status'] !== undefined ? answer.trailers : answer.headers;
  return { status: String(from['grpc-status']), message: String(from['grpc-message'] ?? '') };
}

describe('Put, PutMany, Get and Status on the lean HTTP/2 path', () => {
  let node: NodeProcess;
  let kv: grpc.Client | undefined;
  let kvGzip: grpc.Client | undefined;
  let session: http2.ClientHttp2Session | undefined;

  before(async () => {
    node = await startNode();
    const definition = protoLoader.loadSync(protoPath, loaderOptions);
    const Kv = (grpc.loadPackageDefinition(definition) as unknown as { ckv: { v1: { Kv: grpc.ServiceClientConstructor } } }).ckv.v1.Kv;
    kv = new Kv(`unix:${node.socket}`, grpc.credentials.createInsecure());
    kvGzip = new Kv(`unix:${node.socket}`, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip });
    session = http2.connect('http://localhost', { createConnection: () => netConnect(node.socket) });
  });

  after(async () => {
    kv?.close();
    kvGzip?.close();
    session?.close();
    if (node) await node.stop();
  });

  it('serves a grpc-js client: put, get, and the error table codes, compressed or not', async () => {
    for (const [name, client] of [['plain', kv!], ['gzip', kvGzip!]] as const) {
      const value = Buffer.from(`value through ${name}`);
      const put = await unary<{ version: { node: string; text: string } }>(client, 'Put', { key: `lean/${name}`, value });
      const status = await node.status();
      assert.equal(put.version.node, status.nodeId);
      const got = await unary<{ found: boolean; value: Buffer; version: { text: string } }>(client, 'Get', { key: `lean/${name}` });
      assert.equal(got.found, true);
      assert.deepEqual(Buffer.from(got.value), value);
      assert.equal(got.version.text, put.version.text);
      const absent = await unary<{ found: boolean }>(client, 'Get', { key: `lean/${name}/absent` });
      assert.equal(absent.found, false);

      const conflict = await refusal(unary(client, 'Put', { key: `lean/${name}`, value, ifAbsent: true }));
      assert.equal(conflict.code, grpc.status.ABORTED, `${name}: a failed condition is ABORTED (${conflict.details})`);
      assert.match(conflict.details, /lean\//);
      assert.ok(!conflict.details.includes('\n'), 'one line');
      const badKey = await refusal(unary(client, 'Get', { key: '' }));
      assert.equal(badKey.code, grpc.status.INVALID_ARGUMENT, `${name}: ${badKey.details}`);
      const deleteByPut = await refusal(unary(client, 'Put', { key: `lean/${name}`, value, delete: true }));
      assert.equal(deleteByPut.code, grpc.status.INVALID_ARGUMENT);
      // PutMany: a result per put, in order; a refused put is its own result, not the call's.
      type Result = { version: { node: string; text: string } | null; error: string; code: number };
      const many = await unary<{ results: Result[] }>(client, 'PutMany', {
        puts: [
          { key: `lean/${name}/many/0`, value },
          { key: '', value },
          { key: `lean/${name}/many/1`, value, ifAbsent: true },
        ],
      });
      assert.equal(many.results.length, 3);
      assert.equal(many.results[0]!.version!.node, status.nodeId);
      assert.equal(many.results[0]!.code, 0);
      assert.equal(many.results[1]!.version, null);
      assert.equal(many.results[1]!.code, grpc.status.INVALID_ARGUMENT, `${name}: ${many.results[1]!.error}`);
      assert.match(many.results[1]!.error, /key/);
      assert.equal(many.results[2]!.code, 0);
      const stored = await unary<{ version: { text: string } }>(client, 'Get', { key: `lean/${name}/many/1` });
      assert.equal(stored.version.text, many.results[2]!.version!.text);
      const tooMany = await refusal(unary(client, 'PutMany', { puts: Array.from({ length: putManyCountMax + 1 }, (_, i) => ({ key: `lean/${name}/over/${i}`, value: Buffer.alloc(0) })) }));
      assert.equal(tooMany.code, grpc.status.INVALID_ARGUMENT, `${name}: ${tooMany.details}`);
      assert.match(tooMany.details, new RegExp(`limit is ${putManyCountMax}`));
      // PutPipeline (grpc-js, its replies encoded by hand like PutMany's): results in order.
      const piped = await new Promise<Result[]>((resolve, reject) => {
        const call = (client as unknown as { putPipeline: () => grpc.ClientDuplexStream<object, { results: Result[] }> }).putPipeline();
        const got: Result[] = [];
        call.on('data', (reply) => got.push(...reply.results));
        call.on('error', reject);
        call.on('end', () => resolve(got));
        call.write({ key: `lean/${name}/piped/0`, value });
        call.write({ key: '', value });
        call.write({ key: `lean/${name}/piped/1`, value });
        call.end();
      });
      assert.deepEqual(
        piped.map((r) => [r.version?.node ?? null, r.code]),
        [
          [status.nodeId, 0],
          [null, grpc.status.INVALID_ARGUMENT],
          [status.nodeId, 0],
        ],
      );
      const reply = await unary<{ nodeId: string; keyCount: string; counters: Record<string, string> }>(client, 'Status', {});
      assert.equal(reply.nodeId, status.nodeId, `${name}: Status`);
      assert.ok(Number(reply.keyCount) >= 1 && Number(reply.counters['writes_local']) >= 1, `${name}: Status counts the puts`);
    }
  });

  it('answers raw HTTP/2 requests exactly as grpc-js does', async () => {
    const s = session!;
    await raw(s, '/ckv.v1.Kv/Put', framed(Buffer.concat([Buffer.from([0x0a, 3]), Buffer.from('raw'), Buffer.from([0x12, 1, 0x41])])));
    const getRaw = framed(Buffer.concat([Buffer.from([0x0a, 3]), Buffer.from('raw')]));
    const cases: [string, string, Buffer, http2.OutgoingHttpHeaders][] = [
      ['a good Get', '/ckv.v1.Kv/Get', getRaw, {}],
      ['no message', '/ckv.v1.Kv/Get', Buffer.alloc(0), {}],
      ['two messages', '/ckv.v1.Kv/Get', Buffer.concat([getRaw, getRaw]), {}],
      ['a message over the limit', '/ckv.v1.Kv/Put', framed(Buffer.alloc(16), grpcMessageBytesMax + 1), {}],
      ['a message that does not decode', '/ckv.v1.Kv/Get', framed(Buffer.from([0x0f, 0x01])), {}],
      ['an invalid grpc-timeout', '/ckv.v1.Kv/Get', getRaw, { 'grpc-timeout': 'soon' }],
    ];
    for (const [what, path, data, headers] of cases) {
      const lean = await raw(s, path, data, headers);
      const byGrpcJs = await raw(s, path, data, { ...headers, 'grpc-encoding': 'gzip' });
      assert.deepEqual(statusOf(lean), statusOf(byGrpcJs), what);
      assert.equal(lean.headers[':status'], byGrpcJs.headers[':status'], what);
      assert.equal(lean.headers['content-type'], byGrpcJs.headers['content-type'], what);
      assert.deepEqual(lean.body, byGrpcJs.body, what);
    }
    // Status: its reply changes from call to call (uptime, counters), so both answers are
    // decoded and compared by what stays put.
    const definition = protoLoader.loadSync(protoPath, loaderOptions);
    const decodeStatus = (definition['ckv.v1.Kv'] as unknown as Record<string, { responseDeserialize: (bytes: Buffer) => { nodeId: string; merkleRoot: string } }>)['Status']!.responseDeserialize;
    const leanStatus = await raw(s, '/ckv.v1.Kv/Status', framed(Buffer.alloc(0)));
    const grpcJsStatus = await raw(s, '/ckv.v1.Kv/Status', framed(Buffer.alloc(0)), { 'grpc-encoding': 'gzip' });
    assert.deepEqual(statusOf(leanStatus), { status: '0', message: 'OK' });
    assert.deepEqual(statusOf(leanStatus), statusOf(grpcJsStatus));
    assert.equal(leanStatus.headers['content-type'], grpcJsStatus.headers['content-type']);
    const [leanReply, grpcJsReply] = [leanStatus, grpcJsStatus].map((answer) => decodeStatus(answer.body.subarray(5)));
    assert.equal(leanReply!.nodeId, (await node.status()).nodeId);
    assert.deepEqual([leanReply!.nodeId, leanReply!.merkleRoot], [grpcJsReply!.nodeId, grpcJsReply!.merkleRoot]);
    // PutMany: both answers carry a version for the first put (each its own) and the same
    // refusal for the second (an empty key).
    const decodeMany = (definition['ckv.v1.Kv'] as unknown as Record<string, { responseDeserialize: (bytes: Buffer) => { results: { version: { node: string } | null; error: string; code: number }[] } }>)['PutMany']!
      .responseDeserialize;
    const manyRequest = (key: string): Buffer =>
      framed(Buffer.concat([Buffer.from([0x0a, key.length + 5, 0x0a, key.length]), Buffer.from(key), Buffer.from([0x12, 1, 0x41]), Buffer.from([0x0a, 5, 0x0a, 0, 0x12, 1, 0x41])]));
    const leanMany = await raw(s, '/ckv.v1.Kv/PutMany', manyRequest('raw/many/lean'));
    const grpcJsMany = await raw(s, '/ckv.v1.Kv/PutMany', manyRequest('raw/many/grpc'), { 'grpc-encoding': 'gzip' });
    assert.deepEqual(statusOf(leanMany), { status: '0', message: 'OK' });
    assert.deepEqual(statusOf(leanMany), statusOf(grpcJsMany));
    assert.equal(leanMany.headers['content-type'], grpcJsMany.headers['content-type']);
    const [leanResults, grpcJsResults] = [leanMany, grpcJsMany].map((answer) => decodeMany(answer.body.subarray(5)).results);
    assert.equal(leanResults!.length, 2);
    assert.equal(leanResults![0]!.version!.node, (await node.status()).nodeId);
    assert.equal(leanResults![0]!.version!.node, grpcJsResults![0]!.version!.node);
    assert.deepEqual(leanResults![1], grpcJsResults![1]);
    assert.equal(leanResults![1]!.code, 3);
    const good = await raw(s, '/ckv.v1.Kv/Get', getRaw);
    assert.deepEqual(statusOf(good), { status: '0', message: 'OK' });
    assert.equal(good.headers['content-type'], 'application/grpc+proto');
    assert.ok(good.body.byteLength > 5, 'the reply message');
  });

  it('did not fall back to grpc-js for Put, PutMany, Get and Status', () => {
    assert.ok(!node.stderrText().includes('served by grpc-js'), node.stderrText().slice(-2000));
  });
});
