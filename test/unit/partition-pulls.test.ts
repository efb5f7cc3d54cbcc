/**
 * The pull loop's choice of the source that sends a partition whole (wave one): spread over
 * the sources by partition, and moved to another source when one is down or failing, so a
 * transfer cut by a dead source resumes from another.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { firstSource } from '../../src/net/partition-pulls.js';

const pull = (partition: number, sources: string[]) => ({ version: 2, partition, sources, departed: [] });

describe('pull sources', () => {
  it('wave one spreads partitions over the sources', () => {
    const sources = ['a', 'b', 'c'];
    const chosen = [0, 1, 2, 3, 4, 5].map((p) => firstSource(pull(p, sources), () => true));
    assert.deepEqual(chosen, ['a', 'b', 'c', 'a', 'b', 'c']);
    assert.equal(firstSource(pull(7, []), () => true), undefined);
  });

  it('skips a source that is down or failing, and falls back to the usual one when none is usable', () => {
    const sources = ['a', 'b', 'c'];
    assert.equal(firstSource(pull(1, sources), (nodeId) => nodeId !== 'b'), 'c');
    assert.equal(firstSource(pull(2, sources), (nodeId) => nodeId === 'a'), 'a');
    assert.equal(firstSource(pull(1, sources), () => false), 'b');
  });
});
