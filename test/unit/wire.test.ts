/**
 * The hand-written codecs (src/control/wire.ts: the CLI's client, and the server's definition
 * in src/control/service.ts) against the source of truth: ckv.proto as proto-loader and
 * protobufjs load it. Field tables must match the .proto field by field, and bytes must cross
 * both ways: encoded here and decoded by protobufjs, encoded by protobufjs and decoded here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import { builtKvProtoJson, kvService, parseKvProto } from '../../src/control/proto.js';
import { loadKvService } from '../../src/control/proto-loader.js';
import { kvServiceDefinition } from '../../src/control/service.js';
import * as wire from '../../src/control/wire.js';

interface ProtoField {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

const { definition, kv } = loadKvService();
const protoMessages = new Map<string, ProtoField[]>();
for (const [name, value] of Object.entries(definition)) {
  const type = (value as { type?: { field?: ProtoField[] } }).type;
  if (name.startsWith('ckv.v1.') && type?.field) protoMessages.set(name.slice('ckv.v1.'.length), type.field);
}

const scalarOf: Record<string, string> = {
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_BOOL: 'bool',
  TYPE_UINT32: 'uint32',
  TYPE_UINT64: 'uint64',
  TYPE_INT64: 'int64',
};

/** A value that sets every field, nested ones too, with edge values for integers. */
function sample(schema: wire.Schema, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of schema.fields) {
    const one = (i: number): unknown => {
      if (typeof field.type === 'object') return sample(field.type, depth + 1);
      switch (field.type) {
        case 'string':
          return `${field.name}-${i}-é☃`;
        case 'bytes':
          return Buffer.from([0, 255, i, 128, 1]);
        case 'bool':
          return true;
        case 'uint32':
          return 4_000_000_000 + i;
        case 'uint64':
          return i === 0 ? '18446744073709551615' : '300';
        case 'int64':
          return i === 0 ? '-9223372036854775808' : '-5';
        case 'map':
          return { sessions: '18446744073709551615', rejects: '1', zero: '0' };
      }
    };
    out[field.name] = field.repeated ? [one(0), one(1)] : one(0);
  }
  return out;
}

function serviceMethod(name: string): grpc.MethodDefinition<object, object> {
  return (kv.service as unknown as Record<string, grpc.MethodDefinition<object, object>>)[name]!;
}

/** protobufjs's definition (proto.ts: from the built JSON, or ckv.proto): proto-loader's serializers. */
const protobufjsService = kvService() as unknown as Record<string, grpc.MethodDefinition<object, object>>;
/** The service definition the control server registers (service.ts: wire.ts's codecs). */
const server = kvServiceDefinition() as unknown as Record<string, grpc.MethodDefinition<object, object>>;

