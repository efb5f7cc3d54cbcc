/**
 * The harness for node:test files: everything harness/index.ts exports, plus an `after()`
 * hook, registered when a test file first imports this module, that SIGKILLs every process
 * the file left running, closes node clients and removes its temp dirs, even when a test
 * failed or threw half-way. Kept apart so that benches never load node:test.
 *
 * A file's process that is signalled cleans up too (exitOnSignals): Node 20's runner ends a
 * file that passes its time limit (scripts/run-tests.mjs) with SIGTERM, and without a
 * handler the nodes the file started would live on through the rest of the run.
 */
import { after } from 'node:test';
import { cleanupAll, exitOnSignals } from './processes.js';

export * from './index.js';

after(cleanupAll);
exitOnSignals('test file');
