/**
 * `/api/cluster`'s JSON (src/http/server.ts clusterJson) from a ClusterHealth: each member's
 * state as this node sees it beside its own report and view of its peers; bounded to a
 * 64-node matrix however many members there are.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterJson, clusterMatrixNodesMax } from '../../src/http/server.js';
import type { ClusterHealth, MemberHealth } from '../../src/node/health.js';
import type { HealthReport, ReportedPeer } from '../../src/net/query-protocol.js';

const id = (i: number): string => i.toString(16).padStart(16, '0');

function report(i: number, peers: ReportedPeer[]): HealthReport {
  return { nodeId: id(i), version: '0.1.0', incarnation: 1, keys: 3, tombstones: 1, bytesOnDisk: 10, merkleRoot: 'ab'.repeat(32), uptimeMs: 5, timeMs: 7, peersUp: peers.length, clockWarning: '', peers };
}

function health(n: number): ClusterHealth {
  const members: MemberHealth[] = Array.from({ length: n }, (_, i) => {
    const peers = Array.from({ length: n }, (_, j) => j)
      .filter((j) => j !== i)
      .map((j): ReportedPeer => ({ nodeId: id(j), state: 'up', inSync: true, lastSyncMs: 1, clockOffsetMs: -3 }));
    const answered = i !== 2;
    return { nodeId: id(i), peerId: `p${i}`, self: i === 0, state: 'up', report: answered ? report(i, peers) : undefined, error: answered ? '' : 'timeout', clockOffsetMs: 0, lastSyncMs: 0, lastSyncResult: '', inSync: answered };
  });
  return { timeMs: 1000, healthy: false, problems: ['x'], members };
}

type Json = { nodesTotal: number; nodes: { nodeId: string; state: string; answered: boolean; error: string; report: null | { peers: ReportedPeer[]; peersTotal: number } }[] };

describe('clusterJson', () => {
  it('each node: its state here, whether it answered, its report with its view of the others', () => {
    const json = clusterJson(health(4)) as Json;
    assert.equal(json.nodesTotal, 4);
    assert.equal(json.nodes[0]!.state, 'self');
    assert.equal(json.nodes[1]!.state, 'up');
    assert.equal(json.nodes[2]!.answered, false);
    assert.equal(json.nodes[2]!.report, null);
    assert.equal(json.nodes[2]!.error, 'timeout');
    assert.deepEqual(json.nodes[1]!.report!.peers.map((p) => p.nodeId), [id(0), id(2), id(3)]);
    assert.equal(json.nodes[1]!.report!.peers[0]!.clockOffsetMs, -3);
  });

  it('is bounded to a 64 x 64 matrix', () => {
    const json = clusterJson(health(clusterMatrixNodesMax + 36)) as Json;
    assert.equal(json.nodesTotal, clusterMatrixNodesMax + 36);
    assert.equal(json.nodes.length, clusterMatrixNodesMax);
    const first = json.nodes[1]!.report!;
    assert.equal(first.peersTotal, clusterMatrixNodesMax + 35);
    assert.equal(first.peers.length, clusterMatrixNodesMax - 1);
  });
});
