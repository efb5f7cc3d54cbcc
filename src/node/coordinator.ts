/**
 * The coordinator of partitioned mode: every write and single-key read a node takes (gRPC,
 * HTTP, import) goes through it once the cluster has a layout (`ownership()` defined and
 * ready); in full-replication mode the node never calls it.
 *
 * Writes: a key's partition p has owners `writeOwners(p)` (its owners in every active
 * layout). An unconditional write is stamped with this node's clock (`Replica.stamp`); if this
 * node is an owner, it stores the stamped entry (`applyRemote` with origin 'local', group
 * committed like any write) while the entry travels to the other owners, and its commit is
 * this node's ack like theirs: a write waits for one commit, not for this node's and then an
 * owner's in a row (measured in docs/measurements.md, "partitioned write rate"). A stamped
 * write that loses locally to a newer version (a concurrent write, or a version from the future
 * that a reset clock bound left behind) is an ack as `older`, as on any owner. A conditional
 * write is evaluated here, atomically, by a local commit before it is sent (it must be an
 * owner's: on a non-owner it is refused with NotOwnerError, naming the owners to send it to;
 * evaluating it on one owner and forwarding would need the owner to coordinate, a second hop
 * this round does not build). The entry goes to every other owner at once over the replicate protocol
 * (src/net/replicate-protocol.ts, batched per owner), and the write is acknowledged when the
 * acks meet its consistency in every active layout's owner set (WriteTally, pure, in
 * src/core/write-quorum.ts), or fails after `writeAckTimeoutMs` (or as soon as enough owners
 * refused) with OwnersUnavailableError naming how many of how many owners acked. Owners that
 * did not ack (refused, unreachable, down) get a durable row delivered until they acknowledge
 * it (`hints`, ./delivery.ts: written before the reply for an owner that refused or is down,
 * after it for one whose late answer is not an ack); without `hints` (unit tests), a few
 * background retries (RetryQueue: bounded, in memory; anti-entropy repairs the rest).
 *
 * Reads (`get --from`): `local` reads this node's copy; `one`, `quorum` and `all` ask that
 * many of `readOwners(p)` (this node answers itself at once when it is one), all asked at once,
 * and keep the newest by (HLC, node id). Fewer answers than asked within `readTimeoutMs` is
 * OwnersUnavailableError unless `allowPartial`. Read repair: once every owner asked has
 * answered (or the deadline passed), those that answered with an older version or nothing get
 * the newest through the replicate protocol (`read_repair`).
 */
import { compareVersions, keyHashText, type Entry, type Version } from '../core/entry.js';
import { acksNeeded, consistencyLevels, writeConsistencyDefault, type Consistency, type Ownership } from '../core/ownership.js';
import type { LocalWrite, Replica } from '../core/replica.js';
import { isAck, replicateOutcomeOf, RetryQueue, WriteTally, type ReplicateOutcome } from '../core/write-quorum.js';
import { stampedEntry } from '../core/ttl.js';
import { InvalidArgumentError, NotOwnerError, OwnersUnavailableError } from '../errors.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';
import type { Hlc } from '../core/hlc.js';

/** A write that did not get its acks within this long fails (it may be stored on those that acked). */
export const writeAckTimeoutMs = 5_000;
/** A read waits this long for the owners it asked. */
export const readTimeoutMs = 5_000;
/** Retries held at once (the oldest dropped past it), attempts each, first delay (doubling). */
export const writeRetriesMax = 10_000;
export const writeRetryAttemptsMax = 5;
export const writeRetryDelayMs = 500;
/**
 * Within a write's deadline, an owner that answered not-owner (it has not heard of the newest
 * layout yet) or could not be reached is tried again after this delay, doubling up to the max:
 * a join spreads in tens of milliseconds, so a short first delay keeps the write's latency low.
 */
export const transientRetryDelayMsMin = 25;
export const transientRetryDelayMsMax = 400;

/** Where a read comes from. Only append: part of the control API. */
export const readSources = ['local', 'one', 'quorum', 'all'] as const;
export type ReadSource = (typeof readSources)[number];

/** A request's consistency ('' = the default); anything else than one, quorum, all is refused. */
export function consistencyOf(text: string): Consistency | undefined {
  if (text === '') return undefined;
  if ((consistencyLevels as readonly string[]).includes(text)) return text as Consistency;
  throw new InvalidArgumentError(`consistency ${JSON.stringify(text.slice(0, 40))} is not one of ${consistencyLevels.join(', ')}`);
}

/** What the coordinator sends with (the replicate client). */
export interface OwnerTransport {
  apply(peerId: string, entry: Entry): Promise<ReplicateOutcome>;
  read(peerId: string, key: string): Promise<Entry | undefined>;
}

