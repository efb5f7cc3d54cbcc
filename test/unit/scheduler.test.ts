import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { syncBackoffMsBase, syncBackoffMsMax, syncBurstEntriesMin, syncIntervalMsDefault, syncJitterRatioDefault } from '../../src/core/limits.js';
import { SyncScheduler } from '../../src/core/scheduler.js';
import { seededRng } from '../helpers/core-gen.js';

/** rng() = 0.5 makes every jitter factor exactly 1. */
const noJitter = () => 0.5;

/** Every peer takeDue returns at `nowMs`, until it returns undefined. */
function drain<P extends string>(scheduler: SyncScheduler<P>, nowMs: number): P[] {
  const taken: P[] = [];
  for (let peer = scheduler.takeDue(nowMs); peer !== undefined; peer = scheduler.takeDue(nowMs)) {
    taken.push(peer);
    assert.ok(taken.length <= scheduler.peerCount, 'takeDue returned more peers than exist');
  }
  return taken;
}

describe('SyncScheduler', () => {
  // A newly connected peer is synced at once, not a period later.
  it('a new peer is due immediately', () => {
    const scheduler = new SyncScheduler({ rng: noJitter }, 0);
    assert.equal(scheduler.takeDue(0), undefined);
    scheduler.peerConnected('a');
    assert.equal(scheduler.peerCount, 1);
    assert.equal(scheduler.wakeAtMs(0), 0);
    assert.equal(scheduler.takeDue(0), 'a');
    assert.equal(scheduler.takeDue(0), undefined);
    scheduler.report('a', true, 10);
    // Connecting later: due at the connect time, long before the next round.
    scheduler.peerConnected('b');
    assert.equal(scheduler.wakeAtMs(10), 10);
    assert.equal(scheduler.takeDue(10), 'b');
  });

  // Without urgent peers nothing is due before the interval; at the interval exactly one peer is.
  it('runs one periodic round per interval', () => {
    const scheduler = new SyncScheduler({ rng: noJitter }, 0);
    for (const peer of ['a', 'b', 'c']) scheduler.peerConnected(peer);
    assert.deepEqual(drain(scheduler, 0).sort(), ['a', 'b', 'c']);
    for (const peer of ['a', 'b', 'c']) scheduler.report(peer, true, 0);
    let rounds = 0;
    for (let t = 1; t <= 3 * syncIntervalMsDefault; t++) {
      const taken = drain(scheduler, t);
      if (t % syncIntervalMsDefault !== 0) {
        assert.deepEqual(taken, [], `peer due at ${t}, before the interval`);
        continue;
      }
      assert.equal(taken.length, 1, `round at ${t} took ${taken.length} peers`);
      rounds++;
      scheduler.report(taken[0]!, true, t);
      assert.equal(scheduler.wakeAtMs(t), t + syncIntervalMsDefault);
    }
    assert.equal(rounds, 3);
  });

  // Every jittered delay stays within interval * (1 ± ratio), whatever the rng returns in [0, 1).
  it('jitter stays within ±ratio of the interval and of the backoff', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0, max: 0.9, noNaN: true }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (r, intervalMs, jitterRatio, startMs) => {
          const within = (delay: number, ms: number) =>
            delay >= Math.max(1, Math.floor(ms * (1 - jitterRatio))) && delay <= Math.ceil(ms * (1 + jitterRatio));
          const scheduler = new SyncScheduler({ rng: () => r, intervalMs, jitterRatio }, startMs);
          const delay = scheduler.wakeAtMs(startMs) - startMs;
          assert.ok(within(delay, intervalMs), `interval ${intervalMs} ratio ${jitterRatio} r ${r}: delay ${delay}`);

          const backoffMsBase = Math.max(1, Math.floor(intervalMs / 7));
          const slow = new SyncScheduler({ rng: () => r, intervalMs: 1e12, jitterRatio, backoffMsBase }, startMs);
          slow.peerConnected('p');
          assert.equal(slow.takeDue(startMs), 'p');
          slow.report('p', false, startMs);
          slow.peerConnected('p'); // urgent again, so wakeAtMs shows its retry time
          const backoff = slow.wakeAtMs(startMs) - startMs;
          assert.ok(within(backoff, backoffMsBase), `backoff ${backoff} for base ${backoffMsBase}`);
        },
      ),
      { numRuns: 1000 },
    );
  });

  // After failures a peer waits base * 2^(failures-1), capped at backoffMsMax, and is skipped meanwhile.
  it('backs off exponentially up to the cap and skips the peer until then', () => {
    const scheduler = new SyncScheduler({ rng: noJitter, intervalMs: 1e12 }, 0);
    scheduler.peerConnected('p');
    scheduler.peerConnected('q');
    assert.deepEqual(drain(scheduler, 0).sort(), ['p', 'q']);
    scheduler.report('q', true, 0);
    let t = 0;
    const waits: number[] = [];
    for (let failures = 1; failures <= 10; failures++) {
      scheduler.report('p', false, t);
      scheduler.peerConnected('p'); // urgent: due as soon as its backoff allows
      const wait = scheduler.wakeAtMs(t) - t;
      scheduler.peerConnected('q'); // a healthy peer stays due meanwhile
      assert.equal(scheduler.takeDue(t + 1), 'q');
      scheduler.report('q', true, t + 1);
      assert.equal(scheduler.takeDue(t + wait - 1), undefined, `p due before its backoff (${failures} failures)`);
      assert.equal(scheduler.takeDue(t + wait), 'p');
      waits.push(wait);
      t += wait;
    }
    const expected = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((x) =>
      Math.min(syncBackoffMsMax, syncBackoffMsBase * x),
    );
    assert.deepEqual(waits, expected);
    assert.equal(Math.max(...waits), syncBackoffMsMax);

    // One success resets: due at once again, and the next failure backs off from the base.
    scheduler.report('p', true, t);
    scheduler.peerConnected('p');
    assert.equal(scheduler.takeDue(t), 'p');
    scheduler.report('p', false, t);
    scheduler.peerConnected('p');
    assert.equal(scheduler.wakeAtMs(t), t + syncBackoffMsBase);
  });

  // With jitter, the capped backoff stays within backoffMsMax * (1 ± ratio).
  it('jitters the capped backoff within ±ratio', () => {
    for (const r of [0, 0.999999]) {
      const scheduler = new SyncScheduler({ rng: () => r, intervalMs: 1e12 }, 0);
      scheduler.peerConnected('p');
      let wait = 0;
      for (let failures = 1; failures <= 12; failures++) {
        assert.equal(scheduler.takeDue(wait === 0 ? 0 : 1e9), 'p');
        scheduler.report('p', false, 0);
        scheduler.peerConnected('p');
        wait = scheduler.wakeAtMs(0);
      }
      assert.ok(wait >= Math.floor(syncBackoffMsMax * (1 - syncJitterRatioDefault)), `${wait}`);
      assert.ok(wait <= Math.ceil(syncBackoffMsMax * (1 + syncJitterRatioDefault)), `${wait}`);
    }
  });

  // A failed peer is skipped by periodic rounds until its retry time, then picked again.
  it('periodic rounds skip a backing-off peer until its retry time', () => {
    const scheduler = new SyncScheduler({ rng: noJitter, intervalMs: 10, backoffMsBase: 100 }, 0);
    scheduler.peerConnected('p');
    assert.equal(scheduler.takeDue(0), 'p');
    scheduler.report('p', false, 0);
    let firstAgain: number | undefined;
    for (let t = 1; t <= 300 && firstAgain === undefined; t++) {
      if (scheduler.takeDue(t) === 'p') firstAgain = t;
    }
    assert.ok(firstAgain !== undefined, 'p never retried');
    assert.ok(firstAgain >= 100 && firstAgain < 110, `retried at ${firstAgain}`);
  });

  // A disconnected peer is forgotten: never returned, and reports about it are ignored.
  it('never returns a disconnected peer', () => {
    const scheduler = new SyncScheduler({ rng: seededRng(7), intervalMs: 10 }, 0);
    scheduler.peerConnected('a');
    scheduler.peerConnected('b');
    scheduler.peerDisconnected('a');
    scheduler.requestNow('a'); // no effect on an unknown peer
    scheduler.report('a', false, 0); // ignored
    assert.equal(scheduler.peerCount, 1);
    for (let t = 0; t < 1_000; t++) {
      for (const peer of drain(scheduler, t)) {
        assert.equal(peer, 'b');
        scheduler.report(peer, true, t);
      }
    }
    scheduler.peerDisconnected('b');
    for (let t = 1_000; t < 1_100; t++) assert.deepEqual(drain(scheduler, t), []);
  });

  // Random connects, disconnects, reports and requests: takeDue never returns a busy or disconnected
  // peer, and wakeAtMs is never later than the next time takeDue returns a peer.
  it('keeps its invariants under random events (busy, disconnected, wake time)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (seed, eventSeed) => {
        const peers = ['p0', 'p1', 'p2', 'p3', 'p4'];
        const events = seededRng(eventSeed);
        const pick = <T>(list: readonly T[]): T => list[Math.floor(events() * list.length)]!;
        const scheduler = new SyncScheduler(
          { rng: seededRng(seed), intervalMs: 40, backoffMsBase: 15, backoffMsMax: 120 },
          0,
        );
        const connected = new Set<string>();
        const busy = new Set<string>();
        let wakeAt = scheduler.wakeAtMs(0);
        let taken = 0;
        for (let t = 0; t < 1_500; t++) {
          const due = drain(scheduler, t);
          if (due.length > 0) assert.ok(wakeAt <= t, `peer due at ${t} but wakeAtMs said ${wakeAt}`);
          for (const peer of due) {
            assert.ok(connected.has(peer), `disconnected peer ${peer} returned at ${t}`);
            assert.ok(!busy.has(peer), `busy peer ${peer} returned again at ${t}`);
            busy.add(peer);
            taken++;
          }
          // After a drain nothing is due now, so the runtime never spins.
          assert.ok(scheduler.wakeAtMs(t) > t, `wakeAtMs(${t}) = ${scheduler.wakeAtMs(t)} after a drain`);

          const roll = events();
          if (roll < 0.02) {
            const peer = pick(peers);
            connected.add(peer);
            scheduler.peerConnected(peer);
          } else if (roll < 0.03 && connected.size > 0) {
            const peer = pick([...connected]);
            connected.delete(peer);
            busy.delete(peer); // its session is abandoned with the connection
            scheduler.peerDisconnected(peer);
          } else if (roll < 0.15 && busy.size > 0) {
            const peer = pick([...busy]);
            busy.delete(peer);
            scheduler.report(peer, events() < 0.6, t);
          } else if (roll < 0.16) {
            scheduler.requestNow(pick(peers));
          }
          wakeAt = scheduler.wakeAtMs(t);
        }
        assert.ok(taken > 0 || connected.size === 0);
      }),
      { numRuns: 60 },
    );
  });
});