describe('control API codecs (wire.ts)', () => {
  it('has every message of ckv.proto, with the same fields, numbers and types', () => {
    const mapEntries = new Set<string>();
    for (const fields of protoMessages.values()) {
      for (const field of fields) if (field.typeName.endsWith('Entry') && field.label === 'LABEL_REPEATED') mapEntries.add(field.typeName);
    }
    const ours = new Map(wire.allSchemas.map((schema) => [schema.message, schema]));
    for (const [name, fields] of protoMessages) {
      if (mapEntries.has(name) || name.endsWith('Entry') && !ours.has(name)) continue;
      const schema = ours.get(name);
      assert.ok(schema, `wire.ts has no schema for ${name}`);
      assert.deepEqual(
        schema.fields.map((f) => f.no),
        fields.map((f) => f.number),
        `${name}: field numbers`,
      );
      for (const [i, field] of fields.entries()) {
        const mine: wire.Field = schema.fields[i]!;
        assert.equal(mine.name, field.name, `${name}.${field.number}: name`);
        if (mine.type === 'map') {
          assert.equal(field.label, 'LABEL_REPEATED', `${name}.${field.name} is a map`);
          continue;
        }
        assert.equal(Boolean(mine.repeated), field.label === 'LABEL_REPEATED', `${name}.${field.name}: repeated`);
        if (typeof mine.type === 'object') {
          assert.equal(field.type, 'TYPE_MESSAGE', `${name}.${field.name}: message`);
          assert.equal(field.typeName.replace(/^.*\./, ''), mine.type.message, `${name}.${field.name}: message type`);
        } else {
          assert.equal(scalarOf[field.type], mine.type, `${name}.${field.name}: type`);
        }
      }
    }
    for (const name of ours.keys()) assert.ok(protoMessages.has(name), `${name} is in wire.ts but not in ckv.proto`);
  });

  it('has every rpc of service Kv, with its request and reply types', () => {
    const rpcs = Object.keys(kv.service);
    assert.deepEqual(Object.keys(wire.methods).sort(), [...rpcs].sort());
    for (const [name, { request, reply }] of Object.entries(wire.methods)) {
      const method = serviceMethod(name);
      // The server's (de)serializers are protobufjs for exactly those types: a full sample must survive both ways.
      const requestSample = sample(request);
      assert.deepEqual(method.requestDeserialize(wire.encode(request, requestSample)), requestSample, `${name} request, wire → protobufjs`);
      assert.deepEqual(wire.decode(request, method.requestSerialize(requestSample)), requestSample, `${name} request, protobufjs → wire`);
      const replySample = sample(reply);
      assert.deepEqual(wire.decode(reply, method.responseSerialize(replySample)), replySample, `${name} reply, protobufjs → wire`);
      assert.deepEqual(method.responseDeserialize(wire.encode(reply, replySample)), replySample, `${name} reply, wire → protobufjs`);
      // Nothing set: both sides agree on the defaults.
      assert.deepEqual(wire.decode(reply, method.responseSerialize({})), method.responseDeserialize(Buffer.alloc(0)), `${name} reply defaults`);
    }
  });

  it('builds ckv.proto into JSON that is ckv.proto (npm run build; protobufjs reads it instead of the .proto)', (t) => {
    const built = builtKvProtoJson();
    if (!built) return t.skip('not built with npm run build (or ckv.proto changed since): the server parses ckv.proto');
    assert.deepEqual(built, JSON.parse(JSON.stringify(parseKvProto().toJSON())));
  });

  it("registers on the server exactly proto-loader's definition of each rpc, minus the descriptors", () => {
    assert.deepEqual(Object.keys(server).sort(), Object.keys(kv.service).sort());
    for (const [name, { request, reply }] of Object.entries(wire.methods)) {
      const ours = server[name]!;
      const theirs = serviceMethod(name);
      for (const field of ['path', 'requestStream', 'responseStream', 'originalName'] as const) assert.equal(ours[field], theirs[field], `${name}.${field}`);
      for (const [schema, sampleOf] of [[request, 'request'], [reply, 'response']] as const) {
        const value = sample(schema);
        const serialize = sampleOf === 'request' ? 'requestSerialize' : 'responseSerialize';
        const deserialize = sampleOf === 'request' ? 'requestDeserialize' : 'responseDeserialize';
        assert.deepEqual(ours[serialize](value), theirs[serialize](value), `${name} ${sampleOf}: the same bytes`);
        const bytes = wire.encode(schema, value);
        assert.deepEqual(ours[deserialize](bytes), theirs[deserialize](bytes), `${name} ${sampleOf}: the same object`);
        assert.deepEqual(ours[deserialize](Buffer.alloc(0)), theirs[deserialize](Buffer.alloc(0)), `${name} ${sampleOf}: the same defaults`);
      }
    }
  });

  it("encodes a reply's values of other types as protobufjs did (numbers for 64-bit and string fields, fractions, NaN)", () => {
    const cases: [wire.Method, object][] = [
      ['Status', { nodeId: 7, keyCount: 12345, tombstoneCount: 3.9, bytesOnDisk: Number.NaN, uptimeMs: 2 ** 53 - 1, incarnation: '9007199254740993', counters: { a: 5, b: '18446744073709551615', c: 0 } }],
      ['ForgetPeer', { forgotten: 1 }],
      ['Import', { applied: 2 ** 40, notNewer: '0', refusedClock: '123456789012345678' }],
      ['Purge', { partitions: 4.5, entries: 7.7, blocked: '3' }],
      ['Get', { found: true, value: Buffer.from('v'), version: { hlc: 99, node: 'n', text: 5 } }],
    ];
    for (const [name, value] of cases) {
      // The same message (protobufjs also writes a field it was given as zero; proto3 leaves it out).
      const read = protobufjsService[name]!.responseDeserialize;
      assert.deepEqual(read(server[name]!.responseSerialize(value)), read(protobufjsService[name]!.responseSerialize(value)), `${name}: the same message`);
    }
  });

  it('decodes bytes fields as views of the message, without copying a value', () => {
    const value = Buffer.alloc(3 * 1024 * 1024, 7);
    const encoded = wire.encode(wire.PutChunk, { key: 'k', valueBytes: value.length, data: value });
    const decoded = wire.decode<{ data: Buffer }>(wire.PutChunk, encoded);
    assert.equal(decoded.data.buffer, encoded.buffer);
    assert.ok(decoded.data.equals(value));
  });

  it('skips fields it does not know (a newer server), and rejects truncated input', () => {
    const newer = Buffer.concat([wire.encode(wire.DeleteReply, { version: { hlc: '5', node: 'ab', text: 't' } }), Buffer.from([0x78, 0x01, 0x82, 0x01, 0x02, 0x61, 0x62])]);
    assert.deepEqual(wire.decode(wire.DeleteReply, newer), { version: { hlc: '5', node: 'ab', text: 't' } });
    const whole = wire.encode(wire.GetReply, { found: true, value: Buffer.from('hello'), version: { hlc: '1', node: 'n', text: 'x' } });
    for (let cut = 1; cut < whole.length; cut++) {
      try {
        wire.decode(wire.GetReply, whole.subarray(0, cut));
      } catch (error) {
        assert.equal((error as Error).name, 'WireError', `cut at ${cut}`);
        continue;
      }
      // A cut that lands between fields is a valid, shorter message: fine, as long as it did not throw something else.
    }
    assert.throws(() => wire.decode(wire.GetReply, Buffer.from([0x12, 0x05, 0x61])), { name: 'WireError' });
    assert.throws(() => wire.decode(wire.GetReply, Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), { name: 'WireError' });
  });
});
