/**
 * Gossip: local writes are published on the cluster topic `ckv/<cluster>/writes/1`; every node
 * merges what it receives through the replica, so the last writer wins whatever order
 * messages arrive in. Gossip is best effort; anti-entropy repairs whatever it loses.
 *
 * Batching: the replica tells onApplied of a commit's changes in one call, which hands them
 * here one by one; publishChange collects them and a microtask queued by the first publishes
 * them after that call as ONE `entries` message (split at gossipBatchEntriesMax entries or
 * gossipBatchBytesMax bytes, src/core/limits.ts). Nothing waits on a timer: a lone put goes
 * out as soon as the node hands it over (on an idle node two event-loop turns after its
 * commit, once its acknowledgement has left: src/node/node.ts, publishSoon), as an `entry`
 * message (the format older nodes read), and a burst of writes costs one message (one id
 * hash, one encryption, a few syscalls) per commit instead of one per write.
 *
 * Messages (u8 version, u8 type; types only append, they are part of the protocol):
 * - entry:    one whole entry (values up to gossipValueBytesMax);
 * - announce: key, version, value size and origin peer for a larger value: receivers whose
 *             version is older pull it over the sync protocol instead of flooding the mesh;
 * - leave, members: obsolete (unsigned, and identical repeats were dropped by the seen-cache);
 *             still decoded so an older peer is not penalised, and ignored;
 * - member:   a membership message (src/core/membership.ts: alive with addresses, or leave)
 *             carrying the sender's incarnation and a sequence number, so a repeat is a new
 *             message, signed with the sender's libp2p key: the receiver checks the signature
 *             against the peer id the message names, so nobody speaks for another node;
 * - entries:  a count (1 to gossipBatchEntriesMax) and that many entries, each as in `entry`.
 *             A node older than this type rejects it as malformed (counted; ckv sets no
 *             topic score parameters, so no score penalty follows): in a mixed cluster those
 *             nodes get batched writes by sync only.
 * - layout:   partitioned mode (src/net/layout-service.ts): the signer's peer id, an envelope
 *             of layouts, acks and a join request (src/core/layout-wire.ts) and the signer's
 *             signature of it; checked against that peer id by the cluster. Relayed like member
 *             messages. A node older than this type rejects it as malformed (counted).
 * A write is not published while no peer subscribes to the topic (counted as
 * gossip_unsent_no_peers): nobody would receive it, and anti-entropy brings it to later peers.
 * The message id is SHA-256 of the message bytes (set in libp2p.ts), so a message gossiped
 * twice is dropped by gossipsub. A topic validator rejects messages that do not decode: they
 * are counted and gossipsub penalises the sender; they never reach the store.
 *
 * Fan-out, one hop: the writer publishes to every subscribed peer (floodPublish, libp2p.ts),
 * which in a ckv cluster (a full mesh) is every node. Gossipsub would also forward each
 * message from every receiver to its mesh, so at N nodes each node would receive each write
 * N-1 times and drop N-2 of them after paying for their transport. So write messages (entry,
 * entries) are applied by the validator itself, which then returns Ignore: gossipsub neither
 * forwards nor re-delivers them, and does not penalise the sender for it (Ignore carries no
 * score penalty). Announce and member messages are accepted and forwarded as before. A down
 * link (A and C not connected, both connected to B) therefore no longer brings A's writes to
 * C through B within milliseconds: C gets them from anti-entropy, in its next session with a
 * peer that has them (a session with a random peer every --sync-interval-ms +-25 %, 1 s by
 * default).
 * Every copy of a write message received, repeats included, is counted
 * (gossip_write_copies_received, through the message id function; against
 * gossip_write_messages_received, each counted once), so the fan-out is measured, not assumed.
 *
 * Backpressure: the validator decodes each message once and, for writes, waits until the
 * replica's bounded queue of remote writes has room for all of the message's entries
 * (Replica.whenRoom) before it hands them over as one applyRemote (one storage batch, one
 * tree update pass); gossipsub awaits each message's validation before reading the next from
 * that peer (awaitRpcHandler, awaitRpcMessageHandler in libp2p.ts), so a full queue stops
 * reading from the peers instead of queueing applies without limit.
 */
