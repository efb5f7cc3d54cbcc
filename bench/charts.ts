/** The run's SVG charts, written beside its JSON: convergence CDF, p99 against N, catch-up time against K. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart, type Series } from './lib/svg.js';
import type { ScenarioResult } from './scenarios/common.js';

export interface ChartData {
  cdf?: { name: string; points: [number, number][] }[];
  scaling?: {
    points: { n: number; p50: number; p99: number }[];
    fit: { intercept: number; slope: number; r2: number };
    fitGossip?: { intercept: number; slope: number; r2: number };
    gossipSizes?: number[];
  };
  catchUp?: { points: { k: number; catchUpMs: number; rawLevelMs: number; targetMs: number }[] };
}

/** Writes whichever charts the results have data for; returns the file names (relative to `dir`). */
export function charts(results: ScenarioResult[], dir: string, stem: string): string[] {
  const written: string[] = [];
  const write = (name: string, svg: string): void => {
    const file = `${stem}-${name}.svg`;
    writeFileSync(join(dir, file), svg);
    written.push(file);
  };
  const byName = new Map(results.map((r) => [r.name, r.data as ChartData]));

  const cdf = [...(byName.get('convergence')?.cdf ?? [])];
  if (cdf.length > 0) {
    write(
      'convergence-cdf',
      lineChart({
        title: 'Convergence: write -> applied on every other node (CDF)',
        subtitle: 'bench clock: put sent -> last Watch event; raw hop: publish() -> message event',
        xLabel: 'latency, ms (log scale)',
        yLabel: 'fraction of writes',
        xLog: true,
        yMin: 0,
        yMax: 1,
        series: cdf.map((s, i) => ({ name: s.name, points: s.points, markers: false, dashed: i === cdf.length - 1 })),
      }),
    );
  }

  const scaling = byName.get('scaling')?.scaling;
  if (scaling && scaling.points.length > 0) {
    const ns = scaling.points.map((p) => p.n);
    const curve = (fit: { intercept: number; slope: number }, lo: number, hi: number): [number, number][] => {
      const points: [number, number][] = [];
      for (let i = 0; i <= 20; i++) {
        const n = lo * (hi / lo) ** (i / 20);
        points.push([n, fit.intercept + fit.slope * Math.log(n)]);
      }
      return points;
    };
    const label = (fit: { intercept: number; slope: number; r2: number }): string =>
      `${fit.intercept.toFixed(1)} + ${fit.slope.toFixed(1)} ln N ms (R2 ${fit.r2.toFixed(2)})`;
    const series: Series[] = [
      { name: 'p99', points: scaling.points.map((p) => [p.n, p.p99]) },
      { name: 'p50', points: scaling.points.map((p) => [p.n, p.p50]) },
      { name: `p50 fit, all N: ${label(scaling.fit)}`, points: curve(scaling.fit, Math.min(...ns), Math.max(...ns)), dashed: true, markers: false },
    ];
    if (scaling.fitGossip && scaling.gossipSizes && scaling.gossipSizes.length >= 2 && scaling.gossipSizes.length < ns.length) {
      series.push({
        name: `p50 fit, N = ${scaling.gossipSizes.join(', ')} (gossip working): ${label(scaling.fitGossip)}`,
        points: curve(scaling.fitGossip, Math.min(...scaling.gossipSizes), Math.max(...scaling.gossipSizes)),
        dashed: true,
        markers: false,
      });
    }
    write(
      'p99-vs-n',
      lineChart({
        title: 'Convergence latency against cluster size N',
        subtitle: 'write -> applied on every other node; medians over runs (fit lines below 0 ms not drawn)',
        xLabel: 'nodes N (log scale)',
        yLabel: 'latency, ms (log scale)',
        xLog: true,
        yLog: true,
        xTicks: ns,
        series,
      }),
    );
  }

  const catchUp = byName.get('catch-up')?.catchUp;
  if (catchUp && catchUp.points.length > 0) {
    const ks = catchUp.points.map((p) => p.k);
    write(
      'catchup-vs-k',
      lineChart({
        title: 'Catch-up of a restarted node against missed entries K',
        subtitle: 'peer up -> Merkle root equal to the others; raw: level batched write of the same K entries',
        xLabel: 'missed entries K (log scale)',
        yLabel: 'time, ms (log scale)',
        xLog: true,
        yLog: true,
        xTicks: ks,
        series: [
          { name: 'ckv catch-up', points: catchUp.points.map((p) => [p.k, p.catchUpMs]) },
          { name: 'raw level write of K entries', points: catchUp.points.map((p) => [p.k, p.rawLevelMs]) },
          { name: 'target: 2 x raw + 100 ms', points: catchUp.points.map((p) => [p.k, p.targetMs]), dashed: true },
        ],
      }),
    );
  }
  return written;
}
