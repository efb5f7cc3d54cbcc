/**
 * IdentifyWatch (src/net/identify-watch.ts) with a fake clock: a connected peer that is not a
 * member is identified again on the schedule, then hung up on if identify never succeeded; a
 * foreign peer is left connected; a peer that becomes a member or disconnects is forgotten.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IdentifyWatch } from '../../src/net/identify-watch.js';

const delays = [2_000, 6_000, 15_000];

/** Runs check every second from `fromMs` to `toMs` with the same strangers; every action with its time. */
function run(watch: IdentifyWatch, strangers: string[], fromMs: number, toMs: number): { identify: number[]; hangUp: number[] } {
  const seen = { identify: [] as number[], hangUp: [] as number[] };
  for (let t = fromMs; t <= toMs; t += 1_000) {
    const actions = watch.check(strangers, t);
    for (const _ of actions.identify) seen.identify.push(t);
    for (const _ of actions.hangUp) seen.hangUp.push(t);
  }
  return seen;
}

describe('identify watch', () => {
  it('identifies a stranger again after each delay, then hangs up once', () => {
    const watch = new IdentifyWatch(delays);
    const seen = run(watch, ['p1'], 0, 60_000);
    assert.deepEqual(seen.identify, [2_000, 8_000, 23_000]);
    assert.deepEqual(seen.hangUp, [38_000]);
    assert.equal(watch.size, 1, 'still connected: watched (bounded by connections) but no more actions');
  });

  it('a foreign peer is asked again on the schedule but never hung up on', () => {
    const watch = new IdentifyWatch(delays);
    watch.check(['f'], 0);
    watch.foreign('f');
    const seen = run(watch, ['f'], 1_000, 60_000);
    assert.deepEqual(seen.identify, [2_000, 8_000, 23_000]);
    assert.deepEqual(seen.hangUp, []);
  });

  it('a peer that becomes a member or disconnects is forgotten; seen again, it starts over', () => {
    const watch = new IdentifyWatch(delays);
    run(watch, ['a', 'b'], 0, 3_000);
    assert.equal(watch.size, 2);
    watch.check(['b'], 4_000);
    assert.equal(watch.size, 1, 'a became a member');
    watch.check([], 5_000);
    assert.equal(watch.size, 0);
    const seen = run(watch, ['a'], 10_000, 12_000);
    assert.deepEqual(seen.identify, [12_000], 'the schedule starts again from when it is seen again');
  });

  it('foreign() of a peer not watched is ignored', () => {
    const watch = new IdentifyWatch(delays);
    watch.foreign('nobody');
    assert.equal(watch.size, 0);
  });
});
