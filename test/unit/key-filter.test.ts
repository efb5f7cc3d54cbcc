import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keyHashText } from '../../src/core/entry.js';
import { KeyFilter } from '../../src/core/key-filter.js';

describe('KeyFilter', () => {
  // No false negatives, also across layers; false positives stay rare.
  it('knows every key added, across growth, and rarely claims one it never saw', () => {
    const filter = new KeyFilter();
    assert.equal(filter.mayHave(keyHashText('never')), false, 'an empty filter holds nothing');
    const added = 250_000; // past the first layer (~105k keys)
    for (let i = 0; i < added; i++) filter.add(keyHashText(`key:${i}`));
    for (let i = 0; i < added; i++) assert.ok(filter.mayHave(keyHashText(`key:${i}`)), `key:${i} must be found`);
    let falsePositives = 0;
    const probes = 20_000;
    for (let i = 0; i < probes; i++) if (filter.mayHave(keyHashText(`absent:${i}`))) falsePositives++;
    assert.ok(falsePositives / probes < 0.03, `false positive rate ${falsePositives / probes}`);
    assert.ok(filter.bytes <= 1024 * 1024, `${filter.bytes} bytes for ${added} keys`);
  });

  // A filter always has its first layer (V8 keeps one shape for filters in use: key-filter.ts);
  // saved and restored, an empty one is still empty and still takes keys.
  it('saves and restores an empty filter, and one saved with no layer at all', () => {
    const fresh = new KeyFilter();
    assert.deepEqual(fresh.layerStates().map((layer) => layer.count), [0], 'one empty layer');
    for (const restored of [KeyFilter.fromLayers(fresh.layerStates()), KeyFilter.fromLayers([])]) {
      assert.ok(restored !== undefined);
      assert.equal(restored.mayHave(keyHashText('never')), false);
      restored.add(keyHashText('now'));
      assert.equal(restored.mayHave(keyHashText('now')), true);
      assert.deepEqual(restored.layerStates().map((layer) => layer.count), [1]);
    }
  });

  it('refuses a hash too short to probe', () => {
    assert.throws(() => new KeyFilter().add('short'));
  });
});
