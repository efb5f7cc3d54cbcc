/**
 * When a running node saves a checkpoint (src/core/checkpoint-schedule.ts): after a quiet
 * timed from a look that saw the change count still, at once after a start or a large
 * change, after the interval for a trickle, never with nothing changed, again after a
 * failure only once the interval has passed, and never two at a time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointSchedule } from '../../src/core/checkpoint-schedule.js';

const options = { quietMs: 1000, entriesMin: 100, intervalMs: 30_000 };

/** Looks every `stepMs` from `fromMs` while the count is `changes`; the first time due, or undefined. */
function firstDue(schedule: CheckpointSchedule, fromMs: number, toMs: number, changes: number, stepMs = 100): number | undefined {
  for (let t = fromMs; t <= toMs; t += stepMs) if (schedule.due(t, changes)) return t;
  return undefined;
}

describe('CheckpointSchedule', () => {
  it('saves once quiet after a start, timed from the first look that saw the count still', () => {
    const schedule = new CheckpointSchedule(options);
    assert.equal(schedule.due(0, 0), false); // first look: the count "moved" (from nothing)
    // Quiet from the look at 100 ms: due at 1100 ms.
    assert.equal(firstDue(schedule, 100, 5000, 0), 1100);
  });

  it('waits while the count moves, then saves a large change at once and a trickle after the interval', () => {
    const schedule = new CheckpointSchedule(options);
    schedule.due(0, 0);
    assert.equal(firstDue(schedule, 100, 5000, 0), 1100);
    schedule.saved(1100, 0);
    // Nothing changed: never.
    assert.equal(firstDue(schedule, 1200, 100_000, 0, 1000), undefined);
    // A burst, the count moving at every look from 3000 to 5100 ms (500 at the last): due 1 s
    // after the first look that saw it still (5200 ms).
    for (let t = 3000, changes = 1; t <= 5000; t += 100, changes += 20) assert.equal(schedule.due(t, changes), false);
    const after = firstDue(schedule, 5100, 10_000, 500);
    assert.equal(after, 6200);
    schedule.saved(after!, 500);
    // A trickle of 3 changes: due only 30 s after that save.
    schedule.due(7000, 503);
    assert.equal(firstDue(schedule, 7100, 100_000, 503), after! + 30_000);
  });

  it('after a failure tries again only after the interval, and never two saves at a time', () => {
    const schedule = new CheckpointSchedule(options);
    schedule.due(0, 10);
    assert.equal(firstDue(schedule, 100, 5000, 10), 1100);
    // Saving: not due again until it ends.
    assert.equal(firstDue(schedule, 1200, 60_000, 10, 1000), undefined);
    schedule.failed(61_000);
    assert.equal(firstDue(schedule, 61_100, 200_000, 10, 100), 91_000);
  });

  it('wakeAtMs says when a save may be due', () => {
    const schedule = new CheckpointSchedule(options);
    assert.equal(schedule.wakeAtMs(0, 0), 250); // the count just seen: look again soon
    assert.equal(schedule.wakeAtMs(250, 0), 1250); // quiet since this look
    assert.equal(schedule.due(2000, 0), true);
    assert.equal(schedule.wakeAtMs(2000, 0), Number.POSITIVE_INFINITY); // saving
    schedule.saved(2050, 0);
    assert.equal(schedule.wakeAtMs(3000, 0), Number.POSITIVE_INFINITY); // nothing changed
    assert.equal(schedule.wakeAtMs(4000, 5), 4250); // moved: look again soon
    assert.equal(schedule.wakeAtMs(5000, 5), 32_050); // a trickle: the interval after the save
  });
});
