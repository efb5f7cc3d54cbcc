/**
 * The layout commands' request parsing (src/net/layout-service.ts parseLayoutChange) and the
 * config-file keys of the partitioned mode (src/cli/config-file.ts): each action, node
 * resolution, K 'all' or a number, and the one-line refusals.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LayoutChangeError } from '../../src/core/layout.js';
import { parseLayoutChange } from '../../src/net/layout-service.js';
import { configValues } from '../../src/cli/config-file.js';

const node = '00000000000000aa';
const resolve = (text: string): string => {
  if (text === 'peer-of-aa' || text === node) return node;
  throw new LayoutChangeError(`unknown node ${JSON.stringify(text)}`);
};
const request = (action: string, more: Partial<{ node: string; weight: number; replicas: string }> = {}) => ({ action, node: '', weight: 0, replicas: '', ...more });

describe('layout change requests', () => {
  it('parses every action, resolving nodes given by peer id', () => {
    assert.deepEqual(parseLayoutChange(request('add', { node: 'peer-of-aa', weight: 3 }), resolve), { action: 'add', nodeId: node, weight: 3 });
    assert.deepEqual(parseLayoutChange(request('weight', { node, weight: 0 }), resolve), { action: 'weight', nodeId: node, weight: 0 });
    assert.deepEqual(parseLayoutChange(request('remove', { node }), resolve), { action: 'remove', nodeId: node });
    assert.deepEqual(parseLayoutChange(request('replicas', { replicas: 'all' }), resolve), { action: 'replicas', replicas: undefined });
    assert.deepEqual(parseLayoutChange(request('replicas', { replicas: '3' }), resolve), { action: 'replicas', replicas: 3 });
    assert.deepEqual(parseLayoutChange(request('apply'), resolve), { action: 'apply' });
    assert.deepEqual(parseLayoutChange(request('revert'), resolve), { action: 'revert' });
  });

  it('refuses unknown actions, unknown nodes and a K that is not a number', () => {
    assert.throws(() => parseLayoutChange(request('explode'), resolve), LayoutChangeError);
    assert.throws(() => parseLayoutChange(request('add', { node: 'nobody' }), resolve), /unknown node "nobody"/);
    assert.throws(() => parseLayoutChange(request('replicas', { replicas: 'two' }), resolve), /replicas must be 'all' or a whole number/);
    assert.throws(() => parseLayoutChange(request('replicas', { replicas: '-1' }), resolve), LayoutChangeError);
  });
});

describe('partitioned-mode config-file keys', () => {
  it('maps replicas, weight, auto_join and auto-join to the flags', () => {
    assert.deepEqual(configValues('replicas = 3\nweight = 0\nauto_join = false\n', 'ckv.toml'), { replicas: '3', weight: '0', autoJoin: false });
    assert.deepEqual(configValues('auto-join = true\n', 'ckv.toml'), { autoJoin: true });
    assert.throws(() => configValues('replicas = "three"\n', 'ckv.toml'), /replicas must be a whole number/);
  });
});
