/**
 * The ckv command line as a new user meets it: real `ckv node start` processes and real
 * `ckv ...` invocations (node bin/ckv.js), checking output bytes, exit codes and one-line
 * error messages. No in-process shortcuts: everything goes through the CLI and the socket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  canConnect,
  runCli,
  runCliOk,
  spawnCli,
  startNode,
  tempDir,
  waitFor,
  withControlClient,
  withDeadline,
  type CliOptions,
  type CliResult,
  type NodeProcess,
} from '../../harness/testing.js';

const MiB = 1024 * 1024;
const valueBytesMax = 64 * MiB;
/** What `put` and `del` print: the new version, `wallMs.counter@node`. */
const versionLine = /^\d+\.\d+@[0-9a-f]{16}\n$/;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** An error is exactly one line on stderr, starting `ckv: `. */
function assertOneLineError(result: CliResult, pattern?: RegExp): void {
  assert.match(result.stderr, /^ckv: [^\n]+\n$/, `expected one 'ckv: ...' line on stderr, got ${JSON.stringify(result.stderr)}`);
  if (pattern) assert.match(result.stderr, pattern);
}

function lines(result: CliResult): string[] {
  const text = result.stdout.toString('utf8');
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

function jsSorted(keys: string[]): string[] {
  return [...keys].sort(); // UTF-16 code unit order, as the store promises
}

/** The message the CLI prints when no node listens at `socket`. */
function unreachableMessage(socket: string): string {
  return `ckv: no node is running at ${socket} (start one with: ckv node start)\n`;
}

describe('ckv CLI against a running node', () => {
  let node: NodeProcess;
  const cli = (args: string[], options: CliOptions = {}): Promise<CliResult> => runCli(args, { socket: node.socket, ...options });
  const cliOk = (args: string[], options: CliOptions = {}): Promise<CliResult> => runCliOk(args, { socket: node.socket, ...options });

  before(async () => {
    // Tombstone GC only when asked: `keys --deleted` is checked, and a lone node collects its
    // tombstones at its next GC run (every 10 s by default).
    node = await startNode({ args: ['--gc-interval-ms', '0'] });
  });

  after(async () => {
    if (node) await node.kill(); // normally already stopped by the last test
  });

  it('puts, gets and deletes strings; get prints the raw value with no newline', async () => {
    const put = await cli(['put', 'greeting', 'hello, world']);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout.toString(), versionLine);
    assert.equal(put.stderr, '');

    const get = await cli(['get', 'greeting']);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(get.stdout, Buffer.from('hello, world'));

    // Unicode keys and values, and a value that ends in a newline, round-trip byte for byte.
    await cliOk(['put', 'ünï/ключ', 'héllo ✓ 🎉']);
    assert.deepEqual((await cliOk(['get', 'ünï/ключ'])).stdout, Buffer.from('héllo ✓ 🎉', 'utf8'));
    await cliOk(['put', 'trailing', 'line\n']);
    assert.deepEqual((await cliOk(['get', 'trailing'])).stdout, Buffer.from('line\n'));

    // Overwrite, then --json.
    await cliOk(['put', 'greeting', 'bye']);
    const json = JSON.parse((await cliOk(['get', 'greeting', '--json'])).stdout.toString()) as Record<string, unknown>;
    assert.equal(json.key, 'greeting');
    assert.equal(json.value, 'bye');
    assert.equal(json.encoding, 'utf8');
    assert.equal(json.deleted, false);
    assert.equal(json.found, true);
    assert.equal(json.valueBytes, 3);
    assert.match(String(json.version), /^\d+\.\d+@[0-9a-f]{16}$/);

    const del = await cli(['del', 'greeting']);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout.toString(), versionLine);

    const gone = await cli(['get', 'greeting']);
    assert.equal(gone.code, 1);
    assert.equal(gone.stdout.length, 0);
    assertOneLineError(gone, /greeting/);
  });

  it('stores a 20 MiB binary file with -f and reads it back byte-identical (-o and stdout)', async () => {
    const dir = tempDir();
    const input = join(dir, 'blob.bin');
    const data = randomBytes(20 * MiB);
    writeFileSync(input, data);
    const expected = sha256(data);

    const put = await cli(['put', 'blob', '-f', input]);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout.toString(), versionLine);

    const output = join(dir, 'blob.out');
    const get = await cli(['get', 'blob', '-o', output]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout.length, 0, 'get -o prints nothing');
    const written = readFileSync(output);
    assert.equal(written.length, data.length);
    assert.equal(sha256(written), expected);

    const toStdout = await cli(['get', 'blob']);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.equal(toStdout.stdout.length, data.length);
    assert.equal(sha256(toStdout.stdout), expected);
  });

  it('reads the value from standard input with put KEY -', async () => {
    const binary = Buffer.concat([Buffer.from('from stdin\n'), Buffer.from([0, 255, 10, 13, 0]), randomBytes(100_000)]);
    const put = await cli(['put', 'stdin/key', '-'], { input: binary });
    assert.equal(put.code, 0, put.stderr);
    const get = await cliOk(['get', 'stdin/key']);
    assert.equal(sha256(get.stdout), sha256(binary));

    // Empty standard input stores an empty value (it exists, and prints nothing).
    await cliOk(['put', 'stdin/empty', '-'], { input: Buffer.alloc(0) });
    const empty = await cli(['get', 'stdin/empty']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout.length, 0);
  });

  it('lists keys in order, with a prefix and --limit, hiding deleted keys unless --deleted', async () => {
    const keys = ['ls/c', 'ls/a', 'ls/B', 'ls/b', 'ls/aa', 'ls/é', 'ls/z', 'ls/a/1'];
    await cliOk(['put', keys[0]!, 'through the CLI']);
    await withControlClient(node.socket, async (client) => {
      for (const key of keys.slice(1)) await client.put(key, Buffer.from(`value of ${key}`)); // setup only
    });
    const sorted = jsSorted(keys);

    assert.deepEqual(lines(await cliOk(['keys', 'ls/'])), sorted);

    const all = lines(await cliOk(['keys']));
    assert.deepEqual(all, jsSorted(all), 'keys without a prefix are in order');
    for (const key of keys) assert.ok(all.includes(key), `keys lists ${key}`);

    assert.deepEqual(lines(await cliOk(['keys', 'ls/', '--limit', '3'])), sorted.slice(0, 3));
    assert.deepEqual(lines(await cliOk(['keys', 'ls/a', '--limit', '2'])), ['ls/a', 'ls/a/1']);
    assert.deepEqual(lines(await cliOk(['keys', 'nothing-has-this-prefix/'])), []);

    await cliOk(['del', 'ls/b']);
    const live = sorted.filter((k) => k !== 'ls/b');
    assert.deepEqual(lines(await cliOk(['keys', 'ls/'])), live);
    // --deleted lists the tombstone too, marked as such.
    assert.deepEqual(lines(await cliOk(['keys', 'ls/', '--deleted'])), sorted.map((k) => (k === 'ls/b' ? 'ls/b (deleted)' : k)));
    // --limit counts the keys shown, not the deleted ones skipped.
    assert.deepEqual(lines(await cliOk(['keys', 'ls/b', '--limit', '1'])), []);

    const json = lines(await cliOk(['keys', 'ls/b', '--deleted', '--json'])).map((l) => JSON.parse(l) as { key: string; deleted: boolean });
    assert.deepEqual(
      json.map((e) => [e.key, e.deleted]),
      [['ls/b', true]],
    );

    const bad = await cli(['keys', '--limit', 'many']);
    assert.equal(bad.code, 2);
    assertOneLineError(bad, /--limit/);
  });

  it('watch (in the background) sees puts and deletes made after it started', async () => {
    const watch = spawnCli(['watch', 'wt/'], { socket: node.socket });
    try {
      // The watch prints nothing until a change arrives, so probe until it shows one.
      let probes = 0;
      await withControlClient(node.socket, (client) =>
        waitFor(
          async () => {
            await client.put(`wt/probe-${probes++}`, Buffer.from('x'));
            return watch.stdoutText().includes('wt/probe-');
          },
          { deadlineMs: 15_000, what: 'watch to report a probe put', intervalMs: 50 },
        ),
      );
      await cliOk(['put', 'elsewhere/not-watched', 'x']); // outside the prefix: not shown
      await cliOk(['put', 'wt/after', 'v']);
      await waitFor(() => watch.stdoutText().includes('put wt/after '), { deadlineMs: 10_000, what: 'watch to show put wt/after' });
      await cliOk(['del', 'wt/after']);
      await waitFor(() => watch.stdoutText().includes('del wt/after '), { deadlineMs: 10_000, what: 'watch to show del wt/after' });

      const out = watch.stdoutText();
      assert.match(out, /^put wt\/after \d+\.\d+@[0-9a-f]{16} local$/m);
      assert.match(out, /^del wt\/after \d+\.\d+@[0-9a-f]{16} local$/m);
      assert.ok(!out.includes('elsewhere/'), `watch wt/ showed a key outside its prefix:\n${out}`);

      // Ctrl-C ends the watch cleanly.
      const exit = await watch.kill('SIGINT');
      assert.deepEqual(exit, { code: 0, signal: null }, watch.stderrText());
      assert.equal(watch.stderrText(), '');
    } finally {
      await watch.kill('SIGKILL');
    }
  });

  it('exits 1 for a missing key (get and haskey) with one line on stderr', async () => {
    const get = await cli(['get', 'never/written']);
    assert.equal(get.code, 1);
    assert.equal(get.stdout.length, 0);
    assertOneLineError(get, /never\/written/);

    const has = await cli(['haskey', 'never/written']);
    assert.equal(has.code, 1);
    assertOneLineError(has, /never\/written/);

    await cliOk(['put', 'has/me', 'x']);
    const present = await cli(['haskey', 'has/me']);
    assert.equal(present.code, 0, present.stderr);
    assert.match(present.stdout.toString(), versionLine);
  });

  it('refuses a 2 KiB key with exit 4, one line, nothing stored', async () => {
    const keysBefore = (await cliOk(['keys', '--deleted'])).stdout;
    const countBefore = (await node.status()).keyCount;
    const result = await cli(['put', 'k'.repeat(2048), 'value']);
    assert.equal(result.code, 4);
    assert.equal(result.stdout.length, 0);
    assertOneLineError(result, /key/);
    assert.deepEqual((await cliOk(['keys', '--deleted'])).stdout, keysBefore, 'keys shows nothing new');
    assert.equal((await node.status()).keyCount, countBefore);
  });

  it('refuses a value over 64 MiB given with -f: exit 4, one line, nothing stored', async () => {
    const file = join(tempDir(), 'too-big.bin');
    writeFileSync(file, '');
    truncateSync(file, valueBytesMax + 1); // sparse: no 64 MiB written to disk
    const keysBefore = (await cliOk(['keys', '--deleted'])).stdout;
    const result = await cli(['put', 'too-big', '-f', file]);
    assert.equal(result.code, 4);
    assert.equal(result.stdout.length, 0);
    assertOneLineError(result, /limit/);
    assert.equal((await cli(['haskey', 'too-big'])).code, 1);
    assert.deepEqual((await cliOk(['keys', '--deleted'])).stdout, keysBefore, 'keys shows nothing new');
  });

  it('accepts a value of exactly 64 MiB (the limit is inclusive)', async () => {
    const dir = tempDir();
    const file = join(dir, 'max.bin');
    writeFileSync(file, '');
    truncateSync(file, valueBytesMax);
    const put = await cli(['put', 'max-size', '-f', file]);
    assert.equal(put.code, 0, put.stderr);
    const out = join(dir, 'max.out');
    await cliOk(['get', 'max-size', '-o', out]);
    assert.equal(statSync(out).size, valueBytesMax);
    assert.equal(sha256(readFileSync(out)), sha256(Buffer.alloc(valueBytesMax)));
    await cliOk(['del', 'max-size']); // keep the node's memory small for the rest
  });

  it('exits 3 with one exact line when no node runs at the socket', async () => {
    const socket = join(tempDir(), 'nobody.sock');
    const result = await runCli(['get', 'x'], { socket });
    assert.equal(result.code, 3);
    assert.equal(result.stdout.length, 0);
    assert.equal(result.stderr, unreachableMessage(socket));
  });

  it('exits 2 for usage errors (unknown command, missing value)', async () => {
    const unknown = await cli(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^ckv: unknown command 'frobnicate'/);

    const noValue = await cli(['put', 'only-a-key']);
    assert.equal(noValue.code, 2);
    assertOneLineError(noValue, /missing value/);
    assert.equal((await cli(['haskey', 'only-a-key'])).code, 1);
  });

  it('exits 4 for sync on a node with no peers, with a clear message', async () => {
    const result = await cli(['sync']);
    assert.equal(result.code, 4);
    assertOneLineError(result, /no peers/);
  });

  it('makes the control socket mode 0600', () => {
    const info = statSync(node.socket);
    assert.ok(info.isSocket());
    assert.equal((info.mode & 0o777).toString(8), '600');
  });

  it('refuses a second node on the same data directory at once; the first keeps serving', async () => {
    const started = Date.now();
    const second = await runCli(
      ['node', 'start', '--data-dir', node.dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http', 'off'],
      { timeoutMs: 15_000 },
    );
    const elapsedMs = Date.now() - started;
    assert.notEqual(second.code, 0);
    assert.equal(second.code, 5, 'a node that cannot start exits 5');
    assert.ok(elapsedMs < 8000, `second node took ${elapsedMs} ms to fail`);
    assert.match(second.stderr, /in use/);
    assert.match(second.stderr, /^ckv: [^\n]+\n$/);

    assert.equal(node.process.exitCode, null, 'the first node is still running');
    assert.ok(existsSync(node.socket), 'the first node still has its socket');
    assert.ok(await canConnect(node.socket));
    await cliOk(['put', 'after-second-start', 'still here']);
    assert.deepEqual((await cliOk(['get', 'after-second-start'])).stdout, Buffer.from('still here'));
  });

  it('stops cleanly on SIGTERM: exit 0, socket removed', async () => {
    const exit = await node.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, node.stderrText());
    assert.ok(!existsSync(node.socket), 'socket removed');
    assert.match(node.stderrText(), /node stopped/);
  });
});

