/**
 * `ckv gc [--json]`: this node's view of tombstone GC (docs/design-delivery-gc.md section 2):
 * the watermark (the HLC below which no write can still arrive anywhere) as HLC text and age,
 * the member holding it back, the collector, tombstones held here, collectable (below the
 * watermark at the last run) and collected so far, open rounds and the last run's errors.
 * `ckv gc --run [--json]`: one collection run now on this node (it collects the partitions it
 * is the collector of, and its leftovers), then the same view and what the run did.
 */
import type { Command } from 'commander';
import type { GcStateMessage } from '../control/proto.js';
import { printJson, withClient, writeStdout } from './common.js';
import { gcJson } from './json.js';

export function register(program: Command): void {
  program
    .command('gc')
    .description('tombstone GC: the watermark, the member holding it back, tombstones collectable and collected (--run: collect now)')
    .option('--run', 'run one collection round now and report what it did')
    .option('--json', 'one JSON document')
    .action(async (options: { run?: boolean; json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        if (options.run) {
          const reply = await client.gcRun();
          const run = { rounds: reply.rounds, roundsAbandoned: reply.roundsAbandoned, deleted: Number(reply.deleted), collectable: Number(reply.collectable) };
          if (options.json) {
            await printJson({ ...gcJson(reply.gc!), run });
            return;
          }
          await writeStdout(
            `run: ${run.rounds} round${run.rounds === 1 ? '' : 's'} (${run.roundsAbandoned} abandoned), ${run.deleted} row${run.deleted === 1 ? '' : 's'} deleted on the holders, ${run.collectable} collectable\n` + gcText(reply.gc!),
          );
          return;
        }
        const state = await client.gcStatus();
        if (options.json) await printJson(gcJson(state));
        else await writeStdout(gcText(state));
      });
    });
}

/** `ckv gc`'s text; `ckv status` shows its first line. */
export function gcText(gc: GcStateMessage): string {
  const age = gc.watermarkAgeMs === '-1' ? '' : ` (${ageText(Number(gc.watermarkAgeMs))} ago)`;
  const lines = [
    gc.watermark === 'none'
      ? `watermark   none: ${gc.holdsBack ? `${gc.holdsBack} has not answered, or is not yet in sync with every member` : 'no run yet'} (nothing is collected)`
      : `watermark   ${gc.watermark}${age}${gc.holdsBack ? `, set by ${gc.holdsBack}` : ''}`,
    `collector   ${gc.collector}`,
    `tombstones  ${gc.tombstones} here, ${gc.collectable} collectable at the last run, ${gc.collected} collected here since start`,
    `rounds      ${gc.openRounds} open${gc.lastRunAtMs === '0' ? ', no run yet' : ''}`,
    ...gc.errors.map((e) => `error       ${e}`),
  ];
  return lines.join('\n') + '\n';
}

function ageText(ms: number): string {
  if (ms < 0) return `${ms} ms`;
  if (ms < 10_000) return `${ms} ms`;
  if (ms < 3_600_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}
