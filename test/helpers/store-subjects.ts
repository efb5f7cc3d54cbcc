/** Test helpers: the two stores a replica test runs over, MemoryStore and LevelStore in a temporary directory. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Store } from '../../src/core/store.js';
import { LevelStore } from '../../src/store/level-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';

export interface StoreSubject {
  name: string;
  /** A store over the same data each call (a new LevelStore on one directory), not open. */
  make(): { store: () => Store; dispose: () => void };
}

/** MemoryStore, and LevelStore in a fresh directory named `<tmp>/<dirPrefix>XXXXXX` (removed by dispose). */
export function storeSubjects(dirPrefix: string): StoreSubject[] {
  return [
    {
      name: 'MemoryStore',
      make() {
        const store = new MemoryStore();
        return { store: () => store, dispose: () => undefined };
      },
    },
    {
      name: 'LevelStore',
      make() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), dirPrefix));
        return { store: () => new LevelStore(dir), dispose: () => fs.rmSync(dir, { recursive: true, force: true }) };
      },
    },
  ];
}
