/**
 * The layout commands on real processes (partitioned mode): `ckv layout [--json]`, staging
 * (add by node id or peer id, weight, revert), apply and the version it commits reaching the
 * other nodes, one-line errors with exit 4 (an unknown node, nothing to apply, a full node)
 * and 2 (bad arguments); `ckv node remove` of a killed node (and the refusal of an up one);
 * `ckv node leave` committing the node's own removal, waiting for the hand-off and stopping
 * (also after an operator removed a dead node: the change does not wait for the dead one);
 * and a hostile member whose forged layout acks are refused and counted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { counter, runCli, spawnCli, startNode, stopCleanly, waitFor, waitLinked, waitMesh, withDeadline, type NodeProcess } from '../../harness/testing.js';
import { createNetwork } from '../../src/net/libp2p.js';
import { encodeGossip, gossipTopic } from '../../src/net/gossip.js';
import { agentString } from '../../src/net/cluster.js';
import { syncProtocolId } from '../../src/net/sync-protocol.js';
import { encodeLayoutEnvelope, layoutSignedBytes } from '../../src/core/layout-wire.js';
import { partitionBitmap } from '../../src/core/layout.js';
import { startPeer } from '../helpers/cluster.js';

const fast = ['--sync-interval-ms', '200'];
const partitioned = (...more: string[]): string[] => [...fast, '--replicas', '2', ...more];

interface LayoutJson {
  self: string;
  current: { version: number; replicas: number | 'all'; digest: string; members: { nodeId: string; weight: number; partitions: number; up: boolean }[] } | null;
  active: { version: number }[];
  staged: { nodeId: string; weight?: number; remove?: boolean }[];
  stagedReplicas: number | 'all' | null;
  plan: ({ of: string; fromVersion: number; toVersion: number; partitionsChanged: number; replicasMoved: number } & SizedPlan) | null;
  committedVersion: number;
}

interface SizedPlan {
  keysMoved: number;
  bytesMoved: number;
  transfers: { from: string[]; to: string; partitions: number; keys: number; bytes: number }[];
  moves?: { partition: number; from: string[]; to: string[]; gaining: string[]; keys: number; bytes: number }[];
}

async function layoutOf(node: NodeProcess, ...args: string[]): Promise<LayoutJson> {
  const result = await runCli(['layout', ...args, '--json'], { socket: node.socket });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout.toString('utf8')) as LayoutJson;
}

async function refused(node: NodeProcess, args: string[], code: number, pattern: RegExp): Promise<void> {
  const result = await runCli(args, { socket: node.socket });
  assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
}

async function waitVersion(nodes: NodeProcess[], version: number): Promise<void> {
  await waitFor(async () => (await Promise.all(nodes.map((n) => layoutOf(n)))).every((l) => l.current?.version === version), {
    deadlineMs: 20_000,
    what: `layout version ${version} on ${nodes.map((n) => n.name).join(', ')}`,
  });
}

describe('layout commands', () => {
  it('show, stage, revert, apply; errors; node remove of a killed node; node leave commits and waits', async () => {
    const a = await startPeer('A', { args: partitioned() });
    await waitFor(async () => (await layoutOf(a)).current?.version === 1, { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const [b, c] = await Promise.all([
      startPeer('B', { bootstrap: [a], args: partitioned('--no-auto-join') }),
      startPeer('C', { bootstrap: [a], args: partitioned('--no-auto-join') }),
    ]);
    // Partitioned nodes only sync with members they share partitions with: B and C meet A.
    await waitLinked([[a, b], [a, c]]);

    const first = await layoutOf(a);
    assert.equal(first.self, a.nodeId);
    assert.deepEqual(first.current?.members.map((m) => m.nodeId), [a.nodeId], '--no-auto-join nodes are not joined');
    assert.equal(first.current?.replicas, 2);
    assert.equal(first.current?.members[0]!.partitions, 256);
    assert.equal(first.plan, null);
    await waitVersion([b, c], 1);

    // Stage by node id and by peer id; the plan is of the staged change.
    let staged = await layoutOf(a, 'add', b.nodeId, '--weight', '2');
    assert.deepEqual(staged.staged, [{ nodeId: b.nodeId, weight: 2 }]);
    assert.equal(staged.plan?.of, 'staged');
    staged = await layoutOf(a, 'add', c.peerId);
    assert.equal(staged.staged.length, 2);
    assert.equal(staged.plan?.fromVersion, 1);
    assert.equal(staged.plan?.toVersion, 2);
    assert.ok(staged.plan!.replicasMoved > 0 && staged.plan!.partitionsChanged > 0);
    const text = await runCli(['layout'], { socket: a.socket });
    assert.match(text.stdout.toString('utf8'), /^layout v1 {2}replicas 2 {2}1 nodes/);
    assert.match(text.stdout.toString('utf8'), /staged \(ckv layout apply to commit/);
    assert.match(text.stdout.toString('utf8'), /plan \(staged\) v1 -> v2/);
    const reverted = await layoutOf(a, 'revert');
    assert.deepEqual(reverted.staged, []);
    assert.equal(reverted.plan, null);

    // Errors: one line each.
    await refused(a, ['layout', 'apply'], 4, /^ckv: nothing staged to apply/);
    await refused(a, ['layout', 'add', 'not-a-node'], 4, /^ckv: unknown node "not-a-node"/);
    await refused(a, ['layout', 'weight', b.nodeId, '3'], 4, /is not in the layout/);
    await refused(a, ['layout', 'remove', b.nodeId], 4, /is not in the layout/);
    await refused(a, ['layout', 'replicas', 'two'], 2, /replicas must be 'all' or a whole number/);
    await refused(a, ['layout', 'add', b.nodeId, '--weight', 'x'], 2, /weight must be a whole number/);
    await refused(a, ['layout', 'replicas', '65'], 4, /replicas must be 'all' or 1\.\.64/);

    await refused(b, ['node', 'leave'], 4, /this node is not in the layout/);

    // Apply: version 2 with three members reaches every node.
    await layoutOf(a, 'add', b.nodeId);
    await layoutOf(a, 'add', c.nodeId);
    const applied = await layoutOf(a, 'apply');
    assert.equal(applied.committedVersion, 2);
    assert.deepEqual(applied.current?.members.map((m) => m.nodeId).sort(), [a.nodeId, b.nodeId, c.nodeId].sort());
    assert.equal(applied.staged.length, 0);
    await waitVersion([a, b, c], 2);
    const applyText = await runCli(['layout', 'weight', c.nodeId, '3'], { socket: a.socket });
    assert.equal(applyText.code, 0, applyText.stderr);
    await layoutOf(a, 'revert');

    // node remove: an up node is refused; a killed one is removed.
    await refused(a, ['node', 'remove', c.nodeId], 4, /is up: a running node hands its data off itself/);
    await c.kill();
    await waitFor(async () => (await a.peers()).find((p) => p.peerId === c.peerId)?.state !== 'up', { deadlineMs: 20_000, what: 'A to see C down' });
    // A change while C is down (v3, B's weight): no sync of it starts before every node of it
    // knows it, so dead C holds it, and the status names C (on A and B, who have nothing of
    // it to pull from C).
    await layoutOf(a, 'weight', b.nodeId, '2');
    assert.equal((await layoutOf(a, 'apply')).committedVersion, 3);
    for (const node of [a, b]) {
      let text = '';
      await waitFor(
        async () => {
          text = (await runCli(['status'], { socket: node.socket })).stdout.toString('utf8');
          return text.includes(`blocked by  ${c.nodeId} (not up: ckv node remove NODE if gone)`);
        },
        { deadlineMs: 20_000, what: `${node.name}'s status to name C as blocking layout v3` },
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}\n${text}`);
      });
    }
    const removed = await runCli(['node', 'remove', c.peerId], { socket: a.socket });
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout.toString('utf8'), /removed .*: committed layout version 4/);
    const afterRemove = await layoutOf(a);
    assert.equal(afterRemove.current?.version, 4);
    assert.deepEqual(afterRemove.current?.members.map((m) => m.nodeId).sort(), [a.nodeId, b.nodeId].sort());
    await waitVersion([a, b], 4);
    // Removed, C holds nothing back: the status stops naming it.
    await waitFor(async () => !(await runCli(['status'], { socket: a.socket })).stdout.toString('utf8').includes('blocked by'), {
      deadlineMs: 20_000,
      what: "A's status to stop naming a blocking node once C is removed",
    });

    // node leave: commits B's removal at once, then waits for the hand-off. The change that
    // removed dead C does not wait for C (a departed source that is down is skipped), so the
    // hand-off completes and B stops.
    const leaving = spawnCli(['node', 'leave'], { socket: b.socket });
    await waitFor(() => /committed layout version 5/.test(leaving.stderrText()), { deadlineMs: 15_000, what: 'node leave to commit version 5' });
    const left = await withDeadline(leaving.result, 90_000, 'node leave to finish').catch(async (error: unknown) => {
      throw new Error(`${String(error)}\nleave: ${leaving.stderrText()}\nA: ${JSON.stringify(await layoutOf(a))}\n${b.logTail(20)}`);
    });
    assert.equal(left.code, 0, left.stderr);
    await withDeadline(b.exited, 30_000, 'B to stop after its leave');
    assert.deepEqual((await layoutOf(a)).current?.members.map((m) => m.nodeId), [a.nodeId]);
    await refused(a, ['node', 'leave'], 4, /the only one in the layout/);
    await stopCleanly(a);
  });

  it('node leave hands off and stops: the others take its partitions (partition sync), then it exits', async () => {
    const a = await startPeer('A', { args: partitioned() });
    await waitFor(async () => (await layoutOf(a)).current?.version === 1, { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const [b, c] = await Promise.all([startPeer('B', { bootstrap: [a], args: partitioned() }), startPeer('C', { bootstrap: [a], args: partitioned() })]);
    await waitLinked([[a, b], [a, c]]);
    const settled = async (nodes: NodeProcess[], members: number): Promise<void> =>
      waitFor(
        async () =>
          (await Promise.all(nodes.map((n) => layoutOf(n)))).every((l) => l.active.length === 1 && l.current?.members.length === members),
        { deadlineMs: 60_000, what: `one active layout of ${members} members on ${nodes.map((n) => n.name).join(', ')}` },
      );
    await settled([a, b, c], 3);
    for (let i = 0; i < 20; i++) await c.client.put(`leave/${i}`, Buffer.from(`v${i}`));

    const leaving = spawnCli(['node', 'leave'], { socket: c.socket });
    const left = await withDeadline(leaving.result, 90_000, 'node leave to finish').catch(async (error: unknown) => {
      throw new Error(`${String(error)}\nleave: ${leaving.stderrText()}\nA: ${JSON.stringify(await layoutOf(a))}\n${c.logTail(20)}`);
    });
    assert.equal(left.code, 0, left.stderr);
    assert.match(left.stderr, /committed layout version \d+; waiting/);
    assert.match(left.stdout.toString('utf8'), /left the cluster; stopping/);
    await withDeadline(c.exited, 30_000, 'C to stop after its leave');
    await settled([a, b], 2);
    // Every key C took is on the remaining two (K = 2 of 2 nodes: both own every partition).
    for (const node of [a, b]) {
      for (let i = 0; i < 20; i++) {
        const got = await runCli(['get', `leave/${i}`], { socket: node.socket });
        assert.equal(got.code, 0, `${node.name} leave/${i}: ${got.stderr}`);
      }
    }
    await Promise.all([stopCleanly(a), stopCleanly(b)]);
  });

  it('the plan says what moves where with sizes (keys, bytes; per partition with --partitions), also from sizes another node reported', async () => {
    const a = await startPeer('A', { args: partitioned() });
    await waitFor(async () => (await layoutOf(a)).current?.version === 1, { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const keys = 200;
    for (let i = 0; i < keys; i++) assert.equal((await runCli(['put', `size/${i}`, 'x'.repeat(100)], { socket: a.socket })).code, 0);
    const b = await startPeer('B', { bootstrap: [a], args: partitioned('--no-auto-join') });
    await waitLinked([[a, b]]);

    // A stages B's join: K = 2 of 2, so B receives every partition, all of it from A.
    await layoutOf(a, 'add', b.nodeId);
    let plan: SizedPlan | undefined;
    await waitFor(
      async () => {
        plan = (await layoutOf(a)).plan!;
        return plan.bytesMoved > 0;
      },
      { deadlineMs: 20_000, what: "A's plan to have bytes (the store's size measured)" },
    );
    assert.equal(plan!.keysMoved, keys);
    assert.deepEqual(plan!.transfers.map((t) => ({ from: t.from, to: t.to, partitions: t.partitions, keys: t.keys })), [{ from: [a.nodeId], to: b.nodeId, partitions: 256, keys }]);
    assert.ok(plan!.transfers[0]!.bytes >= keys * 100, `bytes ${plan!.transfers[0]!.bytes} < the values' bytes`);
    assert.equal(plan!.moves, undefined, 'per-partition detail only with --partitions');
    const detailed = (await layoutOf(a, '--partitions')) as unknown as { plan: SizedPlan; partitions: { partition: number; owners: string[]; keys: number }[] };
    assert.equal(detailed.plan.moves!.length, 256);
    assert.equal(detailed.plan.moves!.reduce((sum, m) => sum + m.keys, 0), keys);
    assert.ok(detailed.plan.moves!.every((m) => m.gaining.length === 1 && m.gaining[0] === b.nodeId));
    assert.equal(detailed.partitions.length, 256);
    assert.ok(detailed.partitions.every((p) => p.owners.length === 1 && p.owners[0] === a.nodeId));
    assert.equal(detailed.partitions.reduce((sum, p) => sum + p.keys, 0), keys);
    const text = (await runCli(['layout', '--partitions'], { socket: a.socket })).stdout.toString('utf8');
    assert.match(text, new RegExp(`moves: ${keys} keys, [0-9.]+ (B|KiB|MiB) in all \\(sizes as 1 node reported them; bytes estimated\\)`));
    assert.match(text, new RegExp(`  ${b.nodeId} +256 +${keys} +[0-9.]+ (B|KiB|MiB)  ${a.nodeId}`));
    assert.match(text, /^partition {2}keys {8}bytes {2}owners$/m);
    await layoutOf(a, 'revert');

    // B holds nothing; staged on B, its plan's sizes are those A reported in layout gossip.
    await layoutOf(b, 'add', b.nodeId);
    await waitFor(async () => (await layoutOf(b)).plan?.keysMoved === keys, { deadlineMs: 30_000, what: "B's plan to have A's reported sizes" });
    await Promise.all([stopCleanly(b), stopCleanly(a)]);
  });

  it('staged changes are kept across a restart (kill -9 included) until applied or reverted', async () => {
    const a = await startPeer('A', { args: partitioned() });
    await waitFor(async () => (await layoutOf(a)).current?.version === 1, { deadlineMs: 15_000, what: 'A to make layout version 1' });
    const absent = '00000000000000ab';
    await layoutOf(a, 'add', absent, '--weight', '3');
    const staged = await layoutOf(a, 'replicas', '1');
    assert.deepEqual(staged.staged, [{ nodeId: absent, weight: 3 }]);
    assert.equal(staged.stagedReplicas, 1);

    // The reply comes once the staged changes are on disk: even kill -9 keeps them.
    await a.kill();
    const a2 = await a.respawn();
    await waitFor(async () => (await layoutOf(a2)).current?.version === 1, { deadlineMs: 15_000, what: 'A to restore its layout' });
    const restored = await layoutOf(a2);
    assert.deepEqual(restored.staged, staged.staged, 'staged members kept');
    assert.equal(restored.stagedReplicas, 1, 'staged K kept');
    assert.equal(restored.plan?.of, 'staged');
    assert.match((await runCli(['layout'], { socket: a2.socket })).stdout.toString('utf8'), new RegExp(`staged \\(ckv layout apply[^\\n]*\\n {2}add ${absent} weight 3\\n {2}replicas 1`));

    // A revert is kept too: after a clean restart nothing is staged.
    assert.deepEqual((await layoutOf(a2, 'revert')).staged, []);
    await stopCleanly(a2);
    const a3 = await a2.respawn();
    await waitFor(async () => (await layoutOf(a3)).current?.version === 1, { deadlineMs: 15_000, what: 'A to restore its layout again' });
    const after = await layoutOf(a3);
    assert.deepEqual(after.staged, []);
    assert.equal(after.stagedReplicas, null);
    await stopCleanly(a3);
  });

  it('a full-replication node refuses layout commands (exit 4, the one not-partitioned error)', async () => {
    const full = await startNode({ name: 'F', args: fast, readyDeadlineMs: 30_000 });
    const notPartitioned = (what: string) => new RegExp(`^ckv: ckv ${what} is for partitioned mode \\(--replicas K\\); this node runs in full-replication mode`);
    await refused(full, ['layout'], 4, notPartitioned('layout'));
    await refused(full, ['layout', 'add', full.nodeId], 4, notPartitioned('layout add'));
    await refused(full, ['layout', 'apply'], 4, notPartitioned('layout apply'));
    await refused(full, ['node', 'leave'], 4, notPartitioned('node leave'));
    await refused(full, ['node', 'remove', '00000000000000ab'], 4, notPartitioned('node remove'));
    assert.equal((await full.status()).partitioned, null);
    await stopCleanly(full);
  });

  it('a member forging layout acks about another node is refused and counted; garbage and bad signatures too', async () => {
    const target = await startPeer('target', { args: partitioned() });
    const victim = await startPeer('victim', { bootstrap: [target], args: partitioned() });
    await waitMesh([target, victim]);
    await waitFor(async () => (await layoutOf(target)).current?.members.length === 2, { deadlineMs: 20_000, what: 'the victim to join' });
    const layout = await layoutOf(target);

    // A raw libp2p node that is a member: it names a node id in its agent string and speaks the sync protocol.
    const privateKey = await generateKeyPair('Ed25519');
    const topic = gossipTopic('default');
    const raw = await createNetwork({
      privateKey,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      mdns: false,
      gossipTopic: topic,
      userAgent: agentString('00000000000000ab', 1),
    });
    try {
      await raw.handle(syncProtocolId('default'), (stream) => void stream.close());
      await raw.dial(multiaddr(target.address));
      await waitFor(async () => (await target.peers()).some((p) => p.peerId === raw.peerId.toString() && p.state === 'up'), {
        deadlineMs: 15_000,
        what: 'the raw node to be a member of the target',
      });
      const pubsub = raw.services.pubsub;
      pubsub.subscribe(topic);
      await waitFor(() => pubsub.getSubscribers(topic).some((p) => p.toString() === target.peerId), { deadlineMs: 10_000, what: 'the target subscribed' });

      const digest = layout.current!.digest;
      const forgedAck = encodeLayoutEnvelope({
        seq: 1,
        parts: [{ kind: 'message', message: { type: 'ack', ack: { nodeId: victim.nodeId, version: layout.current!.version, digest, partitions: partitionBitmap([]), switched: true } } }],
      });
      const forgedJoin = encodeLayoutEnvelope({ seq: 2, parts: [{ kind: 'join', join: { nodeId: victim.nodeId, weight: 9, replicas: 2 } }] });
      const sign = async (body: Uint8Array): Promise<Uint8Array> => privateKey.sign(layoutSignedBytes(body));
      const messages = [
        encodeGossip({ type: 'layout', peerId: raw.peerId.toString(), body: forgedAck, signature: await sign(forgedAck) }),
        encodeGossip({ type: 'layout', peerId: raw.peerId.toString(), body: forgedJoin, signature: await sign(forgedJoin) }),
        // Signed by the raw key but naming the victim's peer id: a bad signature.
        encodeGossip({ type: 'layout', peerId: victim.peerId, body: forgedAck, signature: await sign(forgedAck) }),
        // Well signed garbage.
        encodeGossip({ type: 'layout', peerId: raw.peerId.toString(), body: Uint8Array.from([1, 3, 1, 9, 0]), signature: await sign(Uint8Array.from([1, 3, 1, 9, 0])) }),
      ];
      const before = counter(await target.status(), 'layout_rejected');
      for (const data of messages) await pubsub.publish(topic, data);
      await waitFor(async () => counter(await target.status(), 'layout_rejected') - before >= messages.length, {
        deadlineMs: 10_000,
        what: `layout_rejected to rise by ${messages.length}`,
      });
      const afterwards = await layoutOf(target);
      assert.equal(afterwards.current?.version, layout.current!.version, 'nothing changed');
      assert.equal(afterwards.current?.members.find((m) => m.nodeId === victim.nodeId)?.weight, 1, 'the forged join changed no weight');
      assert.equal(target.process.exitCode, null);
    } finally {
      await raw.stop();
    }
    await stopCleanly(victim);
    await stopCleanly(target);
  });
});
