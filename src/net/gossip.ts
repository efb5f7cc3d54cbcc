/**
 * Gossip: every local write is published at once on the cluster topic
 * `ckv/<cluster>/writes/1`; every node merges what it receives through the replica, so the
 * last writer wins whatever order messages arrive in. Gossip is best effort; anti-entropy
 * repairs whatever it loses.
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
 *             against the peer id the message names, so nobody speaks for another node.
 * A write is not published while no peer subscribes to the topic (counted as
 * gossip_unsent_no_peers): nobody would receive it, and anti-entropy brings it to later peers.
 * The message id is SHA-256 of the message bytes (set in libp2p.ts), so a write gossiped
 * twice is dropped by gossipsub. A topic validator rejects messages that do not decode: they
 * are counted and gossipsub penalises the sender; they never reach the store.
 * Backpressure: the validator decodes each message once (kept for the message handler) and,
 * for an entry, waits until the replica's bounded queue of remote writes has room before it
 * accepts; gossipsub awaits each message's validation before reading the next from that
 * peer (awaitRpcHandler, awaitRpcMessageHandler in libp2p.ts), so a full queue stops reading
 * from the peers instead of queueing applies without limit.
 */
import type { GossipSub, GossipsubMessage, Message } from '@libp2p/gossipsub';
import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import { ByteReader, ByteWriter } from '../core/bytes.js';
import { compareVersions, readEntry, readVersion, writeEntry, writeVersion, type Entry, type Version } from '../core/entry.js';
import { MalformedError } from '../core/errors.js';
import { keyBytesMax } from '../core/limits.js';
import { MemberMessageType, type MemberMessage } from '../core/membership.js';
import type { AppliedChange, Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import type { Logger } from '../util/logger.js';

const gossipVersion = 1;

/** Message types. Only append: the values are part of the protocol. */
export const GossipType = { entry: 1, announce: 2, leave: 3, members: 4, member: 5 } as const;

export type GossipMessage =
  | { type: 'entry'; entry: Entry }
  | { type: 'announce'; key: string; version: Version; valueBytes: number; origin: string }
  | { type: 'leave'; peer: string }
  | { type: 'members'; peer: string; addresses: string[] }
  /** `body` is encodeMemberMessage(message); `signature` is the sender's signature of body. */
  | { type: 'member'; message: MemberMessage; body: Uint8Array; signature: Uint8Array };

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
  }
  return w.finish();
}

/** Throws MalformedError for anything that is not a well-formed message. */
export function decodeGossip(bytes: Uint8Array, valueBytesMax: number): GossipMessage {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== gossipVersion) throw new MalformedError(`unsupported gossip version ${version}`);
  const type = r.u8();
  let message: GossipMessage;
  switch (type) {
    case GossipType.entry:
      message = { type: 'entry', entry: readEntry(r, valueBytesMax) };
      break;
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
  /**
   * How many other nodes hold the key with this hash (placement.ts); 0: nobody to tell.
   * Default: full replication, everyone who subscribes.
   */
  otherHolders?: (keyHash: string) => number;
}

export class Gossip {
  readonly topic: string;
  private started = false;
  /** Messages the validator decoded and accepted, for the message handler (same object). */
  private readonly decoded = new WeakMap<Message, GossipMessage>();
  private readonly onMessage = (event: CustomEvent<GossipsubMessage>): void => void this.receive(event.detail);

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

  /** Idempotent. */
  stop(): void {
    if (!this.started) return;
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

  /** Publish a local write. Never throws: gossip is best effort and sync repairs losses. */
  publishChange(change: AppliedChange): void {
    if (!this.started) return;
    // With no peer subscribed, gossipsub would encode, id and cache the message for nobody
    // (a tenth of a lone node's write path). A peer that subscribes later gets it by sync.
    // Placement first: a key no other node holds is told to nobody.
    if (this.options.otherHolders?.(change.keyHash) === 0 || this.components.pubsub.getSubscribers(this.topic).length === 0) {
      this.components.counters.add('gossip_unsent_no_peers');
      return;
    }
    const { entry } = change;
    const message: GossipMessage =
      entry.value !== null && entry.value.byteLength > this.options.gossipValueBytesMax
        ? { type: 'announce', key: entry.key, version: entry.version, valueBytes: entry.value.byteLength, origin: this.components.selfPeerId }
        : { type: 'entry', entry };
    this.publish(message);
  }

  /**
   * Resolves once some peer subscribes to the topic (or after `deadlineMs`). A node stopped
   * just after it connected may not have heard its peers' subscriptions yet, and a message
   * published to no subscriber is dropped.
   */
  async waitForSubscribers(deadlineMs: number): Promise<void> {
    const until = Date.now() + deadlineMs;
    while (this.started && this.components.pubsub.getSubscribers(this.topic).length === 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Publish a signed membership message. */
  publishMember(message: MemberMessage, body: Uint8Array, signature: Uint8Array): Promise<void> {
    return this.publish({ type: 'member', message, body, signature });
  }

  private async publish(message: GossipMessage): Promise<void> {
    if (!this.started) return;
    try {
      await this.components.pubsub.publish(this.topic, encodeGossip(message));
      this.components.counters.add('gossip_published');
    } catch (error) {
      this.components.counters.add('gossip_publish_failed');
      this.components.logger.warn('gossip publish failed', { error });
    }
  }

  /**
   * Decode once; for an entry, wait for room in the replica's remote queue before accepting.
   * Why here and not in the handler: gossipsub dispatches accepted messages without waiting
   * for the handler, so a wait there would only pile up pending applies; the validator is
   * the one step gossipsub awaits (with awaitRpc*Handler) before it reads on. The handler
   * then calls applyRemote synchronously, so the room it waited for is taken at once.
   */
  private async validate(message: Message): Promise<TopicValidatorResult> {
    let decoded: GossipMessage;
    try {
      decoded = decodeGossip(message.data, this.options.valueBytesMax);
    } catch {
      this.components.counters.add('gossip_rejected');
      return TopicValidatorResult.Reject;
    }
    this.decoded.set(message, decoded);
    if (decoded.type === 'entry') await this.components.replica.whenRoom();
    return TopicValidatorResult.Accept;
  }

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
      if (message.type === 'entry') {
        const report = await this.components.replica.applyRemote([message.entry]);
        if (report.rejectedClockDrift) this.components.counters.add('clock_drift_rejected', report.rejectedClockDrift);
        if (report.rejectedInvalid) this.components.counters.add('gossip_rejected', report.rejectedInvalid);
      } else if (message.type === 'announce') {
        const ours = await this.components.replica.get(message.key);
        if (!ours || compareVersions(message.version, ours.version) > 0) {
          this.options.onAnnounce(message.origin === this.components.selfPeerId ? event.propagationSource.toString() : message.origin);
        }
      } else if (message.type === 'member') {
        this.options.onMember(message);
      }
      // 'leave' and 'members' are obsolete: unsigned claims, ignored.
    } catch (error) {
      this.components.logger.warn('gossip apply failed', { error });
    }
  }
}
