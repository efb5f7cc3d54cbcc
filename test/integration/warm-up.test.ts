/**
 * The warm-up of a fresh node (src/node/warm-up.ts) in a real process: a node left idle after
 * its start runs it to the end (counted in Status, logged) without a trace in its data (no
 * key, no tombstone, its scratch store gone); a node written to at once gives way (counted as
 * interrupted) and holds exactly what it was sent.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { counter, startNode, tempDir, waitFor, type NodeProcess } from '../../harness/testing.js';

describe('warm-up of a fresh node', () => {
  const nodes: NodeProcess[] = [];
  after(async () => {
    for (const node of nodes) await node.stop();
  });

  it('runs while the node is idle and leaves nothing in its data', async () => {
    const dataDir = tempDir('ckv-warm-up-');
    const node = await startNode({ name: 'idle', dataDir });
    nodes.push(node);
    await waitFor(async () => counter(await node.status(), 'warmup_done') === 1, { deadlineMs: 30_000, what: 'the warm-up to end' });
    assert.match(node.stderrText(), /warm-up outcome=done ms=\d+/);
    const status = await node.status();
    assert.equal(status.keyCount, '0');
    assert.equal(status.tombstoneCount, '0');
    assert.equal(counter(status, 'warmup_interrupted') + counter(status, 'warmup_failed'), 0);
    assert.equal(existsSync(join(dataDir, 'warm-up')), false, 'its scratch store is removed');
    assert.equal((await node.client.get('warm-up/local/0')).found, false);
    await node.client.put('after', Buffer.from('v'));
    assert.equal((await node.client.get('after')).value.toString(), 'v');
  });

  it('gives way to writes that come first, which are all stored', async () => {
    const dataDir = tempDir('ckv-warm-up-');
    // A long warm-up: whenever it begins, the writes below come during it or before it.
    const node = await startNode({ name: 'busy', dataDir, args: ['--warm-up-entries', '100000'] });
    nodes.push(node);
    const puts = Array.from({ length: 500 }, (_, i) => ({ key: `k/${i}`, value: Buffer.from(`v${i}`) }));
    const reply = await node.client.putMany(puts);
    assert.ok(reply.results.every((result) => result.error === ''));
    await waitFor(async () => counter(await node.status(), 'warmup_interrupted') === 1, { deadlineMs: 30_000, what: 'the warm-up to give way' });
    const status = await node.status();
    assert.equal(counter(status, 'warmup_done'), 0);
    assert.equal(status.keyCount, '500');
    assert.equal((await node.client.get('k/499')).value.toString(), 'v499');
    await waitFor(() => !existsSync(join(dataDir, 'warm-up')), { deadlineMs: 10_000, what: 'the scratch store to be removed' });
  });
});