export interface CoordinatorDeps {
  replica: Replica;
  ownership: () => Ownership | undefined;
  /** The peer id of an up member, by node id. */
  peerIdOf: (nodeId: string) => string | undefined;
  transport: OwnerTransport;
  counters: Counters;
  logger: Logger;
  wallClockMs: () => number;
  /** Delivery until acknowledged (./delivery.ts): owners that did not ack get a durable row instead of a RetryQueue retry. */
  hints?: { refusal(owners: readonly string[]): Error | undefined; hold(pending: readonly { target: string; entry: Entry }[]): Promise<void> };
  writeAckTimeoutMs?: number;
  readTimeoutMs?: number;
}

/** A write call's send chains, for the GC floor (Coordinator.oldestUnsettled). */
interface SendTrack {
  open(): void;
  close(): void;
}

/** A write being sent: its entry, its tally, and its index in the local commit's outcomes (-1: none pending). */
interface Sending {
  entry: Entry;
  tally: WriteTally;
  localAt: number;
}

/** A coordinated write's result: its version, its owners and those that acked in time. */
export interface WriteResult {
  version: Version;
  owners: string[];
  acked: string[];
}

/** One owner's answer to a read. */
export interface OwnerAnswer {
  nodeId: string;
  /** Undefined: it holds nothing of the key (or did not answer: see error). */
  version?: Version;
  deleted?: boolean;
  error?: string;
}

export interface ReadResult {
  /** The newest entry among the answers (a tombstone has value null). */
  entry: Entry | undefined;
  from: ReadSource;
  owners: string[];
  /** How many answers the read asked for. */
  asked: number;
  answers: OwnerAnswer[];
}

export class Coordinator {
  private readonly retries = new RetryQueue({ entriesMax: writeRetriesMax, attemptsMax: writeRetryAttemptsMax, delayMs: writeRetryDelayMs });
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /**
   * Tombstone GC (src/node/gc-floor.ts): per write call whose sends are not all settled (each
   * owner acked, or its durable delivery row written), the HLC bound read when it began (every
   * stamp of the call is above it). Bounded by the calls in flight.
   */
  private readonly unsettled = new Map<number, Hlc>();
  private unsettledNext = 0;

  constructor(private readonly deps: CoordinatorDeps) {}

  /** The oldest bound among write calls not settled yet (undefined: none): no write below it is in flight. */
  oldestUnsettled(): Hlc | undefined {
    let oldest: Hlc | undefined;
    for (const bound of this.unsettled.values()) if (oldest === undefined || bound < oldest) oldest = bound;
    return oldest;
  }

  /** The ownership to route by, or undefined: full-replication mode, or no layout yet (write locally as today). */
  partitioned(): Ownership | undefined {
    const ownership = this.deps.ownership();
    return ownership?.ready() ? ownership : undefined;
  }

  /** Writes (value null: delete), each acknowledged at `consistency`; each result or its error. */
  async write(writes: readonly LocalWrite[], consistency: Consistency = writeConsistencyDefault): Promise<(WriteResult | Error)[]> {
    const ownership = this.partitioned();
    if (ownership === undefined) throw new Error('the coordinator routes partitioned writes only');
    // Settled when the call has returned and every send chain it started has ended.
    const id = this.unsettledNext++;
    this.unsettled.set(id, this.deps.replica.hlcLast);
    let open = 1;
    const track = { open: (): void => void open++, close: (): void => void (--open === 0 && this.unsettled.delete(id)) };
    try {
      return await this.writeTracked(writes, consistency, ownership, track);
    } finally {
      track.close();
    }
  }

