/**
 * The harness's waits end: a waitFor whose condition never settles gives up a second past its
 * deadline, naming what it waited for, and fetchWithin aborts a request whose server never
 * answers (a real node:http server on loopback that accepts and stays silent). And a test
 * file that hangs past the runner's time limit (as scripts/run-tests.mjs sets it) fails, and
 * the process it started is killed, not left running.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../harness/processes.js';
import { fetchWithin, waitFor, withDeadline } from '../../harness/wait.js';

/** Whether a process with this pid exists (signal 0 checks without sending). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

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

  it('a test file past its time limit fails, and the process it started is killed', async () => {
    const dir = tempDir('ckv-hang-');
    const pidFile = join(dir, 'child.pid');
    const testing = fileURLToPath(new URL('../../harness/testing.js', import.meta.url));
    const file = join(dir, 'hangs.test.mjs');
    writeFileSync(
      file,
      [
        `import { it } from 'node:test';`,
        `import { writeFileSync } from 'node:fs';`,
        `import { spawnTracked } from ${JSON.stringify(testing)};`,
        `it('hangs holding a child process', async () => {`,
        `  const child = spawnTracked('sleep', ['300'], { stdio: 'ignore' });`,
        `  writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));`,
        `  await new Promise(() => setInterval(() => undefined, 1000));`,
        `});`,
      ].join('\n'),
    );
    // Without NODE_TEST_CONTEXT, which this file's runner sets and which makes a nested
    // `node --test` skip its files.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const runner = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=3000', '--test-force-exit', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    runner.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    runner.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await withDeadline(new Promise<number | null>((done) => runner.once('exit', done)), 60_000, 'the runner to end the hung file');
    assert.notEqual(code, 0, output);
    assert.match(output, /timed out after 3000ms/);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0);
    await waitFor(() => !alive(pid), { deadlineMs: 10_000, what: `the hung file's child (pid ${pid}) to be killed` });
  });
});

