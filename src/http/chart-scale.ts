/**
 * The status page's chart scale: where the y axis ends and which values it is marked with.
 *
 * One outlier must not flatten a chart: a minute with one 3 s convergence sample and the rest
 * near 5 ms would otherwise draw every other point on the floor. So the scale is taken from
 * the window's 95th percentile (or `floor`, if more) when the largest value is more than twice
 * that (and there are at least 5 values); the values above the scale are drawn at its top and marked as clipped (the
 * page says how many and the peak). Otherwise the scale covers the largest value. Either way
 * it is rounded up to a whole number of "nice" steps (1, 2 or 5 times a power of ten), about
 * four of them, and the ticks are 0, step, 2 x step, ... up to the top, never below `floor`.
 *
 * These functions are also the page's own: page.ts puts their source text into the page's
 * inline script, so they must stay self-contained (no imports, no other module names, plain
 * ES2017 once compiled).
 */

export interface ChartScale {
  /** The top of the y axis. */
  max: number;
  /** Tick values from 0 to max, ascending (2 to 6 of them). */
  ticks: number[];
  /** How many values lie above max (drawn at the top, marked). */
  clipped: number;
  /** The largest value (0 if none). */
  peak: number;
}

/** The scale for `values` (nulls and non-finite values are gaps); the top is at least `floor`. */
export function chartScale(values: readonly (number | null | undefined)[], floor: number): ChartScale {
  function niceStep(raw: number): number {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  const sorted: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number' && isFinite(v) && v >= 0) sorted.push(v);
  }
  sorted.sort(function (a, b) {
    return a - b;
  });
  const peak = sorted.length ? sorted[sorted.length - 1]! : 0;
  const base = floor > 0 ? floor : 1;
  let wanted = Math.max(peak, base);
  if (sorted.length >= 5) {
    const p95 = Math.max(sorted[Math.floor(0.95 * (sorted.length - 1))]!, base);
    if (peak > 2 * p95) wanted = p95;
  }
  const step = niceStep(wanted / 4);
  const max = Math.ceil(wanted / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step / 1e6 && ticks.length < 12; t += step) ticks.push(Number(t.toPrecision(12)));
  let clipped = 0;
  for (let j = 0; j < sorted.length; j++) if (sorted[j]! > max) clipped++;
  return { max: Number(max.toPrecision(12)), ticks, clipped, peak };
}
