/**
 * The status page's chart scale (src/http/chart-scale.ts, also run in the page): nice ticks
 * from 0 to the top, a floor for empty or tiny windows, and an outlier clipped (and counted)
 * instead of flattening the rest of the window.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chartScale } from '../../src/http/chart-scale.js';

function isNice(step: number): boolean {
  const m = step / Math.pow(10, Math.floor(Math.log10(step)));
  return [1, 2, 5, 10].some((n) => Math.abs(m - n) < 1e-9);
}

describe('chartScale', () => {
  it('an empty or all-null window: the floor, ticks from 0', () => {
    assert.deepEqual(chartScale([], 4), { max: 4, ticks: [0, 1, 2, 3, 4], clipped: 0, peak: 0 });
    assert.deepEqual(chartScale([null, undefined, NaN], 4).max, 4);
  });

  it('covers the largest value with 2 to 6 evenly spaced nice ticks', () => {
    for (const peak of [0.3, 1, 4.1, 7, 9.99, 21, 99, 101, 730, 1234, 5e6]) {
      const values = [peak / 3, peak / 2, peak, peak / 4, peak / 5];
      const scale = chartScale(values, 1);
      assert.ok(scale.max >= Math.max(peak, 1), `max ${scale.max} covers ${peak}`);
      assert.equal(scale.clipped, 0);
      assert.equal(scale.ticks[0], 0);
      assert.equal(scale.ticks.at(-1), scale.max);
      assert.ok(scale.ticks.length >= 2 && scale.ticks.length <= 6, `ticks ${scale.ticks.join(',')}`);
      const step = scale.ticks[1]! - scale.ticks[0]!;
      assert.ok(isNice(step), `step ${step} is 1, 2 or 5 x 10^k`);
      assert.ok(scale.max < 2.6 * Math.max(peak, 1), `max ${scale.max} is not far above ${peak}`);
    }
  });

  it('one outlier is clipped and counted, not allowed to flatten the window', () => {
    const values = Array.from({ length: 60 }, (_, i) => 5 + (i % 7));
    values[30] = 3000;
    const scale = chartScale(values, 1);
    assert.ok(scale.max <= 20, `scale ${scale.max} follows the other 59 values`);
    assert.ok(scale.max >= 11, `scale ${scale.max} still covers them`);
    assert.equal(scale.clipped, 1);
    assert.equal(scale.peak, 3000);
  });

  it('a spike over a quiet window (below twice the floor) is shown, not clipped', () => {
    const values = Array.from({ length: 60 }, () => 0);
    values[59] = 5;
    const scale = chartScale(values, 4);
    assert.equal(scale.clipped, 0);
    assert.ok(scale.max >= 5);
  });

  it('a window that is merely spread out is not clipped', () => {
    const values = Array.from({ length: 60 }, (_, i) => i * 10);
    const scale = chartScale(values, 1);
    assert.equal(scale.clipped, 0);
    assert.ok(scale.max >= 590);
  });
});
