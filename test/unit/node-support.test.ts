/**
 * Which Node.js versions ckv supports: >= 20.19 (package.json `engines`; CI runs the whole
 * suite on Node 20 and again on Node 24).
 *
 * `npm install` on Node 20 warns (EBADENGINE) that p-retry@8, which libp2p's reconnect queue
 * uses, wants Node >= 22. The warning is harmless: p-retry's code uses nothing newer than
 * Node 17.3 (`AbortSignal#throwIfAborted`; also `Object.hasOwn`, `performance.now`,
 * `signal.reason`, `??=`), and its one dependency, is-network-error, declares Node >= 16.
 * This test runs the copy of p-retry that libp2p resolves through every path libp2p uses
 * (retries with backoff, giving up, an abort during the delay) on the Node that runs the
 * suite; test/integration/net.test.ts has libp2p itself redial a keep-alive peer with it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** p-retry as libp2p imports it (resolved from libp2p's own location). */
function pRetryPath(): string {
  return createRequire(import.meta.resolve('libp2p')).resolve('p-retry');
}

async function loadPRetry(): Promise<typeof import('p-retry')> {
  return (await import(pathToFileURL(pRetryPath()).href)) as typeof import('p-retry');
}

describe('Node.js support', () => {
  it('runs on Node >= 20.19, as package.json says', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
    assert.equal(pkg.engines.node, '>=20.19');
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    assert.ok(major > 20 || (major === 20 && minor >= 19), `Node ${process.versions.node} is older than package.json allows`);
  });

  it("libp2p's p-retry retries with backoff, gives up, and stops on abort on this Node", async (t) => {
    const meta = JSON.parse(readFileSync(new URL('package.json', pathToFileURL(pRetryPath())), 'utf8')) as {
      version: string;
      engines?: { node?: string };
    };
    t.diagnostic(`p-retry ${meta.version} (engines: node ${meta.engines?.node ?? 'any'}) on Node ${process.versions.node}`);
    const { default: pRetry, AbortError } = await loadPRetry();

    // Fails twice, then succeeds: as libp2p calls it (signal, retries, factor, minTimeout).
    const attempts: number[] = [];
    const failures: number[] = [];
    const result = await pRetry(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 3) throw new Error(`dial failed ${attempt}`);
        return 'connected';
      },
      {
        signal: new AbortController().signal,
        retries: 5,
        factor: 2,
        minTimeout: 5,
        onFailedAttempt: ({ attemptNumber, retriesLeft }) => {
          failures.push(attemptNumber);
          assert.equal(retriesLeft, 5 - (attemptNumber - 1));
        },
      },
    );
    assert.equal(result, 'connected');
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.deepEqual(failures, [1, 2]);

    // Retries exhausted: the last error.
    let tries = 0;
    await assert.rejects(
      pRetry(
        async () => {
          tries++;
          throw new Error(`still down ${tries}`);
        },
        { retries: 2, minTimeout: 1 },
      ),
      /still down 3/,
    );
    assert.equal(tries, 3);

    // An AbortError stops at once, with the original error.
    await assert.rejects(
      pRetry(
        async () => {
          throw new AbortError(new Error('peer gone'));
        },
        { retries: 5, minTimeout: 1 },
      ),
      /peer gone/,
    );

    // The signal aborted during the backoff delay (libp2p stopping): rejects with its reason.
    const controller = new AbortController();
    await assert.rejects(
      pRetry(
        async () => {
          queueMicrotask(() => controller.abort(new Error('node stopping')));
          throw new Error('dial failed');
        },
        { signal: controller.signal, retries: 5, minTimeout: 60_000 },
      ),
      /node stopping/,
    );
  });
});
