/**
 * The libp2p node of a ckv process: the only place that calls `createLibp2p`.
 *
 * Stack: TCP transport, optional pnet (pre-shared "cluster key", XSalsa20 over the raw
 * socket, so a node without the key cannot even complete the noise handshake), noise
 * (authenticated encryption; the remote's peer id is proven by its static key), yamux
 * (stream multiplexing), identify (required by gossipsub) and gossipsub (the cluster topic).
 *
 * Gossipsub signature policy: StrictNoSign. Every connection is already noise-authenticated
 * (we know which peer hands us a message) and optionally pnet-protected (only cluster members
 * connect at all), and ckv payloads carry their own origin (node id + HLC) and are applied
 * idempotently, so a per-message signature buys nothing against the threat model, while it
 * costs an ed25519 sign per publish and a verify per hop and adds ~100 bytes (from, seqno,
 * signature, key) to every message. Measured between two nodes on 127.0.0.1 (this stack,
 * node 20, 2-core shared machine), 64-byte messages, 5 alternating runs per policy:
 *
 *                 publish->deliver, one at a time (1000)   1000 published back to back
 *                 median          p99                      all delivered after
 *   StrictSign    0.39-0.66 ms    4.9-12 ms                323-871 ms (median 504 ms)
 *   StrictNoSign  0.11-0.18 ms    0.2-4.6 ms               66-90 ms   (median 77 ms)
 *
 * i.e. ~3.5x lower latency and ~6x the burst rate. With StrictNoSign a message has no
 * from/seqno, so the message id must come from the data: it is the SHA-256 of the message
 * data (`msgIdFn`). Identical payloads therefore share an id and are delivered once per
 * `seenTTL` (2 min); publishing the same bytes again is dropped silently
 * (`ignoreDuplicatePublishError`) - what ckv wants for re-announced entries. A node with the
 * other policy cannot exchange messages with this one (each rejects the other's messages).
 *
 * Bootstrap: our own redial loop (`PeerKeeper` below), not @libp2p/bootstrap, because
 * @libp2p/bootstrap (v12) dials each listed peer exactly once, shortly after start, and never
 * again; it also refuses addresses without a `/p2p/<peer id>` suffix. ckv needs the listed
 * peers kept: each bootstrap address is dialled at start and redialled with capped
 * exponential backoff (1 s doubling to 30 s, +-20 % jitter) whenever it is not connected, for
 * as long as the node runs. An address may omit `/p2p/...`: the peer id is learned from the
 * first successful handshake and used afterwards (so an existing connection is reused). An
 * address that turns out to be ourselves (common when every node gets the same list) is
 * dropped after the first dial. Every dial's end is reported (`onBootstrap`), so the node can
 * say why an address does not connect (./bootstrap-health.ts).
 *
 * mDNS: libp2p v3 no longer auto-dials discovered peers (discovery only fills the peer
 * store), so the keeper dials every peer that mDNS reports and is not connected. mDNS
 * re-queries every 10 s and each answer re-reports the peer, so a lost mDNS peer is redialled
 * within ~10 s (measured: first connection ~0.1 s after start, redial ~10 s after a hang-up).
 * Service tag `_ckv._udp.local` keeps ckv nodes from dialling (and being dialled by)
 * unrelated libp2p software on the LAN.
 *
 * Cluster key: with pnet, a dial to a node with another key (or none) fails either at once
 * (the garbled handshake is rejected: EncryptionFailedError/ECONNRESET) or, when the garbage
 * happens to parse as a length prefix the peer waits on, at `addressDialTimeout` (3 s).
 */
