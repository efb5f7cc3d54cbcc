/**
 * Catch-up watermarks proven again after a burst (src/core/watermark-refresh.ts, the lag kept
 * by sync-watermarks.ts, and Membership's use of both): a lagging peer is asked for a session
 * once the node has applied nothing for quietMs, once per burst, again after retryMs if still
 * lagging; peers not up are never asked; partitioned mode (no watermarks) asks nobody.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { watermarkRefreshLagEntries, watermarkRefreshQuietMs, watermarkRefreshRetryMs, watermarkRefreshUpForMs } from '../../src/core/limits.js';
import { Membership, type MembershipEffect } from '../../src/core/membership.js';
import { SyncWatermarks } from '../../src/core/sync-watermarks.js';
import { WatermarkRefresh } from '../../src/core/watermark-refresh.js';

const quiet = watermarkRefreshQuietMs;
const lag = watermarkRefreshLagEntries;
const epoch = new Uint8Array(16).fill(3);

describe('WatermarkRefresh', () => {
  // Up long before any burst.
  const a = { nodeId: 'a', upSinceMs: -100_000 };
  const b = { nodeId: 'b', upSinceMs: -100_000 };

  it('asks lagging peers once the node has applied nothing for quietMs, timed from a look that saw the seq still; once per burst', () => {
    const refresh = new WatermarkRefresh();
    assert.deepEqual(refresh.due(0, 5000, [a, b]), [], 'the seq just moved: a burst may be under way');
    assert.equal(refresh.wakeAtMs(10, 5000, [a, b]), 10 + quiet, 'a still look starts the quiet');
    assert.deepEqual(refresh.due(9 + quiet, 5000, [a, b]), []);
    assert.deepEqual(refresh.due(10 + quiet, 6000, [a, b]), [], 'moving again: no quiet');
    assert.deepEqual(refresh.due(20 + 2 * quiet, 6000, [a, b]), [], 'the first still look only starts it');
    assert.deepEqual(refresh.due(20 + 3 * quiet, 6000, [a, b]), ['a', 'b']);
    const asked = 20 + 3 * quiet;
    assert.deepEqual(refresh.due(asked + 1, 6000, [a, b]), [], 'asked: not again in this burst');
    assert.equal(refresh.wakeAtMs(asked + 1, 6000, [a]), asked + watermarkRefreshRetryMs, 'still lagging: asked again after retryMs');
    assert.deepEqual(refresh.due(asked + watermarkRefreshRetryMs, 6000, [a]), ['a']);
    // Another burst of lagEntriesMin entries: asked again once it is over.
    const later = asked + watermarkRefreshRetryMs + 1000;
    assert.deepEqual(refresh.due(later, 6000 + lag, [a]), []);
    assert.deepEqual(refresh.due(later + quiet, 6000 + lag, [a]), []);
    assert.deepEqual(refresh.due(later + 2 * quiet, 6000 + lag, [a]), ['a']);
  });

  // A process the machine did not run for a while applied nothing only because it ran nothing.
  it('a gap between looks is no quiet: the quiet starts at the first look after it', () => {
    const refresh = new WatermarkRefresh();
    assert.deepEqual(refresh.due(0, 5000, [a]), []);
    assert.deepEqual(refresh.due(10 * quiet, 5000, [a]), [], 'the first look after a long gap');
    assert.deepEqual(refresh.due(10 * quiet + 5, 5100, [a]), [], 'then it reads what came meanwhile: the burst goes on');
  });

  it('leaves a peer that came up after the burst began alone for upForMs: it is catching up', () => {
    const refresh = new WatermarkRefresh();
    assert.deepEqual(refresh.due(0, 100, []), []);
    assert.deepEqual(refresh.wakeAtMs(500, 100, [a]), 500 + quiet);
    assert.deepEqual(refresh.due(1000, 100, [a]), ['a'], 'quiet');
    assert.deepEqual(refresh.due(1100, 9000, []), [], 'a burst begins after the look at 1000');
    const restarted = { nodeId: 'r', upSinceMs: 1050 };
    assert.deepEqual(refresh.due(1100 + quiet, 9000, [restarted, b]), []);
    assert.deepEqual(refresh.due(1100 + 2 * quiet, 9000, [restarted, b]), ['b']);
    assert.equal(refresh.wakeAtMs(1101 + 2 * quiet, 9000, [restarted]), 1050 + watermarkRefreshUpForMs);
    assert.deepEqual(refresh.due(1050 + watermarkRefreshUpForMs, 9000, [restarted]), ['r']);
  });

  // Membership looks as a member comes up: with no other look between that and the burst (a
  // cluster's first burst, seconds after its start), the member still saw all of it.
  it('a peer up at a look that saw no burst yet saw all of it, with no look between', () => {
    const refresh = new WatermarkRefresh();
    assert.equal(refresh.wakeAtMs(0, 10, []), quiet);
    assert.equal(refresh.wakeAtMs(quiet, 10, []), Number.POSITIVE_INFINITY, 'nothing lags: no more looks of its own');
    const peer = { nodeId: 'p', upSinceMs: 5000 };
    refresh.look(5000, 10);
    assert.deepEqual(refresh.due(6000, 9000, [peer]), [], 'a burst, begun after the look at 5000');
    assert.deepEqual(refresh.due(6000 + quiet, 9000, [peer]), []);
    assert.deepEqual(refresh.due(6000 + 2 * quiet, 9000, [peer]), ['p'], 'asked once quiet, not at 5000 + upForMs');
    // Without that look the same peer waits upForMs (the behaviour before it).
    const unseen = new WatermarkRefresh();
    unseen.wakeAtMs(0, 10, []);
    unseen.wakeAtMs(quiet, 10, []);
    assert.deepEqual(unseen.due(6000, 9000, [peer]), []);
    assert.deepEqual(unseen.due(6000 + 2 * quiet, 9000, [peer]), []);
    assert.equal(unseen.wakeAtMs(6001 + 2 * quiet, 9000, [peer]), 5000 + watermarkRefreshUpForMs);
  });

  // A cluster's first burst, a moment after its members came up: started (nothing applied
  // before), the refresh knows the burst began after those looks, however short the quiet.
  it('after start, the first burst began after the last look, with no quiet needed before it', () => {
    const refresh = new WatermarkRefresh();
    refresh.start(0, 0);
    const peer = { nodeId: 'p', upSinceMs: 100 };
    refresh.look(100, 0); // the member comes up
    assert.deepEqual(refresh.due(150, 10_000, [peer]), [], 'a burst, 50 ms after the look');
    assert.deepEqual(refresh.due(150 + quiet, 10_000, [peer]), []);
    assert.deepEqual(refresh.due(150 + 2 * quiet, 10_000, [peer]), ['p']);
    // A peer that came up during that burst is catching up: it waits upForMs.
    const late = { nodeId: 'q', upSinceMs: 120 };
    const other = new WatermarkRefresh();
    other.start(0, 0);
    other.look(100, 0);
    other.look(120, 5_000); // it comes up mid-burst
    assert.deepEqual(other.due(150, 10_000, [late]), []);
    assert.deepEqual(other.due(150 + 2 * quiet, 10_000, [late]), []);
    assert.equal(other.wakeAtMs(151 + 2 * quiet, 10_000, [late]), 120 + watermarkRefreshUpForMs);
    // Not started: the same burst counts as under way since always, and the peer waits too.
    const unstarted = new WatermarkRefresh();
    unstarted.look(100, 0);
    assert.deepEqual(unstarted.due(150, 10_000, [peer]), []);
    assert.deepEqual(unstarted.due(150 + 2 * quiet, 10_000, [peer]), []);
  });

  it('has nothing to wait for when nothing lags and nothing is applied', () => {
    const refresh = new WatermarkRefresh();
    assert.equal(refresh.wakeAtMs(0, 10, []), quiet, 'the first look sees the seq move');
    assert.equal(refresh.wakeAtMs(quiet, 10, []), Number.POSITIVE_INFINITY);
    assert.deepEqual(refresh.due(quiet, 10, []), []);
  });
});

describe('SyncWatermarks lag', () => {
  it('counts our applied entries since each watermark was proven; a watermark read at open counts as proven then', () => {
    const marks = new SyncWatermarks();
    marks.record('a', { epoch, seq: 7 });
    marks.record('b', { epoch, seq: 9 });
    marks.assumeProvenAt(100);
    assert.deepEqual(marks.lagging(100 + lag - 1, lag), []);
    assert.deepEqual(marks.lagging(100 + lag, lag), ['a', 'b']);
    marks.noteProven('a', 100 + lag);
    assert.deepEqual(marks.lagging(100 + lag, lag), ['b']);
    marks.forget('b');
    assert.deepEqual(marks.lagging(100 + 5 * lag, lag), ['a'], 'a forgotten peer has no watermark to refresh');
  });
});

describe('Membership watermark refresh', () => {
  const selfId = '0000000000000005';
  const peer = (n: number) => ({ nodeId: n.toString(16).padStart(16, '0'), peerId: `p${n}`, incarnation: 1, addresses: [`/ip4/10.0.0.${n}/tcp/4455`] });
  const syncs = (effects: MembershipEffect[]): string[] => effects.flatMap((e) => (e.kind === 'sync' ? [e.peerId] : []));

  function setUp(withWatermarks: boolean): { m: Membership; state: { seq: number; lagging: string[] } } {
    const state = { seq: 0, lagging: [] as string[] };
    const m = new Membership(
      {
        self: { nodeId: selfId, peerId: 'p-self', incarnation: 1 },
        rng: () => 0.5,
        syncIntervalMs: 600_000, // no periodic round in the window
        ...(withWatermarks ? { watermarks: { seqLast: () => state.seq, lagging: (min: number) => (min === lag ? state.lagging : []) } } : {}),
      },
      0,
    );
    // Caught up: both peers synced once.
    for (const n of [7, 9]) m.connected(peer(n), 0);
    for (let t = 1; t <= 2; t++) {
      const [nodePeer] = syncs(m.tick(t));
      m.sessionEnded(m.get(nodePeer!)!.nodeId, { ok: true, result: 'in-sync', inSync: true, startedMs: t }, t);
    }
    return { m, state };
  }

  // Members up long enough not to be catching up themselves.
  const t = watermarkRefreshUpForMs;

  it('after a burst, syncs with each up member whose watermark lags, once the quiet is long enough', () => {
    const { m, state } = setUp(true);
    state.seq = 30_000;
    state.lagging = [peer(7).nodeId, peer(9).nodeId];
    assert.deepEqual(syncs(m.tick(t)), []);
    const wake = m.wakeAtMs(t);
    assert.ok(wake <= t + quiet, `looks again within quietMs (${wake})`);
    assert.deepEqual(syncs(m.tick(t + quiet)), ['p7'], 'one urgent session at a time');
    m.sessionEnded(peer(7).nodeId, { ok: true, result: 'in-sync', inSync: true, startedMs: t + quiet }, t + 1 + quiet);
    state.lagging = [peer(9).nodeId];
    assert.deepEqual(syncs(m.tick(t + 2 + quiet)), ['p9']);
    m.sessionEnded(peer(9).nodeId, { ok: true, result: 'in-sync', inSync: true, startedMs: t + 2 + quiet }, t + 3 + quiet);
    state.lagging = [];
    assert.deepEqual(syncs(m.tick(t + 4 + quiet)), []);
    assert.ok(m.wakeAtMs(t + 4 + quiet) > t + 1000, 'nothing lagging: no early wake');
  });

  it('asks no member that is down, one back since the burst only after watermarkRefreshUpForMs, and nobody without watermarks (partitioned mode)', () => {
    const { m, state } = setUp(true);
    m.disconnected('p9', t - 10);
    state.seq = 30_000; // a burst while p9 is away
    m.connected(peer(9), t - 5); // back: it catches up; a session from us would push at it
    m.disconnected('p7', t - 5);
    state.lagging = [peer(7).nodeId, peer(9).nodeId];
    // The healed link's own session (the smaller id syncs at once), not a refresh.
    assert.deepEqual(syncs(m.tick(t)), ['p9']);
    m.sessionEnded(peer(9).nodeId, { ok: true, result: 'synced', inSync: true, startedMs: t }, t + 1);
    assert.deepEqual(syncs(m.tick(t + 2 * quiet)), []);
    // Up long enough now, still lagging: asked (at the next look, within retryMs).
    assert.deepEqual(syncs(m.tick(2 * t)), ['p9']);
    // Back before the burst began, with no look of ours between (its coming up is one): it
    // saw all of it, and is asked once the quiet is long enough, not after upForMs.
    const early = setUp(true);
    early.m.disconnected('p9', t - 10);
    early.m.connected(peer(9), t - 5);
    early.state.seq = 30_000;
    early.state.lagging = [peer(9).nodeId];
    assert.deepEqual(syncs(early.m.tick(t)), ['p9'], "the healed link's own session");
    early.m.sessionEnded(peer(9).nodeId, { ok: false, result: 'failed', inSync: false, startedMs: t }, t + 1);
    assert.deepEqual(syncs(early.m.tick(t + quiet)), []);
    assert.deepEqual(syncs(early.m.tick(t + 2 * quiet)), ['p9']);
    const partitioned = setUp(false);
    partitioned.state.seq = 30_000;
    partitioned.state.lagging = [peer(7).nodeId];
    partitioned.m.tick(t);
    assert.deepEqual(syncs(partitioned.m.tick(t + 2 * quiet)), []);
  });
});
