/**
 * What the A/B tools (ack-ab.ts, unary-ab.ts) share: each side's named series of samples,
 * printed as one line a series with a cell a side, and the way a tool's main runs. No
 * harness import: the A/B tools load each side's own harness from its build.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** One build under test: its name (first word printed in each cell) and its samples by series. */
export interface AbSide {
  name: string;
  series: Map<string, number[]>;
}

/** One line a series of the first side, `cell` formatting each side's samples; then the sides' names. */
export function printSeries(sides: readonly AbSide[], nameWidth: number, cell: (values: number[]) => string): void {
  for (const name of sides[0]!.series.keys()) {
    const cells = sides.map((side) => `${side.name.split(' ')[0]} ${cell(side.series.get(name) ?? [])}`);
    console.log(`${name.padEnd(nameWidth)} ${cells.join(' | ')}`);
  }
  for (const side of sides) console.log(side.name);
}

/** Runs `main`, exits 0 when it resolves, else prints its error's message and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}

/** Milliseconds of `count` calls of `call`, one at a time, each after a pause of `gapMs`. */
export async function timeCalls(count: number, gapMs: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    await sleep(gapMs);
    const t0 = performance.now();
    await call(i);
    ms.push(performance.now() - t0);
  }
  return ms;
}
