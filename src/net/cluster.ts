/**
 * The cluster side of a node: libp2p plus the services that run on it (gossip, anti-entropy,
 * queries) and the membership view, and the one timer that drives the sync scheduler.
 *
 * A peer becomes a cluster member when identify shows it speaks our cluster's sync protocol
 * (so nodes of another cluster, or plain libp2p peers, are never synced with); it is synced
 * with at once, then every `syncIntervalMs` (with jitter) one random member is. On a clean
 * stop the node gossips a leave, so peers show it as left rather than unreachable.
 */
import { readFile } from 'node:fs/promises';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { IdentifyResult, PeerId, PrivateKey } from '@libp2p/interface';
import { CkvError } from '../core/errors.js';
import type { AppliedChange, Replica } from '../core/replica.js';
import { SyncScheduler } from '../core/scheduler.js';
import type { Store } from '../core/store.js';
import { ckvVersion, type NodeConfig } from '../config.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';
import { Gossip, gossipTopic, gossipValueBytesMaxDefault } from './gossip.js';
import { createNetwork, type CkvLibp2p } from './libp2p.js';
import { PeerTable, type PeerInfo } from './peers.js';
import { QueryService, type Holding } from './query-protocol.js';
import { SyncService, type SessionReport } from './sync-protocol.js';

/** How long a clean stop waits for its leave message to go out. */
const leaveFlushMsMax = 500;
/** Members re-announce their addresses this often, and this long after a member joins. */
const membersAnnounceIntervalMs = 30_000;
const membersAnnounceAfterJoinMs = 1_000;
/** A member heard of but not connected is dialled at most this often. */
const memberDialIntervalMs = 10_000;

export class NoPeersError extends CkvError {
  constructor() {
    super('ERR_NO_PEERS', 'no peers to sync with: this node has no connected peers');
    this.name = 'NoPeersError';
  }
}

export class UnknownPeerError extends CkvError {
  constructor(peer: string) {
    super('ERR_UNKNOWN_PEER', `not a connected peer of this cluster: ${peer}`);
    this.name = 'UnknownPeerError';
  }
}

/** The node's libp2p identity, created once and kept in the store: the peer id survives restarts. */
export async function loadPrivateKey(store: Store): Promise<PrivateKey> {
  const stored = await store.getMeta('peer-key');
  if (stored) return privateKeyFromProtobuf(stored);
  const key = await generateKeyPair('Ed25519');
  await store.putMeta('peer-key', privateKeyToProtobuf(key));
  return key;
}

export interface ClusterComponents {
  replica: Replica;
  counters: Counters;
  logger: Logger;
  privateKey: PrivateKey;
}

export class ClusterNetwork {
  private readonly scheduler: SyncScheduler;
  private timer: NodeJS.Timeout | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private readonly lastDialMs = new Map<string, number>();
  private stopped = false;

  private constructor(
    readonly libp2p: CkvLibp2p,
    private readonly gossip: Gossip | undefined,
    private readonly sync: SyncService,
    private readonly query: QueryService,
    readonly peers: PeerTable,
    private readonly components: ClusterComponents,
    config: NodeConfig,
  ) {
    this.scheduler = new SyncScheduler({ rng: Math.random, intervalMs: config.syncIntervalMs }, Date.now());
  }

