/**
 * `ckv health`: one view of the whole cluster from the node asked. For itself and for every
 * member it knows, a row: the member's state as this node sees it (up, unreachable, left),
 * and, for the members up, what each reports of itself over the query protocol (software
 * version, incarnation, keys, disk, Merkle root, uptime, clock warning), asked at once with a
 * deadline; beside it this node's own measurements (clock offset, last sync and its result).
 *
 * Verdict (healthy, or the reasons it is not): every member not `left` is up and answered;
 * every answer's Merkle root equals this node's (data in sync); nobody refuses writes for its
 * clock; no clock offset past the drift limit. A report is what a peer says of itself; the
 * verdict uses it to say "in sync or not", never to change what this node does.
 *
 * A node's report of itself (selfReport) also carries its view of each member it knows (state,
 * in sync, last sync, clock offset): side by side, those views are the status page's cluster
 * matrix (`GET /api/cluster`), who sees whom.
 */
import type { HealthReport } from '../net/query-protocol.js';
import type { NodeStatus } from './status.js';

export interface MemberHealth {
  nodeId: string;
  peerId: string;
  self: boolean;
  /** As this node sees it: up, unreachable, left (self: up). */
  state: string;
  /** Its own report; undefined if it is not up or did not answer (then `error`). */
  report: HealthReport | undefined;
  error: string;
  /** Its wall clock minus ours, from its last sync Hello (0 for self). */
  clockOffsetMs: number;
  /** Wall ms when a session with it last ended; 0 = never (self: 0). */
  lastSyncMs: number;
  lastSyncResult: string;
  /** Its report's Merkle root equals ours. */
  inSync: boolean;
}

export interface ClusterHealth {
  timeMs: number;
  healthy: boolean;
  /** Why not, one line each (empty when healthy). */
  problems: string[];
  members: MemberHealth[];
}

export function selfReport(status: NodeStatus): HealthReport {
  return {
    nodeId: status.nodeId,
    version: status.version,
    incarnation: status.incarnation,
    keys: status.keys,
    tombstones: status.tombstones,
    bytesOnDisk: status.bytesOnDisk,
    merkleRoot: status.merkleRoot,
    uptimeMs: status.uptimeMs,
    timeMs: status.timeMs,
    peersUp: status.peers.filter((p) => p.state === 'up').length,
    clockWarning: status.clock.warning,
    // Its view of every member it knows (the cluster matrix on the status page); the query
    // protocol caps the count at membersMax.
    peers: status.peers
      .filter((p) => p.nodeId !== '')
      .map((p) => ({ nodeId: p.nodeId, state: p.state, inSync: p.inSync, lastSyncMs: p.lastSyncMs, clockOffsetMs: p.clockOffsetMs })),
  };
}

export function clusterHealth(status: NodeStatus, answers: Map<string, { report?: HealthReport; error?: string }>): ClusterHealth {
  const own = selfReport(status);
  const members: MemberHealth[] = [
    { nodeId: status.nodeId, peerId: status.peerId, self: true, state: 'up', report: own, error: '', clockOffsetMs: 0, lastSyncMs: 0, lastSyncResult: '', inSync: true },
  ];
  for (const peer of status.peers) {
    const answer = answers.get(peer.peerId);
    const report = answer?.report;
    const error = peer.state !== 'up' ? '' : (answer?.error ?? (report ? '' : 'no answer'));
    members.push({
      nodeId: peer.nodeId,
      peerId: peer.peerId,
      self: false,
      state: peer.state,
      report,
      error,
      clockOffsetMs: peer.clockOffsetMs,
      lastSyncMs: peer.lastSyncMs,
      lastSyncResult: peer.lastSyncResult,
      inSync: report !== undefined && report.merkleRoot === own.merkleRoot && report.keys + report.tombstones === own.keys + own.tombstones,
    });
  }
  const problems: string[] = [];
  for (const member of members) {
    const name = member.self ? `${member.nodeId} (this node)` : member.nodeId || member.peerId;
    if (member.state === 'left') continue;
    if (member.state !== 'up') problems.push(`${name} is ${member.state}`);
    else if (!member.report) problems.push(`${name} did not answer: ${member.error}`);
    else if (!member.inSync) problems.push(`${name} holds other data (Merkle root ${member.report.merkleRoot.slice(0, 12)}, ${member.report.keys} keys)`);
    if (member.report?.clockWarning) problems.push(`${name}: ${member.report.clockWarning}`);
    if (Math.abs(member.clockOffsetMs) > status.clock.driftMsMax) problems.push(`${name}: clock ${member.clockOffsetMs} ms off this node's (limit ${status.clock.driftMsMax} ms)`);
  }
  return { timeMs: status.timeMs, healthy: problems.length === 0, problems, members };
}
