/**
 * FrameBudget, the byte budget every FramedStream of a node shares: reservations never exceed
 * the capacity, requests that do not fit wait in order and are granted as bytes come back,
 * cancelled requests give back what they hold. (test/integration/net.test.ts checks it with
 * real streams.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameBudget, nodeFrameBudget } from '../../src/net/frame-budget.js';
import { entriesFrameBytesTarget, frameBufferBytesMax, valueBytesMax } from '../../src/core/limits.js';

/** Lets queued grants (delivered in microtasks) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('FrameBudget', () => {
  it('the node budget is frameBufferBytesMax and holds two maximal sync frames', () => {
    assert.equal(nodeFrameBudget.capacityBytes, frameBufferBytesMax);
    // The sync protocol's largest frame: one maximal value, a frame's worth of entries, headroom.
    const syncFrameBytesMax = valueBytesMax + entriesFrameBytesTarget + 64 * 1024;
    assert.ok(frameBufferBytesMax >= 2 * syncFrameBytesMax, 'two maximal values can move at once');
  });

  it('reserves while the bytes fit, then queues; grants in order as bytes come back', async () => {
    const budget = new FrameBudget(100);
    assert.ok(budget.tryReserve(60));
    assert.equal(budget.tryReserve(50), false, 'over the capacity: refused now');
    const granted: string[] = [];
    budget.wait(50, () => granted.push('a'));
    budget.wait(10, () => granted.push('b'));
    assert.equal(budget.tryReserve(10), false, 'nobody passes a queued request, even when it would fit');
    await settle();
    assert.deepEqual(granted, [], 'b waits behind a (FIFO): a large frame is not starved by small ones');
    assert.equal(budget.waiting, 2);
    assert.equal(budget.reservedBytes, 60);

    budget.release(60);
    await settle();
    assert.deepEqual(granted, ['a', 'b']);
    assert.equal(budget.reservedBytes, 60);
    assert.equal(budget.waiting, 0);
    budget.release(50);
    budget.release(10);
    assert.equal(budget.reservedBytes, 0);
    assert.equal(budget.peakReservedBytes, 60);
  });

  it('refuses requests it can never meet and releases it never made', () => {
    const budget = new FrameBudget(100);
    assert.throws(() => budget.tryReserve(101), RangeError);
    assert.throws(() => budget.wait(101, () => undefined), RangeError);
    assert.throws(() => budget.tryReserve(0), RangeError);
    assert.throws(() => budget.release(1), RangeError);
    assert.throws(() => new FrameBudget(0), RangeError);
  });

  it('a cancelled request is never granted; one granted but not yet delivered gives its bytes back', async () => {
    const budget = new FrameBudget(100);
    assert.ok(budget.tryReserve(100));
    let grantedA = false;
    let grantedB = false;
    let grantedC = false;
    const a = budget.wait(40, () => (grantedA = true));
    budget.wait(70, () => (grantedB = true));
    a.cancel();
    assert.equal(budget.waiting, 1);
    budget.release(100);
    await settle();
    assert.ok(!grantedA, 'the cancelled request got nothing');
    assert.ok(grantedB);
    assert.equal(budget.reservedBytes, 70);

    // Granted synchronously by release(), delivered in a microtask: cancelled in between.
    const c = budget.wait(30, () => (grantedC = true));
    assert.equal(budget.reservedBytes, 100, 'fits at once: reserved for c');
    c.cancel();
    await settle();
    assert.ok(!grantedC, 'cancelled before delivery: never told');
    assert.equal(budget.reservedBytes, 70, "c's bytes came back");
    c.cancel();
    assert.equal(budget.reservedBytes, 70, 'cancel is idempotent');
  });

  it('never reserves more than its capacity, and every request is granted once all bytes come back (property)', async () => {
    type Op = { kind: 'reserve' | 'wait'; bytes: number } | { kind: 'release' | 'cancel'; index: number } | { kind: 'settle' };
    const capacity = 1000;
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom('reserve' as const, 'wait' as const), bytes: fc.integer({ min: 1, max: capacity }) }),
      fc.record({ kind: fc.constantFrom('release' as const, 'cancel' as const), index: fc.nat() }),
      fc.constant({ kind: 'settle' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const budget = new FrameBudget(capacity);
        const held: number[] = [];
        const waits: { cancel(): void; done: boolean }[] = [];
        const check = (): void => {
          assert.ok(budget.reservedBytes <= capacity, `reserved ${budget.reservedBytes} of ${capacity}`);
          assert.ok(budget.reservedBytes >= held.reduce((a, b) => a + b, 0), 'bytes held are reserved');
        };
        for (const o of ops) {
          if (o.kind === 'reserve') {
            if (budget.tryReserve(o.bytes)) held.push(o.bytes);
          } else if (o.kind === 'wait') {
            const entry = {
              done: false,
              wait: budget.wait(o.bytes, () => {
                entry.done = true;
                held.push(o.bytes);
              }),
              cancel: () => entry.wait.cancel(),
            };
            waits.push(entry);
          } else if (o.kind === 'release') {
            if (held.length > 0) budget.release(held.splice(o.index % held.length, 1)[0]!);
          } else if (o.kind === 'cancel') {
            const pending = waits.filter((w) => !w.done);
            const w = pending.length > 0 ? pending[o.index % pending.length] : undefined;
            if (w) {
              w.cancel();
              w.done = true;
            }
          } else {
            await settle();
          }
          check();
        }
        // Give everything back, round after round: every request still queued is granted.
        await settle();
        for (let round = 0; round < 200 && (held.length > 0 || budget.waiting > 0); round++) {
          while (held.length > 0) budget.release(held.pop()!);
          await settle();
          check();
        }
        assert.equal(budget.waiting, 0);
        assert.equal(budget.reservedBytes, 0);
        assert.ok(budget.peakReservedBytes <= capacity);
      }),
      { numRuns: 200 },
    );
  });
});
