import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { hlcPack } from '../../src/core/hlc.js';
import { quantile, statsWindowSec, WriteStats, type SecondStats } from '../../src/node/write-stats.js';

const baseMs = 1_700_000_000_000;

/** What view() must say, from every sample kept (fewer than 512 a second: none is sampled out). */
function expected(samples: { sec: number; ms: number }[], writes: { sec: number; local: boolean }[], nowSec: number) {
  const inWindow = (sec: number): boolean => sec >= nowSec - statsWindowSec && sec < nowSec;
  const all = samples.filter((s) => inWindow(s.sec)).map((s) => s.ms).sort((a, b) => a - b);
  const series = [];
  for (let sec = nowSec - statsWindowSec; sec < nowSec; sec++) {
    const mine = samples.filter((s) => s.sec === sec).map((s) => s.ms).sort((a, b) => a - b);
    series.push({
      t: sec * 1000,
      local: writes.filter((w) => w.sec === sec && w.local).length,
      remote: writes.filter((w) => w.sec === sec && !w.local).length,
      p50Ms: quantile(mine, 0.5),
      p99Ms: quantile(mine, 0.99),
    });
  }
  return { samples: all.length, p50Ms: quantile(all, 0.5), p99Ms: quantile(all, 0.99), maxMs: all.length ? all.at(-1)! : null, series };
}

describe('WriteStats', () => {
  // The view of a second is kept for the rest of it; writes into the current second do not
  // change it, and a write into a complete second (a clock set back) drops it.
  it('views what every kept sample says, across seconds, views kept within a second and writes into past seconds', () => {
    const step = fc.record({
      moveMs: fc.integer({ min: -1500, max: 2500 }),
      local: fc.boolean(),
      lagMs: fc.integer({ min: -20, max: 400 }),
      view: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 120 }), (steps) => {
        let now = baseMs;
        const stats = new WriteStats(() => now, () => 0.5);
        const samples: { sec: number; ms: number }[] = [];
        const writes: { sec: number; local: boolean }[] = [];
        for (const { moveMs, local, lagMs, view } of steps) {
          now += moveMs;
          const sec = Math.floor(now / 1000);
          stats.record(local ? 'local' : 'remote', hlcPack(now - lagMs, 0), now);
          writes.push({ sec, local });
          if (!local) samples.push({ sec, ms: Math.max(0, lagMs) });
          if (!view) continue;
          const seen = stats.view();
          const want = expected(samples, writes, sec);
          assert.deepEqual(
            { samples: seen.convergence.samples, p50Ms: seen.convergence.p50Ms, p99Ms: seen.convergence.p99Ms, maxMs: seen.convergence.maxMs, series: seen.series },
            want,
          );
        }
      }),
      { numRuns: 200 },
    );
  });

  it('hands out one frozen view per second', () => {
    let now = baseMs + 100;
    const stats = new WriteStats(() => now, () => 0.5);
    stats.record('remote', hlcPack(now - 5, 0), now);
    now += 1000;
    const first = stats.view();
    assert.equal(first.convergence.samples, 1);
    stats.record('remote', hlcPack(now - 7, 0), now); // the current second: not in a view yet
    assert.equal(stats.view(), first, 'the same second gives the same view');
    assert.throws(() => {
      (first.convergence as { samples: number }).samples = 9;
    }, TypeError);
    assert.throws(() => (first.series as SecondStats[]).push(first.series[0]!), TypeError);
    stats.record('remote', hlcPack(now - 2000, 0), now - 1000); // into the complete second before
    const again = stats.view();
    assert.notEqual(again, first);
    assert.equal(again.convergence.samples, 2);
  });
});
