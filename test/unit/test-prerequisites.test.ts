/**
 * scripts/test-prerequisites.mjs, the first step of `npm test`: what it decides from what is
 * missing, whether it runs as root, CI=true and apt-get; and, run for real on this machine,
 * that it passes when everything is installed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { whenMissing } from '../helpers/prerequisites.js';

const script = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'test-prerequisites.mjs');

interface Situation {
  missing: string[];
  root: boolean;
  ci: boolean;
  aptGet: boolean;
}
interface Script {
  plan(situation: Situation): { action: 'none' | 'install' | 'skip' | 'fail'; message: string };
  missingPackages(): string[];
  prerequisites: { package: string }[];
}
const load = async (): Promise<Script> => (await import(pathToFileURL(script).href)) as Script;

describe('scripts/test-prerequisites.mjs (the first step of npm test)', () => {
  it('needs Debian packages chromium, nftables and iproute2', async () => {
    const { prerequisites } = await load();
    assert.deepEqual(prerequisites.map((p) => p.package), ['chromium', 'nftables', 'iproute2']);
  });

  it('installs as root, says why not otherwise, and fails under CI=true when it cannot install', async () => {
    const { plan } = await load();
    const all = { missing: [], root: false, ci: false, aptGet: true };
    assert.equal(plan(all).action, 'none');
    assert.equal(plan({ ...all, ci: true }).action, 'none');
    const missing = { ...all, missing: ['chromium', 'nftables'] };
    assert.equal(plan({ ...missing, root: true }).action, 'install');
    assert.equal(plan({ ...missing, root: true, ci: true }).action, 'install', 'CI runs as root: it installs');
    const notRoot = plan(missing);
    assert.equal(notRoot.action, 'skip');
    assert.match(notRoot.message, /cannot run here: not root/);
    assert.equal(plan({ ...missing, ci: true }).action, 'fail', 'CI=true: a missing prerequisite fails');
    const noApt = plan({ ...missing, root: true, aptGet: false });
    assert.equal(noApt.action, 'fail');
    assert.match(noApt.message, /chromium nftables/);
  });

  it('passes on this machine once everything is installed (as npm test leaves it)', async (t) => {
    const { missingPackages } = await load();
    const missing = missingPackages();
    if (missing.length > 0) {
      // npm test ran the script before any test: as root it installed these, so only a
      // non-root run may get here.
      const outcome = whenMissing(`${missing.join(' ')} not installed`);
      if ('fail' in outcome) assert.fail(outcome.fail);
      t.skip(outcome.skip);
      return;
    }
    const result = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /test-prerequisites: chromium, nftables and iproute2 are installed/);
  });
});
