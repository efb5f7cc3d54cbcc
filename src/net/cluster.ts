/**
 * The cluster side of a node: libp2p plus the services that run on it (gossip, anti-entropy,
 * queries), and the adapter between libp2p and the pure membership state machine
 * (src/core/membership.ts), which owns everything known about other nodes and decides who
 * syncs with whom and when. This file only translates: libp2p events (identify, disconnect),
 * gossip membership messages (after checking their signature) and session outcomes go in;
 * effects (sync, dial, announce, persist the incarnation, log) come out and are carried out
 * here, with the one timer the membership asks for (`wakeAtMs`).
 *
 * A peer becomes a member when identify shows it speaks our cluster's sync protocol and names
 * its node id (the agent string `ckv/<version> node/<id> inc/<incarnation>`, the peer's own
 * claim over its own authenticated connection). The incarnation is kept in the store and
 * raised on every start. On a clean stop the node gossips a signed leave, so peers show it as
 * left rather than unreachable.
 *
 * Partitioned mode (`--replicas K`): a LayoutService (./layout-service.ts) owns the layout
 * history; this file checks the signature of each `layout` gossip message against the peer id
 * it names, hands it over, and answers `ownership()`, `peerIdOf`, `onLayoutChange` and `holds`
 * from it (before the first layout a partitioned node holds nothing). A full-replication node
 * that hears a layout (a cluster of another mode) refuses to serve, like a partitioned node
 * whose K disagrees (`refusal()`).
 * Anti-entropy there is per partition (sync 1.2.0): membership syncs only with members that
 * share a partition with us, each session restricted to the partitions shared and settled
 * (neither side still gaining them: `Ownership.settledSharedPartitions`); the pull loop and the
 * purge (./partition-pulls.ts) rebalance after a layout change.
 *
 * Bootstrap addresses that do not give a member (nothing listens, another cluster key,
 * another cluster name) are logged, counted and shown in the status by BootstrapHealth
 * (./bootstrap-health.ts), from the redial loop's reports and from identify.
 */
import { readFile } from 'node:fs/promises';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { IdentifyResult, PeerId, PrivateKey } from '@libp2p/interface';
import { CkvError } from '../core/errors.js';
import { NotPartitionedError, PeerConnectedError } from '../errors.js';
import { Membership, type MemberInfo, type MembershipEffect, type MemberMessage } from '../core/membership.js';
import type { HashText } from '../core/entry.js';
import { FullReplication, holds, partitionCount, partitionOfHash, type Layout, type PartitionId, type Placement } from '../core/placement.js';
import type { PageRequest, ScanPage } from '../core/scatter-read.js';
import { LayoutChangeError, ReplicasMismatchError, partitionBitmap, type NodeRemovedError } from '../core/layout.js';
import { isNodeId } from '../core/entry.js';
import { watermarkRefreshQuietMs } from '../core/limits.js';
import { decodeLayoutEnvelope, layoutSignedBytes } from '../core/layout-wire.js';
import type { Ownership } from '../core/ownership.js';
import { LayoutService, checkPersistedLayout, type PartitionedStatus } from './layout-service.js';
import { PartitionSync, type PullProgress, type PurgeReport } from './partition-pulls.js';
import type { AppliedChange, Replica } from '../core/replica.js';
import type { Store } from '../core/store.js';
import { ckvVersion, type NodeConfig } from '../config.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';
import type { Hlc } from '../core/hlc.js';
import { Gossip, encodeMemberMessage, gossipTopic, gossipValueBytesMaxDefault, type GossipMessage } from './gossip.js';
import { IdentifyWatch, identifyCheckIntervalMsDefault } from './identify-watch.js';
import { loadKnownPeers, knownPeersSaveIntervalMs, saveKnownPeers } from './known-peers.js';
import { BootstrapHealth, type BootstrapView } from './bootstrap-health.js';
import { createNetwork, type BootstrapEvent, type CkvLibp2p } from './libp2p.js';
import { QueryService, type HealthReport, type Holding } from './query-protocol.js';
import { SyncService, syncProtocolId, type SessionReport } from './sync-protocol.js';

/**
 * How long a clean stop waits for its leave message to go out. Usually the wait ends as soon as
 * the leave is sent (a few ms); the bound only matters when nobody can hear it. 500 ms was too
 * short on a machine at load 15-20 (the leave was cut off and peers saw 'unreachable', not
 * 'left'), so it is generous: it delays only a stop whose leave cannot be delivered.
 */
const leaveFlushMsMax = 2000;
/** How often the store's bytes per entry is measured for the layout plan's sizes (a size query of the store). */
const partitionSizeMeasureMs = 10_000;
/** After the leave is published, how long a clean stop keeps the streams open for it to go out. */
const leavePropagateMs = 200;
/** How long a dial of an announced member may take. */
const memberDialTimeoutMs = 5_000;
/** How long listenAddresses() reuses the addresses it built (ms; see there). */
const listenAddressesCacheMs = 1_000;

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
export async function loadPrivateKey(store: Pick<Store, 'getMeta' | 'putMeta'>): Promise<PrivateKey> {
  const stored = await store.getMeta('peer-key');
  if (stored) return privateKeyFromProtobuf(stored);
  const key = await generateKeyPair('Ed25519');
  await store.putMeta('peer-key', privateKeyToProtobuf(key));
  return key;
}

