/**
 * `ckv node start --config FILE` on a real process: settings from the TOML file take effect
 * (cluster name, log format and level), a flag on the command line wins over the file, and a
 * typo in a key fails the start at once with exit 2 naming the key.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startNode, tempDir } from '../../harness/testing.js';

describe('node start --config', () => {
  it('applies the file: cluster, JSON log lines, warn level; a flag overrides the file', async () => {
    const dir = tempDir('ckv-config-');
    const file = join(dir, 'ckv.toml');
    writeFileSync(file, ['# a node of the blue cluster', 'cluster = "blue"', 'log-format = "json"', 'sync-interval-ms = 250', 'mdns = false'].join('\n'));
    const node = await startNode({ args: ['--config', file] });
    try {
      assert.equal((await node.status()).cluster, 'blue');
      const lines = node.stderrText().trim().split('\n');
      assert.ok(lines.length > 0);
      for (const line of lines) {
        const record = JSON.parse(line) as { time: string; level: string; event: string };
        assert.match(record.time, /^\d{4}-\d\d-\d\dT/);
        assert.ok(['info', 'warn', 'error'].includes(record.level), line);
        assert.equal(typeof record.event, 'string');
      }
      assert.ok(lines.some((l) => (JSON.parse(l) as { event: string }).event === 'node started'), lines.join('\n'));
    } finally {
      await node.stop();
    }

    const quiet = await startNode({ args: ['--config', file, '--cluster', 'green', '--log-level', 'warn'] });
    try {
      assert.equal((await quiet.status()).cluster, 'green', 'the flag wins over the file');
      assert.equal(quiet.stderrText().trim(), '', 'no info lines at --log-level warn');
    } finally {
      await quiet.stop();
    }
  });

  it('a typo in a key, or a bad value, fails the start with exit 2 naming it', async () => {
    const dir = tempDir('ckv-config-');
    const file = join(dir, 'ckv.toml');
    writeFileSync(file, 'clustr = "blue"\n');
    const typo = await runCli(['node', 'start', '--data-dir', join(dir, 'data'), '--config', file], { timeoutMs: 20_000 });
    assert.equal(typo.code, 2, typo.stderr);
    assert.match(typo.stderr, /^ckv: --config .*ckv\.toml: unknown key "clustr" \(known keys: /);
    writeFileSync(file, 'log-level = "loud"\n');
    const level = await runCli(['node', 'start', '--data-dir', join(dir, 'data'), '--config', file], { timeoutMs: 20_000 });
    assert.equal(level.code, 2, level.stderr);
    assert.match(level.stderr, /^ckv: --log-level must be info, warn or error, not loud\n$/);
    const missing = await runCli(['node', 'start', '--data-dir', join(dir, 'data'), '--config', join(dir, 'nope.toml')], { timeoutMs: 20_000 });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /^ckv: cannot read --config .*nope\.toml: /);
  });
});