  private async writeTracked(writes: readonly LocalWrite[], consistency: Consistency, ownership: Ownership, track: SendTrack): Promise<(WriteResult | Error)[]> {
    const self = ownership.self;
    const results: (WriteResult | Error | undefined)[] = new Array(writes.length);
    const tallies: WriteTally[] = new Array(writes.length);
    const entries: (Entry | undefined)[] = new Array(writes.length);
    /** Conditional writes this node owns: evaluated and stored here before they are sent. */
    const conditionalAt: number[] = [];
    /** Unconditional writes this node owns: stamped, then stored here while they are sent. */
    const stampedAt: number[] = [];
    for (let i = 0; i < writes.length; i++) {
      const write = writes[i]!;
      const partition = ownership.partitionOf(keyHashText(write.key));
      const tally = new WriteTally(ownership.writeSets(partition), consistency);
      tallies[i] = tally;
      const backlog = this.deps.hints?.refusal(tally.owners);
      if (backlog !== undefined) {
        results[i] = backlog;
        continue;
      }
      const holds = ownership.holds(partition);
      if (write.condition !== undefined) {
        if (holds) conditionalAt.push(i);
        else results[i] = new NotOwnerError(`a conditional write must be sent to an owner of its key; this node is not one (owners: ${tally.owners.join(', ')})`);
        continue;
      }
      try {
        entries[i] = this.deps.replica.stamp(write.key, write.value, write.ttlMs);
        if (holds) stampedAt.push(i);
      } catch (error) {
        results[i] = error as Error;
      }
    }
    // The local commit of the stamped writes runs while they travel to the other owners (its
    // ack counts like theirs), rather than before: a write waits for one commit, not two in a row.
    const local = stampedAt.length === 0 ? undefined : this.storeStamped(stampedAt.map((i) => entries[i]!));
    if (conditionalAt.length > 0) {
      const versions = await this.deps.replica.writeMany(conditionalAt.map((i) => writes[i]!));
      conditionalAt.forEach((i, n) => {
        const version = versions[n]!;
        if (version instanceof Error) results[i] = version;
        else {
          entries[i] = stampedEntry(writes[i]!.key, writes[i]!.value, version, writes[i]!.ttlMs);
          tallies[i]!.answer(self, 'applied');
        }
      });
    }
    const sending: Sending[] = [];
    let stamped = 0;
    for (let i = 0; i < writes.length; i++) {
      const entry = entries[i];
      const isStamped = stampedAt[stamped] === i;
      if (isStamped) stamped++;
      if (results[i] === undefined && entry !== undefined) sending.push({ entry, tally: tallies[i]!, localAt: isStamped ? stamped - 1 : -1 });
    }
    await this.replicate(sending, self, local, track);
    // Owners that refused or are down get their durable row before the reply (one still
    // answering gets it from scheduleRetry if its answer is not an ack).
    await this.deps.hints?.hold(
      sending.flatMap(({ entry, tally }) =>
        tally.owners.filter((o) => o !== self && !tally.acked.has(o) && (tally.failed.has(o) || this.deps.peerIdOf(o) === undefined)).map((target) => ({ target, entry })),
      ),
    );
    return writes.map((write, i) => {
      const failed = results[i];
      if (failed !== undefined) return failed;
      const tally = tallies[i]!;
      const entry = entries[i]!;
      if (tally.state === 'met') {
        this.deps.counters.add('coordinated_writes_acked');
        return { version: entry.version, owners: [...tally.owners], acked: [...tally.acked].sort() };
      }
      this.deps.counters.add('coordinated_writes_unavailable');
      return new OwnersUnavailableError(unavailableText(write.key, tally, this.deps.hints !== undefined));
    });
  }

  /** This node's outcome for each entry it stamped and stores (never rejects: a failed commit is each one's error). */
  private async storeStamped(entries: readonly Entry[]): Promise<(ReplicateOutcome | Error)[]> {
    try {
      const report = await this.deps.replica.applyRemote(entries, { outcomes: true, origin: 'local' });
      return entries.map((_, n) => replicateOutcomeOf(report.outcomes?.[n] ?? 'applied'));
    } catch (error) {
      const failed = error instanceof Error ? error : new Error(errorText(error));
      return entries.map(() => failed);
    }
  }

