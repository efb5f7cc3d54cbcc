/**
 * The harness's waits end: a waitFor whose condition never settles gives up a second past its
 * deadline, naming what it waited for, and fetchWithin aborts a request whose server never
 * answers (a real node:http server on loopback that accepts and stays silent).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchWithin, waitFor } from '../../harness/wait.js';

describe('harness waits', () => {
  it('waitFor gives up on a condition that never settles, naming it', async () => {
    const startedMs = performance.now();
    await assert.rejects(
      waitFor(() => new Promise<boolean>(() => undefined), { deadlineMs: 200, what: 'a condition that hangs' }),
      /timed out after 200 ms waiting for a condition that hangs/,
    );
    // The deadline plus the one-second overrun, not forever (generous: a loaded machine).
    assert.ok(performance.now() - startedMs < 30_000);
  });

  it('waitFor still returns once a slow condition holds, and treats a throw as "not yet"', async () => {
    let calls = 0;
    await waitFor(
      async () => {
        calls++;
        if (calls === 1) throw new Error('not ready');
        return calls >= 3;
      },
      { deadlineMs: 10_000, what: 'the third call', intervalMs: 1 },
    );
    assert.equal(calls, 3);
  });

  it('fetchWithin aborts a request the server never answers, naming the URL', async () => {
    const server = createServer(() => undefined); // accepts, reads the request, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/silent`;
    try {
      await assert.rejects(fetchWithin(url, {}, 200), (error: Error) => {
        assert.match(error.message, new RegExp(`^GET ${url.replace(/[.]/g, '\\.')}: `));
        return true;
      });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
