/**
 * Clocks that were, or are, ahead: a node restarted after running with its clock an hour ahead
 * refuses writes (its persisted HLC bound is still an hour ahead; peers would refuse every
 * stamp) and says so in its log, its status and its errors, until it is restarted with
 * `--reset-clock-bound`; then it writes at the real time, and a key it stamped in the future
 * refuses writes rather than losing them. A node whose clock is an hour ahead of its peer's
 * refuses its own writes once it has measured the peer's clock, while the peer's writes still
 * reach it. The skew is the hidden test flag `--test-clock-skew-ms` (added to the node's wall
 * clock), so one machine holds a node with a wrong clock.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, stopCleanly, waitFor, waitMesh } from '../../harness/testing.js';
import { startPeer } from '../helpers/cluster.js';

const hour = 3_600_000;
const fast = ['--sync-interval-ms', '200'];

function assertOneLine(stderr: string, pattern: RegExp): void {
  assert.match(stderr, /^ckv: [^\n]+\n$/, `one 'ckv: ...' line, got ${JSON.stringify(stderr)}`);
  assert.match(stderr, pattern);
}

describe('clocks ahead', () => {
  it('after running an hour ahead: writes refused until --reset-clock-bound; keys stamped ahead refuse writes', async () => {
    const ahead = await startPeer('ahead', { args: ['--test-clock-skew-ms', String(hour)] });
    await runCli(['put', 'written-ahead', 'v'], { socket: ahead.socket }).then((r) => assert.equal(r.code, 0, r.stderr));
    await stopCleanly(ahead);

    const fixed = await startPeer('fixed', { dataDir: ahead.dataDir });
    assert.match(fixed.stderrText(), /clock bound ahead: writes refused/);
    const refused = await runCli(['put', 'k', 'v'], { socket: fixed.socket });
    assert.equal(refused.code, 4, refused.stderr);
    assertOneLine(refused.stderr, /--reset-clock-bound/);
    const status = await fixed.status();
    assert.match(status.clockWarning, /clock bound \d+ ms ahead/);
    assert.match((await runCli(['status'], { socket: fixed.socket })).stdout.toString(), /^clock +writes refused/m);
    assert.equal((await runCli(['get', 'k'], { socket: fixed.socket })).code, 1, 'nothing was stored');
    await stopCleanly(fixed);

    const reset = await startPeer('reset', { dataDir: ahead.dataDir, args: ['--reset-clock-bound'] });
    assert.equal((await reset.status()).clockWarning, '');
    const ok = await runCli(['put', 'k', 'v'], { socket: reset.socket });
    assert.equal(ok.code, 0, ok.stderr);
    const stampMs = Number(ok.stdout.toString().split('.')[0]);
    assert.ok(Math.abs(stampMs - Date.now()) < 60_000, `stamped at the real time, not an hour ahead: ${ok.stdout}`);
    const stale = await runCli(['put', 'written-ahead', 'w'], { socket: reset.socket });
    assert.equal(stale.code, 4, stale.stderr);
    assertOneLine(stale.stderr, /in the future/);
    assert.equal((await runCli(['get', 'written-ahead'], { socket: reset.socket })).stdout.toString(), 'v');
    await stopCleanly(reset);
  });

  it("a node an hour ahead of its peer refuses its own writes once it has measured the peer's clock", async () => {
    const ahead = await startPeer('ahead', { args: [...fast, '--test-clock-skew-ms', String(hour)] });
    const peer = await startPeer('peer', { bootstrap: [ahead], args: fast });
    await waitMesh([ahead, peer]);
    await waitFor(async () => (await ahead.status()).clockWarning !== '', { deadlineMs: 20_000, what: "the node to measure its peer's clock" });
    const refused = await runCli(['put', 'k', 'v'], { socket: ahead.socket });
    assert.equal(refused.code, 4, refused.stderr);
    assertOneLine(refused.stderr, /ahead of its peers/);
    assert.equal((await peer.status()).clockWarning, '', 'the peer with the right clock is fine');
    // The peer's writes still reach the node that is ahead (they come from its past).
    assert.equal((await runCli(['put', 'from-peer', 'p'], { socket: peer.socket })).code, 0);
    await waitFor(async () => (await ahead.client.get('from-peer')).found, { deadlineMs: 20_000, what: "the peer's write to arrive" });
    await stopCleanly(peer);
    await stopCleanly(ahead);
  });
});
