/**
 * The Watch stream's hand-encoded Change (src/control/watch-codec.ts) against the source of
 * truth: the bytes are decoded by the server's own proto-loader deserializer for Watch and
 * must give the same message as the object the server wrote before (serialized by
 * proto-loader), for local and remote changes, tombstones, empty and multi-byte keys, the
 * largest stamps and zero fields (which proto3 leaves out). The CLI's decoder (wire.ts)
 * must read them too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvService } from '../../src/control/proto.js';
import { versionMessage } from '../../src/control/server.js';
import { encodeChange } from '../../src/control/watch-codec.js';
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