/** This start's incarnation: one more than the last start's, persisted before it is used. */
export async function nextIncarnation(store: Pick<Store, 'getMeta' | 'putMeta'>): Promise<number> {
  const stored = await store.getMeta('incarnation');
  const last = stored && stored.byteLength === 8 ? Number(new DataView(stored.buffer, stored.byteOffset, 8).getBigUint64(0)) : 0;
  const next = last + 1;
  await persistIncarnation(store, next);
  return next;
}

async function persistIncarnation(store: Pick<Store, 'putMeta'>, incarnation: number): Promise<void> {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(incarnation));
  await store.putMeta('incarnation', bytes);
}

/** The identify agent string: the peer's own claim of its node id and incarnation. */
export function agentString(nodeId: string, incarnation: number): string {
  return `ckv/${ckvVersion} node/${nodeId} inc/${incarnation}`;
}

export function parseAgent(agent: string | undefined): { nodeId: string; incarnation: number } | undefined {
  const match = /node\/([0-9a-f]{16})(?: inc\/(\d{1,15}))?/.exec(agent ?? '');
  return match ? { nodeId: match[1]!, incarnation: Number(match[2] ?? 0) } : undefined;
}

export interface ClusterComponents {
  replica: Replica;
  counters: Counters;
  logger: Logger;
  /** Where the libp2p key and the incarnation are kept; its size estimates partition bytes (partitioned mode). */
  store: Pick<Store, 'getMeta' | 'putMeta' | 'scanKeys'> & Partial<Pick<Store, 'sizeBytes'>>;
  /** The node's wall clock (Date.now unless a test skews it). */
  wallClockMs?: () => number;
  /** This node's report of itself, for `ckv health` asked on another node (query protocol). */
  healthReport?: () => Promise<HealthReport>;
  /** Told of each membership event it logs and each failed sync session (the node's timeline). */
  onEvent?: (event: { kind: string; nodeId: string; peerId: string; detail: string }) => void;
  /**
   * Tombstone GC (src/node/gc-floor.ts): a session this node initiated with `nodeId` ended
   * in-sync; `settled` is the replica's settled HLC read before the session started.
   */
  onSessionInSync?: (nodeId: string, settled: Hlc) => void;
}

export class ClusterNetwork {
  private readonly membership: Membership;
  /** Who holds what; the membership's layout is its input. Full replication today. */
  private readonly placement: Placement = new FullReplication();
  private timer: NodeJS.Timeout | undefined;
  /** When `timer` fires (Infinity: not armed). */
  private timerAtMs = Number.POSITIVE_INFINITY;
  /** Full replication: the membership refreshes catch-up watermarks after a burst (noteApplied). */
  private readonly refreshesWatermarks: boolean;
  private stopped = false;
  /** Connected peers that are not members are identified again (./identify-watch.ts). */
  private readonly identifyWatch = new IdentifyWatch();
  private identifyTimer: NodeJS.Timeout | undefined;
  /** The known-peers list is saved at most once per knownPeersSaveIntervalMs (./known-peers.ts). */
  private knownPeersSave: NodeJS.Timeout | undefined;
  /** listenAddresses()'s last answer and when it was built (performance.now ms). */
  private addressesCache: { atMs: number; addresses: string[] } | undefined;
  /** Partitioned mode's layout (undefined in full-replication mode). */
  private layouts: LayoutService | undefined;
  /** Full-replication mode: a layout heard from a peer (a partitioned cluster): refuse to serve. */
  private modeMismatch: ReplicasMismatchError | undefined;
  /** Partitioned mode: pulls of new partitions and the purge of those no longer held. */
  private partitionSync: PartitionSync | undefined;

  private constructor(
    readonly libp2p: CkvLibp2p,
    private readonly gossip: Gossip | undefined,
    private readonly sync: SyncService,
    private readonly query: QueryService,
    private readonly components: ClusterComponents,
    private readonly privateKey: PrivateKey,
    incarnation: number,
    config: NodeConfig,
    /** What became of each --bootstrap address (warnings, counters, status). */
    private readonly bootstrap: BootstrapHealth,
  ) {
    this.refreshesWatermarks = config.replicas === undefined;
    this.membership = new Membership(
      {
        self: { nodeId: components.replica.nodeId, peerId: libp2p.peerId.toString(), incarnation },
        rng: Math.random,
        syncIntervalMs: config.syncIntervalMs,
        placement: this.placement,
        // Partitioned: members that share a partition with us in the active layouts (none before the first).
        ...(config.replicas === undefined ? {} : { sharesPartitions: (nodeId: string) => this.sharedPartitions(nodeId) !== undefined }),
        // Full replication: catch-up watermarks left lagging by a burst are proven again after it.
        ...(config.replicas === undefined
          ? { watermarks: { seqLast: () => components.replica.seqApplied, lagging: (entriesMin: number) => components.replica.laggingWatermarks(entriesMin) } }
          : {}),
      },
      this.now(),
    );
  }

