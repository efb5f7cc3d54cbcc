/**
 * bin/ckv.js run as a program (`npx ckv`, an installed `ckv`): its first two lines are a shell
 * launcher that starts node on the same file without NODE_EXTRA_CA_CERTS (the file's top
 * comment says why). With that variable naming a file that does not exist, node warns on
 * stderr at start ("Ignoring extra certs from ..."), so the warning shows whether node saw it.
 * The launcher also gives node ckv's malloc settings (GLIBC_TUNABLES, src/util/child-env.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ckvBin, exitOf, repoRoot, spawnTracked, tempDir, withDeadline } from '../../harness/testing.js';
import { mallocTunables } from '../../src/util/child-env.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const missingCaFile = join(tempDir('ckv-launcher-'), 'no-such-ca-bundle.pem');
const env = { ...process.env, NODE_EXTRA_CA_CERTS: missingCaFile };

function run(command: string, args: string[]): Promise<Run> {
  const child = spawnTracked(command, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const closed = new Promise<Run>((done) => child.once('close', (code) => done({ code, stdout, stderr })));
  return withDeadline(closed, 30_000, `${command} ${args.join(' ')} to finish`);
}

describe('bin/ckv.js as a program', () => {
  it('runs the command without NODE_EXTRA_CA_CERTS: no certificate warning', async () => {
    const direct = await run(ckvBin, ['--version']);
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.stdout, `${version}\n`);
    assert.equal(direct.stderr, '');
  });

  it('node bin/ckv.js keeps the variable (the warning the launcher avoids)', async () => {
    const throughNode = await run(process.execPath, [ckvBin, '--version']);
    assert.equal(throughNode.code, 0, throughNode.stderr);
    assert.equal(throughNode.stdout, `${version}\n`);
    assert.match(throughNode.stderr, /extra certs/);
  });

  it('works through a symlink, as an installed ckv, and passes arguments as they were given', async () => {
    const dir = tempDir('ckv-launcher-');
    const link = join(dir, 'ckv');
    symlinkSync(ckvBin, link);
    const socket = join(dir, 'a dir with spaces', 'none.sock');
    const result = await run(link, ['get', 'a key with spaces', '--socket', socket]);
    assert.equal(result.code, 3, result.stderr);
    assert.equal(result.stderr, `ckv: no node is running at ${socket} (start one with: ckv node start)\n`);
  });

  /**
   * Runs the launcher with a `node` first on PATH that prints the GLIBC_TUNABLES it was given:
   * what the shell line hands node, before glibc reads (and, in place, cuts) the variable.
   */
  async function tunablesGivenToNode(extraEnv: NodeJS.ProcessEnv): Promise<string> {
    const dir = tempDir('ckv-launcher-path-');
    writeFileSync(join(dir, 'node'), '#!/bin/sh\nprintf "%s" "${GLIBC_TUNABLES-unset}"\n', { mode: 0o755 });
    const child = spawnTracked(ckvBin, ['--version'], { cwd: repoRoot, env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}`, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const exit = await withDeadline(exitOf(child), 30_000, 'the launcher to run the stand-in node');
    assert.equal(exit.code, 0);
    return stdout;
  }

  it("hands node ckv's malloc settings, unless GLIBC_TUNABLES is set already (even empty)", async () => {
    assert.equal(await tunablesGivenToNode({ GLIBC_TUNABLES: undefined }), mallocTunables);
    assert.equal(await tunablesGivenToNode({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=1' }), 'glibc.malloc.arena_max=1');
    assert.equal(await tunablesGivenToNode({ GLIBC_TUNABLES: '' }), '');
  });
});
