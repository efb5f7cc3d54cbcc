/**
 * Conditional writes end to end, on a real `ckv node start` process: the CLI (`put
 * --if-version`, `--if-absent`, `del --if-version`: exit 7 and the current version on a failed
 * condition, exit 2 for a malformed one), HTTP (`ETag` on GET and PUT, `If-Match`,
 * `If-None-Match: *`, 412 with the current ETag), a value large enough to go as a PutStream,
 * and many clients racing compare-and-set on one key over gRPC: exactly one wins each round.
 * (Across a network partition both sides can win: test/lan/lan.test.ts shows that.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GrpcStatus, GrpcStatusError } from '../../src/control/h2.js';
import { fetchWithin, runCli, runCliOk, startNode, type NodeProcess } from '../../harness/testing.js';

const versionPattern = /^\d+\.\d+@[0-9a-f]{16}$/;

describe('conditional writes', () => {
  let node: NodeProcess;
  let base: string;

  before(async () => {
    node = await startNode({ args: ['--http', '127.0.0.1:0'] });
    base = (await node.status()).httpUrl;
  });
  after(async () => {
    await node?.stop();
  });

  const cli = (...args: string[]) => runCli(args, { socket: node.socket });
  const cliOk = async (...args: string[]): Promise<string> => (await runCliOk(args, { socket: node.socket })).stdout.toString().trim();

  it('CLI: --if-absent creates once; --if-version moves one version on; a failed condition exits 7 naming the current version', async () => {
    const v1 = await cliOk('put', 'cli/k', 'one', '--if-absent');
    assert.match(v1, versionPattern);
    const again = await cli('put', 'cli/k', 'two', '--if-absent');
    assert.equal(again.code, 7, again.stderr);
    assert.match(again.stderr, new RegExp(`^ckv: condition failed for key "cli/k": expected the key to be absent, but its version is ${v1.replace('.', '\\.')}; nothing was written\\n$`));

    const v2 = await cliOk('put', 'cli/k', 'two', '--if-version', v1);
    const stale = await cli('put', 'cli/k', 'three', '--if-version', v1);
    assert.equal(stale.code, 7, stale.stderr);
    assert.ok(stale.stderr.includes(`its version is ${v2}`), stale.stderr);
    assert.equal(await cliOk('get', 'cli/k'), 'two');

    const staleDelete = await cli('del', 'cli/k', '--if-version', v1);
    assert.equal(staleDelete.code, 7, staleDelete.stderr);
    const tomb = await cliOk('del', 'cli/k', '--if-version', v2);
    assert.match(tomb, versionPattern);
    assert.equal((await cli('get', 'cli/k')).code, 1, 'deleted');
    // A deleted key counts as absent.
    await cliOk('put', 'cli/k', 'back', '--if-absent');
    assert.equal(await cliOk('get', 'cli/k'), 'back');
  });

  it('CLI: a malformed --if-version, or both conditions, is a usage error and sends nothing', async () => {
    for (const args of [
      ['put', 'cli/bad', 'x', '--if-version', 'yesterday'],
      ['put', 'cli/bad', 'x', '--if-version', '1.0@00000000000000aa', '--if-absent'],
      ['del', 'cli/bad', '--if-version', '12@x'],
    ]) {
      const result = await cli(...args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^ckv: .*(not a version|not both)/);
    }
    assert.equal((await cli('get', 'cli/bad')).code, 1, 'nothing was written');
  });

  it('gRPC: a value sent as a PutStream honours its condition too', async () => {
    const big = new Uint8Array(3 * 1024 * 1024).fill(7);
    const first = await node.client.put('stream/k', big, { ifAbsent: true });
    const refused = await node.client.put('stream/k', big, { ifAbsent: true }).catch((error: unknown) => error);
    assert.ok(refused instanceof GrpcStatusError && refused.code === GrpcStatus.ABORTED, String(refused));
    await node.client.put('stream/k', new Uint8Array(2 * 1024 * 1024), { ifVersion: first.version.text });
    assert.equal((await node.client.get('stream/k')).value.byteLength, 2 * 1024 * 1024);
  });

  it('gRPC: clients racing compare-and-set on one key: exactly one wins each round', async () => {
    let version = (await node.client.put('race/counter', new TextEncoder().encode('0'))).version.text;
    for (let round = 1; round <= 10; round++) {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, (_, client) => node.client.put('race/counter', new TextEncoder().encode(`${round}:${client}`), { ifVersion: version })),
      );
      const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      assert.equal(won.length, 1, `round ${round}: ${won.length} winners`);
      for (const lost of outcomes.filter((o) => o.status === 'rejected')) {
        const error = (lost as PromiseRejectedResult).reason as unknown;
        assert.ok(error instanceof GrpcStatusError && error.code === GrpcStatus.ABORTED, String(error));
        assert.ok(error.details.includes(won[0]!.version.text), error.details);
      }
      version = won[0]!.version.text;
    }
  });

  it('HTTP: ETag on GET and PUT, If-Match and If-None-Match: *, 412 with the current ETag', async () => {
    const url = `${base}kv/${encodeURIComponent('http/k')}`;
    const created = await fetchWithin(url, { method: 'PUT', body: 'one', headers: { 'If-None-Match': '*' } });
    assert.equal(created.status, 200, await created.clone().text());
    const etag1 = created.headers.get('etag');
    assert.match(etag1 ?? '', /^"\d+\.\d+@[0-9a-f]{16}"$/);
    const read = await fetchWithin(url);
    assert.equal(read.headers.get('etag'), etag1);
    await read.arrayBuffer();

    const exists = await fetchWithin(url, { method: 'PUT', body: 'x', headers: { 'If-None-Match': '*' } });
    assert.equal(exists.status, 412);
    assert.equal(exists.headers.get('etag'), etag1);
    assert.match(((await exists.json()) as { error: string }).error, /condition failed/);

    const updated = await fetchWithin(url, { method: 'PUT', body: 'two', headers: { 'If-Match': etag1! } });
    assert.equal(updated.status, 200);
    const etag2 = updated.headers.get('etag')!;
    await updated.arrayBuffer();
    const stale = await fetchWithin(url, { method: 'PUT', body: 'three', headers: { 'If-Match': etag1! } });
    assert.equal(stale.status, 412);
    assert.equal(stale.headers.get('etag'), etag2);
    await stale.arrayBuffer();
    const staleDelete = await fetchWithin(url, { method: 'DELETE', headers: { 'If-Match': etag1! } });
    assert.equal(staleDelete.status, 412);
    await staleDelete.arrayBuffer();
    assert.equal(await (await fetchWithin(url)).text(), 'two');

    const bad = await fetchWithin(url, { method: 'PUT', body: 'x', headers: { 'If-Match': '*' } });
    assert.equal(bad.status, 400);
    await bad.arrayBuffer();
    const deleted = await fetchWithin(url, { method: 'DELETE', headers: { 'If-Match': etag2 } });
    assert.equal(deleted.status, 200);
    await deleted.arrayBuffer();
    assert.equal((await fetchWithin(url)).status, 404);
  });
});