  static async start(config: NodeConfig, components: ClusterComponents): Promise<ClusterNetwork> {
    const clusterKey = config.clusterKeyFile ? await readClusterKey(config.clusterKeyFile) : undefined;
    // A data directory of a removed node, or whose persisted layout disagrees with --replicas, refuses to start (exit 4).
    await checkPersistedLayout(components.store, config.replicas, components.replica.nodeId);
    const privateKey = await loadPrivateKey(components.store);
    const incarnation = await nextIncarnation(components.store);
    const bootstrap = new BootstrapHealth(
      {
        addresses: config.bootstrap.map((address) => multiaddr(address).toString()),
        cluster: config.cluster,
        syncProtocol: syncProtocolId(config.cluster),
        clusterKey: clusterKey !== undefined,
        counters: components.counters,
        logger: components.logger,
      },
      Date.now(),
    );
    const onBootstrap = (event: BootstrapEvent): void => {
      if (event.kind === 'failed') bootstrap.dialFailed(event.address, event.error, Date.now());
      else if (event.kind === 'connected') bootstrap.dialConnected(event.address, event.peerId, Date.now());
      else bootstrap.dialSelf(event.address);
    };
    // Gossip needs libp2p, which reports message ids to gossip: bind through a holder.
    const late: { gossip?: Gossip } = {};
    const libp2p = await createNetwork({
      privateKey,
      listen: config.listen,
      bootstrap: config.bootstrap,
      mdns: config.mdns,
      ...(clusterKey ? { clusterKey } : {}),
      gossipTopic: gossipTopic(config.cluster),
      userAgent: agentString(components.replica.nodeId, incarnation),
      onBootstrap,
      onGossipMessageId: (data) => late.gossip?.observeCopy(data),
      onPatchUnsupported: (patch) => components.logger.warn('library patch unsupported', { patch, effect: 'the library runs its own slower code' }),
    });
    const base = { libp2p, replica: components.replica, counters: components.counters, logger: components.logger };
    // The gossip and session callbacks need the cluster, which needs them: bind through a holder.
    const self: { cluster?: ClusterNetwork } = {};
    const gossip = config.gossip
      ? new Gossip(
          { pubsub: libp2p.services.pubsub, replica: components.replica, counters: components.counters, logger: components.logger, selfPeerId: libp2p.peerId.toString() },
          {
            cluster: config.cluster,
            gossipValueBytesMax: gossipValueBytesMaxDefault,
            valueBytesMax: config.valueBytesMax,
            onAnnounce: (peer) => self.cluster?.pullFrom(peer),
            onMember: (message) => void self.cluster?.onMemberMessage(message),
            onLayout: (message) => void self.cluster?.onLayoutMessage(message),
            otherHolders: (keyHash) => self.cluster?.otherHolders(keyHash) ?? 0,
          },
        )
      : undefined;
    late.gossip = gossip;
    const sync = new SyncService(
      {
        ...base,
        sessions: {
          hello: (peerId, wallMs, entryCount) => self.cluster?.membership.hello(peerId, wallMs, entryCount, self.cluster.now()),
          served: (peerId, ok, result) => {
            const cluster = self.cluster;
            if (!cluster) return;
            const membership = cluster.membership;
            // Watermarks exist under full replication only (restricted sessions have no delta).
            const nodeId = config.replicas === undefined ? membership.get(peerId)?.nodeId : undefined;
            const watermarkHeld = nodeId === undefined ? undefined : components.replica.watermarkOf(nodeId) !== undefined;
            if (membership.sessionServed(peerId, { ok, result, ...(watermarkHeld === undefined ? {} : { watermarkHeld }) }, cluster.now())) cluster.wake();
          },
          acceptsInbound: () => self.cluster?.membership.acceptsInbound() ?? false,
        },
      },
      {
        cluster: config.cluster,
        inboundSessionsMax: config.inboundSessionsMax,
        valueBytesMax: config.valueBytesMax,
        rng: Math.random,
        ...(components.wallClockMs ? { wallClockMs: components.wallClockMs } : {}),
        // Partitioned: sessions restricted to what we hold (nothing before the first layout).
        ...(config.replicas === undefined ? {} : { partitionsHeld: () => self.cluster?.servedPartitions() ?? partitionBitmap([]) }),
      },
    );
    const query = new QueryService(
      {
        ...base,
        healthReport: components.healthReport,
        // Partitioned: pages of a scatter-gather prefix read, only of partitions this node holds.
        ...(config.replicas === undefined
          ? {}
          : {
              scan: (options: { prefix: string; startAfter?: string }) => components.store.scanKeys(options),
              holds: (partition: PartitionId) => self.cluster?.ownership()?.holds(partition) ?? false,
            }),
      },
      config.cluster,
    );
    const cluster = new ClusterNetwork(libp2p, gossip, sync, query, components, privateKey, incarnation, config, bootstrap);
    self.cluster = cluster;
    if (config.replicas !== undefined) {
      cluster.layouts = await LayoutService.open(
        { replicas: config.replicas, weight: config.weight, autoJoin: config.autoJoin, hasBootstrap: config.bootstrap.length > 0 },
        {
          self: components.replica.nodeId,
          store: components.store,
          counters: components.counters,
          logger: components.logger,
          publish: (body) => cluster.publishLayout(body),
          hasSubscribers: () => gossip?.hasSubscriber() ?? false,
          upMembers: () => new Map([...cluster.membership.list().filter((m) => m.state === 'up').map((m): [string, string] => [m.nodeId, m.peerId]), [components.replica.nodeId, cluster.peerId]]),
          nodeIdOfPeer: (peerId) => (peerId === cluster.peerId ? components.replica.nodeId : cluster.membership.get(peerId)?.nodeId),
          peerIdOfNode: (nodeId) => (nodeId === components.replica.nodeId ? cluster.peerId : cluster.membership.get(nodeId)?.peerId),
          now: () => cluster.now(),
          partitionSizes: () => cluster.partitionSizes(),
        },
      );
      cluster.partitionSync = new PartitionSync({
        ownership: () => (cluster.refusal() ? undefined : cluster.ownership()),
        replica: components.replica,
        session: (nodeId, partitions) => cluster.restrictedSession(nodeId, partitions),
        isUp: (nodeId) => cluster.peerIdOf(nodeId) !== undefined,
        counters: components.counters,
        logger: components.logger,
      });
      cluster.onLayoutChange(() => {
        cluster.membership.partitionsChanged();
        cluster.partitionSync?.wake();
        cluster.wake();
      });
    }
    await cluster.begin();
    return cluster;
  }