import '../util/polyfill.js';
import { hash } from 'node:crypto';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify, type Identify } from '@libp2p/identify';
import { gossipsub, StrictNoSign, type GossipSub, type SignaturePolicy } from '@libp2p/gossipsub';
import { installNoiseFrameDecoder } from './noise-frame-decoder.js';
import { installYamuxWindowPolicy } from './yamux-window.js';
import { shortcutKnownProtocolMerges } from './peer-store-merges.js';
import { joinedWritesNoise } from './joined-writes.js';
import { libp2pLoggerFor } from './libp2p-logger.js';
import { multiaddr, CODE_P2P, type Multiaddr } from '@multiformats/multiaddr';
import type { Libp2p, PeerDiscovery, PeerId, PeerInfo, PrivateKey } from '@libp2p/interface';
import { ListenError, listenProblem } from '../errors.js';

export interface NetworkOptions {
  /** The node's identity; its public key is the peer id. Persisted by the caller so the peer id survives restarts. */
  privateKey: PrivateKey;
  /** Multiaddrs to listen on, e.g. '/ip4/0.0.0.0/tcp/4001' or '/ip4/127.0.0.1/tcp/0' (0 = any free port). */
  listen: string[];
  /**
   * Multiaddrs of peers to keep connected to, e.g. '/ip4/10.0.0.5/tcp/4001' (optionally with
   * '/p2p/<peer id>'). Dialled at start and redialled with backoff whenever not connected.
   */
  bootstrap: string[];
  /** Discover (and dial) other ckv nodes on the LAN by multicast DNS. */
  mdns: boolean;
  /**
   * Contents of a pnet swarm key file ('/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>', as
   * `generateClusterKey` produces). When set, only nodes with the same key can connect.
   */
  clusterKey?: Uint8Array;
  /** The cluster's gossipsub topic: the only topic this node tracks (others are ignored). */
  gossipTopic: string;
  /** Sent to peers by identify (`ckv/<version> node/<node id>`), so they can show our node id. */
  userAgent?: string;
  /** Told how each dial of a bootstrap address ended (warnings and status: ./bootstrap-health.ts). */
  onBootstrap?: (event: BootstrapEvent) => void;
  /**
   * Told the data of every gossip message whose id gossipsub computes: each one published,
   * and each copy received, repeats included (gossipsub drops a repeat only after its id).
   */
  onGossipMessageId?: (data: Uint8Array) => void;
  /**
   * Told of each speed-up of a library's internals (./yamux-window.ts, ./noise-frame-decoder.ts)
   * that does not fit the library version in use, so the library's own, slower, code runs.
   */
  onPatchUnsupported?: (patch: string) => void;
}

/** How a dial of a bootstrap address ended; `address` as configured (`multiaddr(a).toString()`). */
export type BootstrapEvent =
  | { kind: 'connected'; address: string; peerId: string }
  | { kind: 'failed'; address: string; error: unknown }
  | { kind: 'self'; address: string };

export type CkvLibp2p = Libp2p<{ identify: Identify; pubsub: GossipSub }>;

/**
 * Gossipsub signature policy in use (see the top comment). Exported so tests and the gossip
 * layer can assert it; messages from a node with the other policy are rejected.
 */
export const gossipSignaturePolicy: SignaturePolicy = StrictNoSign;

/** Gossipsub RPCs (one or more messages) larger than this are dropped by the receiver. */
export const gossipRpcBytesMax = 4 * 1024 * 1024;

/** mDNS service name ckv nodes announce and query. */
export const mdnsServiceTag = '_ckv._udp.local';

/** Redial backoff for bootstrap peers. */
const redialDelayMsMin = 1_000;
const redialDelayMsMax = 30_000;
/** A connection that lived at least this long resets the backoff when it drops. */
const redialStableMs = 10_000;
/** An mDNS peer is dialled at most once per this interval (answers arrive on every interface). */
const mdnsDialIntervalMs = 5_000;

// @libp2p/mdns and @libp2p/pnet are loaded only when used: a start with --no-mdns or without
// --cluster-key does not evaluate their modules (multicast-dns, XSalsa20's WebAssembly).

/** A new pnet cluster key in the swarm.key format (95 bytes of ASCII). For `ckv cluster-key`. */
export async function generateClusterKey(): Promise<Uint8Array> {
  const { generateKey } = await import('@libp2p/pnet');
  const key = new Uint8Array(95);
  generateKey(key);
  return key;
}

