import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClockDriftError, CkvError } from '../../src/core/errors.js';
import { compareVersions } from '../../src/core/entry.js';
import {
  HybridClock,
  hlcCompare,
  hlcCounter,
  hlcPack,
  hlcToString,
  hlcWallMs,
  type Hlc,
} from '../../src/core/hlc.js';
import { clockDriftMsMax, hlcCounterMax, hlcWallMsMax } from '../../src/core/limits.js';
import { Replica } from '../../src/core/replica.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { value } from '../helpers/replicas.js';

const baseMs = 1_700_000_000_000;
const nodeA = '00000000000000aa';

/** Wall readings around baseMs: jumps forward and backward, repeats, fractions, and far-off absolutes. */
const wallSequenceArb = fc.array(
  fc.oneof(
    fc.integer({ min: -5_000, max: 5_000 }).map((delta) => ({ delta })),
    fc.constant({ delta: 0 }),
    fc.double({ min: -3, max: 3, noNaN: true }).map((delta) => ({ delta })),
    fc.integer({ min: 0, max: 2 ** 47 }).map((absolute) => ({ absolute })),
  ),
  { minLength: 1, maxLength: 300 },
);

/** A starting `last` for a clock: zero, near baseMs with any counter, or a counter about to overflow. */
const lastArb: fc.Arbitrary<Hlc> = fc.oneof(
  fc.constant(0n),
  fc.tuple(fc.integer({ min: -10_000, max: 10_000 }), fc.integer({ min: 0, max: hlcCounterMax })).map(([d, c]) =>
    hlcPack(baseMs + d, c),
  ),
  fc.integer({ min: -3, max: 3 }).map((d) => hlcPack(baseMs + d, hlcCounterMax - 1)),
);