  get peerId(): string {
    return this.libp2p.peerId.toString();
  }

  /** The node's wall clock: membership's times and clock offsets are measured on it. */
  now(): number {
    return (this.components.wallClockMs ?? Date.now)();
  }

  /** How far this node's clock is ahead of its up peers' (membership's measurement). */
  clockAheadOfPeersMs(): number {
    return this.membership.clockAheadOfPeersMs();
  }

  get incarnation(): number {
    return this.membership.incarnation;
  }

  /**
   * The addresses peers can dial us on. Kept for up to a second, and dropped at once when
   * libp2p says our addresses changed ('self:peer:update'): libp2p builds them afresh at each
   * call (with 0.0.0.0, from the host's interfaces): ~40 % of reading the node's status, ~0.1 ms
   * of each Status answer, and a node catching up is asked often (docs/measurements.md,
   * 2026-12-04 (night)). The second covers an interface that comes or goes without an event.
   */
  listenAddresses(): string[] {
    const nowMs = performance.now();
    if (this.addressesCache === undefined || nowMs - this.addressesCache.atMs > listenAddressesCacheMs) {
      this.addressesCache = { atMs: nowMs, addresses: this.libp2p.getMultiaddrs().map((address) => address.toString()) };
    }
    return [...this.addressesCache.addresses];
  }

  private async begin(): Promise<void> {
    this.gossip?.start();
    this.layouts?.start();
    this.partitionSync?.start();
    await this.sync.start();
    await this.query.start();
    this.membership.setAddresses(this.listenAddresses());
    this.libp2p.addEventListener('self:peer:update', () => {
      this.addressesCache = undefined;
      this.membership.setAddresses(this.listenAddresses());
    });
    this.libp2p.addEventListener('peer:identify', (event) => this.onIdentify(event.detail));
    this.libp2p.addEventListener('peer:disconnect', (event) => this.onDisconnect(event.detail));
    // Connections opened before the handlers and the listener above (the bootstrap dials go out
    // as libp2p starts): their identify may have completed unheard, or shown the peer our
    // protocol list before it had the sync protocol. Ask them again now.
    for (const connection of this.libp2p.getConnections()) this.reidentify(connection.remotePeer.toString());
    this.identifyTimer = setInterval(() => this.checkStrangers(), identifyCheckIntervalMsDefault);
    this.identifyTimer.unref();
    this.wake();
    void this.redialKnownPeers();
  }

  /** Dials the members this node saw up before it restarted (./known-peers.ts). */
  private async redialKnownPeers(): Promise<void> {
    try {
      const self = this.peerId;
      for (const peer of await loadKnownPeers(this.components.store)) {
        if (this.stopped) return;
        if (peer.peerId === self || peer.addresses.length === 0) continue;
        void this.dial(peer.peerId, peer.addresses);
      }
    } catch (error) {
      this.components.logger.info('known peers not redialed', { error });
    }
  }

  /** Saves the members up now (with their addresses), at most once per interval. */
  private scheduleKnownPeersSave(): void {
    if (this.knownPeersSave !== undefined || this.stopped) return;
    this.knownPeersSave = setTimeout(() => {
      this.knownPeersSave = undefined;
      if (!this.stopped) void this.saveKnownPeersNow();
    }, knownPeersSaveIntervalMs);
    this.knownPeersSave.unref();
  }

