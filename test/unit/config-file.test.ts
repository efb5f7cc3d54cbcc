/**
 * `--config FILE` parsing (src/cli/config-file.ts): TOML keys named like the flags, mapped to
 * the flag parser's form; an unknown key, a wrong type or bad TOML is a usage error that
 * names the key or the line. And the shell completion script lists real commands and flags.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { configValues } from '../../src/cli/config-file.js';
import { completionScript } from '../../src/cli/completion.js';
import { buildProgram } from '../../src/cli/main.js';
import { describeError } from '../../src/cli/common.js';

function usageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.equal(describeError(error).exitCode, 2, String(error));
    assert.ok(error instanceof Error);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('config file', () => {
  it('maps every key to its flag, in the flag form', () => {
    const values = configValues(
      [
        'data-dir = "/var/lib/ckv"',
        'listen = ["/ip4/0.0.0.0/tcp/4455", "/ip6/::/tcp/4455"]',
        'bootstrap = "/ip4/10.0.0.1/tcp/4455"',
        'mdns = false',
        'cluster = "prod"',
        'sync-interval-ms = 500',
        'log-format = "json"',
        'merkle-depth = 4',
        'warm-up-entries = 0',
      ].join('\n'),
      'ckv.toml',
    );
    assert.deepEqual(values, {
      dataDir: '/var/lib/ckv',
      listen: ['/ip4/0.0.0.0/tcp/4455', '/ip6/::/tcp/4455'],
      bootstrap: ['/ip4/10.0.0.1/tcp/4455'],
      mdns: false,
      cluster: 'prod',
      syncIntervalMs: '500',
      logFormat: 'json',
      merkleDepth: '4',
      warmUpEntries: '0',
    });
  });

  it('refuses an unknown key, naming it', () => {
    usageError(() => configValues('clustr = "x"', 'ckv.toml'), /^--config ckv.toml: unknown key "clustr" \(known keys: data-dir, /);
  });

  it('refuses a value of the wrong type, naming the key', () => {
    usageError(() => configValues('sync-interval-ms = "fast"', 'f.toml'), /^--config f.toml: sync-interval-ms must be a whole number, not "fast"$/);
    usageError(() => configValues('mdns = "no"', 'f.toml'), /mdns must be true or false/);
    usageError(() => configValues('listen = [1, 2]', 'f.toml'), /listen must be a string or an array of strings/);
    usageError(() => configValues('sync-interval-ms = 1.5', 'f.toml'), /sync-interval-ms must be a whole number/);
  });

  it('refuses text that is not TOML, with the line', () => {
    usageError(() => configValues('cluster = "a"\nthis is not toml', 'f.toml'), /^--config f.toml is not valid TOML \(line 2, column \d+\): /);
  });
});

describe('completion', () => {
  it('bash: completes commands, a command\'s flags and node\'s subcommands', () => {
    const script = completionScript(buildProgram(), 'bash');
    const complete = (words: string[]): string => {
      const run = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ckv; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      return run.stdout.trim();
    };
    assert.equal(complete(['ckv', 'hea']), 'health');
    assert.equal(complete(['ckv', 'put', 'k', '--if-']), '--if-version --if-absent');
    assert.equal(complete(['ckv', 'node', 'st']), 'start stop');
    assert.ok(complete(['ckv', 'node', 'start', '--conf']).split(' ').includes('--config'));
    assert.match(completionScript(buildProgram(), 'zsh'), /^autoload -U \+X bashcompinit && bashcompinit\n/);
  });
});
