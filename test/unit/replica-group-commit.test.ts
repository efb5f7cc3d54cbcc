/**
 * Group commit without a timer (src/core/replica.ts, flushLoop): a write that finds the replica
 * idle is committed at once, and writes that arrive while a commit is in flight wait for it and
 * then go to the store together, as one batch. An idle put's acknowledgement depends on the
 * first half (no window to wait out), throughput under load on the second. Commits are counted
 * by the store's write() calls, held open by a gate; nothing here depends on time: "at once"
 * means within microtasks, before any timer or setImmediate callback could run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, HashText } from '../../src/core/entry.js';
import { hlcPack, type Hlc } from '../../src/core/hlc.js';
import { Replica } from '../../src/core/replica.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';
const baseMs = 1_700_000_000_000;

/** A memory store that records the keys of each write() (one commit each) and can hold writes open. */
class GatedStore extends MemoryStore {
  readonly batches: string[][] = [];
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  /** Writes from now on wait until release(). */
  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    const open = this.openGate;
    this.gate = undefined;
    this.openGate = undefined;
    open?.();
  }

  override async write(entries: readonly Entry[], hlcLast: Hlc, keyHashes?: readonly HashText[]): Promise<void> {
    this.batches.push(entries.map((entry) => entry.key));
    if (this.gate) await this.gate;
    await super.write(entries, hlcLast, keyHashes);
  }
}

/**
 * Yields microtasks (never a macrotask turn) until `condition` holds; fails if it does not
 * within `yields` of them. A commit that waited on a timer or an event-loop turn fails here.
 */
async function withinMicrotasks(condition: () => boolean, what: string, yields = 200): Promise<void> {
  for (let i = 0; i < yields; i++) {
    if (condition()) return;
    await Promise.resolve();
  }
  assert.fail(`${what}: not within ${yields} microtasks`);
}

/** Yields `yields` microtasks, so that anything the replica would start at once has started. */
async function yieldMicrotasks(yields = 200): Promise<void> {
  for (let i = 0; i < yields; i++) await Promise.resolve();
}

describe('Replica group commit', () => {
  it('commits a write to an idle replica at once, and batches what arrives while a commit is in flight', async () => {
    const store = new GatedStore();
    const replica = await Replica.open({ nodeId: nodeA, store, wallClockMs: () => baseMs });

    store.hold();
    const first = replica.put('first', value('1'));
    await withinMicrotasks(() => store.batches.length === 1, 'the first write reaches the store');
    assert.deepEqual(store.batches[0], ['first']);

    // While that commit is in flight: local puts, a writeMany, a delete and a remote entry.
    const later = [
      replica.put('b', value('b')),
      replica.put('c', value('c')),
      replica.writeMany([
        { key: 'd', value: value('d') },
        { key: 'e', value: value('e') },
      ]),
      replica.delete('f'),
      replica.applyRemote([{ key: 'r', value: value('r'), version: { hlc: hlcPack(baseMs - 1, 0), node: nodeB } }]),
    ];
    await yieldMicrotasks();
    assert.equal(store.batches.length, 1, 'nothing else is committed while a commit is in flight');
    assert.equal(replica.queuedCalls, 5, 'the five calls wait for the next commit');

    store.release();
    await first;
    await withinMicrotasks(() => store.batches.length === 2, 'the queued writes follow the first commit at once');
    assert.deepEqual([...store.batches[1]!].sort(), ['b', 'c', 'd', 'e', 'f', 'r'], 'everything queued meanwhile is one batch');
    store.release();
    const [b, c, many, f, report] = await Promise.all(later);
    assert.ok(b && c && f, 'the queued writes are acknowledged');
    assert.equal((many as unknown[]).length, 2);
    assert.equal((report as { applied: number }).applied, 1);
    assert.equal(store.batches.length, 2, 'two commits in all');
    assert.equal(replica.queuedCalls, 0);

    // Idle again: the next write does not wait for company either.
    const next = replica.put('next', value('n'));
    await withinMicrotasks(() => store.batches.length === 3, 'a write to the idle replica reaches the store');
    assert.deepEqual(store.batches[2], ['next']);
    await next;
    assert.equal((await replica.get('next'))?.key, 'next');
    await replica.close();
  });
});
