/**
 * The Watch stream's hand-encoded Change (src/control/watch-codec.ts) against the source of
 * truth: the bytes are decoded by the server's own proto-loader deserializer for Watch and
 * must give the same message as the object the server wrote before (serialized by
 * proto-loader), for local and remote changes, tombstones, empty and multi-byte keys, the
 * largest stamps and zero fields (which proto3 leaves out). The CLI's decoder (wire.ts)
 * must read them too. The same for the hand-encoded PutReply (the lean Put path): the same
 * message as protobufjs makes from the reply object (the same bytes, but for a zero stamp), with
 * and without partitioned mode's owners.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvService } from '../../src/control/proto.js';
import { putReplyMessage, versionMessage } from '../../src/control/messages.js';
import { encodeChange, encodePutManyReply, encodePutReply, type PutOutcome } from '../../src/control/watch-codec.js';
import { putResultMessage } from '../../src/control/requests.js';
import { kvServiceDefinition } from '../../src/control/service.js';
import * as wire from '../../src/control/wire.js';
import { hlcPack } from '../../src/core/hlc.js';
import type { ChangeEvent } from '../../src/node/api.js';

const kv = kvService();
const watch = kv.Watch!;

/** The message object the server wrote before the hand encoding. */
function previousMessage(change: ChangeEvent): object {
  return {
    key: change.entry.key,
    version: versionMessage(change.entry.version),
    origin: change.origin,
    deleted: change.entry.value === null,
    valueBytes: String(change.entry.value?.byteLength ?? 0),
    appliedAtMs: String(change.appliedAtMs),
  };
}

const node = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
function change(key: string, value: Uint8Array | null, hlc: bigint, origin: 'local' | 'remote', appliedAtMs: number): ChangeEvent {
  return { entry: { key, value, version: { hlc, node } }, origin, keyHash: '', appliedAtMs } as unknown as ChangeEvent;
}

const cases: [string, ChangeEvent][] = [
  ['a local put', change('cv/n5r0/1234', new Uint8Array(100), hlcPack(1_764_627_071_000, 3), 'local', 1_764_627_071_002)],
  ['a remote tombstone', change('users/42', null, hlcPack(1_764_627_071_000, 0), 'remote', 1_764_627_071_500)],
  ['a multi-byte key and a large value', change('ключ/🔑/é', new Uint8Array(300_000), hlcPack(2 ** 48 - 1, 2 ** 16 - 1), 'remote', 2 ** 48)],
  ['an empty value, zero stamp and time', change('k', new Uint8Array(0), 0n, 'local', 0)],
  ['an empty key', change('', new Uint8Array(1), hlcPack(1, 1), 'local', 1)],
];

describe('Watch Change encoding', () => {
  for (const [name, c] of cases) {
    it(`decodes as the previous message: ${name}`, () => {
      const bytes = encodeChange(c);
      const decoded = watch.responseDeserialize(bytes);
      const previous = watch.responseDeserialize(watch.responseSerialize(previousMessage(c)));
      assert.deepEqual(decoded, previous);
      // And the CLI reads it.
      assert.deepEqual(wire.decode(wire.Change, bytes), previous);
    });
  }
});

describe('PutReply encoding', () => {
  const put = kv.Put!;
  const replies: [string, Parameters<typeof putReplyMessage>[0]][] = [
    ['full replication', { version: { hlc: hlcPack(1_764_627_071_000, 3), node }, owners: [], acked: [] }],
    ['the largest stamp', { version: { hlc: hlcPack(2 ** 48 - 1, 2 ** 16 - 1), node }, owners: [], acked: [] }],
    ['a zero stamp', { version: { hlc: 0n, node }, owners: [], acked: [] }],
    ['partitioned: owners and acks', { version: { hlc: hlcPack(5, 1), node }, owners: [node, 'b'.repeat(32), ''], acked: [node] }],
  ];
  for (const [name, reply] of replies) {
    it(`is protobufjs's encoding of the reply object: ${name}`, () => {
      const bytes = encodePutReply(reply.version, reply.owners, reply.acked);
      const previous = put.responseSerialize(putReplyMessage(reply));
      assert.deepEqual(put.responseDeserialize(bytes), put.responseDeserialize(previous));
      // Byte for byte, except that a zero stamp is left out (proto3's default; protobufjs writes it).
      if (reply.version.hlc !== 0n) assert.deepEqual(bytes, previous);
      assert.deepEqual(wire.decode(wire.PutReply, bytes), put.responseDeserialize(bytes));
    });
  }
});

describe('PutManyReply encoding', () => {
  const putMany = kv.PutMany!;
  const other = 'b'.repeat(32);
  const replies: [string, PutOutcome[]][] = [
    ['no puts', []],
    ['one version', [{ hlc: hlcPack(1_764_627_071_000, 3), node }]],
    [
      '1,000 versions, counters past one varint byte',
      Array.from({ length: 1000 }, (_, i) => ({ hlc: hlcPack(1_764_627_071_000 + (i >> 8), i), node })),
    ],
    [
      'refusals among versions: a message and a code, a code alone, neither',
      [
        { hlc: hlcPack(1, 1), node },
        { error: 'key "" is empty: a key has 1..1024 bytes', code: 3 },
        { error: '', code: 14 },
        { error: 'ключ 🔑 refused', code: 0 },
        { error: '', code: 0 },
        { hlc: hlcPack(2 ** 48 - 1, 2 ** 16 - 1), node: other },
        { hlc: hlcPack(7, 0), node },
      ],
    ],
    ['a zero stamp, a counter alone, a wall alone', [{ hlc: 0n, node }, { hlc: hlcPack(0, 5), node }, { hlc: hlcPack(2 ** 32, 0), node: 'n' }]],
    [
      'stamps across every varint length',
      Array.from({ length: 64 }, (_, i) => ({ hlc: hlcPack(Math.floor(2 ** (i * 0.75)) % 2 ** 48, (i * 2654435761) % 2 ** 16), node })),
    ],
  ];
  for (const [name, outcomes] of replies) {
    it(`is the server's schema encoder's bytes for the result messages: ${name}`, () => {
      const bytes = encodePutManyReply(outcomes);
      // Byte for byte what the server's encoder (wire.ts, defaults left out) makes of the objects.
      const previous = kvServiceDefinition().PutMany!.responseSerialize({ results: outcomes.map(putResultMessage) });
      assert.deepEqual(bytes, previous);
      // protobufjs (what a client stub built from ckv.proto runs) reads the same message.
      assert.deepEqual(putMany.responseDeserialize(bytes), putMany.responseDeserialize(putMany.responseSerialize({ results: outcomes.map(putResultMessage) })));
      assert.deepEqual(wire.decode(wire.PutManyReply, bytes), putMany.responseDeserialize(bytes));
    });
  }
});
