import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'check-imports.mjs');

/** Runs scripts/check-imports.mjs over a tree of the given files. */
function check(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-imports-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const result = spawnSync(process.execPath, [script], { cwd: dir, encoding: 'utf8' });
    return { status: result.status, output: result.stdout + result.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('scripts/check-imports.mjs (part of npm run lint)', () => {
  it('passes a tree without cycles', () => {
    const result = check({ 'src/a.ts': "import { b } from './b.js';\n", 'src/b.ts': 'export const b = 1;\n' });
    assert.equal(result.status, 0, result.output);
  });

  it('fails on a cycle, type-only imports included, and names its modules', () => {
    const result = check({
      'src/node.ts': "import { server } from './http/server.js';\nexport const node = 1;\n",
      'src/http/server.ts': "import type { Node } from '../node.js';\nexport const server = 1;\n",
    });
    assert.equal(result.status, 1);
    assert.match(result.output, /import cycle among: src\/http\/server\.ts, src\/node\.ts/);
  });

  it('fails when src/core imports another src folder', () => {
    const result = check({ 'src/core/replica.ts': "import type { Store } from '../store/store.js';\n", 'src/store/store.ts': 'export {};\n' });
    assert.equal(result.status, 1);
    assert.match(result.output, /src\/core\/replica\.ts imports src\/store\/store\.ts/);
  });
});
