/**
 * `ckv cluster-key [-o FILE]`: a new pre-shared cluster key; give every node `--cluster-key
 * FILE`. With -o the key is written to FILE at mode 0600 (only this user can read it), and an
 * existing FILE is never overwritten; printed to stdout and redirected, it would be created
 * with the umask's mode, usually readable by everyone.
 */
import { open, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { errnoReason } from '../util/errno.js';
import { CliError, writeStdout } from './common.js';

export function register(program: Command): void {
  program
    .command('cluster-key')
    .description('make a new pre-shared cluster key (nodes without it cannot connect); save it with -o FILE')
    .option('-o, --output <file>', 'write the key to this new file, mode 0600 (refuses an existing file); use this rather than > FILE')
    .action(async (options: { output?: string }) => {
      const { generateClusterKey } = await import('../net/libp2p.js');
      const key = await generateClusterKey();
      if (options.output === undefined) {
        await writeStdout(key);
        return;
      }
      await writeKeyFile(options.output, key);
    });
}

async function writeKeyFile(path: string, key: Uint8Array): Promise<void> {
  let file;
  try {
    // 'wx': created here or not at all; 0600 on creation, so it is never readable by others.
    file = await open(path, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${path} already exists; not overwriting a cluster key (remove it first or choose another name)`, 'usage');
    throw new CliError(`cannot create ${path}: ${errnoReason(error)}`, 'usage');
  }
  try {
    await file.chmod(0o600); // a umask cannot loosen it, but be exact
    await file.writeFile(key);
    await file.close();
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(path, { force: true }); // no half-written key left behind
    throw new CliError(`cannot write ${path}: ${errnoReason(error)}`, 'failed');
  }
}