describe('a node across kill -9, restart and ckv node stop', () => {
  let node: NodeProcess;
  let nodeId = '';
  const cli = (args: string[], options: CliOptions = {}): Promise<CliResult> => runCli(args, { socket: node.socket, ...options });
  const statusJson = async (): Promise<Record<string, unknown>> =>
    JSON.parse((await runCliOk(['status', '--json'], { socket: node.socket })).stdout.toString()) as Record<string, unknown>;

  before(async () => {
    // Tombstone GC only when asked: the test counts tombstones (a lone node collects them at its next run).
    node = await startNode({ args: ['--gc-interval-ms', '0'] });
  });

  after(async () => {
    if (node) await node.kill();
  });

  it('status --json counts live keys and tombstones', async () => {
    const fresh = await statusJson();
    assert.equal(fresh.keyCount, 0, 'a JSON number');
    assert.equal(typeof fresh.uptimeMs, 'number');
    assert.equal(Number(fresh.tombstoneCount), 0);
    assert.match(String(fresh.nodeId), /^[0-9a-f]{16}$/);
    nodeId = String(fresh.nodeId);

    await runCliOk(['put', 'a', 'a'], { socket: node.socket });
    await runCliOk(['del', 'b'], { socket: node.socket }); // a tombstone for a key never written
    await withControlClient(node.socket, async (client) => {
      for (const key of ['b', 'c', 'd', 'e']) await client.put(key, Buffer.from(key)); // setup only
      await client.delete('b');
      await client.delete('d');
      await client.put('a', Buffer.from('overwritten'));
    });
    let s = await statusJson();
    assert.equal(Number(s.keyCount), 3);
    assert.equal(Number(s.tombstoneCount), 2);

    await runCliOk(['put', 'b', 'back again'], { socket: node.socket }); // a tombstone comes back to life
    s = await statusJson();
    assert.equal(Number(s.keyCount), 4);
    assert.equal(Number(s.tombstoneCount), 1);
    assert.equal(s.nodeId, nodeId);
  });

  it('keeps an acknowledged put across kill -9; the node id survives the restart', async () => {
    const put = await cli(['put', 'durable', 'acknowledged value']);
    assert.equal(put.code, 0, put.stderr);
    const exit = await node.kill(); // at once: no chance to flush anything more
    assert.equal(exit.signal, 'SIGKILL');

    // The dead node left its socket file behind: the CLI still says no node is running.
    const dead = await cli(['status']);
    assert.equal(dead.code, 3);
    assert.equal(dead.stderr, unreachableMessage(node.socket));

    node = await startNode({ dataDir: node.dataDir, args: ['--gc-interval-ms', '0'] });
    const get = await cli(['get', 'durable']);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(get.stdout, Buffer.from('acknowledged value'));
    const s = await statusJson();
    assert.equal(s.nodeId, nodeId);
    assert.equal(Number(s.keyCount), 5);
    assert.equal(Number(s.tombstoneCount), 1);
    assert.equal(((await cli(['get', 'd'])).code), 1, 'the tombstone survived too');
  });

  it('ckv node stop stops the node: exit 0, socket removed', async () => {
    const stop = await cli(['node', 'stop']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stdout.toString(), 'stopping\n');
    const exit = await withDeadline(node.exited, 15_000, 'the node to exit after ckv node stop');
    assert.deepEqual(exit, { code: 0, signal: null }, node.stderrText());
    assert.ok(!existsSync(node.socket), 'socket removed');
    const afterStop = await cli(['status']);
    assert.equal(afterStop.code, 3);
    assert.equal(afterStop.stderr, unreachableMessage(node.socket));
  });
});