  /** Writes the members up now, most recently up first. Never throws (the list is only a hint). */
  private async saveKnownPeersNow(): Promise<void> {
    const peers = this.membership
      .list()
      .filter((member) => member.state === 'up' && member.addresses.length > 0)
      .sort((a, b) => b.sinceMs - a.sinceMs)
      .map((member) => ({ peerId: member.peerId, addresses: member.addresses }));
    await saveKnownPeers(this.components.store, peers).catch((error: unknown) => this.components.logger.info('known peers not saved', { error }));
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
    clearInterval(this.identifyTimer);
    if (this.knownPeersSave !== undefined) {
      // A member came up since the last save (the timer runs up to knownPeersSaveIntervalMs
      // after it): save now, while the members are still up, or a node stopped within that
      // window would restart without them (a first node, started without --bootstrap, then
      // found nobody: its peers dial the address it had before the restart).
      clearTimeout(this.knownPeersSave);
      this.knownPeersSave = undefined;
      await this.saveKnownPeersNow();
    }
    await this.partitionSync?.stop();
    await this.layouts?.stop();
    if (this.gossip) {
      // Our members must hear the leave: with members up, wait (within the flush bound) until
      // gossip can publish to each of them, or the leave would miss them.
      const leaving = (async () => {
        const upPeerIds = this.membership.upPeerIds();
        if (upPeerIds.length > 0) await this.gossip?.waitForSubscribers(upPeerIds, leaveFlushMsMax);
        await Promise.all(this.membership.leave().map((effect) => this.carryOut(effect, { force: true })));
        // publish() resolves once the leave is queued on each peer's stream, and gossip.stop()
        // closes those streams: give the queued bytes a moment to reach the sockets (as Serf's
        // LeavePropagateDelay). Without it, at load 15-20 the leave was sometimes dropped and
        // peers showed 'unreachable' instead of 'left'.
        if (this.membership.upPeerIds().length > 0) await new Promise((resolve) => setTimeout(resolve, leavePropagateMs).unref());
      })();
      await Promise.race([leaving, new Promise((resolve) => setTimeout(resolve, leaveFlushMsMax).unref())]);
      this.gossip.stop();
    }
    await this.sync.stop();
    await this.query.stop();
    await this.libp2p.stop();
  }

  /** Whether this node holds the key with this hash under the current layout (placement). */
  holds(keyHash: HashText): boolean {
    // Partitioned: what the layouts give us; before the first, nothing (we may own none of it).
    if (this.layouts) return this.layouts.ownership.ready() && this.layouts.ownership.holds(partitionOfHash(keyHash));
    // Full replication: every partition has the same owners, so the answer is the layout's, not
    // the key's; worked out once per layout (the replica asks for every entry it applies).
    const layout = this.membership.layout();
    if (layout !== this.fullHolds?.layout) this.fullHolds = { layout, holds: holds(this.placement, layout, this.components.replica.nodeId, keyHash) };
    return this.fullHolds.holds;
  }

  /** holds() under full replication, for the layout it was worked out for. */
  private fullHolds: { layout: Layout; holds: boolean } | undefined;

  /** How many other nodes hold the key with this hash. */
  otherHolders(keyHash: HashText): number {
    const owners = this.placement.ownersOf(this.placement.partitionOf(keyHash), this.membership.layout());
    return owners.length - (owners.includes(this.components.replica.nodeId) ? 1 : 0);
  }

  /** Who holds what in partitioned mode; undefined in full-replication mode or before the first layout. */
  ownership(): Ownership | undefined {
    return this.layouts?.ownership.ready() ? this.layouts.ownership : undefined;
  }

  /** The layout service (partitioned mode only): history, staging, status. */
  layoutService(): LayoutService | undefined {
    return this.layouts;
  }

  /** The peer id of the up member with this node id (this node's own too). */
  peerIdOf(nodeId: string): string | undefined {
    if (nodeId === this.components.replica.nodeId) return this.peerId;
    const member = this.membership.get(nodeId);
    return member?.state === 'up' && member.nodeId === nodeId ? member.peerId : undefined;
  }

  /** Told after every change of the layouts (partitioned mode; never in full mode). Returns the unsubscribe. */
  onLayoutChange(listener: () => void): () => void {
    return this.layouts?.onChange(listener) ?? (() => undefined);
  }

  /** Why this node refuses reads and writes (a --replicas that disagrees with the cluster's layout), if it does. */
  refusal(): NodeRemovedError | ReplicasMismatchError | undefined {
    return this.layouts?.refusal() ?? this.modeMismatch;
  }

  /**
   * Partitioned mode: this node's rows per partition, for the layout plan's sizes: keys from
   * the Merkle tree (exact, tombstones included), bytes estimated as keys times the store's
   * bytes per entry (measured at most every partitionSizeMeasureMs, in the background).
   */
  partitionSizes(): { partition: number; keys: number; bytes: number }[] {
    const replica = this.components.replica;
    if (replica.depth < 2) return [];
    const nowMs = this.now();
    if (nowMs - this.bytesPerEntryAtMs >= partitionSizeMeasureMs && this.components.store.sizeBytes) {
      this.bytesPerEntryAtMs = nowMs;
      void this.components.store
        .sizeBytes()
        .then((bytes) => {
          this.bytesPerEntry = replica.entryCount > 0 ? bytes / replica.entryCount : 0;
        })
        .catch(() => undefined);
    }
    const sizes: { partition: number; keys: number; bytes: number }[] = [];
    for (let p = 0; p < partitionCount; p++) {
      const keys = replica.partitionEntryCount(p);
      if (keys > 0) sizes.push({ partition: p, keys, bytes: Math.round(keys * this.bytesPerEntry) });
    }
    return sizes;
  }

  private bytesPerEntry = 0;
  private bytesPerEntryAtMs = -Infinity;

  /** The layout service, or NotPartitionedError in full-replication mode (`what`: the command asked, for the message). */
  partitionedLayout(what: string): LayoutService {
    if (!this.layouts) throw new NotPartitionedError(what);
    return this.layouts;
  }

  /** A node id from a node id (16 hex digits) or the peer id of a known member. Throws LayoutChangeError. */
  resolveNode(node: string): string {
    if (isNodeId(node)) return node;
    const member = node === this.peerId ? { nodeId: this.components.replica.nodeId } : this.membership.get(node);
    if (!member) throw new LayoutChangeError(`unknown node ${JSON.stringify(node)}: give a node id (16 hex digits) or the peer id of a known member`);
    return member.nodeId;
  }