  static async start(config: NodeConfig, components: ClusterComponents): Promise<ClusterNetwork> {
    const clusterKey = config.clusterKeyFile ? await readClusterKey(config.clusterKeyFile) : undefined;
    const libp2p = await createNetwork({
      privateKey: components.privateKey,
      listen: config.listen,
      bootstrap: config.bootstrap,
      mdns: config.mdns,
      ...(clusterKey ? { clusterKey } : {}),
      gossipTopic: gossipTopic(config.cluster),
      userAgent: `ckv/${ckvVersion} node/${components.replica.nodeId}`,
    });
    const base = { libp2p, replica: components.replica, counters: components.counters, logger: components.logger };
    // The gossip callbacks need the cluster, which needs the gossip: bind through a holder.
    const self: { cluster?: ClusterNetwork } = {};
    const gossip = config.gossip
      ? new Gossip(
          { pubsub: libp2p.services.pubsub, replica: components.replica, counters: components.counters, logger: components.logger, selfPeerId: libp2p.peerId.toString() },
          {
            cluster: config.cluster,
            gossipValueBytesMax: gossipValueBytesMaxDefault,
            valueBytesMax: config.valueBytesMax,
            onAnnounce: (peer) => self.cluster?.pullFrom(peer),
            onLeave: (peer) => self.cluster?.onLeave(peer),
            onMembers: (peer, addresses) => void self.cluster?.onMembers(peer, addresses),
          },
        )
      : undefined;
    const peers = new PeerTable(Date.now);
    const sync = new SyncService(
      { ...base, peers },
      { cluster: config.cluster, inboundSessionsMax: config.inboundSessionsMax, valueBytesMax: config.valueBytesMax, rng: Math.random },
    );
    const query = new QueryService(base, config.cluster);
    const cluster = new ClusterNetwork(libp2p, gossip, sync, query, peers, components, config);
    self.cluster = cluster;
    await cluster.begin();
    return cluster;
  }

  get peerId(): string {
    return this.libp2p.peerId.toString();
  }

  listenAddresses(): string[] {
    return this.libp2p.getMultiaddrs().map((address) => address.toString());
  }

  private async begin(): Promise<void> {
    this.gossip?.start();
    await this.sync.start();
    await this.query.start();
    this.libp2p.addEventListener('peer:identify', (event) => this.onIdentify(event.detail));
    this.libp2p.addEventListener('peer:disconnect', (event) => this.onDisconnect(event.detail));
    this.wake();
    this.scheduleAnnounce(membersAnnounceIntervalMs);
  }

  /** Gossip a local write (no-op when gossip is off). */
  publishChange(change: AppliedChange): void {
    this.gossip?.publishChange(change);
  }

  /** Idempotent. Announces the leave, stops the services, then libp2p. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.announceTimer);
    if (this.gossip) {
      await Promise.race([this.gossip.publishLeave(), new Promise((resolve) => setTimeout(resolve, leaveFlushMsMax).unref())]);
      this.gossip.stop();
    }
    await this.sync.stop();
    await this.query.stop();
    await this.libp2p.stop();
  }

  peerList(): PeerInfo[] {
    return this.peers.list();
  }

  forget(peer: string): boolean {
    this.scheduler.peerDisconnected(peer);
    return this.peers.forget(peer);
  }

  /** Sessions now with one peer or every connected member, yielding each report as it ends. */
  async *syncNow(peer?: string): AsyncGenerator<{ phase: 'started'; peerId: string } | { phase: 'finished'; report: SessionReport }> {
    const targets = peer ? [peer] : this.peers.connectedIds();
    if (targets.length === 0) throw new NoPeersError();
    for (const target of targets) {
      if (this.peers.get(target)?.state !== 'up') throw new UnknownPeerError(target);
    }
    for (const target of targets) {
      yield { phase: 'started', peerId: target };
      yield { phase: 'finished', report: await this.runSession(target) };
    }
  }

  /** Ask every connected member which version of `key` it holds. */
  async whereIs(key: string): Promise<{ peerId: string; holding?: Holding; error?: string }[]> {
    return Promise.all(
      this.peers.connectedIds().map(async (peerId) => {
        try {
          return { peerId, holding: await this.query.whereIs(peerIdFromString(peerId), key) };
        } catch (error) {
          return { peerId, error: (error as Error).message };
        }
      }),
    );
  }

  // --- membership and scheduling ------------------------------------------------------------

  private onIdentify(result: IdentifyResult): void {
    if (this.stopped || !result.protocols.includes(this.sync.protocol)) return;
    const peerId = result.peerId.toString();
    const known = this.peers.get(peerId)?.state === 'up';
    this.peers.up(peerId, result.listenAddrs.map((a) => a.toString()), /node\/([0-9a-f]{16})/.exec(result.agentVersion ?? '')?.[1]);
    if (!known) {
      this.components.logger.info('peer up', { peer: peerId });
      // Both ends see the connection; only the smaller peer id syncs at once, so a rejoining
      // node's missing entries cross the wire once, not once per direction.
      if (this.peerId < peerId) this.scheduler.peerConnected(peerId);
      else this.scheduler.peerKnown(peerId);
      this.wake();
      this.scheduleAnnounce(membersAnnounceAfterJoinMs);
    }
  }

