/**
 * The membership view: every ckv node this one has met, with what a user asks about it:
 * addresses, state, last sync time and result, clock offset, whether its Merkle root equalled
 * ours at the last session. States:
 * - up: connected and speaking our cluster's protocols;
 * - left: announced a clean stop (a leave message) and disconnected: not a failure;
 * - unreachable: disconnected without a leave, or sessions with it keep failing.
 * `forget` removes a dead node for good (until it connects again). The table is bounded: past
 * `peersMax` entries the longest-disconnected peers are dropped.
 */
export type PeerState = 'up' | 'left' | 'unreachable';

export interface PeerInfo {
  peerId: string;
  /** Its ckv node id (the writer id in versions), from identify; '' until known. */
  nodeId: string;
  addresses: string[];
  state: PeerState;
  /** Wall ms when a session with it last ended; 0 = never. */
  lastSyncMs: number;
  lastSyncResult: string;
  /** Its wall clock minus ours, measured from its last sync Hello; 0 until measured. */
  clockOffsetMs: number;
  inSync: boolean;
  /** Entries it held at its last Hello to us (tombstones included); -1 = unknown. */
  entryCount: number;
  /** Wall ms of the last change of state. */
  sinceMs: number;
}

const peersMax = 1024;

export class PeerTable {
  private readonly peers = new Map<string, PeerInfo>();

  constructor(private readonly wallClockMs: () => number) {}

  list(): PeerInfo[] {
    return [...this.peers.values()].sort((a, b) => (a.peerId < b.peerId ? -1 : 1));
  }

  get(peerId: string): PeerInfo | undefined {
    return this.peers.get(peerId);
  }

  connectedIds(): string[] {
    return this.list()
      .filter((p) => p.state === 'up')
      .map((p) => p.peerId);
  }

  up(peerId: string, addresses: string[], nodeId?: string): void {
    const peer = this.ensure(peerId);
    if (addresses.length > 0) peer.addresses = addresses;
    if (nodeId) peer.nodeId = nodeId;
    this.setState(peer, 'up');
  }

  /** The connection closed: left if it announced a leave, otherwise unreachable. */
  down(peerId: string): void {
    const peer = this.peers.get(peerId);
    if (peer && peer.state === 'up') this.setState(peer, 'unreachable');
  }

  left(peerId: string): void {
    this.setState(this.ensure(peerId), 'left');
  }

  recordSync(peerId: string, result: string, inSync: boolean): void {
    const peer = this.peers.get(peerId);
    if (!peer) return;
    peer.lastSyncMs = this.wallClockMs();
    peer.lastSyncResult = result;
    peer.inSync = inSync;
  }

  recordHello(peerId: string, peerWallMs: number, entryCount: number): void {
    const peer = this.peers.get(peerId);
    if (!peer) return;
    if (peerWallMs > 0) peer.clockOffsetMs = Math.round(peerWallMs - this.wallClockMs());
    peer.entryCount = entryCount;
  }

  forget(peerId: string): boolean {
    return this.peers.delete(peerId);
  }

  private ensure(peerId: string): PeerInfo {
    let peer = this.peers.get(peerId);
    if (!peer) {
      if (this.peers.size >= peersMax) this.evictOne();
      peer = {
        peerId,
        nodeId: '',
        addresses: [],
        state: 'unreachable',
        lastSyncMs: 0,
        lastSyncResult: '',
        clockOffsetMs: 0,
        inSync: false,
        entryCount: -1,
        sinceMs: this.wallClockMs(),
      };
      this.peers.set(peerId, peer);
    }
    return peer;
  }

  private setState(peer: PeerInfo, state: PeerState): void {
    if (peer.state !== state) peer.sinceMs = this.wallClockMs();
    peer.state = state;
  }

  private evictOne(): void {
    let oldest: PeerInfo | undefined;
    for (const peer of this.peers.values()) {
      if (peer.state !== 'up' && (!oldest || peer.sinceMs < oldest.sinceMs)) oldest = peer;
    }
    if (oldest) this.peers.delete(oldest.peerId);
  }
}
