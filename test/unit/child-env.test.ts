import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ckvChildEnv } from '../../src/util/child-env.js';

describe('ckvChildEnv', () => {
  it('drops NODE_EXTRA_CA_CERTS, keeps the rest, and lets extra variables override', () => {
    const env = { PATH: '/bin', NODE_EXTRA_CA_CERTS: '/etc/ssl/bundle.pem', DEBUG: 'x' };
    assert.deepEqual(ckvChildEnv(env), { PATH: '/bin', DEBUG: 'x' });
    assert.deepEqual(ckvChildEnv(env, { DEBUG: 'y', CKV_X: '1' }), { PATH: '/bin', DEBUG: 'y', CKV_X: '1' });
    assert.equal(env.NODE_EXTRA_CA_CERTS, '/etc/ssl/bundle.pem', 'the given environment is not changed');
  });

  it('an extra NODE_EXTRA_CA_CERTS is the caller asking for it: kept', () => {
    assert.equal(ckvChildEnv({}, { NODE_EXTRA_CA_CERTS: '/x.pem' }).NODE_EXTRA_CA_CERTS, '/x.pem');
  });
});
