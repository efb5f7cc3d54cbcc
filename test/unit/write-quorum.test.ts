/**
 * The pure part of partitioned writes (src/core/write-quorum.ts): when a write's acks meet its
 * consistency across the active layouts' owner sets, when it can no longer, a deadline as an
 * event, and the bounded retry queue. Also the replicate protocol's codecs
 * (src/net/replicate-protocol.ts): round trips, and every cut, flipped byte and random input
 * is a MalformedError, never another exception.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RetryQueue, WriteTally, isAck } from '../../src/core/write-quorum.js';
import type { Entry } from '../../src/core/entry.js';
import { MalformedError } from '../../src/core/errors.js';
import {
  decodeReply,
  decodeRequest,
  encodeApplied,
  encodeApply,
  encodeEntryReply,
  encodeRead,
  replicateEntriesMax,
} from '../../src/net/replicate-protocol.js';
import { ByteWriter } from '../../src/core/bytes.js';

const entry = (key: string, value: string | null = 'v', hlc = 1n << 20n): Entry => ({
  key,
  value: value === null ? null : new TextEncoder().encode(value),
  version: { hlc, node: '0123456789abcdef' },
});

describe('WriteTally', () => {
  it('quorum of one layout: met at 2 of 3 acks, whatever the order', () => {
    const tally = new WriteTally([['a', 'b', 'c']], 'quorum');
    assert.equal(tally.answer('c', 'applied'), 'pending');
    assert.equal(tally.answer('a', 'older'), 'met', 'an owner that already held it (or newer) acks');
    assert.deepEqual([...tally.acked].sort(), ['a', 'c']);
    assert.deepEqual(tally.notAcked, ['b']);
  });

  it('one and all', () => {
    const one = new WriteTally([['a', 'b', 'c']], 'one');
    assert.equal(one.answer('b', 'applied'), 'met');
    const all = new WriteTally([['a', 'b', 'c']], 'all');
    all.answer('a', 'applied');
    all.answer('b', 'applied');
    assert.equal(all.state, 'pending');
    assert.equal(all.answer('c', 'applied'), 'met');
  });

  it('during a change: a quorum in each active layout, not of the union', () => {
    // Old owners a b c, new owners c d e: acks from a b c meet the old set only.
    const tally = new WriteTally(
      [
        ['a', 'b', 'c'],
        ['c', 'd', 'e'],
      ],
      'quorum',
    );
    assert.deepEqual(tally.owners, ['a', 'b', 'c', 'd', 'e']);
    tally.answer('a', 'applied');
    tally.answer('b', 'applied');
    assert.equal(tally.answer('c', 'applied'), 'pending', '3 of 5 owners, but 1 of the new 3');
    assert.equal(tally.acksWanted, 1);
    assert.equal(tally.answer('d', 'applied'), 'met');
  });

  it('fails as soon as a set can no longer reach its quorum', () => {
    const tally = new WriteTally([['a', 'b', 'c']], 'quorum');
    tally.answer('a', 'applied');
    assert.equal(tally.answer('b', new Error('unreachable')), 'pending', 'c may still ack');
    assert.equal(tally.answer('c', 'refused-clock'), 'failed');
    assert.equal(tally.failed.get('c'), 'refused-clock');
    // A late ack is recorded but does not change the decision.
    assert.equal(tally.answer('b', 'applied'), 'failed');
    assert.ok(tally.acked.has('b'));
  });

  it('all: one refusal (not-owner) fails it at once', () => {
    const tally = new WriteTally([['a', 'b']], 'all');
    assert.equal(tally.answer('a', 'not-owner'), 'failed');
  });

  it('the deadline is an event: pending becomes expired; a decided write stays decided', () => {
    const pending = new WriteTally([['a', 'b', 'c']], 'quorum');
    pending.answer('a', 'applied');
    assert.equal(pending.expire(), 'expired');
    assert.deepEqual(pending.waitingOn, ['b', 'c']);
    const met = new WriteTally([['a']], 'one');
    met.answer('a', 'applied');
    assert.equal(met.expire(), 'met');
  });

  it('acks are applied and older only', () => {
    assert.ok(isAck('applied') && isAck('older'));
    assert.ok(!isAck('not-owner') && !isAck('refused-clock') && !isAck('refused-invalid'));
  });
});

describe('RetryQueue', () => {
  it('delays double per attempt, and attempts are bounded', () => {
    const queue = new RetryQueue({ entriesMax: 10, attemptsMax: 3, delayMs: 100 });
    const e = entry('k');
    assert.ok(queue.add('a', e, 1_000, 0));
    assert.equal(queue.nextDueMs(), 1_100);
    assert.deepEqual(queue.due(1_099), []);
    const [first] = queue.due(1_100);
    assert.equal(first?.attempts, 1);
    assert.ok(queue.add('a', e, 2_000, first!.attempts));
    assert.equal(queue.nextDueMs(), 2_200);
    const [second] = queue.due(5_000);
    assert.ok(queue.add('a', e, 3_000, second!.attempts));
    assert.equal(queue.nextDueMs(), 3_400);
    const [third] = queue.due(9_000);
    assert.equal(third?.attempts, 3);
    assert.equal(queue.add('a', e, 4_000, third!.attempts), false, 'out of attempts');
    assert.equal(queue.dropped, 1);
    assert.equal(queue.size, 0);
  });

  it('is bounded in entries: the oldest goes; a newer entry of a key replaces the older one for that owner', () => {
    const queue = new RetryQueue({ entriesMax: 3, attemptsMax: 5, delayMs: 10 });
    for (let i = 0; i < 5; i++) queue.add('a', entry(`k${i}`), i);
    assert.equal(queue.size, 3);
    assert.equal(queue.dropped, 2);
    queue.add('a', entry('k4', 'newer', 2n << 20n), 10);
    assert.equal(queue.size, 3);
    const due = queue.due(1_000);
    assert.deepEqual(due.map((r) => r.entry.key).sort(), ['k2', 'k3', 'k4']);
    assert.equal(new TextDecoder().decode(due.find((r) => r.entry.key === 'k4')!.entry.value!), 'newer');
    queue.add('b', entry('k'), 0);
    queue.add('c', entry('k'), 0);
    assert.equal(queue.size, 2, 'one per (owner, key)');
  });
});

describe('replicate protocol codecs', () => {
  const samples: Uint8Array[] = [
    encodeApply(7, [entry('a'), entry('b', null), entry('ключ', 'x'.repeat(300))]),
    encodeRead(9, 'some/key'),
  ];
  const replies: Uint8Array[] = [encodeApplied(7, ['applied', 'older', 'not-owner', 'refused-clock', 'refused-invalid']), encodeEntryReply(9, entry('k')), encodeEntryReply(10, undefined)];

  it('round trips', () => {
    const apply = decodeRequest(samples[0]!);
    assert.equal(apply.type, 'apply');
    assert.equal(apply.id, 7);
    assert.deepEqual(apply.type === 'apply' && apply.entries.map((e) => [e.key, e.value === null]), [
      ['a', false],
      ['b', true],
      ['ключ', false],
    ]);
    assert.deepEqual(decodeRequest(samples[1]!), { type: 'read', id: 9, key: 'some/key' });
    assert.deepEqual(decodeReply(replies[0]!), { type: 'applied', id: 7, outcomes: ['applied', 'older', 'not-owner', 'refused-clock', 'refused-invalid'] });
    const read = decodeReply(replies[1]!);
    assert.equal(read.type === 'entry' && read.entry?.key, 'k');
    assert.deepEqual(decodeReply(replies[2]!), { type: 'entry', id: 10, entry: undefined });
  });

  const malformedOnly = (decode: () => unknown, what: string): void => {
    try {
      decode();
    } catch (error) {
      assert.ok(error instanceof MalformedError, `${what}: ${String(error)}`);
    }
  };

  it('every cut and every flipped byte is a MalformedError or a valid message, never another error', () => {
    for (const [frames, decode] of [
      [samples, decodeRequest],
      [replies, decodeReply],
    ] as const) {
      for (const frame of frames) {
        for (let cut = 0; cut < frame.byteLength; cut++) {
          assert.throws(() => decode(frame.subarray(0, cut)), MalformedError, `cut at ${cut}`);
        }
        for (let at = 0; at < frame.byteLength; at++) {
          for (const bit of [0x01, 0x80, 0xff]) {
            const flipped = frame.slice();
            flipped[at]! ^= bit;
            malformedOnly(() => decode(flipped), `flip ${bit} at ${at}`);
          }
        }
        const trailing = new Uint8Array([...frame, 0]);
        assert.throws(() => decode(trailing), MalformedError, 'trailing bytes');
      }
    }
  });

  it('random bytes, unknown version or type, empty and oversized batches are refused', () => {
    for (let i = 0; i < 500; i++) {
      const bytes = new Uint8Array(randomBytes(1 + (i % 64)));
      malformedOnly(() => decodeRequest(bytes), 'random request');
      malformedOnly(() => decodeReply(bytes), 'random reply');
    }
    const badVersion = samples[0]!.slice();
    badVersion[0] = 2;
    assert.throws(() => decodeRequest(badVersion), /unsupported replicate version/);
    const badType = samples[1]!.slice();
    badType[1] = 0x77;
    assert.throws(() => decodeRequest(badType), /unsupported replicate request type/);
    assert.throws(() => decodeRequest(new ByteWriter().u8(1).u8(1).varint(1).varint(0).finish()), /no entry/);
    assert.throws(() => decodeRequest(new ByteWriter().u8(1).u8(1).varint(1).varint(replicateEntriesMax + 1).finish()), MalformedError);
    assert.throws(() => decodeReply(new ByteWriter().u8(1).u8(2).varint(1).varint(1).u8(9).finish()), /unknown replicate outcome/);
    assert.throws(() => decodeRequest(encodeApply(1, [entry('k', 'x'.repeat(100))]), 10), MalformedError, 'a value over the limit');
  });
});