/** Throws a readable error unless `key` is a v1 swarm key (pnet's own error just says "invalid psk"). */
function checkClusterKey(key: Uint8Array): void {
  const lines = new TextDecoder().decode(key).split(/\r\n|\r|\n/);
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new Error(
      "invalid cluster key: expected '/key/swarm/psk/1.0.0/', '/base16/' and 64 hex digits on three lines (use `ckv cluster-key`)",
    );
  }
}

/**
 * SHA-256 of the message data: the gossipsub message id (StrictNoSign messages have no
 * from/seqno). Made for every message published and every copy received; the one-shot hash
 * costs about 60 % of a createHash/update/digest chain for a small message (src/core/entry.ts).
 */
export function messageIdOf(message: { data: Uint8Array }): Uint8Array {
  return hash('sha256', message.data, 'buffer');
}

/**
 * Creates and starts the node. Rejects if a listen address cannot be bound or the cluster key
 * is malformed. The caller stops it with `node.stop()` (which also stops the redial loop).
 */
export async function createNetwork(options: NetworkOptions): Promise<CkvLibp2p> {
  if (options.clusterKey !== undefined) checkClusterKey(options.clusterKey);
  const bootstrap = options.bootstrap.map((address) => multiaddr(address));

  // The keeper needs the node, which does not exist yet when libp2p calls the mDNS factory.
  const late: { keeper?: PeerKeeper } = {};
  const peerDiscovery = [];
  if (options.mdns) {
    const { mdns } = await import('@libp2p/mdns');
    const createMdns = mdns({ serviceTag: mdnsServiceTag });
    peerDiscovery.push((components: Parameters<typeof createMdns>[0]): PeerDiscovery => {
      const discovery = createMdns(components);
      discovery.addEventListener('peer', (event) => late.keeper?.onMdnsPeer(event.detail));
      return discovery;
    });
  }

  // One window update per half window instead of one per data frame (./yamux-window.ts).
  if ((await installYamuxWindowPolicy()) === 'unsupported') options.onPatchUnsupported?.('yamux window updates at half the window');
  // No Error made per socket read to learn a noise buffer is used up (./noise-frame-decoder.ts).
  if (installNoiseFrameDecoder() === 'unsupported') options.onPatchUnsupported?.('noise frame decoder without an Error per read');
  const logger = libp2pLoggerFor();
  const node: CkvLibp2p = await createLibp2p({
    privateKey: options.privateKey,
    start: false,
    // libp2p's debug log only when DEBUG asks for it (./libp2p-logger.ts).
    ...(logger ? { logger } : {}),
    ...(options.userAgent ? { nodeInfo: { userAgent: options.userAgent } } : {}),
    // Listen addresses; with 0.0.0.0 libp2p announces every interface address.
    addresses: { listen: options.listen },
    // TCP with defaults: an idle socket closes after 2 min, which never happens to a live
    // connection because the connection monitor (below) pings every 10 s.
    transports: [tcp()],
    // pnet wraps the raw socket before anything else; the nonce exchange is bounded by the
    // dial's own timeouts.
    ...(options.clusterKey !== undefined ? { connectionProtector: (await import('@libp2p/pnet')).preSharedKey({ psk: options.clusterKey }) } : {}),
    // Noise XX with defaults (the static key is the libp2p identity key); each encrypted
    // message leaves in one socket write (./joined-writes.ts).
    connectionEncrypters: [joinedWritesNoise()],
    // yamux with defaults: up to 1000 streams each way per connection, 256 KiB initial and
    // 16 MiB maximum stream window (FramedStream allows for that window when it pauses);
    // window updates at half the window (./yamux-window.ts).
    streamMuxers: [yamux()],
    peerDiscovery,
    connectionManager: {
      // ckv clusters are small (tens of nodes, full mesh at most): 100 connections leaves
      // room for every peer plus transient dials before the pruner closes the least valued
      // (gossipsub tags its mesh peers so they are pruned last). Default: 300.
      maxConnections: 100,
      // Bounds sockets opened at once at start (bootstrap list + mDNS answers). Default: 100.
      maxParallelDials: 32,
      // LAN and small-cluster peers answer in milliseconds; fail a dead address fast so the
      // redial loop moves on. Defaults: 10 s / 6 s per address.
      dialTimeout: 5_000,
      addressDialTimeout: 3_000,
      // Several ckv nodes can share one host (tests, containers behind one IP): allow more
      // than the default 5 new inbound connections a second from one address.
      inboundConnectionThreshold: 20,
      // Unauthenticated connections still in the handshake. Default: 10.
      maxIncomingPendingConnections: 16,
    },
    // Kept at the defaults, stated here: ping every peer every 10 s and abort a connection
    // whose ping fails, so a silently dead peer is noticed and the keeper redials it.
    connectionMonitor: { enabled: true, pingInterval: 10_000, abortConnectionOnPingFailure: true },
    services: {
      // Defaults; gossipsub declares identify as a dependency (it learns peers' protocols).
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: gossipSignaturePolicy,
        msgIdFn: options.onGossipMessageId
          ? (message) => {
              options.onGossipMessageId!(message.data);
              return messageIdOf(message);
            }
          : messageIdOf,
        // No penalty for many peers on one IP address. Gossipsub's default (weight -5 above 10
        // peers per IP) suits open networks with Sybil attackers; a ckv cluster is admitted by
        // cluster name and optionally key, and many nodes on one host or behind one NAT is
        // normal. Measured with the default: at 16+ nodes on one host every peer fell below the
        // graylist threshold and gossip delivered nothing (bench scaling: p50 2.7 s, sync only).
        scoreParams: { IPColocationFactorWeight: 0 },
        // Publishing with nobody subscribed yet (a lone node, or peers still connecting) is
        // normal: anti-entropy delivers it later. Never throw for it.
        allowPublishToZeroTopicPeers: true,
        // Same bytes = same id = already published: drop silently instead of throwing.
        ignoreDuplicatePublishError: true,
        // Backpressure: handle a peer's RPCs, and the messages in each, one at a time, so the
        // gossip validator's wait for room in the replica's remote queue stops reading from
        // that peer (gossip.ts) instead of leaving unboundedly many validations pending.
        awaitRpcHandler: true,
        awaitRpcMessageHandler: true,
        // Send our own messages to every subscribed peer, not only our mesh: in a small
        // cluster that is one hop to everyone.
        floodPublish: true,
        // Encode a published message once for all its recipients rather than once per peer
        // (a batch of writes is up to 256 KiB). Pending control messages, which would
        // otherwise ride along, go out with the next heartbeat.
        batchPublish: true,
        // IDONTWANT (gossipsub 1.2): on receiving a message of at least this size, tell every
        // other mesh peer not to forward it to us. Writes are never forwarded (gossip.ts: one
        // hop), so it was pure cost: a control frame (an encryption, a socket write, a wakeup
        // of the peer) to every other mesh peer per write message received; measured at 9% of
        // a receiving node's busy time in a burst of unary puts at 3 nodes. No message is this large.
        idontwantMinDataSize: Number.MAX_SAFE_INTEGER,
        // No IHAVE gossip (lazy push): every heartbeat, gossipsub advertises the ids of the
        // messages it published in the last three heartbeats to peers outside its mesh, and a
        // peer that has not seen them asks for them (IWANT). A node that just (re)started has
        // seen nothing, so it was sent every write published in those ~3 s again, after or
        // while its catch-up session brought the same entries (measured: a node restarted after
        // 10,000 writes received all 10,000 twice). Every ckv message has its own repair:
        // writes and announces by anti-entropy, member news by the membership's connection
        // events and sessions, layouts by re-announcement (layout-service.ts).
        mcacheGossip: 0,
        // The node applies its own writes locally; it does not want them back as messages.
        emitSelf: false,
        // Every ckv node speaks gossipsub; do not also register /floodsub/1.0.0.
        fallbackToFloodsub: false,
        // Peer exchange is for open networks; ckv peers come from bootstrap and mDNS.
        doPX: false,
        // Only the cluster topic: subscriptions and messages for other topics are ignored,
        // so a peer cannot make us track unbounded topic state.
        allowedTopics: [options.gossipTopic],
        // Largest inbound RPC (length-prefixed frame of messages). Gossip carries small
        // announcements; large values travel by the sync protocol.
        maxInboundDataLength: gossipRpcBytesMax,
      }),
    },
  });

  // A stream's protocol merge that would change nothing skips the peer store (./peer-store-merges.ts).
  shortcutKnownProtocolMerges(node);
  const keeper = (late.keeper = new PeerKeeper(node, bootstrap, options.onBootstrap));
  try {
    await node.start();
  } catch (err) {
    keeper.stop();
    throw listenFailure(err) ?? err;
  }
  return node;
}

