/**
 * The data directory, made ready before LevelDB opens it: each missing directory on its path
 * is created (mode 0700), then a probe file is written and removed, so a path that cannot be
 * used fails at once with one clear line (a usage error, exit 2) instead of later, or never.
 *
 * Why not `mkdir(dir, { recursive: true })`: on a path it cannot create under a directory
 * that exists (e.g. `/proc/x`, where mkdir says ENOENT although /proc exists) Node's
 * recursive mkdir retries forever, and `ckv node start --data-dir /proc/x` hung silently.
 * Creating one level at a time turns that into an error.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { errnoReason } from '../util/errno.js';

/** Creates `dir` if needed and checks this process can write in it; throws UsageError otherwise. */
export async function prepareDataDir(dir: string): Promise<void> {
  const target = resolve(dir);
  const missing: string[] = [];
  for (let at = target; ; at = dirname(at)) {
    try {
      if (!(await stat(at)).isDirectory()) {
        throw new UsageError(`cannot use the data directory ${dir}: ${at === target ? 'it' : at} is not a directory`);
      }
      break;
    } catch (error) {
      if (error instanceof UsageError) throw error;
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(at) === at) {
        throw new UsageError(`cannot use the data directory ${dir}: ${errnoReason(error)}`);
      }
      missing.unshift(at);
    }
  }
  for (const path of missing) {
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue; // made meanwhile (another start)
      throw new UsageError(`cannot create the data directory ${dir}: ${errnoReason(error)}${path === target ? '' : ` (at ${path})`}`);
    }
  }
  const probe = join(target, `.ckv-write-check-${process.pid}`);
  try {
    await writeFile(probe, '', { flag: 'wx', mode: 0o600 });
  } catch (error) {
    throw new UsageError(`cannot write in the data directory ${dir}: ${errnoReason(error)}`);
  }
  await rm(probe, { force: true });
}
