/**
 * The bench's ChangeRecorder.whenSeen (bench/lib/watch.ts), which the one-at-a-time
 * convergence run waits on: nodes here are stubs whose Watch streams deliver what the test
 * says (a put on any stub reaches every stream, as in a cluster, so start()'s probes work).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeProcess } from '../../harness/index.js';
import { ChangeRecorder } from '../../bench/lib/watch.js';

interface Change {
  key: string;
  origin: string;
}

class StubStream implements AsyncIterable<Change> {
  private readonly queue: Change[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  push(change: Change): void {
    this.queue.push(change);
    this.wake?.();
  }
  cancel(): void {
    this.ended = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Change> {
    for (;;) {
      const next = this.queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((done) => (this.wake = done));
      this.wake = undefined;
    }
  }
}

function stubCluster(count: number): { nodes: NodeProcess[]; streams: StubStream[] } {
  const streams: StubStream[] = [];
  const nodes = Array.from({ length: count }, (_, i) => ({
    name: `s${i}`,
    client: {
      watch: () => {
        const stream = new StubStream();
        streams[i] = stream;
        return stream;
      },
      put: async (key: string) => {
        for (const stream of streams) stream.push({ key, origin: `s${i}` });
        return {};
      },
    },
  }));
  return { nodes: nodes as unknown as NodeProcess[], streams };
}

describe('ChangeRecorder.whenSeen', () => {
  it('resolves true once every listed node has delivered the key, not before', { timeout: 10_000 }, async () => {
    const { nodes, streams } = stubCluster(3);
    const recorder = new ChangeRecorder(nodes, 'p/');
    await recorder.start(5000);
    let settled: boolean | undefined;
    const waiting = recorder.whenSeen('p/k', [1, 2], 5000).then((seen) => (settled = seen));
    streams[1]!.push({ key: 'p/k', origin: 's0' });
    await new Promise((done) => setTimeout(done, 20));
    assert.equal(settled, undefined, 'one of two nodes has it');
    streams[2]!.push({ key: 'p/k', origin: 's0' });
    await waiting;
    assert.equal(settled, true);
    assert.equal(await recorder.whenSeen('p/k', [1, 2], 5000), true, 'already seen: at once');
    await recorder.stop();
  });

  it('resolves false at its deadline when a node never delivers, and at stop()', { timeout: 10_000 }, async () => {
    const { nodes, streams } = stubCluster(3);
    const recorder = new ChangeRecorder(nodes, 'p/');
    await recorder.start(5000);
    streams[1]!.push({ key: 'p/late', origin: 's0' });
    assert.equal(await recorder.whenSeen('p/late', [1, 2], 50), false);
    const pending = recorder.whenSeen('p/never', [1, 2], 60_000);
    assert.throws(() => void recorder.whenSeen('p/never', [1], 1000), /already waiting/);
    await recorder.stop();
    assert.equal(await pending, false);
  });
});
