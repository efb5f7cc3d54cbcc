/**
 * The status page's partitioned line (src/http/page-partitioned.ts): its text, state and data
 * attributes for a settled node, a change in progress blocked by a node, a removed node; the
 * server's HTML escapes what it shows; the script carries the same function.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { partitionedLine, partitionedLineHtml, partitionedScript, type PartitionedLineInput } from '../../src/http/page-partitioned.js';
import { escapeHtml } from '../../src/http/page.js';

const settled: PartitionedLineInput = {
  replicas: 3,
  layoutVersion: 4,
  activeVersions: [4],
  partitionsOwned: 154,
  partitionsUnderReplicated: 0,
  rebalance: { pending: 0, done: 0, blockedBy: [] },
  mismatch: '',
  removedAt: 0,
};

describe('the partitioned line', () => {
  it('a settled node: ok, no rebalance', () => {
    const line = partitionedLine(settled);
    assert.equal(line.text, 'partitioned \u00b7 replicas 3 \u00b7 layout v4 \u00b7 154 partitions owned \u00b7 0 under-replicated \u00b7 rebalance: none in progress');
    assert.equal(line.state, 'ok');
    assert.equal(line.data['data-owned'], '154');
    assert.equal(line.data['data-removed-at'], '0');
  });

  it('a change blocked by a node, under-replicated partitions, a removed node: warn, and says so', () => {
    const blocked = partitionedLine({ ...settled, activeVersions: [4, 5], layoutVersion: 5, partitionsUnderReplicated: 12, rebalance: { pending: 30, done: 700, blockedBy: ['00000000000000ab'] } });
    assert.equal(blocked.state, 'warn');
    assert.match(blocked.text, /layout v5 \(active v4, v5\)/);
    assert.match(blocked.text, /rebalance: 700 done, 30 pending, blocked by 00000000000000ab$/);
    assert.equal(blocked.data['data-blocked-by'], '00000000000000ab');
    const removed = partitionedLine({ ...settled, removedAt: 6 });
    assert.equal(removed.state, 'warn');
    assert.match(removed.text, /removed at layout v6: refusing to serve$/);
    assert.equal(partitionedLine({ ...settled, layoutVersion: 0, activeVersions: [] }).text.includes('no layout yet'), true);
  });

  it('HTML: nothing in full-replication mode; escaped text otherwise; the script has the same function', () => {
    assert.equal(partitionedLineHtml(undefined, escapeHtml), '');
    const html = partitionedLineHtml({ ...settled, mismatch: '<b>K</b>' }, escapeHtml);
    assert.match(html, /^<div id="partitioned" class="health warn" data-replicas="3" /);
    assert.ok(html.includes('&lt;b&gt;K&lt;/b&gt;') && !html.includes('<b>'));
    assert.ok(partitionedScript.includes(partitionedLine.toString()));
  });
});