  /**
   * Sends each entry to its owners but this node, all at once (and counts this node's own
   * commit of the stamped ones, `local`, when it ends); resolves when every tally is met, or
   * failed with every owner heard (so the error names every owner that has the write), or when
   * the deadline passes (one timer for the whole call).
   */
  private replicate(writes: readonly Sending[], self: string, local: Promise<(ReplicateOutcome | Error)[]> | undefined, track: SendTrack): Promise<void> {
    return new Promise<void>((resolve) => {
      let open = writes.length;
      if (open === 0) return resolve();
      const done: boolean[] = new Array(writes.length).fill(false);
      const deadlineMs = this.deps.wallClockMs() + (this.deps.writeAckTimeoutMs ?? writeAckTimeoutMs);
      /** Per write, the owners being tried again after a transient refusal, with the last one (made when needed). */
      const lastRefusals: (Map<string, ReplicateOutcome | Error> | undefined)[] = new Array(writes.length);
      const timer = setTimeout(() => {
        writes.forEach(({ tally }, i) => {
          for (const [nodeId, outcome] of lastRefusals[i] ?? []) tally.answer(nodeId, outcome);
          tally.expire();
        });
        resolve();
      }, this.deps.writeAckTimeoutMs ?? writeAckTimeoutMs);
      const settle = (i: number): void => {
        const tally = writes[i]!.tally;
        if (done[i] || !(tally.state === 'met' || (tally.state !== 'pending' && tally.waitingOn.length === 0))) return;
        done[i] = true;
        if (--open === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      void local?.then((outcomes) => {
        writes.forEach(({ tally, localAt }, i) => {
          if (localAt < 0 || done[i]) return;
          tally.answer(self, outcomes[localAt]!);
          settle(i);
        });
      });
      writes.forEach(({ entry, tally }, i) => {
        settle(i);
        const attempt = (nodeId: string, delayMs: number): void => {
          void this.send(nodeId, entry).then((outcome) => {
            if (done[i]) {
              if (outcome instanceof Error || !isAck(outcome)) void this.scheduleRetry(nodeId, entry, 0).finally(track.close);
              else track.close();
              return;
            }
            // An owner that does not know the newest layout yet (a join or a removal is
            // spreading) answers not-owner, and a joiner may not be connected yet: both pass in
            // moments, so they are tried again within the write's deadline rather than failing it.
            const transient = outcome instanceof Error || outcome === 'not-owner';
            if (transient && this.deps.wallClockMs() + delayMs < deadlineMs && !this.stopped) {
              (lastRefusals[i] ??= new Map()).set(nodeId, outcome);
              setTimeout(() => attempt(nodeId, Math.min(delayMs * 2, transientRetryDelayMsMax)), delayMs).unref();
              return;
            }
            lastRefusals[i]?.delete(nodeId);
            tally.answer(nodeId, outcome);
            if (outcome instanceof Error || !isAck(outcome)) void this.scheduleRetry(nodeId, entry, 0).finally(track.close);
            else track.close();
            settle(i);
          });
        };
        for (const nodeId of tally.owners) {
          if (nodeId === self) continue;
          track.open();
          attempt(nodeId, transientRetryDelayMsMin);
        }
      });
    });
  }

  /** One owner's outcome, or the error that kept it from answering (never rejects). */
  private async send(nodeId: string, entry: Entry): Promise<ReplicateOutcome | Error> {
    const peerId = this.deps.peerIdOf(nodeId);
    if (peerId === undefined) return new Error(`owner ${nodeId} is not up`);
    try {
      return await this.deps.transport.apply(peerId, entry);
    } catch (error) {
      return error instanceof Error ? error : new Error(errorText(error));
    }
  }

  /** Resolves once a delivery row is durable (with hints), at once otherwise. */
  private scheduleRetry(nodeId: string, entry: Entry, attempts: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.deps.hints !== undefined) return this.deps.hints.hold([{ target: nodeId, entry }]).catch(() => undefined);
    if (!this.retries.add(nodeId, entry, this.deps.wallClockMs(), attempts)) {
      this.deps.counters.add('write_retry_dropped');
      return Promise.resolve();
    }
    this.armRetryTimer();
    return Promise.resolve();
  }

  private armRetryTimer(): void {
    const next = this.retries.nextDueMs();
    if (next === undefined || this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.runRetries(), Math.max(0, next - this.deps.wallClockMs()));
    this.retryTimer.unref();
  }

  private runRetries(): void {
    this.retryTimer = undefined;
    for (const retry of this.retries.due(this.deps.wallClockMs())) {
      void this.send(retry.nodeId, retry.entry).then((outcome) => {
        if (!(outcome instanceof Error) && isAck(outcome)) this.deps.counters.add('write_retry_acked');
        else {
          this.deps.counters.add('write_retry_failed');
          void this.scheduleRetry(retry.nodeId, retry.entry, retry.attempts);
        }
      });
    }
    this.armRetryTimer();
  }

  /** Retries waiting (for status and tests). */
  get retriesPending(): number {
    return this.retries.size;
  }

  /** A single-key read from the owners (see the top comment). */
  async read(key: string, from: ReadSource | undefined, allowPartial: boolean): Promise<ReadResult> {
    const ownership = this.partitioned();
    if (ownership === undefined) throw new Error('the coordinator routes partitioned reads only');
    const partition = ownership.partitionOf(keyHashText(key));
    const owners = [...ownership.readOwners(partition)];
    const self = ownership.self;
    // Local only when this node is one of the partition's read owners: during a change a new
    // owner holds the partition (it takes writes) before it has pulled it, and must not answer
    // reads from a copy still filling.
    const source: ReadSource = from ?? (owners.includes(self) ? 'local' : 'one');
    if (source === 'local') {
      const entry = await this.deps.replica.get(key);
      return { entry, from: source, owners, asked: 1, answers: [answerOf(self, entry)] };
    }
    const asked = source === 'one' ? Math.min(1, owners.length) : source === 'all' ? owners.length : acksNeeded('quorum', owners.length);
    const answers = new Map<string, OwnerAnswer>();
    const entries = new Map<string, Entry | undefined>();
    const pending = owners.map(async (nodeId) => {
      try {
        const entry = await this.readFrom(nodeId, key, self);
        entries.set(nodeId, entry);
        answers.set(nodeId, answerOf(nodeId, entry));
      } catch (error) {
        answers.set(nodeId, { nodeId, error: errorText(error) });
      }
    });
    const all = Promise.all(pending);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.deps.readTimeoutMs ?? readTimeoutMs);
      const check = (): void => {
        if (entries.size >= asked || answers.size === owners.length) {
          clearTimeout(timer);
          resolve();
        }
      };
      check();
      for (const p of pending) void p.then(check);
    });
    const newest = newestOf([...entries.values()]);
    const result: ReadResult = {
      entry: newest,
      from: source,
      owners,
      asked,
      answers: owners.map((nodeId) => answers.get(nodeId) ?? { nodeId, error: 'no answer yet' }),
    };
    // Read repair once every owner answered (or the deadline): without delaying the reply.
    void Promise.race([all, new Promise((resolve) => setTimeout(resolve, this.deps.readTimeoutMs ?? readTimeoutMs).unref())]).then(() =>
      this.repair(key, entries, self),
    );
    if (entries.size < asked && !allowPartial) {
      throw new OwnersUnavailableError(
        `${entries.size} of ${owners.length} owners of ${JSON.stringify(key)} answered; --from ${source} asks ${asked} (${describeAnswers(result.answers)}); use --allow-partial to accept fewer`,
      );
    }
    return result;
  }

  private readFrom(nodeId: string, key: string, self: string): Promise<Entry | undefined> {
    if (nodeId === self) return this.deps.replica.get(key);
    const peerId = this.deps.peerIdOf(nodeId);
    if (peerId === undefined) return Promise.reject(new Error('not up'));
    return this.deps.transport.read(peerId, key);
  }

  /** Sends the newest entry to every owner that answered with an older one or none. */
  private repair(key: string, answered: ReadonlyMap<string, Entry | undefined>, self: string): void {
    const newest = newestOf([...answered.values()]);
    if (newest === undefined || this.stopped) return;
    for (const [nodeId, entry] of answered) {
      if (entry !== undefined && compareVersions(entry.version, newest.version) >= 0) continue;
      this.deps.counters.add('read_repair');
      if (nodeId === self) {
        this.deps.replica.applyRemote([newest]).catch(() => undefined);
        continue;
      }
      void this.send(nodeId, newest).then((outcome) => {
        if (outcome instanceof Error) this.deps.logger.info('read repair failed', { key, nodeId, error: errorText(outcome) });
      });
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }
}

