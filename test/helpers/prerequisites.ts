/**
 * What a test does when something it needs beyond npm packages is missing (Chromium for
 * test/browser; root, iproute2 and nftables for test/lan). `npm test` first runs
 * scripts/test-prerequisites.mjs, which as root installs what is missing; so the one reason a
 * test may skip is "cannot run here: not root". As root, or under CI=true, a missing
 * prerequisite is a failure that says what is missing.
 */
export type MissingOutcome = { skip: string } | { fail: string };

/**
 * @param what what is missing, e.g. "Chromium is not installed (/usr/bin/chromium is missing)"
 * @param installable whether npm test (as root) would have installed it
 */
export function whenMissing(what: string, installable = true): MissingOutcome {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root && process.env.CI !== 'true') return { skip: `cannot run here: not root (${what})` };
  if (!root) return { fail: `${what} (CI=true: a missing prerequisite fails; as root, npm test installs what it can)` };
  return {
    fail: installable
      ? `${what}, although npm test installs it as root first (see the test-prerequisites lines of its output)`
      : what,
  };
}
