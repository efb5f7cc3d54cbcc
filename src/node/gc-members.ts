/**
 * Full replication's GC members: every node this node has known as a member of its cluster,
 * kept in the store's meta (`gc-members`, node ids of 8 bytes back to back) across restarts.
 * Membership itself forgets: a restarted node knows only the peers it reconnects to, and an
 * unreachable member expires after a day; a member away with old rows must still hold the
 * GC watermark back when it returns (its old rows would otherwise bring collected keys back
 * on itself). So a member leaves this set only when an operator forgets it (`ckv peers
 * forget`): a node gone for good must be forgotten for tombstones to be collected again.
 * Bounded by membersMax (the oldest are kept: a set that full refuses new members' ids, which
 * then hold the watermark back as unknown members until some are forgotten).
 */
import { fromHex, toHex } from '../core/bytes.js';
import { isNodeId } from '../core/entry.js';
import { membersMax, nodeIdBytes } from '../core/limits.js';
import type { Store } from '../core/store.js';

const metaName = 'gc-members';

export class GcMembers {
  private readonly ids = new Set<string>();
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly store: Pick<Store, 'getMeta' | 'putMeta'>) {}

  async load(): Promise<void> {
    const bytes = await this.store.getMeta(metaName);
    if (bytes === undefined || bytes.byteLength % nodeIdBytes !== 0) return;
    for (let i = 0; i < bytes.byteLength && this.ids.size < membersMax; i += nodeIdBytes) {
      const id = toHex(bytes.subarray(i, i + nodeIdBytes));
      if (isNodeId(id)) this.ids.add(id);
    }
  }

  /** Adds `nodeIds` (persisted in the background; `durable` waits for it). */
  add(nodeIds: Iterable<string>): void {
    let changed = false;
    for (const id of nodeIds) {
      if (this.ids.has(id) || this.ids.size >= membersMax || !isNodeId(id)) continue;
      this.ids.add(id);
      changed = true;
    }
    if (changed) this.persist();
  }

  /** An operator forgot it: it no longer holds GC back. */
  forget(nodeId: string): boolean {
    if (!this.ids.delete(nodeId)) return false;
    this.persist();
    return true;
  }

  list(): string[] {
    return [...this.ids].sort();
  }

  /** Resolves once every change so far is written (a failed write is tried again by the next change). */
  durable(): Promise<void> {
    return this.writing;
  }

  private persist(): void {
    const bytes = new Uint8Array(this.ids.size * nodeIdBytes);
    let offset = 0;
    for (const id of this.ids) {
      bytes.set(fromHex(id), offset);
      offset += nodeIdBytes;
    }
    this.writing = this.writing.catch(() => undefined).then(() => this.store.putMeta(metaName, bytes));
  }
}
