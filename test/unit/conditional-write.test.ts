/**
 * Conditional writes in the replica (put/delete with ifVersion or ifAbsent): checked against
 * the version the node holds when the write is merged, atomically with the write, including
 * against earlier writes of the same batch; a failed condition writes nothing, stamps
 * nothing, and names what the node holds. Plus the version text the conditions are given in.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseVersionText, versionToText, type Version } from '../../src/core/entry.js';
import { ConditionFailedError } from '../../src/core/errors.js';
import { hlcPack } from '../../src/core/hlc.js';
import { memoryReplica, value } from '../helpers/replicas.js';

const nodeA = '00000000000000aa';
const nodeB = '00000000000000bb';

async function text(replica: Awaited<ReturnType<typeof memoryReplica>>, key: string): Promise<string | null | undefined> {
  const entry = await replica.get(key);
  return entry === undefined ? undefined : entry.value === null ? null : Buffer.from(entry.value).toString();
}

function conditionFailure(error: unknown): ConditionFailedError {
  assert.ok(error instanceof ConditionFailedError, `expected ConditionFailedError, got ${String(error)}`);
  return error;
}

describe('version text', () => {
  it('round-trips a version and refuses anything else', () => {
    const version: Version = { hlc: hlcPack(1_700_000_000_123, 7), node: nodeA };
    assert.equal(versionToText(version), `1700000000123.7@${nodeA}`);
    assert.deepEqual(parseVersionText(versionToText(version)), version);
    for (const bad of ['', '1.2', `1.2@`, `x.1@${nodeA}`, `1.99999@${nodeA}`, `1.2@NODE`, `1.2@${nodeA} `, `99999999999999999.0@${nodeA}`]) {
      assert.equal(parseVersionText(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe('conditional writes', () => {
  it('ifAbsent writes a key that is absent or deleted, and refuses one that holds a value', async () => {
    const replica = await memoryReplica(nodeA);
    const first = await replica.put('k', value('one'), { ifAbsent: true });
    const refused = conditionFailure(await replica.put('k', value('two'), { ifAbsent: true }).catch((e: unknown) => e));
    assert.equal(refused.current, versionToText(first));
    assert.equal(refused.currentDeleted, false);
    assert.match(refused.message, /expected the key to be absent, but its version is .*nothing was written/);
    assert.equal(await text(replica, 'k'), 'one');
    await replica.delete('k');
    await replica.put('k', value('three'), { ifAbsent: true });
    assert.equal(await text(replica, 'k'), 'three');
  });

  it('ifVersion writes only over exactly that version; a refusal stamps and writes nothing', async () => {
    const clock = { ms: 1_700_000_000_000 };
    const replica = await memoryReplica(nodeA, clock);
    const v1 = await replica.put('k', value('one'));
    const v2 = await replica.put('k', value('two'), { ifVersion: v1 });
    const hlcBefore = replica.hlcLast;
    const rootBefore = replica.root();
    const stale = conditionFailure(await replica.put('k', value('three'), { ifVersion: v1 }).catch((e: unknown) => e));
    assert.equal(stale.current, versionToText(v2));
    assert.equal(replica.hlcLast, hlcBefore, 'a refused write issues no stamp');
    assert.deepEqual(replica.root(), rootBefore, 'a refused write changes nothing');
    assert.equal(await text(replica, 'k'), 'two');
    // Another node's version with the same stamp is another version.
    const otherNode = conditionFailure(await replica.put('k', value('x'), { ifVersion: { hlc: v2.hlc, node: nodeB } }).catch((e: unknown) => e));
    assert.equal(otherNode.current, versionToText(v2));
    const absent = conditionFailure(await replica.put('nothing-here', value('x'), { ifVersion: v2 }).catch((e: unknown) => e));
    assert.equal(absent.current, undefined);
    assert.match(absent.message, /the key is absent/);
  });

  it('delete with ifVersion deletes only that version, and names a tombstone it finds', async () => {
    const replica = await memoryReplica(nodeA);
    const v1 = await replica.put('k', value('one'));
    const v2 = await replica.put('k', value('two'));
    conditionFailure(await replica.delete('k', { ifVersion: v1 }).catch((e: unknown) => e));
    assert.equal(await text(replica, 'k'), 'two');
    const tomb = await replica.delete('k', { ifVersion: v2 });
    assert.equal(await text(replica, 'k'), null);
    const again = conditionFailure(await replica.delete('k', { ifVersion: v2 }).catch((e: unknown) => e));
    assert.equal(again.current, versionToText(tomb));
    assert.equal(again.currentDeleted, true);
    assert.match(again.message, /it was deleted at version/);
  });

  it('is atomic within one batch: of two racing conditional puts on one version, exactly one wins', async () => {
    const replica = await memoryReplica(nodeA);
    const v1 = await replica.put('k', value('base'));
    // Queued in the same turn: they are merged in one commit, in call order.
    const outcomes = await Promise.allSettled([
      replica.put('k', value('first'), { ifVersion: v1 }),
      replica.put('k', value('second'), { ifVersion: v1 }),
      replica.put('fresh', value('a'), { ifAbsent: true }),
      replica.put('fresh', value('b'), { ifAbsent: true }),
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected'],
    );
    conditionFailure((outcomes[1] as PromiseRejectedResult).reason);
    assert.equal(await text(replica, 'k'), 'first');
    assert.equal(await text(replica, 'fresh'), 'a');
  });

  it('writeMany checks each write on its own, in order, and reports a refusal in its slot', async () => {
    const replica = await memoryReplica(nodeA);
    const v1 = await replica.put('a', value('1'));
    const results = await replica.writeMany([
      { key: 'a', value: value('2'), condition: { ifVersion: v1 } },
      { key: 'a', value: value('3'), condition: { ifVersion: v1 } },
      { key: 'b', value: value('x'), condition: { ifAbsent: true } },
      { key: 'b', value: null, condition: { ifAbsent: true } },
    ]);
    assert.ok(!(results[0] instanceof Error));
    conditionFailure(results[1]);
    assert.ok(!(results[2] instanceof Error));
    conditionFailure(results[3]);
    assert.equal(await text(replica, 'a'), '2');
    assert.equal(await text(replica, 'b'), 'x');
  });

  it('a refused condition does not disturb the unconditional writes of the same batch', async () => {
    const replica = await memoryReplica(nodeA);
    await replica.put('k', value('held'));
    const [refused, plain] = await Promise.allSettled([replica.put('k', value('no'), { ifAbsent: true }), replica.put('other', value('yes'))]);
    assert.equal(refused.status, 'rejected');
    assert.equal(plain.status, 'fulfilled');
    assert.equal(await text(replica, 'other'), 'yes');
    assert.equal(replica.entryCount, 2);
  });
});
