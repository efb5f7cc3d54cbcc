/** Percentile summaries, medians over repeated runs, and a least-squares fit against ln N. */
import { median, quantile } from './stats.js';

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  const finite = values.filter((v) => Number.isFinite(v));
  return {
    count: finite.length,
    p50: quantile(finite, 0.5),
    p90: quantile(finite, 0.9),
    p99: quantile(finite, 0.99),
    max: finite.length === 0 ? Number.NaN : Math.max(...finite),
    mean: finite.length === 0 ? Number.NaN : finite.reduce((a, b) => a + b, 0) / finite.length,
  };
}

/** Field-wise median of several runs' percentile summaries (count: summed). */
export function medianPercentiles(runs: readonly Percentiles[]): Percentiles {
  const pick = (f: keyof Percentiles): number => median(runs.map((r) => r[f]));
  return {
    count: runs.reduce((sum, r) => sum + r.count, 0),
    p50: pick('p50'),
    p90: pick('p90'),
    p99: pick('p99'),
    max: pick('max'),
    mean: pick('mean'),
  };
}

export { median, quantile };

export interface LogFit {
  /** y = intercept + slope * ln(x) */
  intercept: number;
  slope: number;
  /** Coefficient of determination of the fit (1 = every point on the line). */
  r2: number;
  points: number;
}

/** Ordinary least squares of y against ln(x). */
export function fitLog(xs: readonly number[], ys: readonly number[]): LogFit {
  const n = Math.min(xs.length, ys.length);
  const lx = xs.slice(0, n).map((x) => Math.log(x));
  const y = ys.slice(0, n);
  const mx = lx.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (lx[i]! - mx) * (y[i]! - my);
    sxx += (lx[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  const slope = sxx === 0 ? Number.NaN : sxy / sxx;
  const intercept = my - slope * mx;
  let ssRes = 0;
  for (let i = 0; i < n; i++) ssRes += (y[i]! - (intercept + slope * lx[i]!)) ** 2;
  const r2 = syy === 0 ? Number.NaN : 1 - ssRes / syy;
  return { intercept, slope, r2, points: n };
}

/** Empirical CDF points (x sorted, y = fraction <= x), thinned to at most `maxPoints`. */
export function cdfPoints(values: readonly number[], maxPoints = 200): [number, number][] {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return [];
  const step = Math.max(1, Math.floor(n / maxPoints));
  const points: [number, number][] = [];
  for (let i = 0; i < n; i += step) points.push([sorted[i]!, (i + 1) / n]);
  if (points[points.length - 1]![1] !== 1) points.push([sorted[n - 1]!, 1]);
  return points;
}

export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** 1234.5 ms -> "1.23 s", 12.345 -> "12.3 ms", 0.1234 -> "0.123 ms". */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(3)} ms`;
}

export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  if (bytes < 10 * 1024) return `${Math.round(bytes)} B`;
  if (bytes < 10 * 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

export function fmtRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return '-';
  return ratio > 0 && ratio < 0.1 ? `${ratio.toPrecision(2)}x` : `${ratio.toFixed(2)}x`;
}

export function fmtRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}
