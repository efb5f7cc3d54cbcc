/**
 * The verdict of `ckv health` (src/node/health.ts clusterHealth), from a node's status and
 * its members' reports: healthy only when every member not `left` is up, answered, holds the
 * same Merkle root and count, and no clock is off or refusing writes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterHealth, selfReport } from '../../src/node/health.js';
import { decodeHealthReport, encodeHealthReport, replyFrameBytesMax, type HealthReport } from '../../src/net/query-protocol.js';
import { ByteReader, ByteWriter } from '../../src/core/bytes.js';
import { MalformedError } from '../../src/core/errors.js';
import { membersMax } from '../../src/core/limits.js';
import type { NodeStatus, PeerView } from '../../src/node/status.js';

const root = 'aa'.repeat(32);

function peer(nodeId: string, state: PeerView['state'], clockOffsetMs = 0): PeerView {
  return { peerId: `peer-${nodeId}`, nodeId, addresses: [], state, lastSyncMs: 1, lastSyncResult: 'in-sync', clockOffsetMs, inSync: true, incarnation: 1, entryCount: 10, sinceMs: 0 };
}

function status(peers: PeerView[]): NodeStatus {
  return {
    timeMs: 1_000,
    nodeId: '0000000000000001',
    peerId: 'peer-self',
    listenAddresses: [],
    cluster: 'c',
    version: '0.1.0',
    dataDir: '/x',
    httpUrl: '',
    incarnation: 1,
    clock: { boundAheadMs: 0, peersAheadMs: 0, driftMsMax: 60_000, warning: '' },
    uptimeMs: 5,
    hlcNow: 0n,
    merkleRoot: root,
    stopping: false,
    keys: 8,
    tombstones: 2,
    bytesOnDisk: 100,
    counters: {} as NodeStatus['counters'],
    peers,
    bootstrap: [],
    writes: {} as NodeStatus['writes'],
  };
}

function report(nodeId: string, over: Partial<HealthReport> = {}): HealthReport {
  return { ...selfReport(status([])), nodeId, ...over };
}

describe('clusterHealth', () => {
  it('is healthy when every member is up, answers and holds our data; left members do not count', () => {
    const s = status([peer('02', 'up'), peer('03', 'up'), peer('04', 'left')]);
    const h = clusterHealth(s, new Map([['peer-02', { report: report('02') }], ['peer-03', { report: report('03') }]]));
    assert.deepEqual(h.problems, []);
    assert.equal(h.healthy, true);
    assert.equal(h.members.length, 4);
    assert.deepEqual(h.members.map((m) => m.inSync), [true, true, true, false]);
  });

  it('names each problem: unreachable, silent, other data, a clock refusing writes, a clock offset past the limit', () => {
    const s = status([peer('02', 'unreachable'), peer('03', 'up'), peer('04', 'up'), peer('05', 'up'), peer('06', 'up', -90_000)]);
    const h = clusterHealth(
      s,
      new Map<string, { report?: HealthReport; error?: string }>([
        ['peer-03', { error: 'the operation was aborted' }],
        ['peer-04', { report: report('04', { merkleRoot: 'bb'.repeat(32) }) }],
        ['peer-05', { report: report('05', { clockWarning: 'writes refused: clock 70000 ms ahead' }) }],
        ['peer-06', { report: report('06') }],
      ]),
    );
    assert.equal(h.healthy, false);
    assert.deepEqual(h.problems, [
      '02 is unreachable',
      '03 did not answer: the operation was aborted',
      `04 holds other data (Merkle root bbbbbbbbbbbb, 8 keys)`,
      '05: writes refused: clock 70000 ms ahead',
      "06: clock -90000 ms off this node's (limit 60000 ms)",
    ]);
  });

  it('the same root with another count is other data too', () => {
    const h = clusterHealth(status([peer('02', 'up')]), new Map([['peer-02', { report: report('02', { keys: 9 }) }]]));
    assert.equal(h.healthy, false);
    assert.equal(h.members[1]!.inSync, false);
  });
});

describe('HealthReport on the wire (query protocol)', () => {
  const base = (): HealthReport => ({
    ...selfReport(status([peer('00000000000000a2', 'up', -12), peer('00000000000000a3', 'unreachable', 7)])),
  });

  it('carries the reporter\'s view of its peers, appended at the end', () => {
    const report = base();
    assert.equal(report.peers.length, 2);
    const bytes = encodeHealthReport(new ByteWriter(), report).finish();
    const r = new ByteReader(bytes);
    const back = decodeHealthReport(r);
    r.end();
    assert.deepEqual(back, report);
    assert.deepEqual(back.peers[0], { nodeId: '00000000000000a2', state: 'up', inSync: true, lastSyncMs: 1, clockOffsetMs: -12 });
    assert.equal(back.peers[1]!.state, 'unreachable');
  });

  it('is bounded: at most membersMax peers sent; a count past it or past the bytes is malformed, not a crash', () => {
    const many = { ...base(), peers: Array.from({ length: membersMax + 10 }, (_, i) => ({ nodeId: i.toString(16).padStart(16, '0'), state: 'up' as const, inSync: true, lastSyncMs: 0, clockOffsetMs: 0 })) };
    const back = decodeHealthReport(new ByteReader(encodeHealthReport(new ByteWriter(), many).finish()));
    assert.equal(back.peers.length, membersMax);
    // The largest report (every text at its limit, every number at its largest) fits the reply frame.
    const largest = {
      ...many,
      version: 'v'.repeat(1000),
      clockWarning: 'w'.repeat(5000),
      keys: Number.MAX_SAFE_INTEGER,
      tombstones: Number.MAX_SAFE_INTEGER,
      bytesOnDisk: Number.MAX_SAFE_INTEGER,
      uptimeMs: Number.MAX_SAFE_INTEGER,
      timeMs: Number.MAX_SAFE_INTEGER,
      incarnation: Number.MAX_SAFE_INTEGER,
      peers: many.peers.map((p) => ({ ...p, lastSyncMs: Number.MAX_SAFE_INTEGER, clockOffsetMs: -(2 ** 50) })),
    };
    const bytes = encodeHealthReport(new ByteWriter().u8(1), largest).finish();
    assert.ok(bytes.byteLength <= replyFrameBytesMax, `${bytes.byteLength} bytes > ${replyFrameBytesMax}`);
    // The fixed part, then a forged count.
    const head = encodeHealthReport(new ByteWriter(), { ...base(), peers: [] }).finish().slice(0, -1);
    for (const count of [membersMax + 1, 2 ** 40, 5]) {
      const forged = new ByteWriter().raw(head).varint(count).finish();
      assert.throws(() => decodeHealthReport(new ByteReader(forged)), MalformedError, `count ${count}`);
    }
    const badState = new ByteWriter().raw(head).varint(1).raw(new Uint8Array(8)).u8(9).u8(1).varint(0).varint(0).finish();
    assert.throws(() => decodeHealthReport(new ByteReader(badState)), MalformedError);
    const truncated = encodeHealthReport(new ByteWriter(), base()).finish().slice(0, -3);
    assert.throws(() => decodeHealthReport(new ByteReader(truncated)), MalformedError);
  });
});