/**
 * libp2p's error for listen addresses that cannot be bound is several lines long and advises
 * an option (`transportManager.faultTolerance`) a ckv user cannot set. It is replaced by one
 * line per address: `cannot listen on /ip4/127.0.0.1/tcp/4001: address in use` (ListenError,
 * exit 5). Other errors pass through unchanged.
 */
export function listenFailure(err: unknown): ListenError | undefined {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return undefined;
  const failures: string[] = [];
  for (const line of err.message.split('\n')) {
    const match = /^\s*(\/\S+): (.+)$/.exec(line);
    if (match) failures.push(`${match[1]}: ${listenProblem(match[2])}`);
  }
  if (failures.length === 0) return new ListenError(`cannot listen: ${err.message.split('\n')[0]!.trim()}`);
  return new ListenError(`cannot listen on ${failures.join('; ')}`);
}

interface BootstrapTarget {
  /** As configured. */
  readonly address: Multiaddr;
  /** From the configured '/p2p/...' or learned on the first handshake. */
  peerId?: string;
  readonly peerIdConfigured: boolean;
  /** Consecutive failed dials (or short-lived connections): the backoff exponent. */
  failures: number;
  dialing: boolean;
  timer?: ReturnType<typeof setTimeout>;
  connectedAtMs?: number;
  /** The address is our own: never dialled again. */
  isSelf: boolean;
}