function answerOf(nodeId: string, entry: Entry | undefined): OwnerAnswer {
  return entry ? { nodeId, version: entry.version, deleted: entry.value === null } : { nodeId };
}

function newestOf(entries: readonly (Entry | undefined)[]): Entry | undefined {
  let newest: Entry | undefined;
  for (const entry of entries) if (entry && (newest === undefined || compareVersions(entry.version, newest.version) > 0)) newest = entry;
  return newest;
}

function describeAnswers(answers: readonly OwnerAnswer[]): string {
  return answers.map((a) => `${a.nodeId}: ${a.error ?? 'answered'}`).join('; ');
}

function unavailableText(key: string, tally: WriteTally, held: boolean): string {
  const why = [...tally.failed].map(([nodeId, reason]) => `${nodeId}: ${reason}`);
  for (const nodeId of tally.waitingOn) why.push(`${nodeId}: no answer in time`);
  const perSet = tally.sets.map((set) => `${set.filter((n) => tally.acked.has(n)).length} of ${set.length} (needs ${acksNeeded(tally.consistency, set.length)})`);
  const needs = tally.sets.length === 1 ? `needs ${acksNeeded(tally.consistency, tally.sets[0]!.length)}` : `needs enough in each active layout: ${perSet.join(', ')}`;
  return (
    `write of ${JSON.stringify(key)} acknowledged by ${tally.acked.size} of ${tally.owners.length} owners; ` +
    `consistency ${tally.consistency} ${needs} (${why.join('; ')}); ` +
    `it may be stored on the owners that acked${tally.acked.size > 0 ? ` (${[...tally.acked].sort().join(', ')})` : ''} and ` +
    (held ? `is pending for the others until they acknowledge it (ckv status: delivery)` : `is retried on the others`)
  );
}
