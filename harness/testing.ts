/**
 * The harness for node:test files: everything harness/index.ts exports, plus an `after()`
 * hook, registered when a test file first imports this module, that SIGKILLs every process
 * the file left running, closes node clients and removes its temp dirs, even when a test
 * failed or threw half-way. Kept apart so that benches never load node:test.
 */
import { after } from 'node:test';
import { cleanupAll } from './processes.js';

export * from './index.js';

after(cleanupAll);