/**
 * Keeps bootstrap peers connected and dials mDNS-discovered peers. Follows the node's
 * lifecycle through its 'start' and 'stop' events, so `node.stop()` ends all timers and a
 * restarted node resumes redialling.
 */
class PeerKeeper {
  private readonly targets: BootstrapTarget[];
  private readonly mdnsLastDialMs = new Map<string, number>();
  private abort = new AbortController();
  private running = false;

  constructor(
    private readonly node: CkvLibp2p,
    bootstrap: Multiaddr[],
    private readonly onBootstrap: (event: BootstrapEvent) => void = () => undefined,
  ) {
    this.targets = bootstrap.map((address) => {
      const peerId = address.getComponents().findLast((c) => c.code === CODE_P2P)?.value;
      return { address, peerId, peerIdConfigured: peerId !== undefined, failures: 0, dialing: false, isSelf: false };
    });
    node.addEventListener('start', () => this.start());
    node.addEventListener('stop', () => this.stop());
    node.addEventListener('peer:disconnect', (event) => this.onDisconnect(event.detail));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    const self = this.node.peerId.toString();
    for (const target of this.targets) {
      if (target.peerId === self) target.isSelf = true;
      target.failures = 0;
      this.dial(target);
    }
  }

  stop(): void {
    this.running = false;
    this.abort.abort(new Error('node stopped'));
    for (const target of this.targets) {
      clearTimeout(target.timer);
      target.timer = undefined;
    }
    this.mdnsLastDialMs.clear();
  }

