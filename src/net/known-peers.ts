/**
 * Known peers across restarts (as Serf's snapshot): the members this node last saw up, with
 * their addresses, kept in the store's meta. A node redials them at start, so one restarted
 * without `--bootstrap` (the first node of a cluster, say) or on a LAN without mDNS finds its
 * cluster again instead of standing alone: in partitioned mode an isolated owner would leave
 * its partitions under-replicated. The list is saved when a member comes up (at most once per
 * `knownPeersSaveIntervalMs`, and at a stop while such a save is pending), bounded to
 * `knownPeersMax` members of `knownPeerAddressesMax` addresses each; a damaged or foreign
 * value is ignored (it is only a hint: bootstrap addresses, mDNS and gossip still work).
 */
import type { Store } from '../core/store.js';

/** Members remembered: the most recently seen first. */
export const knownPeersMax = 64;
/** Addresses remembered per member. */
export const knownPeerAddressesMax = 8;
/** The list is written at most this often (member-up bursts at start cost one write). */
export const knownPeersSaveIntervalMs = 2_000;

const metaKey = 'known-peers';
const formatVersion = 1;

export interface KnownPeer {
  peerId: string;
  addresses: string[];
}

export function encodeKnownPeers(peers: readonly KnownPeer[]): Uint8Array {
  const bounded = peers.slice(0, knownPeersMax).map((peer) => ({ peerId: peer.peerId, addresses: peer.addresses.slice(0, knownPeerAddressesMax) }));
  return new TextEncoder().encode(JSON.stringify({ v: formatVersion, peers: bounded }));
}

/** The list kept in `bytes`; [] when it is not one this version wrote. */
export function decodeKnownPeers(bytes: Uint8Array): KnownPeer[] {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as { v?: unknown; peers?: unknown };
    if (value.v !== formatVersion || !Array.isArray(value.peers)) return [];
    const peers: KnownPeer[] = [];
    for (const item of value.peers.slice(0, knownPeersMax) as unknown[]) {
      const peer = item as { peerId?: unknown; addresses?: unknown };
      if (typeof peer.peerId !== 'string' || !Array.isArray(peer.addresses)) continue;
      const addresses = (peer.addresses as unknown[]).filter((a): a is string => typeof a === 'string').slice(0, knownPeerAddressesMax);
      peers.push({ peerId: peer.peerId, addresses });
    }
    return peers;
  } catch {
    return [];
  }
}

export async function loadKnownPeers(store: Pick<Store, 'getMeta'>): Promise<KnownPeer[]> {
  const bytes = await store.getMeta(metaKey);
  return bytes ? decodeKnownPeers(bytes) : [];
}

export async function saveKnownPeers(store: Pick<Store, 'putMeta'>, peers: readonly KnownPeer[]): Promise<void> {
  await store.putMeta(metaKey, encodeKnownPeers(peers));
}
