import { test } from 'node:test';
import assert from 'node:assert/strict';
import { libp2pLoggerFor, silentComponentLogger } from '../../src/net/libp2p-logger.js';

test('libp2p gets the silent logger unless DEBUG is set', () => {
  assert.equal(libp2pLoggerFor({}), silentComponentLogger);
  assert.equal(libp2pLoggerFor({ DEBUG: '' }), silentComponentLogger);
  // With DEBUG, libp2p's own default (undefined: createLibp2p falls back to @libp2p/logger).
  assert.equal(libp2pLoggerFor({ DEBUG: 'libp2p:*' }), undefined);
});

test('the silent logger prints nothing, is disabled at every scope and is shared', () => {
  const log = silentComponentLogger.forComponent('libp2p:tcp');
  assert.equal(log.enabled, false);
  const scoped = log.newScope('connection');
  assert.equal(scoped.enabled, false);
  assert.equal(silentComponentLogger.forComponent('libp2p:yamux'), log, 'one logger for every component: nothing to build');
  const written: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    log('a message %s', 'x');
    log.error('an error %o', new Error('boom'));
    log.trace('a trace');
    scoped('scoped');
  } finally {
    process.stderr.write = original;
  }
  assert.deepEqual(written, []);
});