  onMdnsPeer(peer: PeerInfo): void {
    if (!this.running || peer.id.equals(this.node.peerId) || this.isConnected(peer.id.toString())) return;
    const key = peer.id.toString();
    const now = Date.now();
    if (now - (this.mdnsLastDialMs.get(key) ?? -Infinity) < mdnsDialIntervalMs) return;
    this.mdnsLastDialMs.set(key, now);
    // The answer's addresses, not the peer store: libp2p merges them into the store only
    // after this listener has run.
    const target = peer.multiaddrs.length > 0 ? peer.multiaddrs.map((ma) => withPeerId(ma, key)) : peer.id;
    this.node.dial(target, { signal: this.abort.signal }).catch(() => {
      // Not ours (other cluster key), gone, or unreachable: the next answer retries.
    });
  }

  private onDisconnect(peerId: PeerId): void {
    if (!this.running) return;
    const id = peerId.toString();
    for (const target of this.targets) {
      if (target.peerId !== id || target.isSelf || target.dialing || target.timer !== undefined) continue;
      const livedMs = Date.now() - (target.connectedAtMs ?? 0);
      target.failures = livedMs >= redialStableMs ? 0 : target.failures + 1;
      this.schedule(target);
    }
  }

  private isConnected(peerId: string | undefined): boolean {
    if (peerId === undefined) return false;
    return this.node.getConnections().some((c) => c.status === 'open' && c.remotePeer.toString() === peerId);
  }

  private schedule(target: BootstrapTarget): void {
    if (!this.running || target.isSelf) return;
    const base = Math.min(redialDelayMsMax, redialDelayMsMin * 2 ** Math.min(target.failures, 16));
    const delayMs = target.failures === 0 ? redialDelayMsMin / 2 : base * (0.8 + 0.4 * Math.random());
    clearTimeout(target.timer);
    target.timer = setTimeout(() => {
      target.timer = undefined;
      this.dial(target);
    }, delayMs);
    target.timer.unref?.();
  }

  private dial(target: BootstrapTarget): void {
    if (!this.running || target.isSelf || target.dialing) return;
    if (this.isConnected(target.peerId)) {
      target.failures = 0;
      return;
    }
    target.dialing = true;
    const address = target.peerId !== undefined ? withPeerId(target.address, target.peerId) : target.address;
    this.node
      .dial(address, { signal: this.abort.signal })
      .then((connection) => {
        target.peerId = connection.remotePeer.toString();
        target.connectedAtMs = Date.now();
        target.failures = 0;
        // The connection may already have closed again before this ran.
        if (!this.isConnected(target.peerId)) {
          target.failures = 1;
          this.report({ kind: 'failed', address: target.address.toString(), error: new Error('the connection closed as soon as it opened') });
          this.schedule(target);
          return;
        }
        this.report({ kind: 'connected', address: target.address.toString(), peerId: target.peerId });
      })
      .catch((err: unknown) => {
        if (isSelfDialError(err)) {
          target.isSelf = true;
          this.report({ kind: 'self', address: target.address.toString() });
          return;
        }
        if (this.running) this.report({ kind: 'failed', address: target.address.toString(), error: err });
        // A learned peer id may be stale (the node at that address was re-keyed): dial the
        // bare address next time and learn it again.
        if (!target.peerIdConfigured) target.peerId = undefined;
        target.failures += 1;
        this.schedule(target);
      })
      .finally(() => {
        target.dialing = false;
      });
  }

  private report(event: BootstrapEvent): void {
    try {
      this.onBootstrap(event);
    } catch {
      // A listener's failure is not the redial loop's.
    }
  }
}

function withPeerId(address: Multiaddr, peerId: string): Multiaddr {
  const present = address.getComponents().findLast((c) => c.code === CODE_P2P)?.value;
  return present !== undefined ? address : address.encapsulate(`/p2p/${peerId}`);
}

function isSelfDialError(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(isSelfDialError);
  return err instanceof Error && /dial self/i.test(err.message);
}