  private onDisconnect(peer: PeerId): void {
    const peerId = peer.toString();
    const info = this.peers.get(peerId);
    if (!info) return;
    if (info.state === 'up') this.components.logger.info('peer down', { peer: peerId });
    this.peers.down(peerId);
    this.scheduler.peerDisconnected(peerId);
  }

  private onLeave(peerId: string): void {
    this.components.logger.info('peer left', { peer: peerId });
    this.peers.left(peerId);
    this.scheduler.peerDisconnected(peerId);
  }

  /** Tell the cluster where we listen (coalesced: the earliest pending announce wins). */
  private scheduleAnnounce(afterMs: number): void {
    if (this.stopped || !this.gossip) return;
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => {
      void this.gossip?.publishMembers(this.listenAddresses());
      this.scheduleAnnounce(membersAnnounceIntervalMs);
    }, afterMs);
    this.announceTimer.unref();
  }

  /** A member we are not connected to said where it listens: dial it (rate-limited). */
  private async onMembers(peer: string, addresses: string[]): Promise<void> {
    if (this.stopped || this.peers.get(peer)?.state === 'up') return;
    const now = Date.now();
    if (now - (this.lastDialMs.get(peer) ?? 0) < memberDialIntervalMs) return;
    this.lastDialMs.set(peer, now);
    if (this.lastDialMs.size > 1024) this.lastDialMs.clear();
    try {
      const id = peerIdFromString(peer);
      const multiaddrs = addresses.map((address) => multiaddr(address)).filter((a) => a.getComponents().every((c) => c.name !== 'p2p' || c.value === peer));
      await this.libp2p.peerStore.merge(id, { multiaddrs });
      await this.libp2p.dial(id, { signal: AbortSignal.timeout(5_000) });
    } catch (error) {
      this.components.counters.add('member_dial_failed');
      this.components.logger.info('member dial failed', { peer, error });
    }
  }

  /** A peer announced a value too large to gossip: sync with it soon. */
  private pullFrom(peerId: string): void {
    this.scheduler.requestNow(peerId);
    this.wake();
  }

  private wake(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const now = Date.now();
    this.timer = setTimeout(() => this.tick(), Math.max(0, this.scheduler.wakeAtMs(now) - now));
    this.timer.unref();
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (let peer = this.scheduler.takeDue(now); peer !== undefined; peer = this.scheduler.takeDue(now)) {
      const target = peer;
      void this.runSession(target).then((report) => {
        const ok = report.outcome === 'in-sync' || report.outcome === 'synced' || report.outcome === 'skipped';
        this.scheduler.report(target, ok, Date.now());
        this.wake();
      });
    }
    this.wake();
  }

  private async runSession(peerId: string): Promise<SessionReport> {
    const report = await this.sync.syncWith(peerIdFromString(peerId));
    if (report.outcome === 'skipped') return report;
    const ok = report.outcome === 'in-sync' || report.outcome === 'synced';
    this.peers.recordSync(peerId, report.error ? `${report.outcome}: ${report.error}` : report.outcome, ok);
    const received = report.result?.entriesReceived ?? 0;
    const sent = report.result?.entriesSent ?? 0;
    if (received + sent > 0 || !ok) {
      this.components.logger.info('sync', {
        peer: peerId,
        outcome: report.outcome,
        rounds: report.result?.rounds ?? 0,
        received,
        sent,
        bytesIn: report.bytesReceived,
        bytesOut: report.bytesSent,
        ms: report.durationMs,
        ...(report.error ? { error: report.error } : {}),
      });
    }
    return report;
  }
}

async function readClusterKey(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CkvError('ERR_CLUSTER_KEY', `cannot read cluster key ${path}: ${(error as Error).message}`);
  }
}
