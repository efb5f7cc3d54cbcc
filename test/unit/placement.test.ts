import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { keyHashText } from '../../src/core/entry.js';
import { FullReplication, holds, layoutOf, partitionCount, shareAnyPartition } from '../../src/core/placement.js';

describe('FullReplication', () => {
  const placement = new FullReplication();

  it('has 256 partitions, and a key falls in the one named by its hash\'s first two hex digits', () => {
    assert.equal(placement.partitions().length, partitionCount);
    assert.equal(partitionCount, 256);
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64 }), (key) => {
        const hash = keyHashText(key);
        const partition = placement.partitionOf(hash);
        assert.ok(partition >= 0 && partition < partitionCount);
        assert.equal(partition.toString(16).padStart(2, '0'), Buffer.from(hash, 'latin1').toString('hex').slice(0, 2));
      }),
    );
  });

  it('every node of the layout owns every partition', () => {
    const layout = layoutOf(3, ['b', 'a', 'c', 'a']);
    assert.deepEqual(layout.nodes, ['a', 'b', 'c']);
    for (const partition of placement.partitions()) assert.deepEqual(placement.ownersOf(partition, layout), ['a', 'b', 'c']);
    assert.ok(holds(placement, layout, 'b', keyHashText('k')));
    assert.ok(!holds(placement, layout, 'z', keyHashText('k')));
    assert.ok(shareAnyPartition(placement, layout, 'a', 'c'));
    assert.throws(() => placement.ownersOf(256, layout), /out of range/);
  });
});
