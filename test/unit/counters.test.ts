/**
 * The declared counter list (src/util/counters.ts): every name a node can count is declared,
 * including each member of the families src/net/sync-protocol.ts builds at run time; the
 * metrics built from it are consistent; an undeclared name does not type-check.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RefuseReason } from '../../src/core/sync-frames.js';
import type { SyncOutcome } from '../../src/core/sync-session.js';
import { counterMetrics, counterNames, counterSpecs, Counters, isCounterName } from '../../src/util/counters.js';

describe('declared counters', () => {
  it('declares every sync_sessions_<outcome> the sync protocol counts', () => {
    const outcomes: Record<SyncOutcome | 'error', true> = { 'in-sync': true, synced: true, incomplete: true, refused: true, error: true };
    for (const outcome of Object.keys(outcomes)) {
      const name = `sync_sessions_${outcome.replace('-', '_')}`;
      assert.ok(isCounterName(name), `${name} is not declared`);
    }
  });

  it('declares every sync_refused_<reason> a responder can refuse with (hostile reasons count as sync_rejected)', () => {
    for (const reason of Object.keys(RefuseReason)) {
      if (reason === 'malformed' || reason === 'unsupportedVersion') continue;
      assert.ok(isCounterName(`sync_refused_${reason}`), `sync_refused_${reason} is not declared`);
    }
    assert.ok(isCounterName('sync_refused_unknown'));
  });

  it('gives every counter a known metric with exactly its label names, and distinct label values per metric', () => {
    const seen = new Set<string>();
    for (const name of counterNames) {
      const spec = counterSpecs[name];
      const metric = counterMetrics[spec.metric];
      assert.ok(metric, `${name}: unknown metric ${spec.metric}`);
      assert.deepEqual(Object.keys(spec.labels).sort(), [...metric.labelNames].sort(), `${name}: labels of ${spec.metric}`);
      const series = `${spec.metric}${JSON.stringify(spec.labels)}`;
      assert.ok(!seen.has(series), `${name}: series ${series} is declared twice`);
      seen.add(series);
      assert.ok(spec.help.length > 0);
    }
    for (const metric of Object.keys(counterMetrics)) {
      assert.ok(counterNames.some((name) => counterSpecs[name].metric === metric), `metric ${metric} has no counter`);
    }
  });

  it('counts declared names, snapshots all of them in order, and refuses an undeclared family member', () => {
    const counters = new Counters();
    counters.add('writes_local');
    counters.add('sync_bytes_in', 10);
    const outcome: string = 'in-sync';
    counters.add(`sync_sessions_${outcome.replace('-', '_')}`);
    const snapshot = counters.snapshot();
    assert.deepEqual(Object.keys(snapshot), counterNames);
    assert.equal(snapshot.writes_local, 1);
    assert.equal(snapshot.sync_bytes_in, 10);
    assert.equal(snapshot.sync_sessions_in_sync, 1);
    assert.equal(snapshot.gossip_received, 0);
    assert.throws(() => counters.add(`sync_refused_${'noSuchReason'}`), /not declared/);
    // @ts-expect-error an undeclared name does not type-check
    assert.throws(() => counters.add('writes_typo'), /not declared/);
  });
});