  /** Whether the member with this node id is up (this node is). */
  isUp(nodeId: string): boolean {
    return nodeId === this.components.replica.nodeId || this.membership.get(nodeId)?.state === 'up';
  }

  /** The partitioned part of the status (undefined in full mode). */
  partitionedStatus(): PartitionedStatus | undefined {
    if (!this.layouts) return undefined;
    const up = new Set(this.membership.list().filter((m) => m.state === 'up').map((m) => m.nodeId));
    const status = this.layouts.status(up);
    // Who blocks this node's pulls (partition-pulls.ts).
    return { ...status, rebalance: { ...status.rebalance, blockedBy: this.partitionSync?.progress().blockedBy ?? [] } };
  }

  /** Every known member (not removed), by node id. */
  peerList(): MemberInfo[] {
    return this.membership.list();
  }

  /** Each --bootstrap address (but our own): connected, or why not and since when. */
  bootstrapList(): BootstrapView[] {
    return this.bootstrap.list();
  }

  /**
   * Drop a member that is down (by peer id or node id). False if unknown; a connected member
   * is refused with PeerConnectedError.
   */
  forget(peer: string): boolean {
    const result = this.membership.forget(peer, this.now());
    if (result === 'connected') throw new PeerConnectedError(peer);
    return result === 'forgotten';
  }

  /** Sessions now with one peer or every connected member, yielding each report as it ends. */
  async *syncNow(peer?: string): AsyncGenerator<{ phase: 'started'; peerId: string } | { phase: 'finished'; report: SessionReport }> {
    const targets = peer ? [this.membership.get(peer)?.peerId ?? peer] : this.membership.upPeerIds();
    if (targets.length === 0) throw new NoPeersError();
    for (const target of targets) {
      if (this.membership.get(target)?.state !== 'up') throw new UnknownPeerError(target);
    }
    for (const target of targets) {
      yield { phase: 'started', peerId: target };
      yield { phase: 'finished', report: await this.runSession(target, this.membership.get(target)?.nodeId) };
    }
  }

  /** Ask every connected member which version of `key` it holds. */
  async whereIs(key: string): Promise<{ peerId: string; holding?: Holding; error?: string }[]> {
    return Promise.all(
      this.membership.upPeerIds().map(async (peerId) => {
        try {
          return { peerId, holding: await this.query.whereIs(peerIdFromString(peerId), key) };
        } catch (error) {
          return { peerId, error: errorText(error) };
        }
      }),
    );
  }

  /** The up members' peer ids (not this node). */
  upPeerIds(): string[] {
    return this.membership.upPeerIds();
  }

  /** One page of a scatter-gather prefix read from `peerId` (query protocol; see src/core/scatter-read.ts). */
  scanPage(peerId: string, request: PageRequest, withValues: boolean, valueBytesMax: number): Promise<ScanPage> {
    return this.query.scanPage(peerIdFromString(peerId), request, withValues, valueBytesMax);
  }

  /** Each up member's report of itself (or why it gave none), asked at once, each within `timeoutMs`. */
  async healthOfPeers(timeoutMs: number): Promise<Map<string, { report?: HealthReport; error?: string }>> {
    const answers = await Promise.all(
      this.membership.upPeerIds().map(async (peerId): Promise<[string, { report?: HealthReport; error?: string }]> => {
        try {
          return [peerId, { report: await this.query.health(peerIdFromString(peerId), timeoutMs) }];
        } catch (error) {
          return [peerId, { error: errorText(error) }];
        }
      }),
    );
    return new Map(answers);
  }

  // --- libp2p and gossip events into the membership -----------------------------------------

  private onIdentify(result: IdentifyResult): void {
    if (this.stopped) return;
    this.bootstrap.identify(result.peerId.toString(), result.protocols, Date.now());
    const agent = parseAgent(result.agentVersion);
    if (!result.protocols.includes(this.sync.protocol) || !agent) {
      // Not of our cluster (or not yet: asked again on the watch's schedule). An agent with no
      // node id speaks our protocol but is not a ckv node we can key.
      this.identifyWatch.foreign(result.peerId.toString());
      return;
    }
    const peerId = result.peerId.toString();
    const addresses = result.listenAddrs.map((a) => a.toString());
    this.apply(this.membership.connected({ nodeId: agent.nodeId, peerId, incarnation: agent.incarnation, addresses }, this.now()));
    this.layouts?.peerUp();
    this.partitionSync?.wake();
  }

  /** Connected peers that are not up members: identify them again, or hang up (./identify-watch.ts). */
  private checkStrangers(): void {
    if (this.stopped) return;
    const up = new Set(this.membership.upPeerIds());
    const strangers = new Set<string>();
    for (const connection of this.libp2p.getConnections()) {
      const peerId = connection.remotePeer.toString();
      if (connection.status === 'open' && !up.has(peerId)) strangers.add(peerId);
    }
    const actions = this.identifyWatch.check(strangers, Date.now());
    for (const peerId of actions.identify) {
      this.components.counters.add('identify_retried');
      this.reidentify(peerId);
    }
    for (const peerId of actions.hangUp) {
      this.components.counters.add('identify_hung_up');
      this.components.logger.info('identify never succeeded: reconnecting', { peer: peerId });
      this.libp2p.hangUp(peerIdFromString(peerId)).catch(() => undefined);
    }
  }

