import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../harness/testing.js';
import { ckvChildEnv, mallocTunables } from '../../src/util/child-env.js';

describe('ckvChildEnv', () => {
  it('drops NODE_EXTRA_CA_CERTS, adds the malloc settings, keeps the rest, and lets extra variables override', () => {
    const env = { PATH: '/bin', NODE_EXTRA_CA_CERTS: '/etc/ssl/bundle.pem', DEBUG: 'x' };
    assert.deepEqual(ckvChildEnv(env), { PATH: '/bin', DEBUG: 'x', GLIBC_TUNABLES: mallocTunables });
    assert.deepEqual(ckvChildEnv(env, { DEBUG: 'y', CKV_X: '1' }), { PATH: '/bin', DEBUG: 'y', CKV_X: '1', GLIBC_TUNABLES: mallocTunables });
    assert.equal(env.NODE_EXTRA_CA_CERTS, '/etc/ssl/bundle.pem', 'the given environment is not changed');
  });

  it('an extra NODE_EXTRA_CA_CERTS is the caller asking for it: kept', () => {
    assert.equal(ckvChildEnv({}, { NODE_EXTRA_CA_CERTS: '/x.pem' }).NODE_EXTRA_CA_CERTS, '/x.pem');
  });

  it("a GLIBC_TUNABLES the caller set (even empty) is the caller's: kept", () => {
    assert.equal(ckvChildEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=1' }).GLIBC_TUNABLES, 'glibc.malloc.arena_max=1');
    assert.equal(ckvChildEnv({ GLIBC_TUNABLES: '' }).GLIBC_TUNABLES, '');
    assert.equal(ckvChildEnv({}, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=1' }).GLIBC_TUNABLES, 'glibc.malloc.arena_max=1');
  });

  it("are the settings bin/ckv.js's launcher line gives ckv when it is run as a program", () => {
    const launcher = readFileSync(join(repoRoot, 'bin', 'ckv.js'), 'utf8').split('\n')[1]!;
    assert.ok(launcher.includes(`export GLIBC_TUNABLES="\${GLIBC_TUNABLES-${mallocTunables}}";`), launcher);
  });

  it('are well-formed tunables: glibc.malloc.<name>=<integer>, colon-separated', () => {
    for (const setting of mallocTunables.split(':')) assert.match(setting, /^glibc\.malloc\.[a-z_]+=\d+$/);
  });
});