import type { GossipSub, GossipsubMessage, Message } from '@libp2p/gossipsub';
import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import { ByteReader, ByteWriter } from '../core/bytes.js';
import { compareVersions, encodeEntryInto, encodedEntryBytes, readVersion, writeEntry, writeVersion, type Entry, type Version } from '../core/entry.js';
import { assert, MalformedError } from '../core/errors.js';
import { gossipBatchBytesMax, gossipBatchEntriesMax, keyBytesMax } from '../core/limits.js';
import { layoutEnvelopeBytesMax } from '../core/layout-wire.js';
import { MemberMessageType, type MemberMessage } from '../core/membership.js';
import { decodeReceivedEntries, type ReceivedEntries } from '../core/received-entries.js';
import type { AppliedChange, Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';

const gossipVersion = 1;

/** Message types. Only append: the values are part of the protocol. */
export const GossipType = { entry: 1, announce: 2, leave: 3, members: 4, member: 5, entries: 6, layout: 7 } as const;

export type GossipMessage =
  /**
   * Decoded messages: `received`, the entries as their bytes in the message
   * (received-entries.ts, as an Entries frame's), from which `entry`/`entries` and
   * `encoding(s)` (each entry's bytes when canonical) are made when first read.
   */
  | { type: 'entry'; entry: Entry; encoding?: Uint8Array | undefined; received?: ReceivedEntries }
  /** 1 to gossipBatchEntriesMax entries (the local writes of one commit, or part of them). */
  | { type: 'entries'; entries: Entry[]; encodings?: (Uint8Array | undefined)[]; received?: ReceivedEntries }
  | { type: 'announce'; key: string; version: Version; valueBytes: number; origin: string }
  | { type: 'leave'; peer: string }
  | { type: 'members'; peer: string; addresses: string[] }
  /** `body` is encodeMemberMessage(message); `signature` is the sender's signature of body. */
  | { type: 'member'; message: MemberMessage; body: Uint8Array; signature: Uint8Array }
  /** `body` is a layout envelope (src/core/layout-wire.ts) signed by `peerId` (layoutSignedBytes). */
  | { type: 'layout'; peerId: string; body: Uint8Array; signature: Uint8Array };

/** Default: values up to 64 KiB travel in the message; larger ones are announced. */
export const gossipValueBytesMaxDefault = 64 * 1024;
const peerIdTextMax = 128;
const addressesMax = 16;
const addressTextMax = 256;
const nodeIdTextMax = 64;
const signatureBytesMax = 512;

/** The signed part of a `member` gossip message. */
export function encodeMemberMessage(message: MemberMessage): Uint8Array {
  const w = new ByteWriter();
  w.u8(MemberMessageType[message.type]).string(message.nodeId).string(message.peerId).varint(message.incarnation).varint(message.seq);
  if (message.type === 'alive') {
    w.varint(Math.min(message.addresses.length, addressesMax));
    for (const address of message.addresses.slice(0, addressesMax)) w.string(address);
  }
  return w.finish();
}

export function decodeMemberMessage(body: Uint8Array): MemberMessage {
  const r = new ByteReader(body);
  const type = r.u8();
  const nodeId = r.string(nodeIdTextMax, 'node id');
  const peerId = r.string(peerIdTextMax, 'peer id');
  const incarnation = r.varint();
  const seq = r.varint();
  let message: MemberMessage;
  if (type === MemberMessageType.alive) {
    const count = r.bounded(addressesMax, 'address count');
    const addresses: string[] = [];
    for (let i = 0; i < count; i++) addresses.push(r.string(addressTextMax, 'address'));
    message = { type: 'alive', nodeId, peerId, incarnation, seq, addresses };
  } else if (type === MemberMessageType.leave) {
    message = { type: 'leave', nodeId, peerId, incarnation, seq };
  } else {
    throw new MalformedError(`unknown member message type ${type}`);
  }
  r.end();
  return message;
}

export function gossipTopic(cluster: string): string {
  return `ckv/${cluster}/writes/1`;
}

export function encodeGossip(message: GossipMessage): Uint8Array {
  const w = new ByteWriter();
  w.u8(gossipVersion);
  switch (message.type) {
    case 'entry':
      w.u8(GossipType.entry);
      writeEntry(w, message.entry);
      break;
    case 'announce':
      w.u8(GossipType.announce).string(message.key);
      writeVersion(w, message.version);
      w.varint(message.valueBytes).string(message.origin);
      break;
    case 'leave':
      w.u8(GossipType.leave).string(message.peer);
      break;
    case 'members':
      w.u8(GossipType.members).string(message.peer).varint(Math.min(message.addresses.length, addressesMax));
      for (const address of message.addresses.slice(0, addressesMax)) w.string(address);
      break;
    case 'member':
      w.u8(GossipType.member).bytes(message.body).bytes(message.signature);
      break;
    case 'entries':
      return encodeEntries(message.entries);
    case 'layout':
      w.u8(GossipType.layout).string(message.peerId).bytes(message.body).bytes(message.signature);
      break;
  }
  return w.finish();
}

/** Bytes an entry takes in an `entries` message (as in encodeEntry). */
export function gossipEntryBytes(entry: Entry): number {
  return encodedEntryBytes(entry, Buffer.byteLength(entry.key, 'utf8'));
}

/**
 * An `entries` message, encoded into one buffer of its exact size. The caller keeps within
 * gossipBatchEntriesMax (checked: a larger count would be refused by every receiver).
 */
function encodeEntries(entries: readonly Entry[]): Uint8Array {
  if (entries.length === 0 || entries.length > gossipBatchEntriesMax) throw new RangeError(`an entries message holds 1 to ${gossipBatchEntriesMax} entries, not ${entries.length}`);
  const head = new ByteWriter(8).u8(gossipVersion).u8(GossipType.entries).varint(entries.length).finish();
  const keyBytes = entries.map((entry) => Buffer.byteLength(entry.key, 'utf8'));
  let total = head.byteLength;
  for (let i = 0; i < entries.length; i++) total += encodedEntryBytes(entries[i]!, keyBytes[i]!);
  const bytes = Buffer.alloc(total); // not pooled: gossipsub keeps published messages for a while
  bytes.set(head, 0);
  let at = head.byteLength;
  for (let i = 0; i < entries.length; i++) at = encodeEntryInto(bytes, at, entries[i]!, keyBytes[i]!);
  if (at !== total) throw new Error(`entries message encoded to ${at} bytes, expected ${total}`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `count` entries at the reader's position, as their bytes; the reader moves past them. */
function readReceived(r: ByteReader, bytes: Uint8Array, count: number, valueBytesMax: number): ReceivedEntries {
  const { entries, end } = decodeReceivedEntries(bytes, r.position, count, valueBytesMax);
  r.skip(end - r.position);
  return entries;
}

/** Throws MalformedError for anything that is not a well-formed message. */
export function decodeGossip(bytes: Uint8Array, valueBytesMax: number): GossipMessage {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== gossipVersion) throw new MalformedError(`unsupported gossip version ${version}`);
  const type = r.u8();
  let message: GossipMessage;
  switch (type) {
    case GossipType.entry: {
      const received = readReceived(r, bytes, 1, valueBytesMax);
      let made: Entry | undefined;
      message = {
        type: 'entry',
        received,
        get entry() {
          return (made ??= received.entry(0));
        },
        get encoding() {
          return received.encodings()[0];
        },
      };
      break;
    }
    case GossipType.announce: {
      const key = r.string(keyBytesMax, 'key length');
      const version = readVersion(r);
      const valueBytes = r.bounded(valueBytesMax, 'value size');
      message = { type: 'announce', key, version, valueBytes, origin: r.string(peerIdTextMax, 'origin') };
      break;
    }
    case GossipType.leave:
      message = { type: 'leave', peer: r.string(peerIdTextMax, 'peer id') };
      break;
    case GossipType.members: {
      const peer = r.string(peerIdTextMax, 'peer id');
      const count = r.bounded(addressesMax, 'address count');
      const addresses: string[] = [];
      for (let i = 0; i < count; i++) addresses.push(r.string(addressTextMax, 'address'));
      message = { type: 'members', peer, addresses };
      break;
    }
    case GossipType.member: {
      const body = r.bytes(4096, 'member message');
      const signature = r.bytes(signatureBytesMax, 'signature');
      message = { type: 'member', message: decodeMemberMessage(body), body, signature };
      break;
    }
    case GossipType.entries: {
      const count = r.bounded(gossipBatchEntriesMax, 'entry count');
      if (count === 0) throw new MalformedError('an entries message with no entries');
      const received = readReceived(r, bytes, count, valueBytesMax);
      let made: Entry[] | undefined;
      message = {
        type: 'entries',
        received,
        get entries() {
          return (made ??= received.entries());
        },
        get encodings() {
          return received.encodings();
        },
      };
      break;
    }
    case GossipType.layout: {
      const peerId = r.string(peerIdTextMax, 'peer id');
      const body = r.bytes(layoutEnvelopeBytesMax, 'layout envelope');
      const signature = r.bytes(signatureBytesMax, 'signature');
      message = { type: 'layout', peerId, body, signature };
      break;
    }
    default:
      throw new MalformedError(`unknown gossip message type ${type}`);
  }
  r.end();
  return message;
}

export interface GossipComponents {
  pubsub: GossipSub;
  replica: Replica;
  counters: Counters;
  logger: Logger;
  selfPeerId: string;
}

export interface GossipOptions {
  cluster: string;
  gossipValueBytesMax: number;
  valueBytesMax: number;
  /** A peer announced a value newer than ours: pull it (over sync) from this peer. */
  onAnnounce: (fromPeer: string) => void;
  /** A membership message arrived (its signature not yet checked). */
  onMember: (message: Extract<GossipMessage, { type: 'member' }>) => void;
  /** A layout message arrived (its signature not yet checked). Default: ignored. */
  onLayout?: (message: Extract<GossipMessage, { type: 'layout' }>) => void;
  /**
   * How many other nodes hold the key with this hash (placement.ts); 0: nobody to tell.
   * Default: full replication, everyone who subscribes.
   */
  otherHolders?: (keyHash: string) => number;
}

export class Gossip {
  readonly topic: string;
  private started = false;
  /** Announce and member messages the validator decoded and accepted, for the message handler (same object). */
  private readonly decoded = new WeakMap<Message, GossipMessage>();
  /** Local writes collected for the next `entries` message, and their encoded bytes. */
  private pending: Entry[] = [];
  private pendingBytes = 0;
  private flushQueued = false;
  /** Data of messages we publish, until gossipsub computes their id (see observeCopy). */
  private readonly publishing = new WeakSet<Uint8Array>();
  private readonly onMessage = (event: CustomEvent<GossipsubMessage>): void => void this.receive(event.detail);
  private readonly flushQueuedBatch = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  constructor(private readonly components: GossipComponents, private readonly options: GossipOptions) {
    this.topic = gossipTopic(options.cluster);
  }

  /** Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const { pubsub } = this.components;
    pubsub.topicValidators.set(this.topic, (_peer: PeerId, message) => this.validate(message));
    pubsub.addEventListener('gossipsub:message', this.onMessage);
    pubsub.subscribe(this.topic);
  }

  /** Idempotent. Writes collected for the next message are published first. */
  stop(): void {
    if (!this.started) return;
    this.flush();
    this.started = false;
    const { pubsub } = this.components;
    pubsub.removeEventListener('gossipsub:message', this.onMessage);
    pubsub.topicValidators.delete(this.topic);
    try {
      pubsub.unsubscribe(this.topic);
    } catch {
      // already stopped with libp2p
    }
  }

  /**
   * Publish a local write: collected with the other changes of its commit and published in a
   * microtask, after the replica has told all of them (see the top comment). Never throws:
   * gossip is best effort and sync repairs losses.
   */
  publishChange(change: AppliedChange): void {
    if (!this.started) return;
    // Placement first: a key no other node holds is told to nobody.
    if (this.options.otherHolders?.(change.keyHash) === 0) {
      this.components.counters.add('gossip_unsent_no_peers');
      return;
    }
    const { entry } = change;
    if (entry.value !== null && entry.value.byteLength > this.options.gossipValueBytesMax) {
      if (!this.hasSubscribers(1)) return;
      this.publish({ type: 'announce', key: entry.key, version: entry.version, valueBytes: entry.value.byteLength, origin: this.components.selfPeerId });
      return;
    }
    const bytes = gossipEntryBytes(entry);
    if (this.pending.length > 0 && this.pendingBytes + bytes > gossipBatchBytesMax) this.flush();
    this.pending.push(entry);
    this.pendingBytes += bytes;
    if (this.pending.length >= gossipBatchEntriesMax) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushQueuedBatch);
    }
  }

  /**
   * Told of every gossip message whose id gossipsub computes (libp2p.ts msgIdFn): each one we
   * publish, and each copy received from a peer, repeats included. Counts the received copies
   * of write messages (by their type byte; gossip_write_messages_received counts each once).
   */
  observeCopy(data: Uint8Array): void {
    if (this.publishing.delete(data)) return;
    if (data[0] === gossipVersion && (data[1] === GossipType.entry || data[1] === GossipType.entries)) {
      this.components.counters.add('gossip_write_copies_received');
    }
  }

  /**
   * Resolves once each of `peerIds` can be published to (or after `deadlineMs`): it subscribes
   * to the topic and gossipsub's outbound stream to it is open. A node stopped just after it
   * connected may not have heard its peers' subscriptions yet, or may have heard one before its
   * own stream to that peer finished opening; gossipsub drops a message for a peer it has no
   * open stream to (a leave lost that way showed the node 'unreachable' instead of 'left').
   */
  async waitForSubscribers(peerIds: readonly string[], deadlineMs: number): Promise<void> {
    const until = Date.now() + deadlineMs;
    while (this.started && !peerIds.every((peerId) => this.canPublishTo(peerId)) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private canPublishTo(peerId: string): boolean {
    const { pubsub } = this.components;
    if (!pubsub.getSubscribers(this.topic).some((peer) => peer.toString() === peerId)) return false;
    // The GossipSub class has the map; the interface does not declare it. Without it, subscribed is all we can know.
    const outbound = (pubsub as unknown as { streamsOutbound?: ReadonlyMap<string, unknown> }).streamsOutbound;
    return outbound === undefined || outbound.has(peerId);
  }

  /** Publish a signed layout envelope (partitioned mode). */
  publishLayout(peerId: string, body: Uint8Array, signature: Uint8Array): Promise<void> {
    return this.publish({ type: 'layout', peerId, body, signature });
  }

  /** Whether some peer subscribes to the topic (a message published now reaches someone). */
  hasSubscriber(): boolean {
    return this.started && this.components.pubsub.getSubscribers(this.topic).length > 0;
  }

  /** Publish a signed membership message. */
  publishMember(message: MemberMessage, body: Uint8Array, signature: Uint8Array): Promise<void> {
    return this.publish({ type: 'member', message, body, signature });
  }

  /** Publish the collected writes: one `entry` message for a lone write, else one `entries`. */
  private flush(): void {
    if (this.pending.length === 0) return;
    const entries = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.started || !this.hasSubscribers(entries.length)) return;
    void this.publish(entries.length === 1 ? { type: 'entry', entry: entries[0]! } : { type: 'entries', entries });
  }

  /**
   * With no peer subscribed, gossipsub would encode, id and cache a message for nobody (a
   * tenth of a lone node's write path); a peer that subscribes later gets the writes by sync.
   */
  private hasSubscribers(writes: number): boolean {
    if (this.components.pubsub.getSubscribers(this.topic).length > 0) return true;
    this.components.counters.add('gossip_unsent_no_peers', writes);
    return false;
  }

  private async publish(message: GossipMessage): Promise<void> {
    if (!this.started) return;
    try {
      const data = encodeGossip(message);
      this.publishing.add(data);
      await this.components.pubsub.publish(this.topic, data);
      this.components.counters.add('gossip_published');
    } catch (error) {
      this.components.counters.add('gossip_publish_failed');
      this.components.logger.warn('gossip publish failed', { error });
    }
  }

  /**
   * Decode once. Writes (entry, entries): wait for room for all of them in the replica's
   * remote queue, hand them to the replica as one applyRemote, and return Ignore so that
   * gossipsub does not forward them (one hop, see the top comment). Why here and not in the
   * message handler: gossipsub dispatches accepted messages without waiting for the handler,
   * so a wait there would only pile up pending applies; the validator is the one step
   * gossipsub awaits (with awaitRpc*Handler) before it reads on. applyRemote is called
   * synchronously after the wait, so the room waited for is taken at once; its outcome (the
   * commit) is not awaited, so the next message is read while this one is written.
   */
  private async validate(message: Message): Promise<TopicValidatorResult> {
    let decoded: GossipMessage;
    try {
      decoded = decodeGossip(message.data, this.options.valueBytesMax);
    } catch {
      this.components.counters.add('gossip_rejected');
      return TopicValidatorResult.Reject;
    }
    if (decoded.type === 'entry' || decoded.type === 'entries') {
      const entries = decoded.received;
      assert(entries !== undefined, 'a decoded write message carries its received entries');
      await this.components.replica.whenRoom(entries.length);
      this.components.counters.add('gossip_received');
      this.components.counters.add('gossip_write_messages_received');
      this.components.counters.add('gossip_entries_received', entries.length);
      void this.apply(entries);
      return TopicValidatorResult.Ignore;
    }
    this.decoded.set(message, decoded);
    return TopicValidatorResult.Accept;
  }

  /** `entries` are views of the message's bytes: they keep it until the commit (at most the remote queue's entries). */
  private async apply(entries: ReceivedEntries): Promise<void> {
    try {
      const report = await this.components.replica.applyReceived(entries);
      if (report.rejectedClockDrift) this.components.counters.add('clock_drift_rejected', report.rejectedClockDrift);
      if (report.rejectedInvalid) this.components.counters.add('gossip_rejected', report.rejectedInvalid);
    } catch (error) {
      this.components.logger.warn('gossip apply failed', { error });
    }
  }

  /** Announce and member messages, after the validator accepted them. */
  private async receive(event: GossipsubMessage): Promise<void> {
    if (event.msg.topic !== this.topic) return;
    let message = this.decoded.get(event.msg);
    if (message === undefined) {
      try {
        message = decodeGossip(event.msg.data, this.options.valueBytesMax);
      } catch {
        return; // the validator already rejected and counted it
      }
    } else {
      this.decoded.delete(event.msg);
    }
    this.components.counters.add('gossip_received');
    try {
      if (message.type === 'announce') {
        const ours = await this.components.replica.get(message.key);
        if (!ours || compareVersions(message.version, ours.version) > 0) {
          this.options.onAnnounce(message.origin === this.components.selfPeerId ? event.propagationSource.toString() : message.origin);
        }
      } else if (message.type === 'member') {
        this.options.onMember(message);
      } else if (message.type === 'layout') {
        this.options.onLayout?.(message);
      }
      // Writes never get here (the validator applied them); 'leave' and 'members' are
      // obsolete: unsigned claims, ignored.
    } catch (error) {
      this.components.logger.warn('gossip apply failed', { error });
    }
  }
}