  /** Runs identify on an open connection to `peerId`; its result arrives as a `peer:identify` event. */
  private reidentify(peerId: string): void {
    const connection = this.libp2p.getConnections(peerIdFromString(peerId)).find((c) => c.status === 'open');
    if (!connection) return;
    this.libp2p.services.identify.identify(connection).catch(() => {
      // Timed out or the connection went: the watch asks again, then hangs up.
    });
  }

  private onDisconnect(peer: PeerId): void {
    if (this.stopped) return;
    this.apply(this.membership.disconnected(peer.toString(), this.now()));
  }

  /** A membership message: only taken if signed by the peer it names. */
  private async onMemberMessage(gossip: Extract<GossipMessage, { type: 'member' }>): Promise<void> {
    if (this.stopped) return;
    let valid = false;
    try {
      const publicKey = peerIdFromString(gossip.message.peerId).publicKey;
      valid = publicKey !== undefined && (await publicKey.verify(gossip.body, gossip.signature));
    } catch {
      valid = false;
    }
    if (!valid) {
      this.components.counters.add('member_rejected');
      return;
    }
    this.apply(this.membership.message(gossip.message, gossip.message.peerId, this.now()));
  }

  /** A layout envelope: only taken if signed by the peer it names. */
  private async onLayoutMessage(gossip: Extract<GossipMessage, { type: 'layout' }>): Promise<void> {
    if (this.stopped) return;
    let valid = false;
    try {
      const publicKey = peerIdFromString(gossip.peerId).publicKey;
      valid = publicKey !== undefined && (await publicKey.verify(layoutSignedBytes(gossip.body), gossip.signature));
    } catch {
      valid = false;
    }
    if (!valid) {
      this.components.counters.add('layout_rejected');
      return;
    }
    if (this.layouts) {
      this.layouts.receive(gossip.peerId, gossip.body);
      return;
    }
    this.fullModeHeard(gossip.body);
  }

  /** Full mode: a peer's layouts mean its cluster is partitioned; say so once and refuse to serve. */
  private fullModeHeard(body: Uint8Array): void {
    if (this.modeMismatch) return;
    try {
      for (const part of decodeLayoutEnvelope(body).parts) {
        if (part.kind !== 'message' || part.message.type !== 'layouts') continue;
        const newest = part.message.layouts.at(-1)!;
        this.modeMismatch = new ReplicasMismatchError(undefined, newest.replicas);
        this.components.counters.add('layout_replicas_mismatch');
        this.components.logger.error('replicas mismatch: refusing to serve', { error: this.modeMismatch.message });
        return;
      }
    } catch {
      this.components.counters.add('layout_rejected');
    }
  }

  /** Sign and publish a layout envelope (LayoutService's publish). */
  private async publishLayout(body: Uint8Array): Promise<void> {
    if (!this.gossip || this.stopped) return;
    const signature = await this.privateKey.sign(layoutSignedBytes(body));
    await this.gossip.publishLayout(this.peerId, body, signature);
  }

  /** A peer announced a value too large to gossip: sync with it soon. */
  private pullFrom(peerId: string): void {
    this.membership.requestSync(peerId);
    this.wake();
  }

  // --- effects out --------------------------------------------------------------------------

  private apply(effects: MembershipEffect[]): void {
    for (const effect of effects) void this.carryOut(effect);
    this.wake();
  }

  private async carryOut(effect: MembershipEffect, options: { force?: boolean } = {}): Promise<void> {
    if (this.stopped && !options.force) return;
    switch (effect.kind) {
      case 'sync': {
        const startedMs = this.now();
        const report = await this.runSession(effect.peerId, effect.nodeId);
        const ok = report.outcome === 'in-sync' || report.outcome === 'synced' || report.outcome === 'skipped';
        const after = this.membership.sessionEnded(effect.nodeId, { ok, result: describe(report), inSync: ok, startedMs, skipped: report.peerSyncing === true, refusedBusy: report.result?.refuseReason === 'busy' }, this.now());
        this.apply(after); // wakes
        return;
      }
      case 'dial':
        return this.dial(effect.peerId, effect.addresses);
      case 'announce':
        return this.announce(effect.message);
      case 'persist-incarnation':
        return persistIncarnation(this.components.store, effect.incarnation);
      case 'log':
        if (effect.event === 'member refused') this.components.counters.add('member_rejected');
        if (effect.event === 'member up') this.scheduleKnownPeersSave();
        this.components.logger.info(effect.event, { node: effect.nodeId, peer: effect.peerId, ...(effect.detail ? { detail: effect.detail } : {}) });
        this.components.onEvent?.({ kind: effect.event, nodeId: effect.nodeId, peerId: effect.peerId, detail: effect.detail ?? '' });
        return;
    }
  }

  private async announce(message: MemberMessage): Promise<void> {
    if (!this.gossip) return;
    const body = encodeMemberMessage(message);
    const signature = await this.privateKey.sign(body);
    await this.gossip.publishMember(message, body, signature);
  }

