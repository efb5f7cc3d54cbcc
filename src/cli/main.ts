/**
 * The ckv command line: one file per command under src/cli/, registered here. Errors print
 * one line `ckv: <message>` to stderr and exit with a documented code (common.ts).
 */
import { Command, CommanderError } from 'commander';
import { ckvVersion } from '../config.js';
import { describeError, ExitCode, exitCodeHelp } from './common.js';
import * as clusterKey from './cluster-key.js';
import * as completion from './completion.js';
import * as del from './del.js';
import * as demo from './demo.js';
import * as exportCommand from './export.js';
import * as get from './get.js';
import * as health from './health.js';
import * as importCommand from './import.js';
import * as keys from './keys.js';
import * as layout from './layout.js';
import * as node from './node.js';
import * as purge from './purge.js';
import * as gc from './gc.js';
import * as balance from './balance.js';
import * as peers from './peers.js';
import * as put from './put.js';
import * as status from './status.js';
import * as sync from './sync.js';
import * as watch from './watch.js';
import * as whereis from './whereis.js';

export function buildProgram(): Command {
  const program = new Command('ckv')
    .description('ckv: a replicated key-value store for LANs and small clusters')
    .version(ckvVersion, '-V, --version')
    .option('--socket <path>', "the node's control socket (default: $CKV_SOCKET, else <default data dir>/ckv.sock); with node start, where that node serves")
    .addHelpText('after', `\n${exitCodeHelp}`)
    .exitOverride()
    .configureOutput({
      // One line: `ckv: <what is wrong> (run ckv --help for usage)`.
      outputError: (text, write) => write(`${text.trim().replace(/^error: /, 'ckv: ')} (run ckv --help for usage)\n`),
    });
  for (const command of [node, put, get, del, keys, watch, status, health, peers, layout, whereis, sync, purge, gc, balance, exportCommand, importCommand, clusterKey, demo, completion]) command.register(program);
  for (const sub of program.commands) {
    sub.exitOverride();
    for (const subsub of sub.commands) subsub.exitOverride();
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // A reader that goes away early (`ckv get big | head -c 10`) is not an error of ours.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    process.exitCode = ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version "errors" exit 0; anything else commander rejects is a usage error.
      process.exitCode = error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return;
    }
    const { message, exitCode } = describeError(error);
    process.stderr.write(`ckv: ${message}\n`);
    process.exitCode = exitCode;
  }
}
