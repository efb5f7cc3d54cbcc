/**
 * Reading and deleting many keys from the command line, on a real node: `get K1 K2 ...`
 * (order kept, a missing key reported and exit 1), `get --prefix P` streamed (20k keys,
 * --limit, --json lines), `del --prefix P` (refused without a terminal unless --yes; deletes
 * exactly the live keys under P), and the one JSON shape of --json across commands (numbers
 * as numbers, versions as their text with an ISO time).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, runCliOk, startNode, type NodeProcess } from '../../harness/testing.js';

const versionPattern = /^\d+\.\d+@[0-9a-f]{16}$/;

describe('many keys from the command line', () => {
  let node: NodeProcess;
  const cli = (...args: string[]) => runCli(args, { socket: node.socket, timeoutMs: 60_000 });
  const cliOk = async (...args: string[]) => (await runCliOk(args, { socket: node.socket, timeoutMs: 60_000 })).stdout.toString();
  const prefixKeys = 20_000;

  before(async () => {
    // Tombstone GC only when asked: tombstones are listed, and a lone node collects them at its
    // next GC run (every 10 s by default).
    node = await startNode({ args: ['--gc-interval-ms', '0'] });
    const value = (i: number): Uint8Array => new TextEncoder().encode(`value ${i}`);
    for (let at = 0; at < prefixKeys; at += 5000) {
      const puts = Array.from({ length: 5000 }, (_, j) => ({ key: `many/${String(at + j).padStart(6, '0')}`, value: value(at + j) }));
      const { results } = await node.client.putMany(puts);
      assert.ok(results.every((r) => r.version), 'setup puts stored');
    }
  });
  after(async () => {
    await node?.stop();
  });

  it('get K1 K2 ... prints each key and value in the order given; a missing key is reported and exits 1', async () => {
    await cliOk('put', 'm/a', 'alpha');
    await cliOk('put', 'm/b', 'line one\nline two\n');
    await cliOk('put', 'm/gone', 'x');
    await cliOk('del', 'm/gone');
    assert.equal(await cliOk('get', 'm/b', 'm/a'), 'm/b\nline one\nline two\nm/a\nalpha\n');
    const partial = await cli('get', 'm/a', 'm/none', 'm/gone', 'm/b');
    assert.equal(partial.code, 1);
    assert.equal(partial.stdout.toString(), 'm/a\nalpha\nm/b\nline one\nline two\n');
    assert.equal(partial.stderr, 'ckv: key not found: m/none\nckv: key was deleted: m/gone\nckv: 2 of 4 keys not found (listed above)\n');
    const json = await cli('get', 'm/a', 'm/none', 'm/gone', '--json');
    assert.equal(json.code, 1);
    const lines = json.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [l.key, l.found, l.deleted]), [['m/a', true, false], ['m/none', false, false], ['m/gone', false, true]]);
    assert.equal(lines[0]!.value, 'alpha');
    assert.equal(lines[0]!.valueBytes, 5);
    assert.match(String(lines[2]!.version), versionPattern);
  });

  it(`get --prefix streams every live key under the prefix (${prefixKeys} keys), in order; --limit; --json lines`, async () => {
    const text = await cliOk('get', '--prefix', 'many/');
    const lines = text.split('\n');
    assert.equal(lines.length, 2 * prefixKeys + 1, 'a key line and a value line each');
    assert.equal(lines[0], 'many/000000');
    assert.equal(lines[1], 'value 0');
    assert.equal(lines[2 * prefixKeys - 2], `many/${String(prefixKeys - 1).padStart(6, '0')}`);
    const limited = (await cliOk('get', '--prefix', 'many/', '--limit', '3', '--json')).trim().split('\n').map((l) => JSON.parse(l) as { key: string; value: string; found: boolean });
    assert.deepEqual(limited.map((e) => [e.key, e.value, e.found]), [['many/000000', 'value 0', true], ['many/000001', 'value 1', true], ['many/000002', 'value 2', true]]);
    for (const bad of [['get', '--prefix', 'x', 'k'], ['get', 'k', '--limit', '3'], ['get', 'a', 'b', '-o', '/tmp/x'], ['get']]) {
      const result = await cli(...bad);
      assert.equal(result.code, 2, `${bad.join(' ')}: ${result.stderr}`);
    }
  });

  it('del --prefix needs --yes without a terminal, then deletes exactly the live keys under the prefix', async () => {
    for (let i = 0; i < 5; i++) await cliOk('put', `dp/${i}`, 'x');
    await cliOk('put', 'dq/keep', 'x');
    const refused = await cli('del', '--prefix', 'dp/');
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^ckv: delete 5 keys starting with "dp\/": standard input is not a terminal to confirm on; add --yes \(nothing was deleted\)\n$/);
    assert.equal((await cliOk('keys', 'dp/')).split('\n').filter(Boolean).length, 5);
    assert.equal(await cliOk('del', '--prefix', 'dp/', '--yes'), 'deleted 5 keys\n');
    assert.equal(await cliOk('keys', 'dp/'), '');
    assert.equal(await cliOk('get', 'dq/keep'), 'x');
    assert.deepEqual(JSON.parse(await cliOk('del', '--prefix', 'dp/', '--yes', '--json')), { prefix: 'dp/', listed: 0, deleted: 0, changed: 0 });
  });

  it('--json: one shape across commands (numbers as numbers, version text with an ISO time)', async () => {
    const put = JSON.parse(await cliOk('put', 'j/k', 'v', '--json')) as { key: string; version: string; time: string };
    assert.equal(put.key, 'j/k');
    assert.match(put.version, versionPattern);
    assert.equal(new Date(put.time).getTime(), Number(put.version.split('.')[0]));
    const has = JSON.parse(await cliOk('haskey', 'j/k', '--json')) as Record<string, unknown>;
    assert.deepEqual(has, { key: 'j/k', found: true, deleted: false, version: put.version, time: put.time });
    const where = JSON.parse(await cliOk('whereis', 'j/k', '--json')) as { key: string; holders: { version: string }[] };
    assert.equal(where.holders[0]?.version, put.version);
    const del = JSON.parse(await cliOk('del', 'j/k', '--json')) as { version: string };
    assert.match(del.version, versionPattern);
    const status = JSON.parse(await cliOk('status', '--json')) as Record<string, unknown>;
    for (const field of ['keyCount', 'tombstoneCount', 'bytesOnDisk', 'uptimeMs', 'incarnation']) assert.equal(typeof status[field], 'number', field);
    assert.ok(Object.values(status.counters as Record<string, unknown>).every((v) => typeof v === 'number'), 'counters are numbers');
    assert.match(String(status.hlcNow), versionPattern);
    assert.deepEqual(JSON.parse(await cliOk('peers', '--json')), []);
    const keys = (await cliOk('keys', 'j/', '--deleted', '--json')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(keys.map((k) => [k.key, k.found, k.deleted, k.version]), [['j/k', false, true, del.version]]);
  });
});