describe('SyncScheduler with urgentSessionsMax', () => {
  // A node catching up from one peer starts nothing else until that session reports, not even
  // a periodic round; and it does not spin while it waits.
  it('starts no other session, periodic ones included, while the urgent limit is reached', () => {
    const scheduler = new SyncScheduler({ rng: noJitter, urgentSessionsMax: 1 }, 0);
    scheduler.peerConnected('a');
    scheduler.peerConnected('b');
    const first = scheduler.takeDue(0);
    assert.ok(first === 'a' || first === 'b');
    for (let t = 0; t <= 5 * syncIntervalMsDefault; t += 100) {
      assert.equal(scheduler.takeDue(t), undefined, `a session started at ${t} while the catch-up runs`);
      assert.ok(scheduler.wakeAtMs(t) > t, 'no busy wait while blocked');
    }
    scheduler.report(first!, true, 5 * syncIntervalMsDefault);
    const second = scheduler.takeDue(5 * syncIntervalMsDefault);
    assert.ok(second !== undefined && second !== first, 'the other urgent peer is next');
  });
});

describe('SyncScheduler during bursts of writes', () => {
  const interval = syncIntervalMsDefault;

  /** A scheduler with one known peer (periodic rounds only) and its round times. */
  function periodic(options: { burstEntriesMin?: number; burstRoundsDeferMax?: number } = {}): SyncScheduler {
    const scheduler = new SyncScheduler({ rng: noJitter, ...options }, 0);
    scheduler.peerKnown('a');
    return scheduler;
  }

  /** Takes the round due at `t` with the applied seq `seq`; reports it at once. Returns whether it ran. */
  function round(scheduler: SyncScheduler, t: number, seq: number): boolean {
    const peer = scheduler.takeDue(t, seq);
    if (peer !== undefined) scheduler.report(peer, true, t);
    return peer !== undefined;
  }

  // Every round comes due (one interval apart); a burst of 1,000 entries an interval puts off
  // four rounds, then one runs, then four more are put off, for as long as the burst lasts.
  it('puts off at most burstRoundsDeferMax periodic rounds in a row while entries are applied', () => {
    const scheduler = periodic();
    const ran: boolean[] = [];
    for (let i = 1; i <= 12; i++) ran.push(round(scheduler, i * interval, i * syncBurstEntriesMin));
    // The first round compares with the seq of the first call, its own: it runs.
    assert.deepEqual(ran, [true, false, false, false, false, true, false, false, false, false, true, false]);
    assert.equal(scheduler.roundsDeferredTotal, 9);
  });

  // Below the burst size, or with no seq passed (partitioned mode), every round runs.
  it('runs every round below burstEntriesMin entries an interval, or without a seq', () => {
    const quiet = periodic();
    for (let i = 1; i <= 6; i++) assert.equal(round(quiet, i * interval, i * (syncBurstEntriesMin - 1)), true, `round ${i}`);
    const noSeq = periodic();
    for (let i = 1; i <= 6; i++) {
      const peer = noSeq.takeDue(i * interval);
      assert.equal(peer, 'a', `round ${i}`);
      noSeq.report(peer, true, i * interval);
    }
    assert.equal(quiet.roundsDeferredTotal + noSeq.roundsDeferredTotal, 0);
  });

  // A put-off round is put off by one interval, not forever: once the burst ends (the seq stops
  // moving) the next round runs; and the count in a row starts again after a round that ran.
  it('runs the first round after the burst ends, and counts deferrals in a row afresh', () => {
    const scheduler = periodic();
    assert.equal(round(scheduler, interval, 0), true);
    assert.equal(round(scheduler, 2 * interval, 5000), false);
    assert.equal(scheduler.wakeAtMs(2 * interval), 3 * interval, 'put off by one interval');
    assert.equal(round(scheduler, 3 * interval, 5000), true, 'nothing applied since: not a burst');
    for (let i = 4; i <= 7; i++) assert.equal(round(scheduler, i * interval, i * 5000), false, `round ${i} mid-burst`);
    assert.equal(round(scheduler, 8 * interval, 8 * 5000), true, 'the fifth in a row runs');
  });

  // Urgent sessions (a new peer, a catch-up, requestNow) never wait for a burst to end.
  it('does not hold back urgent sessions', () => {
    const scheduler = periodic();
    assert.equal(round(scheduler, interval, 0), true);
    scheduler.peerConnected('b');
    scheduler.requestNow('a');
    const taken = new Set([scheduler.takeDue(interval + 1, 10_000), scheduler.takeDue(interval + 1, 10_000)]);
    assert.deepEqual([...taken].sort(), ['a', 'b']);
  });

  it('never defers with burstRoundsDeferMax 0', () => {
    const scheduler = periodic({ burstRoundsDeferMax: 0 });
    for (let i = 1; i <= 5; i++) assert.equal(round(scheduler, i * interval, i * 100_000), true);
  });

  // The seq of the first call is the first round's baseline: a cluster's first burst, begun
  // before the first round came due, puts that round off too.
  it('compares the first round with the seq seen at the first call', () => {
    const scheduler = periodic();
    assert.equal(scheduler.takeDue(1, 0), undefined);
    assert.equal(round(scheduler, interval, 5000), false);
  });

  it('takes burstEntriesMin from its options', () => {
    const scheduler = periodic({ burstEntriesMin: 10 });
    assert.equal(round(scheduler, interval, 0), true);
    assert.equal(round(scheduler, 2 * interval, 9), true);
    assert.equal(round(scheduler, 3 * interval, 19), false);
  });
});
