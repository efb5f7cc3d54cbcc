/**
 * A stream's protocol merge that would change nothing, answered without the peer store.
 *
 * libp2p 3 merges a stream's protocol into the peer store at every stream it opens or accepts
 * (`Connection.newStream` / `onIncomingStream`: `peerStore.merge(peer, { protocols: [p] })`), so
 * that the store lists what the peer speaks. In the store each merge takes the peer's write
 * lock, loads and decodes its record, merges, sorts and encodes it again, writes it, and
 * announces it (`peer:update`) only if it differs. A ckv node opens streams all the time
 * (anti-entropy sessions every second each way, queries, and at a start identify, gossipsub,
 * sync and queries to every peer at once), and nearly every merge finds the protocol there
 * already: identify put it there. Profiles: ~7 % of an idle node's CPU, ~15-19 ms of a
 * restarted node's first 700 ms (docs/measurements.md, 2026-12-07).
 *
 * So, per peer, this keeps the protocols its record listed in the last `peer:update` (every
 * change to a peer's record is announced by one), and a merge whose only data is protocols it
 * already lists returns that event's peer without the store. Everything else goes to the store
 * as before: other data, an unknown protocol, a peer never announced, the store's own peer
 * (announced as `self:peer:update`). Two limits keep the store as fresh as libp2p expects:
 * - a shortcut only within `shortcutWindowMs` of the last merge that went to the store for that
 *   peer: the store stamps a record's `updated` at every write and expires a record not
 *   updated for hours (with no recent address), so the record is still written at least that
 *   often while streams open;
 * - a peer's entry is forgotten when it disconnects or is deleted from the store (a deletion
 *   is not announced).
 */
import type { Libp2p, Peer, PeerData, PeerId, PeerStore } from '@libp2p/interface';

/** How long after a merge that reached the store later merges of known protocols skip it. */
export const shortcutWindowMs = 60_000;

interface Known {
  readonly peer: Peer;
  readonly protocols: ReadonlySet<string>;
  /** When a merge of this peer last went to the store (ms, the caller's clock). */
  storedAtMs: number;
}

export interface MergeShortcutStats {
  /** Merges answered without the store. */
  skipped: number;
  /** Merges passed to the store. */
  stored: number;
}

/**
 * Wraps `node.peerStore.merge` (and `delete`) on this instance: the components share the one
 * peer store object, so every caller in libp2p goes through the wrapper. Idempotent. Returns
 * live counts (tests and the curious). `nowMs` is the clock the window is measured on.
 */
export function shortcutKnownProtocolMerges(
  node: Pick<Libp2p, 'peerStore' | 'addEventListener'>,
  nowMs: () => number = () => performance.now(),
): MergeShortcutStats {
  const store = node.peerStore as PeerStore & { [installed]?: MergeShortcutStats };
  const already = store[installed];
  if (already) return already;
  const stats: MergeShortcutStats = { skipped: 0, stored: 0 };
  const known = new Map<string, Known>();
  node.addEventListener('peer:update', (event) => {
    const { peer } = event.detail;
    const key = peer.id.toString();
    known.set(key, { peer, protocols: new Set(peer.protocols), storedAtMs: known.get(key)?.storedAtMs ?? nowMs() });
  });
  node.addEventListener('peer:disconnect', (event) => known.delete(event.detail.toString()));
  const merge = store.merge.bind(store);
  const remove = store.delete.bind(store);
  store.merge = async (peerId: PeerId, data: PeerData, options?: Parameters<PeerStore['merge']>[2]): Promise<Peer> => {
    const key = peerId.toString();
    const entry = known.get(key);
    if (entry !== undefined && onlyKnownProtocols(data, entry.protocols) && nowMs() - entry.storedAtMs < shortcutWindowMs) {
      stats.skipped++;
      return entry.peer;
    }
    stats.stored++;
    const startedMs = nowMs();
    const peer = await merge(peerId, data, options);
    const after = known.get(key);
    if (after !== undefined) after.storedAtMs = startedMs;
    return peer;
  };
  store.delete = async (peerId: PeerId, options?: Parameters<PeerStore['delete']>[1]): Promise<void> => {
    known.delete(peerId.toString());
    await remove(peerId, options);
  };
  store[installed] = stats;
  return stats;
}

const installed = Symbol.for('ckv.peerStore.knownProtocolMerges');

/** Whether `data` carries nothing but protocols, every one of them in `protocols`. */
function onlyKnownProtocols(data: PeerData, protocols: ReadonlySet<string>): boolean {
  const list = data.protocols;
  if (list === undefined || list.length === 0) return false;
  for (const field of Object.keys(data)) if (field !== 'protocols' && (data as Record<string, unknown>)[field] !== undefined) return false;
  for (const protocol of list) if (!protocols.has(protocol)) return false;
  return true;
}
