/**
 * Hand-written SVG line charts (no dependencies): linear or log axes, several series, markers,
 * dashed lines, a legend. Enough for a CDF, a metric against N and a time against K.
 */

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  dashed?: boolean;
  /** Draw a dot on each point (default: when there are at most 12 points). */
  markers?: boolean;
  color?: string;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  /** Force the axis range (data outside is clipped). */
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** Only these x ticks (e.g. the N values). */
  xTicks?: number[];
  /** A note under the title. */
  subtitle?: string;
  series: Series[];
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const width = 720;
const height = 440;
const margin = { left: 72, right: 24, top: 56, bottom: 56 };

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtTick(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toPrecision(3)}k`;
  if (abs >= 1) return `${+value.toPrecision(3)}`;
  return `${+value.toPrecision(2)}`;
}

/** Nice linear ticks covering [min, max]. */
function linearTicks(min: number, max: number, count = 6): number[] {
  const span = max - min || 1;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

/** Ticks at 1, 2, 5 x 10^k within [min, max] (only 10^k when the range is wide). */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  const wide = Math.log10(max / min) > 4;
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of wide ? [1] : [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= min * 0.999 && t <= max * 1.001) ticks.push(t);
    }
  }
  return ticks;
}

export function lineChart(options: ChartOptions): string {
  const all = options.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const positive = (v: number): boolean => v > 0;
  const xs = all.map(([x]) => x).filter((x) => !options.xLog || positive(x));
  const ys = all.map(([, y]) => y).filter((y) => !options.yLog || positive(y));
  let xMin = options.xMin ?? (xs.length ? Math.min(...xs) : 0);
  let xMax = options.xMax ?? (xs.length ? Math.max(...xs) : 1);
  if (xMax <= xMin) {
    // One x value (e.g. a single K): centre it.
    if (options.xLog) {
      xMin = (xMin || 1) / 3;
      xMax = (xMax || 1) * 3;
    } else {
      xMin -= 1;
      xMax += 1;
    }
  }
  let yMin = options.yMin ?? (options.yLog ? (ys.length ? Math.min(...ys) : 1) : Math.min(0, ...ys));
  let yMax = options.yMax ?? (ys.length ? Math.max(...ys) : 1);
  if (yMax <= yMin) yMax = yMin + (options.yLog ? yMin || 1 : 1);
  if (!options.yLog && options.yMax === undefined) yMax = yMax * 1.05;
  if (options.yLog && options.yMin === undefined) yMin = yMin / 1.5;
  if (options.yLog && options.yMax === undefined) yMax = yMax * 1.5;

  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const tx = (x: number): number => {
    const f = options.xLog ? (Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin)) : (x - xMin) / (xMax - xMin);
    return margin.left + f * plotW;
  };
  const ty = (y: number): number => {
    const f = options.yLog ? (Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)) : (y - yMin) / (yMax - yMin);
    return margin.top + plotH - f * plotH;
  };
  const clampX = (x: number): number => Math.min(xMax, Math.max(xMin, x));
  const clampY = (y: number): number => Math.min(yMax, Math.max(yMin, y));

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`);
  if (options.subtitle) parts.push(`<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escapeXml(options.subtitle)}</text>`);

  // Grid and ticks.
  const xTicks = (options.xTicks ?? (options.xLog ? logTicks(xMin, xMax) : linearTicks(xMin, xMax))).filter((t) => t >= xMin && t <= xMax);
  const yTicks = (options.yLog ? logTicks(yMin, yMax) : linearTicks(yMin, yMax)).filter((t) => t >= yMin && t <= yMax);
  for (const t of xTicks) {
    const x = tx(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${margin.top}" x2="${x}" y2="${margin.top + plotH}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x}" y="${margin.top + plotH + 16}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of yTicks) {
    const y = ty(t).toFixed(1);
    parts.push(`<line x1="${margin.left}" y1="${y}" x2="${margin.left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${(+y + 4).toFixed(1)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  parts.push(
    `<text x="16" y="${margin.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${margin.top + plotH / 2})">${escapeXml(options.yLabel)}</text>`,
  );

  // Series.
  options.series.forEach((series, i) => {
    const color = series.color ?? palette[i % palette.length]!;
    const points = series.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!options.xLog || x > 0) && (!options.yLog || y > 0));
    if (points.length === 0) return;
    const path = points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${tx(clampX(x)).toFixed(1)},${ty(clampY(y)).toFixed(1)}`).join(' ');
    parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (series.markers ?? points.length <= 12) {
      for (const [x, y] of points) parts.push(`<circle cx="${tx(clampX(x)).toFixed(1)}" cy="${ty(clampY(y)).toFixed(1)}" r="3.5" fill="${color}"/>`);
    }
  });

  // Legend (top left inside the plot).
  options.series.forEach((series, i) => {
    const color = series.color ?? palette[i % palette.length]!;
    const y = margin.top + 16 + i * 18;
    const x = margin.left + 12;
    parts.push(`<rect x="${x - 6}" y="${y - 12}" width="${Math.min(plotW - 24, 40 + series.name.length * 6.5)}" height="18" fill="#ffffff" fill-opacity="0.85"/>`);
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 24}" y2="${y - 4}" stroke="${color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${x + 30}" y="${y}">${escapeXml(series.name)}</text>`);
  });

  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
