/**
 * `ckv balance [--json] [--single-layout]` (partitioned mode): start this node's pulls now and
 * wait, printing progress after each round (partitions left per active layout, the nodes
 * blocking them), until it has nothing left to pull (with --single-layout: and only one layout
 * is active, i.e. every owner of the newest layout pulled too). Exit 0 when done; Ctrl-C stops
 * waiting (the pulls go on in the node). A node that blocks a pull is named: if it is gone for
 * good, `ckv node remove NODE`. A full-replication node refuses (exit 4).
 */
import type { Command } from 'commander';
import type { BalanceProgressMessage } from '../control/proto.js';
import { withClient, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('balance')
    .description('partitioned mode: pull this node\'s new partitions now and wait until none is left, with progress')
    .option('--single-layout', 'also wait until only one layout is active (every new owner pulled)')
    .option('--json', 'one JSON object a line per progress step (the last has done: true)')
    .action(async (options: { json?: boolean; singleLayout?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        for await (const step of client.balance(options.singleLayout ?? false)) {
          await writeStdout(options.json ? `${JSON.stringify(balanceJson(step))}\n` : `${balanceText(step)}\n`);
        }
      });
    });
}

function balanceJson(step: BalanceProgressMessage): object {
  return {
    done: step.done,
    activeVersions: step.activeVersions.map(Number),
    pending: step.pending.map((p) => ({ version: Number(p.version), partitions: p.partitions })),
    pulled: Number(step.pulled),
    blockedBy: step.blockedBy,
  };
}

function balanceText(step: BalanceProgressMessage): string {
  const layouts = `layouts ${step.activeVersions.join(',') || '-'}`;
  if (step.done) return `balanced: nothing left to pull (${layouts}; ${step.pulled} partitions pulled since start)`;
  const pending = step.pending.length === 0 ? 'nothing left to pull here' : step.pending.map((p) => `v${p.version}: ${p.partitions} pending`).join(', ');
  const blocked = step.blockedBy.length > 0 ? `; blocked by ${step.blockedBy.join(' ')} (ckv node remove NODE if gone)` : '';
  return `${layouts}; ${pending}; ${step.pulled} pulled${blocked}`;
}
