/**
 * BootstrapHealth (src/net/bootstrap-health.ts) with a fake clock: the likely cause of a
 * failed dial, one warning per address per interval (not one per redial), counters by reason,
 * a connection to a node of another cluster, and an address that starts working.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamCloseEvent } from '@libp2p/interface';
import { BootstrapHealth, classify } from '../../src/net/bootstrap-health.js';
import { Counters } from '../../src/util/counters.js';
import type { Logger } from '../../src/util/logger.js';

const address = '/ip4/127.0.0.1/tcp/4001';

function refused(): Error {
  return Object.assign(new Error(`connection error 127.0.0.1:4001: connect ECONNREFUSED 127.0.0.1:4001`), { code: 'ECONNREFUSED' });
}

function setup(options: { clusterKey?: boolean } = {}): { health: BootstrapHealth; counters: Counters; lines: string[] } {
  const counters = new Counters();
  const lines: string[] = [];
  const record = (level: string) => (event: string, fields: Record<string, unknown> = {}) => lines.push(`${level} ${event} ${JSON.stringify(fields)}`);
  const logger: Logger = { info: record('info'), warn: record('warn'), error: record('error') };
  const health = new BootstrapHealth(
    { addresses: [address], cluster: 'beta', syncProtocol: '/ckv/beta/sync/1.0.0', clusterKey: options.clusterKey ?? false, counters, logger, warnIntervalMs: 60_000 },
    0,
  );
  return { health, counters, lines };
}

describe('BootstrapHealth', () => {
  it('names the likely cause of a failed dial', () => {
    assert.equal(classify(refused(), false).reason, 'unreachable');
    assert.match(classify(new AggregateError([refused()], 'All multiaddr dials failed'), false).cause, /nothing listens there/);
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    assert.equal(classify(reset, true).reason, 'handshake');
    assert.match(classify(reset, true).cause, /another cluster key, or none/);
    assert.match(classify(reset, false).cause, /uses a cluster key/);
    assert.equal(classify(new StreamCloseEvent(false, reset), true).reason, 'handshake', 'an Event carrying the error');
    const timeout = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
    assert.equal(classify(timeout, true).reason, 'timeout');
    assert.match(classify(timeout, true).cause, /cluster key/);
    assert.equal(classify(new Error('something new'), false).reason, 'other');
  });

  it('warns once per interval while an address keeps failing, counts every failure, and lists it', () => {
    const { health, counters, lines } = setup();
    assert.deepEqual(health.list(), [{ address, state: 'dialing', peerId: '', lastError: '', sinceMs: 0, failures: 0 }]);
    for (const t of [0, 1_000, 3_000, 7_000, 15_000]) health.dialFailed(address, refused(), 100 + t);
    assert.equal(counters.get('bootstrap_failed_unreachable'), 5);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /^warn bootstrap failing .*"address":"\/ip4\/127\.0\.0\.1\/tcp\/4001".*"cause":"nothing listens there \(connection refused\)"/);
    const [entry] = health.list();
    assert.equal(entry!.state, 'failing');
    assert.equal(entry!.sinceMs, 100, 'since the first failure');
    assert.equal(entry!.failures, 5);
    assert.match(entry!.lastError, /^nothing listens there \(connection refused\): connection error .*ECONNREFUSED/);
    health.dialFailed(address, refused(), 100 + 60_000);
    assert.equal(lines.length, 2, 'again after the interval');
    assert.match(lines[1]!, /"failures":6/);
  });

  it('a node of another cluster: foreign, warned once, counted once per connection; then it works and says so', () => {
    const { health, counters, lines } = setup();
    health.dialConnected(address, 'peer-a', 10);
    assert.equal(health.list()[0]!.state, 'connected');
    health.identify('peer-a', ['/ipfs/id/1.0.0', '/ckv/alpha/sync/1.0.0'], 20);
    health.identify('peer-a', ['/ipfs/id/1.0.0', '/ckv/alpha/sync/1.0.0'], 30); // identify push: the same news
    assert.equal(counters.get('bootstrap_failed_foreign'), 1);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /connected, but it is in cluster \\"alpha\\", not \\"beta\\"/);
    const [entry] = health.list();
    assert.equal(entry!.state, 'foreign');
    assert.equal(entry!.peerId, 'peer-a');
    assert.equal(entry!.sinceMs, 20);

    // Restarted in our cluster.
    health.identify('peer-a', ['/ckv/beta/sync/1.0.0'], 40);
    assert.equal(health.list()[0]!.state, 'connected');
    assert.equal(health.list()[0]!.lastError, '');
    assert.equal(health.list()[0]!.failures, 0);
    assert.match(lines[1]!, /^info bootstrap connected /);
  });

  it('identify before the dial reports, a non-ckv node, and our own address', () => {
    const { health, lines } = setup();
    health.identify('peer-x', ['/ipfs/id/1.0.0'], 5);
    health.dialConnected(address, 'peer-x', 6);
    assert.equal(health.list()[0]!.state, 'foreign');
    assert.match(lines[0]!, /does not speak ckv's sync protocol for cluster \\"beta\\"/);
    health.dialSelf(address);
    assert.deepEqual(health.list(), []);
  });
});
