/**
 * Membership in partitioned mode: only members that share a partition with us (the runtime's
 * `sharesPartitions`, from the layout) are synced with, and a layout change that alters who
 * shares what (`partitionsChanged`) moves members in and out of the sync rounds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Membership, type MembershipEffect } from '../../src/core/membership.js';

const selfId = '0000000000000005';
const peer = (n: number) => ({ nodeId: n.toString(16).padStart(16, '0'), peerId: `p${n}`, incarnation: 1, addresses: [`/ip4/10.0.0.${n}/tcp/4455`] });
const syncs = (effects: MembershipEffect[]): string[] => effects.flatMap((e) => (e.kind === 'sync' ? [e.peerId] : []));

/** Every sync effect over a long run of ticks, each session reported ok at once. */
function syncedOver(m: Membership, fromMs: number, toMs: number): Set<string> {
  const seen = new Set<string>();
  for (let now = fromMs; now <= toMs; now += 1000) {
    for (const peerId of syncs(m.tick(now))) {
      seen.add(peerId);
      m.sessionEnded(m.get(peerId)!.nodeId, { ok: true, result: 'synced', inSync: true, startedMs: now }, now);
    }
  }
  return seen;
}

describe('Membership with sharesPartitions', () => {
  it('syncs only with members that share a partition, and follows partitionsChanged', () => {
    let draws = 0;
    const rng = (): number => (draws++ * 0.37) % 1; // varied, deterministic: every eligible member gets picked
    const sharing = new Set([peer(1).nodeId, peer(2).nodeId]);
    const m = new Membership(
      { self: { nodeId: selfId, peerId: 'p-self', incarnation: 1 }, rng, syncIntervalMs: 5_000, sharesPartitions: (nodeId) => sharing.has(nodeId) },
      0,
    );
    for (const n of [1, 2, 3]) m.connected(peer(n), 0);
    assert.deepEqual([...syncedOver(m, 0, 120_000)].sort(), ['p1', 'p2']);

    // A new layout: 3 now shares a partition with us, 1 no longer does.
    sharing.delete(peer(1).nodeId);
    sharing.add(peer(3).nodeId);
    m.partitionsChanged();
    assert.deepEqual([...syncedOver(m, 121_000, 300_000)].sort(), ['p2', 'p3']);
  });

  it('a member scheduled before a layout change that removed every shared partition is not synced', () => {
    let shares = true;
    const m = new Membership(
      { self: { nodeId: selfId, peerId: 'p-self', incarnation: 1 }, rng: () => 0.5, sharesPartitions: () => shares },
      0,
    );
    m.connected(peer(9), 0);
    shares = false; // no partitionsChanged call yet: the tick itself checks
    assert.deepEqual(syncs(m.tick(0)), []);
    assert.deepEqual([...syncedOver(m, 0, 300_000)], []);
  });
});

describe('Membership with sharesPartitions: meeting members', () => {
  it('announces itself soon after a member comes up even when they share no partition (yet)', () => {
    const m = new Membership({ self: { nodeId: selfId, peerId: 'p-self', incarnation: 1 }, rng: () => 0.5, sharesPartitions: () => false }, 0);
    m.connected(peer(3), 0);
    const announced = [0, 1000, 2000, 3000, 5000].some((now) => m.tick(now).some((effect) => effect.kind === 'announce'));
    assert.ok(announced, 'an alive message within seconds of the member coming up');
  });
});
