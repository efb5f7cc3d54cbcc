import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sameRoot } from '../../src/core/replica.js';
import { allEntries, memoryReplica, syncPair, value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';

describe('sync session over a lossless in-memory pair', () => {
  it('settles equal trees in one round trip under 200 bytes', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (let i = 0; i < 500; i++) {
      const version = await a.put(`k${i}`, value(`v${i}`));
      await b.applyRemote([{ key: `k${i}`, value: value(`v${i}`), version }]);
    }
    const result = await syncPair(a, b);
    assert.equal(result.initiator.outcome, 'in-sync');
    assert.equal(result.initiator.rounds, 1);
    assert.ok(result.bytesToResponder + result.bytesToInitiator < 200, `${result.bytesToResponder + result.bytesToInitiator} bytes`);
  });

  it('a new node gets everything without descending the tree', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (let i = 0; i < 2000; i++) await b.put(`key-${i}`, value(`value-${i}`));
    const result = await syncPair(a, b);
    assert.equal(result.initiator.outcome, 'synced');
    assert.equal(result.initiator.rounds, 1);
    assert.equal(result.initiator.entriesReceived, 2000);
    assert.ok(sameRoot(a, b));
  });

  it('an empty responder receives everything from the initiator', async () => {
    const a = await memoryReplica(nodeA);
    const b = await memoryReplica(nodeB);
    for (let i = 0; i < 300; i++) await a.put(`key-${i}`, value(`value-${i}`));
    const result = await syncPair(a, b);
    assert.equal(result.responder.entriesReceived, 300);
    assert.ok(sameRoot(a, b));
  });

  it('two replicas with random differences end identical, within depth + 2 round trips', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(400), fc.constantFrom('a', 'b', 'both'), fc.boolean()), { maxLength: 300 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        async (ops, salt) => {
          const clock = { ms: 1_700_000_000_000 };
          const a = await memoryReplica(nodeA, clock);
          const b = await memoryReplica(nodeB, clock);
          for (let i = 0; i < 200; i++) {
            const version = await a.put(`shared-${i}`, value('s'));
            await b.applyRemote([{ key: `shared-${i}`, value: value('s'), version }]);
          }
          for (const [k, side, del] of ops) {
            clock.ms += 1;
            const key = `k${k}`;
            for (const r of side === 'both' ? [a, b] : side === 'a' ? [a] : [b]) {
              if (del) await r.delete(key);
              else await r.put(key, value(`${r.nodeId}-${clock.ms}`));
            }
          }
          const result = await syncPair(a, b, salt);
          assert.ok(result.initiator.rounds <= a.depth + 2, `rounds ${result.initiator.rounds}`);
          assert.ok(sameRoot(a, b), 'roots differ after one session');
          assert.deepEqual(await allEntries(a), await allEntries(b));
        },
      ),
      { numRuns: 40 },
    );
  });
});
