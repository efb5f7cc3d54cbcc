/**
 * `ckv health` on real clusters: healthy (exit 0, every node up and in sync, with its
 * version, keys and disk), a node frozen with SIGSTOP (it stays connected but does not answer:
 * exit 8 naming it), the same node back (healthy again), and a node killed (exit 8, the node
 * unreachable). --json has the shape README "JSON output" describes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, runCli, waitFor } from '../../harness/testing.js';

interface HealthJson {
  healthy: boolean;
  problems: string[];
  members: { nodeId: string; self: boolean; state: string; reported: boolean; keyCount?: number; bytesOnDisk?: number; inSync: boolean; version?: string }[];
}

describe('ckv health', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3);
    await cluster.waitMesh(30_000);
    const { results } = await cluster.nodes[0]!.client.putMany(Array.from({ length: 100 }, (_, i) => ({ key: `h/${i}`, value: new TextEncoder().encode(String(i)) })));
    assert.ok(results.every((r) => r.version));
    await cluster.waitConverged(30_000);
  });
  after(async () => {
    await cluster?.stop();
  });

  const health = (node = 0) => runCli(['health'], { socket: cluster.nodes[node]!.socket, timeoutMs: 30_000 });
  const healthJson = async (node = 0): Promise<{ code: number | null; json: HealthJson }> => {
    const result = await runCli(['health', '--json'], { socket: cluster.nodes[node]!.socket, timeoutMs: 30_000 });
    return { code: result.code, json: JSON.parse(result.stdout.toString()) as HealthJson };
  };

  it('a healthy cluster: exit 0, every node up, answering and in sync', async () => {
    const text = await health();
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout.toString(), /^healthy: 3 of 3 nodes up, data in sync\n/);
    for (const node of cluster.nodes) assert.ok(text.stdout.toString().includes(node.nodeId), `lists ${node.name}`);
    const { code, json } = await healthJson(1);
    assert.equal(code, 0);
    assert.equal(json.healthy, true);
    assert.deepEqual(json.problems, []);
    assert.equal(json.members.length, 3);
    assert.equal(json.members.filter((m) => m.self).length, 1);
    for (const m of json.members) {
      assert.equal(m.state, 'up');
      assert.equal(m.reported, true);
      assert.equal(m.inSync, true);
      assert.equal(m.keyCount, 100, 'a JSON number');
      assert.equal(typeof m.bytesOnDisk, 'number');
      assert.match(m.version ?? '', /^\d+\.\d+\.\d+/);
    }
  });

  it('a frozen node (connected, silent) makes it degraded: exit 8 naming it; thawed, healthy again', async () => {
    const frozen = cluster.nodes[2]!;
    frozen.freeze();
    try {
      const result = await health();
      assert.equal(result.code, 8, result.stderr);
      assert.match(result.stdout.toString(), /^DEGRADED: /);
      assert.match(result.stderr, new RegExp(`^ckv: degraded: .*${frozen.nodeId}.*\\n$`));
    } finally {
      frozen.thaw();
    }
    await waitFor(async () => (await health()).code === 0, { deadlineMs: 30_000, intervalMs: 200, what: 'health to be 0 again after the thaw' });
  });

  it('a killed node makes it degraded: the node is unreachable', async () => {
    const victim = cluster.nodes[2]!;
    await victim.kill();
    let last: HealthJson | undefined;
    await waitFor(
      async () => {
        const { code, json } = await healthJson();
        last = json;
        return code === 8 && json.members.some((m) => m.nodeId === victim.nodeId && m.state === 'unreachable');
      },
      { deadlineMs: 30_000, intervalMs: 200, what: 'health to report the killed node unreachable' },
    );
    assert.equal(last?.healthy, false);
    assert.ok(last?.problems.some((p) => p.includes(victim.nodeId) && p.includes('unreachable')), JSON.stringify(last?.problems));
  });
});
