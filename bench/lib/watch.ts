/**
 * Arrival times of changes on every node, on the bench process's clock: one Watch stream per
 * node (prefix-filtered by the node), and for each key the `performance.now()` at which that
 * node's stream delivered it. With the send time of each put taken on the same clock, the
 * time until node k applied write i is arrival[k][i] - sent[i]: no clock skew between
 * processes enters the figure.
 */
import { performance } from 'node:perf_hooks';
import { waitFor, type NodeProcess } from '../../harness/index.js';

export interface Arrival {
  atMs: number;
  origin: string;
}

export class ChangeRecorder {
  /** Per node (same order as `nodes`): key -> first arrival. */
  readonly arrivals: Map<string, Arrival>[];
  private readonly streams: { cancel(): void }[] = [];
  private readonly ended: Promise<void>[] = [];
  /** whenSeen's waiters, by key (one a key): settled from the stream loop as soon as the last node has it. */
  private readonly waiters = new Map<string, { nodes: number[]; settle: (seen: boolean) => void }>();
  readonly errors: string[] = [];

  constructor(
    readonly nodes: NodeProcess[],
    readonly prefix: string,
  ) {
    this.arrivals = nodes.map(() => new Map());
  }

  /** Opens the streams, then proves each one live: a probe put on every node must reach every stream. */
  async start(timeoutMs: number): Promise<void> {
    this.nodes.forEach((node, index) => {
      const stream = node.client.watch(this.prefix);
      this.streams.push(stream);
      const seen = this.arrivals[index]!;
      this.ended.push(
        (async () => {
          try {
            for await (const change of stream) {
              const atMs = performance.now();
              if (!seen.has(change.key)) {
                seen.set(change.key, { atMs, origin: change.origin });
                const waiter = this.waiters.get(change.key);
                if (waiter !== undefined && waiter.nodes.every((k) => this.arrivals[k]!.has(change.key))) {
                  waiter.settle(true);
                }
              }
            }
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            if (!/cancel/i.test(message)) this.errors.push(`${node.name}: ${message}`);
          }
        })(),
      );
    });
    const probes = this.nodes.map((_, i) => `${this.prefix}probe-${i}`);
    // Stream setup is asynchronous: re-put the probes until every stream has delivered them.
    await waitFor(
      async () => {
        await Promise.all(this.nodes.map((node, i) => node.client.put(probes[i]!, new Uint8Array([i]))));
        for (let wait = 0; wait < 20; wait++) {
          if (this.arrivals.every((seen) => probes.every((p) => seen.has(p)))) return true;
          await new Promise((done) => setTimeout(done, 25));
        }
        return false;
      },
      { what: `watch streams on ${this.nodes.length} nodes to deliver probe writes from every node`, deadlineMs: timeoutMs, intervalMs: 0 },
    );
  }

  /**
   * Resolves true once every node in `nodes` (indexes) has delivered `key`; false after
   * `deadlineMs`, or at stop(). Woken by the streams themselves, so a caller that waits adds
   * no polling. One waiter a key.
   */
  whenSeen(key: string, nodes: readonly number[], deadlineMs: number): Promise<boolean> {
    if (nodes.every((k) => this.arrivals[k]!.has(key))) return Promise.resolve(true);
    if (this.waiters.has(key)) throw new Error(`ChangeRecorder.whenSeen: already waiting for ${key}`);
    return new Promise((resolve) => {
      const settle = (seen: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(key);
        resolve(seen);
      };
      const timer = setTimeout(() => settle(false), deadlineMs);
      this.waiters.set(key, { nodes: [...nodes], settle });
    });
  }

  /** How many of `keys` node `index` has seen. */
  seenCount(index: number, keys: readonly string[]): number {
    const seen = this.arrivals[index]!;
    let count = 0;
    for (const key of keys) if (seen.has(key)) count++;
    return count;
  }

  async stop(): Promise<void> {
    for (const waiter of [...this.waiters.values()]) waiter.settle(false);
    for (const stream of this.streams) stream.cancel();
    await Promise.all(this.ended);
  }
}
