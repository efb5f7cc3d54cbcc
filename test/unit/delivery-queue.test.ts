/**
 * Delivery until acknowledged, the pure queue (src/core/delivery-queue.ts): coalescing per
 * (target, key), backoff bounds with a fake random source, delete-if-unchanged, re-targeting
 * after a layout change, the limits (backpressure, never a dropped row), and persisted rows:
 * round trip, and every malformed or hostile row is refused (undefined), never loaded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeliveryQueue, connectGraceMs, connectRetryMs, decodeHintRow, encodeHintRow, hintRowKey, type DeliveryQueueOptions } from '../../src/core/delivery-queue.js';
import { keyHashText, type Entry } from '../../src/core/entry.js';
import { deliveryLine } from '../../src/http/snapshot.js';
import { seededRng } from '../helpers/core-gen.js';

const a = 'aaaaaaaaaaaaaaaa';
const b = 'bbbbbbbbbbbbbbbb';
const c = 'cccccccccccccccc';
const d = 'dddddddddddddddd';

const entry = (key: string, hlc: bigint, value: string | null = 'v'): Entry => ({
  key,
  value: value === null ? null : new TextEncoder().encode(value),
  version: { hlc, node: '0123456789abcdef' },
});

function queue(options: Partial<DeliveryQueueOptions> = {}): DeliveryQueue {
  return new DeliveryQueue({ rowsMax: 1000, bytesMax: 1 << 20, delayMsMin: 500, delayMsMax: 30_000, batchRowsMax: 100, batchBytesTarget: 1 << 20, random: () => 0.5, ...options });
}

describe('DeliveryQueue', () => {
  it('coalesces per (target, key): a newer version replaces the row, an older or equal one changes nothing', () => {
    const q = queue();
    assert.equal(q.hold(a, entry('k', 10n), 0).put.length, 1);
    assert.equal(q.hold(a, entry('k', 20n), 1).put.length, 1);
    assert.equal(q.hold(a, entry('k', 15n), 2).put.length, 0, 'older: nothing to write');
    assert.equal(q.hold(a, entry('k', 20n), 3).put.length, 0, 'same: nothing to write');
    q.hold(b, entry('k', 10n), 4);
    assert.equal(q.pendingRows, 2, 'one row per (target, key)');
    assert.equal(q.row(a, keyHashText('k'))?.entry.version.hlc, 20n);
    assert.equal(q.row(a, keyHashText('k'))?.sinceMs, 0, 'the age counts from the first pending version');
    for (let i = 0; i < 1000; i++) q.hold(c, entry('same', BigInt(i + 1)), i);
    assert.equal(q.pendingRows, 3, 'bounded by keys, not by writes');
  });

  it('backoff: 500 ms doubling to 30 s, each delay in [d/2, d] whatever the random source says', () => {
    for (const r of [0, 0.999999, 0.5]) {
      const q = queue({ random: () => r });
      q.hold(a, entry('k', 1n), 0);
      let now = 0;
      const delays: number[] = [];
      // The first attempt is one step away; then each failure doubles.
      for (let attempt = 0; attempt < 12; attempt++) {
        const due = q.nextDueMs()!;
        delays.push(due - now);
        now = due;
        assert.equal(q.due(now - 1 + 1).length, 1);
        q.failed(a, now);
      }
      const bases = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000];
      delays.forEach((delay, i) => {
        assert.ok(delay >= bases[i]! / 2 && delay <= bases[i]!, `delay ${i} = ${delay} for random ${r}, base ${bases[i]}`);
      });
    }
    const rng = seededRng(7);
    const q = queue({ random: rng });
    for (let attempt = 0; attempt < 40; attempt++) {
      const delay = q.delayMs(attempt);
      assert.ok(delay >= 250 && delay <= 30_000, `jittered delay ${delay}`);
    }
  });

  it('one batch in flight per target; all acked sends the next at once; connected resets to now', () => {
    const q = queue({ batchRowsMax: 2 });
    for (let i = 0; i < 5; i++) q.hold(a, entry(`k${i}`, 1n), 0);
    assert.deepEqual(q.due(0), [], 'not due before the first step');
    q.connected(a, 10);
    const first = q.due(10);
    assert.equal(first.length, 1);
    assert.equal(first[0]!.rows.length, 2);
    assert.deepEqual(q.due(10), [], 'in flight: nothing more for it');
    const changes = q.answered(a, first[0]!.rows.map((row) => ({ keyHash: row.keyHash, version: row.entry.version, acked: true })), 11);
    assert.equal(changes.del.length, 2);
    assert.equal(q.nextDueMs(), 11, 'the rest is due at once');
    const second = q.due(11)[0]!;
    q.answered(a, [{ keyHash: second.rows[0]!.keyHash, version: second.rows[0]!.entry.version, acked: false }], 12);
    assert.ok(q.nextDueMs()! > 12, 'a refusal backs off');
    q.connected(a, 13);
    assert.equal(q.nextDueMs(), 13, 'connected: due now');
    q.due(13);
    q.failed(a, 20);
    assert.equal(q.nextDueMs(), 20 + connectRetryMs, 'just connected: it may not serve yet, retried soon');
    q.due(20 + connectRetryMs);
    q.failed(a, 13 + connectGraceMs);
    assert.ok(q.nextDueMs()! >= 13 + connectGraceMs + 250, 'after the grace: backoff again');
  });

  it('each batch says why it is due: new, backoff, connect (and its quick retries), next, load', () => {
    const q = queue({ batchRowsMax: 1 });
    q.hold(a, entry('k1', 1n), 0);
    q.hold(a, entry('k2', 1n), 0);
    const causeAt = (nowMs: number): string | undefined => q.due(nowMs)[0]?.cause;
    assert.equal(causeAt(q.nextDueMs()!), 'new');
    q.failed(a, 1000);
    assert.equal(causeAt(q.nextDueMs()!), 'backoff');
    q.failed(a, 3000);
    q.connected(a, 3100);
    assert.equal(causeAt(3100), 'connect', 'the owner came up before its backoff ran out');
    q.failed(a, 3200);
    assert.equal(causeAt(3200 + connectRetryMs), 'connect', 'a quick retry within the grace is still caused by the return');
    const [batch] = [...q.all()];
    q.answered(a, [{ keyHash: batch!.keyHash, version: batch!.entry.version, acked: true }], 3400);
    assert.equal(causeAt(3400), 'next');
    const loaded = queue();
    loaded.load([...q.all()], 0);
    assert.equal(loaded.due(0)[0]?.cause, 'load');
    q.connected(b, 0);
    assert.equal(q.rowsOf(a), 1);
    assert.equal(q.rowsOf(b), 0);
  });

  it('delete-if-unchanged: an ack of an older version keeps the newer row', () => {
    const q = queue();
    q.hold(a, entry('k', 1n), 0);
    q.connected(a, 0);
    const [batch] = q.due(0);
    q.hold(a, entry('k', 2n), 1);
    const changes = q.answered(a, [{ keyHash: batch!.rows[0]!.keyHash, version: batch!.rows[0]!.entry.version, acked: true }], 2);
    assert.deepEqual(changes.del, []);
    assert.equal(q.row(a, keyHashText('k'))?.entry.version.hlc, 2n);
    const [again] = q.due(2);
    assert.equal(again!.rows[0]!.entry.version.hlc, 2n, 'the newer version is sent next');
    q.answered(a, [{ keyHash: again!.rows[0]!.keyHash, version: again!.rows[0]!.entry.version, acked: true }], 3);
    assert.equal(q.pendingRows, 0);
    assert.equal(q.nextDueMs(), undefined);
  });

  it('never expires: a year of failures later the row is still there', () => {
    const q = queue();
    q.hold(a, entry('k', 1n), 0);
    let now = 0;
    for (let i = 0; i < 2000 && now < 366 * 86_400_000; i++) {
      now = Math.max(now + 86_400_000, q.nextDueMs()!);
      for (const batch of q.due(now)) q.failed(batch.target, now);
    }
    assert.equal(q.pendingRows, 1);
    assert.ok(q.stats(now).oldestAgeMs >= 365 * 86_400_000);
  });

  it('re-targets a row whose target no longer owns the key to every current owner, coalescing', () => {
    const q = queue();
    q.hold(a, entry('k', 5n), 0);
    q.hold(a, entry('other', 5n), 0);
    q.hold(c, entry('k', 9n), 0);
    const owners = (keyHash: string) => (keyHash === keyHashText('k') ? [b, c, d] : [a, b, c]);
    const changes = q.retarget(owners, 1);
    assert.deepEqual(changes.del, [{ target: a, keyHash: keyHashText('k') }]);
    assert.deepEqual(changes.put.map((row) => row.target).sort(), [b, d], 'c already holds a newer row');
    assert.equal(q.row(a, keyHashText('other'))?.entry.version.hlc, 5n, 'a still owns "other"');
    assert.equal(q.row(b, keyHashText('k'))?.sinceMs, 0, 'the age carries over');
    assert.deepEqual(q.retarget(() => undefined, 2), { put: [], del: [] }, 'owners unknown: nothing moves');
  });

  it('limits: past them, a write to a target with rows is refused; one to others is not; holding never drops', () => {
    const q = queue({ rowsMax: 3 });
    q.hold(a, entry('k1', 1n), 0);
    q.hold(a, entry('k2', 1n), 0);
    assert.equal(q.blocking([a, b]), undefined, 'under the limit');
    q.hold(a, entry('k3', 1n), 0);
    assert.equal(q.blocking([b, a])?.target, a);
    assert.equal(q.blocking([b, c]), undefined, 'owners with nothing pending are not held back');
    q.hold(b, entry('k4', 1n), 0);
    assert.equal(q.pendingRows, 4, 'a write stored somewhere is always held');
    const bytes = queue({ bytesMax: 100 });
    bytes.hold(a, entry('big', 1n, 'x'.repeat(200)), 0);
    assert.equal(bytes.blocking([a])?.target, a);
    assert.ok(bytes.stats(0).pendingBytes > 200);
  });

  it('stats per target: rows, bytes, oldest age, next attempt', () => {
    const q = queue();
    q.hold(b, entry('k', 1n), 100, 5_000);
    q.hold(a, entry('k', 1n), 100, 9_000);
    const stats = q.stats(200, 10_000);
    assert.equal(stats.pendingRows, 2);
    assert.equal(stats.oldestAgeMs, 5_000);
    assert.deepEqual(
      stats.targets.map((t) => [t.node, t.rows, t.oldestAgeMs]),
      [
        [a, 1, 1_000],
        [b, 1, 5_000],
      ],
    );
    assert.ok(stats.targets.every((t) => t.nextAttemptInMs > 0 && t.nextAttemptInMs <= 500));
  });

  it('load: persisted rows are due at once; the newest of duplicates wins', () => {
    const q = queue();
    const rows = [decodeOk(a, entry('k', 1n)), decodeOk(a, entry('k', 3n)), decodeOk(b, entry('j', 1n, null))];
    q.load(rows, 50);
    assert.equal(q.pendingRows, 2);
    assert.equal(q.nextDueMs(), 50);
    assert.equal(q.row(a, keyHashText('k'))?.entry.version.hlc, 3n);
  });
});

function decodeOk(target: string, e: Entry) {
  const { key, value } = encodeHintRow({ target, keyHash: keyHashText(e.key), entry: e, sinceMs: 42, bytes: 0 });
  const row = decodeHintRow(key, value);
  assert.ok(row);
  return row;
}

describe('hint rows', () => {
  it('round trip (values and tombstones)', () => {
    for (const e of [entry('k', 1n), entry('ü/x', 99n, null)]) {
      const row = decodeOk(c, e);
      assert.equal(row.target, c);
      assert.equal(row.sinceMs, 42);
      assert.deepEqual(row.entry, e);
    }
  });

  it('every malformed or hostile row is refused, never thrown', () => {
    const good = encodeHintRow({ target: a, keyHash: keyHashText('k'), entry: entry('k', 1n), sinceMs: 1, bytes: 0 });
    assert.equal(decodeHintRow(hintRowKey(a, keyHashText('other')), good.value), undefined, 'key of another key hash');
    assert.equal(decodeHintRow(`nothex/${good.key.split('/')[1]}`, good.value), undefined, 'target not a node id');
    assert.equal(decodeHintRow('no-slash', good.value), undefined);
    for (let cut = 0; cut < good.value.length; cut++) assert.equal(decodeHintRow(good.key, good.value.subarray(0, cut)), undefined, `cut at ${cut}`);
    const trailing = new Uint8Array([...good.value, 0]);
    assert.equal(decodeHintRow(good.key, trailing), undefined, 'trailing bytes');
    const rng = seededRng(3);
    for (let i = 0; i < 500; i++) {
      const bytes = Uint8Array.from(good.value);
      const at = Math.floor(rng() * bytes.length);
      bytes[at] = bytes[at]! ^ (1 + Math.floor(rng() * 255));
      const row = decodeHintRow(good.key, bytes);
      if (row !== undefined) assert.equal(row.entry.key, 'k', 'a flip that still decodes kept the key');
    }
  });
});

describe('the status page line', () => {
  it('says nothing in full-replication mode, names the owners otherwise', () => {
    assert.equal(deliveryLine(undefined), '');
    assert.equal(deliveryLine({ pendingRows: 0, pendingBytes: 0, oldestAgeMs: 0, targets: [] }), 'delivery: nothing pending');
    const q = queue();
    q.hold(a, entry('k', 1n), 0, 0);
    assert.match(deliveryLine(q.stats(0, 12_000)), new RegExp(`^delivery: 1 writes pending \\(\\d+ bytes\\) for 1 owner \\(${a}\\), oldest 12 s$`));
  });
});