describe('HybridClock', () => {
  // now() issues strictly increasing stamps whatever the wall clock does, including going backwards.
  it('now() is strictly increasing for any sequence of wall readings', () => {
    fc.assert(
      fc.property(lastArb, wallSequenceArb, (last, steps) => {
        const clock = new HybridClock({ last });
        let wall = baseMs;
        let previous = clock.last;
        for (const step of steps) {
          wall = 'absolute' in step ? step.absolute : wall + step.delta;
          const stamp = clock.now(wall);
          assert.ok(stamp > previous, `${hlcToString(stamp)} after ${hlcToString(previous)} at wall ${wall}`);
          assert.equal(clock.last, stamp);
          // The stamp never lags the wall clock.
          assert.ok(hlcWallMs(stamp) >= Math.floor(wall), `stamp ${hlcToString(stamp)} behind wall ${wall}`);
          previous = stamp;
        }
      }),
      { numRuns: 300 },
    );
  });

  // A remote stamp within the drift limit is folded in: the clock reaches it and later stamps exceed it.
  it('receive() of a stamp within drift moves the clock to at least it; the next now() is greater', () => {
    fc.assert(
      fc.property(
        lastArb,
        fc.integer({ min: -20_000, max: clockDriftMsMax }),
        fc.integer({ min: 0, max: hlcCounterMax }),
        fc.integer({ min: -2_000, max: 2_000 }),
        (last, aheadMs, counter, wallDelta) => {
          const wall = baseMs + wallDelta;
          const clock = new HybridClock({ last });
          const before = clock.last;
          const remote = hlcPack(wall + aheadMs, counter);
          const result = clock.receive(remote, wall);
          assert.equal(result, clock.last);
          assert.ok(clock.last >= remote, 'clock below the received stamp');
          assert.ok(clock.last >= before, 'receive moved the clock backwards');
          assert.equal(clock.last, remote > before ? remote : before);
          const next = clock.now(wall);
          assert.ok(next > remote && next > before, `${hlcToString(next)} not after ${hlcToString(remote)}`);
        },
      ),
      { numRuns: 500 },
    );
  });

  // A stamp more than driftMsMax ahead is refused with ClockDriftError and does not move the clock.
  it('refuses a stamp more than driftMsMax ahead and leaves `last` unchanged', () => {
    fc.assert(
      fc.property(
        lastArb,
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.integer({ min: 0, max: hlcCounterMax }),
        (last, beyondMs, counter) => {
          const clock = new HybridClock({ last });
          const wall = baseMs;
          const remote = hlcPack(wall + clockDriftMsMax + beyondMs, counter);
          let caught: unknown;
          try {
            clock.receive(remote, wall + 0.999); // fractions of a millisecond do not count
          } catch (error) {
            caught = error;
          }
          assert.ok(caught instanceof ClockDriftError, `expected ClockDriftError, got ${String(caught)}`);
          assert.ok(caught instanceof CkvError);
          assert.equal(caught.name, 'ClockDriftError');
          assert.equal(caught.code, 'ERR_CLOCK_DRIFT');
          assert.equal(caught.aheadMs, clockDriftMsMax + beyondMs);
          assert.equal(caught.driftMsMax, clockDriftMsMax);
          assert.equal(clock.last, last);
          assert.throws(() => clock.check(remote, wall), { name: 'ClockDriftError' });
          assert.equal(clock.last, last);
        },
      ),
      { numRuns: 300 },
    );
  });

  // check() keeps the limit stamp of the last wall millisecond it saw: over readings that move
  // forward, back and within a millisecond, it refuses exactly what the definition refuses.
  it('refuses a stamp exactly when its milliseconds are more than driftMsMax past the wall reading', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 500, clockDriftMsMax),
        fc.array(fc.tuple(fc.integer({ min: -3, max: 3 }), fc.integer({ min: 0, max: 999 }), fc.integer({ min: -2, max: 2 }), fc.integer({ min: 0, max: hlcCounterMax })), { minLength: 1, maxLength: 40 }),
        (driftMsMax, steps) => {
          const clock = new HybridClock({ driftMsMax });
          let wallMs = baseMs;
          for (const [moveMs, fraction, offsetMs, counter] of steps) {
            wallMs += moveMs;
            const reading = wallMs + fraction / 1000;
            const remote = hlcPack(wallMs + driftMsMax + offsetMs, counter);
            const refused = hlcWallMs(remote) - Math.floor(reading) > driftMsMax;
            if (refused) assert.throws(() => clock.check(remote, reading), { name: 'ClockDriftError' });
            else assert.doesNotThrow(() => clock.check(remote, reading));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  // The drift limit is inclusive: exactly driftMsMax ahead (any counter) is accepted, one ms more is not.
  it('accepts a stamp exactly at the drift limit', () => {
    for (const driftMsMax of [undefined, 0, 1, 500, 10_000]) {
      const limit = driftMsMax ?? clockDriftMsMax;
      const clock = new HybridClock(driftMsMax === undefined ? {} : { driftMsMax });
      assert.equal(clock.driftMsMax, limit);
      const atLimit = hlcPack(baseMs + limit, hlcCounterMax);
      assert.doesNotThrow(() => clock.check(atLimit, baseMs));
      assert.equal(clock.receive(atLimit, baseMs), atLimit);
      assert.ok(clock.now(baseMs) > atLimit);
      const last = clock.last;
      assert.throws(() => clock.receive(hlcPack(baseMs + limit + 1, 0), baseMs), { name: 'ClockDriftError' });
      assert.equal(clock.last, last);
    }
  });

  // 70,000 stamps in one frozen millisecond overflow the 16-bit counter into the next ms, still increasing.
  it('counter overflow keeps stamps increasing and moves the wall part by at most 2 ms', () => {
    const clock = new HybridClock();
    const wall = baseMs;
    let previous = clock.last;
    for (let i = 0; i < 70_000; i++) {
      const stamp = clock.now(wall);
      if (!(stamp > previous)) assert.fail(`stamp ${i} ${hlcToString(stamp)} not after ${hlcToString(previous)}`);
      previous = stamp;
    }
    const aheadMs = hlcWallMs(previous) - wall;
    assert.ok(aheadMs >= 1 && aheadMs <= 2, `wall part moved ${aheadMs} ms`);
    // 65,536 stamps fit in the first millisecond (counters 0..65535); the rest spill into the next.
    assert.equal(previous, hlcPack(wall + 1, 70_000 - (hlcCounterMax + 1) - 1));
    // The next real tick is absorbed: the stamp returns to the wall clock.
    assert.equal(clock.now(wall + 5), hlcPack(wall + 5, 0));
  });

  // A clock restarted from the persisted `last`, with the wall clock set back, still issues larger stamps.
  it('restart with the wall clock set back never issues a smaller stamp', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 86_400_000 }),
        fc.integer({ min: 0, max: 3 }),
        (writes, setBackMs, receivedAheadMs) => {
          const old = new HybridClock();
          let issued: Hlc = 0n;
          for (let i = 0; i < writes; i++) issued = old.now(baseMs);
          old.receive(hlcPack(baseMs + receivedAheadMs, 7), baseMs);
          const restarted = new HybridClock({ last: old.last });
          assert.equal(restarted.last, old.last);
          const stamp = restarted.now(baseMs - setBackMs);
          assert.ok(stamp > old.last && stamp > issued, `${hlcToString(stamp)} <= ${hlcToString(old.last)}`);
        },
      ),
      { numRuns: 200 },
    );
  });

  // hlcPack/hlcWallMs/hlcCounter round-trip, and stamp order is (wall, counter) lexicographic order.
  it('pack/unpack round-trips and preserves order', () => {
    const wallArb = fc.oneof(fc.constantFrom(0, 1, hlcWallMsMax), fc.maxSafeNat().map((n) => n % (hlcWallMsMax + 1)));
    const counterArb = fc.oneof(fc.constantFrom(0, hlcCounterMax), fc.integer({ min: 0, max: hlcCounterMax }));
    fc.assert(
      fc.property(wallArb, counterArb, wallArb, counterArb, (w1, c1, w2, c2) => {
        const a = hlcPack(w1, c1);
        const b = hlcPack(w2, c2);
        assert.equal(hlcWallMs(a), w1);
        assert.equal(hlcCounter(a), c1);
        assert.equal(hlcToString(a), `${w1}.${c1}`);
        assert.ok(a >= 0n && a < 2n ** 64n);
        const expected = w1 !== w2 ? Math.sign(w1 - w2) : Math.sign(c1 - c2);
        assert.equal(hlcCompare(a, b), expected);
      }),
      { numRuns: 1000 },
    );
  });

  // hlcPack refuses out-of-range parts (a programmer error) instead of silently wrapping.
  it('pack rejects out-of-range wall and counter', () => {
    for (const [wall, counter] of [
      [-1, 0],
      [hlcWallMsMax + 1, 0],
      [1.5, 0],
      [0, -1],
      [0, hlcCounterMax + 1],
      [0, 0.5],
    ] as const) {
      assert.throws(() => hlcPack(wall, counter), /ckv assertion/, `hlcPack(${wall}, ${counter})`);
    }
  });
});

