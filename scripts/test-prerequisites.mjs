#!/usr/bin/env node
// The first step of `npm test`: makes sure this machine has what two test folders need beyond
// npm packages, so `npm install && npm test` passes on a fresh Debian machine with nothing
// installed by hand.
//   - test/browser drives the status page in Debian's Chromium (/usr/bin/chromium) through
//     playwright-core, which ships no browser.
//   - test/lan builds hosts from network namespaces (iproute2's `ip`) and partitions them with
//     nftables (`nft`); it needs root.
// As root, whatever is missing is installed from Debian's repositories:
//   apt-get update && apt-get install -y chromium nftables iproute2   (each step time-bounded)
// Not root, nothing can be installed: this says so and the tests that need the missing
// pieces report that they did not run and why (skipped: "cannot run here: not root"). Under
// CI=true a missing prerequisite that cannot be installed fails here. Exit 0 = go on.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What the tests need, how to see it is there, and the Debian package that brings it. */
export const prerequisites = [
  { name: 'chromium', package: 'chromium', path: '/usr/bin/chromium', neededBy: 'test/browser' },
  { name: 'nft', package: 'nftables', command: 'nft', neededBy: 'test/lan' },
  { name: 'ip', package: 'iproute2', command: 'ip', neededBy: 'test/lan' },
];

/** Time bounds of the two apt-get steps. */
export const aptUpdateTimeoutMs = 5 * 60_000;
export const aptInstallTimeoutMs = 15 * 60_000;

/**
 * What to do, given what is missing: `none`, `install` (root with apt-get), `skip` (not root:
 * the tests say why they did not run) or `fail`.
 * @param {{ missing: string[], root: boolean, ci: boolean, aptGet: boolean }} situation
 * @returns {{ action: 'none' | 'install' | 'skip' | 'fail', message: string }}
 */
export function plan({ missing, root, ci, aptGet }) {
  if (missing.length === 0) return { action: 'none', message: 'chromium, nftables and iproute2 are installed' };
  const list = missing.join(' ');
  if (root && aptGet) return { action: 'install', message: `installing ${list} with apt-get (Debian's packages)` };
  if (root) return { action: 'fail', message: `${list} missing and there is no apt-get here: install ${list} with the system's package manager` };
  if (ci) return { action: 'fail', message: `${list} missing, and not root so they cannot be installed (CI=true: a missing prerequisite fails)` };
  return {
    action: 'skip',
    message: `${list} missing and not root, so not installed: the tests that need them report "cannot run here: not root" (as root, npm test installs them)`,
  };
}

function onPath(command) {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  return dirs.some((dir) => dir !== '' && existsSync(join(dir, command)));
}

/** The Debian packages of the prerequisites missing here. */
export function missingPackages() {
  return prerequisites.filter((p) => (p.path !== undefined ? !existsSync(p.path) : !onPath(p.command))).map((p) => p.package);
}

function say(line) {
  console.log(`test-prerequisites: ${line}`);
}

/** Runs one apt-get step within `timeoutMs`; false (with its output's tail printed) if it failed. */
function apt(args, timeoutMs) {
  const startedMs = Date.now();
  say(`apt-get ${args.join(' ')} (at most ${timeoutMs / 60_000} min)`);
  const result = spawnSync('apt-get', ['-q', '-o', 'DPkg::Lock::Timeout=120', ...args], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = ((Date.now() - startedMs) / 1000).toFixed(0);
  if (result.status === 0) {
    say(`  done in ${seconds} s`);
    return true;
  }
  const why = result.error?.code === 'ETIMEDOUT' ? `timed out after ${seconds} s` : result.error ? result.error.message : `exit ${result.status ?? result.signal}`;
  const tail = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n');
  say(`  failed (${why}); its last lines:\n${tail}`);
  return false;
}

function main() {
  const missing = missingPackages();
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const step = plan({ missing, root, ci: process.env.CI === 'true', aptGet: onPath('apt-get') });
  say(step.message);
  if (step.action === 'none' || step.action === 'skip') return 0;
  if (step.action === 'fail') return 1;
  if (!apt(['update'], aptUpdateTimeoutMs)) return 1;
  if (!apt(['install', '-y', ...missing], aptInstallTimeoutMs)) return 1;
  const still = missingPackages();
  if (still.length > 0) {
    say(`still missing after apt-get install: ${still.join(' ')}`);
    return 1;
  }
  say(`installed ${missing.join(' ')}`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main();
}