  private async dial(peer: string, addresses: string[]): Promise<void> {
    try {
      const id = peerIdFromString(peer);
      const multiaddrs = addresses.map((address) => multiaddr(address)).filter((a) => a.getComponents().every((c) => c.name !== 'p2p' || c.value === peer));
      await this.libp2p.peerStore.merge(id, { multiaddrs });
      await this.libp2p.dial(id, { signal: AbortSignal.timeout(memberDialTimeoutMs) });
    } catch (error) {
      this.components.counters.add('member_dial_failed');
      this.components.logger.info('member dial failed', { peer, error });
    }
  }

  private wake(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const now = this.now();
    this.timerAtMs = this.membership.wakeAtMs(now);
    this.timer = setTimeout(() => this.tick(), Math.max(0, this.timerAtMs - now));
    this.timer.unref();
  }

  private tick(): void {
    this.timerAtMs = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    const deferredBefore = this.membership.syncRoundsDeferred;
    this.apply(this.membership.tick(this.now()));
    const deferred = this.membership.syncRoundsDeferred - deferredBefore;
    if (deferred > 0) this.components.counters.add('sync_rounds_deferred', deferred);
  }

  /**
   * The replica applied a change (every write, local or remote). Under full replication the
   * membership looks at the applied seq every watermarkRefreshQuietMs while it moves, to
   * refresh the catch-up watermarks a burst leaves lagging once it is over
   * (watermark-refresh.ts); its timer may be armed for the next periodic round, up to ~1.25 s
   * away, so it is brought forward. A comparison a write when the timer is due soon anyway.
   */
  noteApplied(): void {
    if (!this.refreshesWatermarks || this.stopped || this.timerAtMs <= this.now() + watermarkRefreshQuietMs) return;
    this.wake();
  }

  /**
   * Partitioned mode: the partitions this node and `nodeId` share now, as a bitmap, or
   * undefined if none (or before the first layout).
   */
  private sharedPartitions(nodeId: string, settled = false): Uint8Array | undefined {
    const ownership = this.refusal() ? undefined : this.ownership();
    if (ownership === undefined) return undefined;
    const shared = settled ? ownership.settledSharedPartitions(nodeId) : ownership.sharedPartitions(nodeId);
    return shared.some((byte) => byte !== 0) ? shared : undefined;
  }

  /**
   * Partitioned mode: what this node covers as a responder: every partition it holds, also
   * those it is still gaining. Excluding those deadlocks a change where two nodes each gain a
   * partition the other is a source of (layouts v1 {A}, v2 {A,B,C}, v3 {A,B} after C's removal:
   * A and B both gain partitions of C's, each pulling from the other, and neither would serve).
   * Periodic sessions still leave gaining partitions to the pull loop: their initiator asks for
   * `settledSharedPartitions` only.
   */
  servedPartitions(): Uint8Array | undefined {
    return this.ownership()?.heldPartitions();
  }

  /** A session restricted to `partitions` with an up member (pulls and offloads); undefined if it is not up. */
  private async restrictedSession(nodeId: string, partitions: Uint8Array): Promise<SessionReport | undefined> {
    const peerId = this.peerIdOf(nodeId);
    if (this.stopped || peerId === undefined || nodeId === this.components.replica.nodeId) return undefined;
    return this.sync.syncWith(peerIdFromString(peerId), nodeId, partitions, true);
  }

  /** Partitioned mode: pull progress (`ckv balance`, status); undefined in full-replication mode. */
  pullProgress(): PullProgress | undefined {
    return this.partitionSync?.progress();
  }

  /** Partitioned mode: resolves after the pull loop's next round (`wake`: run it now). */
  async pullRound(wake: boolean): Promise<void> {
    if (!this.partitionSync) return;
    const round = this.partitionSync.nextRound();
    if (wake) this.partitionSync.wake();
    await round;
  }

  /** Partitioned mode: purge partitions no longer held now (dry: what it would drop); undefined in full mode. */
  async purge(dry: boolean): Promise<PurgeReport | undefined> {
    return this.partitionSync?.purgeNow(dry);
  }

  private async runSession(peerId: string, nodeId: string | undefined): Promise<SessionReport> {
    let partitions: Uint8Array | undefined;
    if (this.layouts) {
      // Partitioned: only the partitions we share and neither of us is still gaining (those
      // come by the pull loop), and no session at all if there are none.
      partitions = nodeId === undefined ? undefined : this.sharedPartitions(nodeId, true);
      if (partitions === undefined) {
        return { peerId, outcome: 'skipped', result: undefined, error: undefined, bytesSent: 0, bytesReceived: 0, durationMs: 0 };
      }
    }
    const settled = this.components.replica.settledHlc();
    const report = await this.sync.syncWith(peerIdFromString(peerId), nodeId, partitions);
    if (report.outcome === 'skipped') return report;
    if (report.outcome === 'in-sync' && nodeId !== undefined) this.components.onSessionInSync?.(nodeId, settled);
    const ok = report.outcome === 'in-sync' || report.outcome === 'synced';
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
    if (!ok) {
      const nodeId = this.membership.get(peerId)?.nodeId ?? '';
      this.components.onEvent?.({ kind: 'sync failed', nodeId, peerId, detail: describe(report) });
    }
    return report;
  }
}

function describe(report: SessionReport): string {
  return report.error ? `${report.outcome}: ${report.error}` : report.outcome;
}

async function readClusterKey(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CkvError('ERR_CLUSTER_KEY', `cannot read cluster key ${path}: ${(error as Error).message}`);
  }
}
