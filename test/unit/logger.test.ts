/**
 * Log lines render whatever is passed as an error readably, on one line: libp2p rejects some
 * waits with the stream's `close` Event itself (p-event's rejectionEvents), which used to be
 * logged as `error="[object Event]"`; AggregateErrors (a dial of several addresses) and
 * `cause` chains keep their reasons.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamCloseEvent } from '@libp2p/interface';
import { FrameTruncatedError } from '../../src/net/framed-stream.js';
import { errorText, toError } from '../../src/util/error-text.js';
import { formatValue, stderrLogger } from '../../src/util/logger.js';

function logged(fields: Record<string, unknown>): string {
  const lines: string[] = [];
  stderrLogger({ write: (line) => lines.push(line) }).warn('something failed', fields);
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.ok(line!.endsWith('\n'));
  assert.equal(line!.indexOf('\n'), line!.length - 1, `one line: ${JSON.stringify(line)}`);
  return line!;
}

describe('the logger renders errors', () => {
  it('an Event that carries an error, as libp2p rejects with, shows the error, never [object Event]', () => {
    const event = new StreamCloseEvent(false, new Error('stream reset by the remote'));
    const line = logged({ error: event });
    assert.doesNotMatch(line, /object Event/);
    assert.match(line, / error="stream reset by the remote"\n$/);
    assert.equal(toError(event).message, 'stream reset by the remote', 'toError takes the carried error');
    const truncated = new FrameTruncatedError('stream ended after 3 of 9 frame bytes');
    assert.equal(toError(new StreamCloseEvent(false, truncated)), truncated, 'its name survives, for classification');
  });

  it('an Event without an error says what happened', () => {
    assert.equal(errorText(new StreamCloseEvent()), 'stream closed');
    assert.equal(errorText(new Event('abort')), '"abort" event');
    assert.equal(errorText(new CustomEvent('error', { detail: new Error('listener failed') })), 'listener failed');
    assert.doesNotMatch(logged({ error: new Event('close') }), /object Event/);
    assert.equal(toError(new Event('close')).message, 'stream closed');
  });

  it('an AggregateError lists its errors; a cause is kept', () => {
    const aggregate = new AggregateError(
      [new Error('connect ECONNREFUSED 127.0.0.1:4001'), new StreamCloseEvent(false, new Error('handshake reset'))],
      'All multiaddr dials failed',
    );
    assert.equal(errorText(aggregate), 'All multiaddr dials failed: connect ECONNREFUSED 127.0.0.1:4001; handshake reset');
    assert.equal(errorText(new AggregateError([new Error('a'), new Error('a')])), '2 errors: a');
    const wrapped = new Error('dial failed', { cause: new Error('connect ECONNRESET') });
    assert.equal(errorText(wrapped), 'dial failed (cause: connect ECONNRESET)');
    assert.match(logged({ error: wrapped }), / error="dial failed \(cause: connect ECONNRESET\)"\n$/);
  });

  it('keeps a multi-line message on one line, and other values as before', () => {
    assert.match(logged({ error: new Error('first\n  second') }), / error="first second"\n$/);
    assert.equal(formatValue('plain'), 'plain');
    assert.equal(formatValue('two words'), '"two words"');
    assert.equal(formatValue(['a', 'b']), 'a,b');
    assert.equal(formatValue(42), '42');
    assert.equal(formatValue(undefined), 'undefined');
    assert.equal(formatValue({ toString: () => '/ip4/127.0.0.1/tcp/1' }), '/ip4/127.0.0.1/tcp/1');
  });
});
