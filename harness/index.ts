/**
 * The test and bench harness: one implementation of what tests and benches need to run real
 * ckv processes, re-exported here as its public face.
 *
 * - wait.ts: `waitFor` (poll a condition until a deadline), `withDeadline`, `GiveUp`,
 *   `fetchWithin` (fetch with a deadline).
 * - processes.ts: the cleanup registry (every process and temp dir removed on every exit
 *   path), temp dirs, exits, signal handling, the repository's paths.
 * - node-process.ts: one `ckv node start` process: start-up and readiness, stop, kill,
 *   freeze/thaw, restart, its log.
 * - cli.ts: one-shot and background `ckv` commands.
 * - cluster.ts: nodes on loopback bootstrapped into a mesh, waits on cluster conditions.
 *
 * Tests import harness/testing.ts instead, which adds the node:test hook that cleans up
 * after each test file; benches import this file and never load node:test.
 */
export * from './wait.js';
export * from './processes.js';
export * from './node-process.js';
export * from './cli.js';
export * from './cluster.js';