describe('Replica clock across restarts', () => {
  // A replica reopened on the same store with its wall clock set back never stamps a smaller
  // version: within the drift limit it stamps above the stored bound; 10 s back, it refuses
  // writes (peers would refuse stamps 10 s ahead of its clock) until the clock catches up.
  it('a reopened replica with the wall clock set back issues a greater version', async () => {
    const store = new MemoryStore();
    const clock = { ms: baseMs };
    const first = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    const v1 = await first.put('k', value('one'));
    await first.close();
    await store.close();

    clock.ms -= 10_000;
    const second = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    assert.ok(second.hlcLast >= v1.hlc, 'clock did not resume from the store');
    await assert.rejects(second.put('other', value('two')), { name: 'ClockAheadError' });
    clock.ms += 9_600; // 400 ms behind the bound: within the drift limit
    const v2 = await second.put('other', value('two'));
    assert.ok(v2.hlc > v1.hlc, `${hlcToString(v2.hlc)} <= ${hlcToString(v1.hlc)}`);
    assert.ok(compareVersions(v2, v1) > 0);
    const v3 = await second.put('k', value('three'));
    assert.ok(v3.hlc > v2.hlc);
    assert.deepEqual((await second.get('k'))?.version, v3);
  });

  // A remote stamp received (within drift) before a restart also bounds the restarted clock.
  it('a reopened replica stamps above a received remote stamp', async () => {
    const store = new MemoryStore();
    const clock = { ms: baseMs };
    const first = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    const remote = { hlc: hlcPack(baseMs + 400, 9), node: 'ffffffffffffffff' };
    const report = await first.applyRemote([{ key: 'r', value: value('x'), version: remote }]);
    assert.equal(report.applied, 1);
    await first.close();
    await store.close();

    clock.ms -= 10_000;
    const second = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => clock.ms });
    await assert.rejects(second.put('local', value('y')), { name: 'ClockAheadError' });
    clock.ms += 10_000; // the remote stamp is now 400 ms ahead: within the drift limit
    const version = await second.put('local', value('y'));
    assert.ok(version.hlc > remote.hlc, `${hlcToString(version.hlc)} <= ${hlcToString(remote.hlc)}`);
  });
});
