/**
 * `ckv purge --all [--data-dir DIR]`: empty a stopped node's data directory so that it can come
 * back as a new member (partitioned mode: a node removed from the layout refuses to start with
 * its old data, NodeRemovedError). It works on the directory itself, not through a running
 * node: LevelDB's lock refuses it while a node holds the directory (StoreLockedError, exit 5).
 *
 * What goes: every row (entries, tombstones, indexes, snapshots), the node's identity (node
 * id and libp2p key: the next start makes new ones, so the node joins as a new member, which
 * the coordinator accepts; the old identity stays removed) and its removal mark. What stays:
 * the cluster binding (`--cluster`) and the layout history (so the node knows its cluster's
 * K and layout before any peer tells it). Done by copying those two meta values, deleting the
 * LevelDB directory and writing them into a fresh one; a crash in between leaves either the
 * old directory or an empty one that a start initialises (the layout is then heard again).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeRemovedMark, layoutHistoryMeta, layoutRemovedMeta } from '../net/layout-service.js';
import { LevelStore } from '../store/level-store.js';

/** Meta values a purge keeps: the cluster binding and the layout history. */
const keptMeta = ['cluster', layoutHistoryMeta] as const;

export interface PurgeAllReport {
  dataDir: string;
  /** Entries (tombstones included) that were deleted. */
  entries: number;
  /** The layout version the node was removed at, if its data directory was marked removed. */
  removedAt: number | undefined;
}

/** Counts what a purge of `dataDir` would delete (opens and closes the store: fails while a node runs there). */
export async function inspectDataDir(dataDir: string): Promise<PurgeAllReport> {
  const store = new LevelStore(join(dataDir, 'db'));
  await store.open();
  try {
    let entries = 0;
    for await (const entry of store.scanHash('')) if (entry) entries++;
    const mark = await store.getMeta(layoutRemovedMeta);
    return { dataDir, entries, removedAt: mark ? decodeRemovedMark(mark) : undefined };
  } finally {
    await store.close();
  }
}

/** Empties `dataDir` (see the file comment); returns what was there. */
export async function purgeDataDir(dataDir: string): Promise<PurgeAllReport> {
  const report = await inspectDataDir(dataDir);
  const location = join(dataDir, 'db');
  const old = new LevelStore(location);
  await old.open();
  const kept = new Map<string, Uint8Array>();
  try {
    for (const name of keptMeta) {
      const value = await old.getMeta(name);
      if (value) kept.set(name, value);
    }
  } finally {
    await old.close();
  }
  await rm(location, { recursive: true, force: true });
  const fresh = new LevelStore(location);
  await fresh.open();
  try {
    for (const [name, value] of kept) await fresh.putMeta(name, value);
  } finally {
    await fresh.close();
  }
  return report;
}
