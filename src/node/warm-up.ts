/**
 * Warm-up: a node that has just started runs its write path on throwaway data while it is
 * idle, so that the first writes its clients send do not run on code V8 has not optimised yet.
 *
 * Why: a fresh process runs JavaScript in V8's interpreter until a function has run often
 * enough to be compiled, and then compiles it on background threads; the code cache a start
 * loads (bin/node-bundle.js) holds bytecode, not that. On a fresh 3-node cluster the first
 * burst of 5,000 writes (PutMany of 1,000) took ~400-550 ms to reach every node against ~200 ms
 * for the same burst a second later, and the writing node spent ~3x the CPU on it, most of
 * the difference on V8's compiler threads (docs/measurements.md, 2026-12-07 (10)). Users meet
 * it as a slow first burst after a start.
 *
 * How: `delayMs` after start() (the node has started), if its replica has committed nothing
 * since (no local write, nothing received, no catch-up), a replica of its own on a LevelDB
 * store of its own (`warm-up/` in the data directory, removed afterwards, and at the next
 * start if a crash left it) takes local writes in batches (the PutMany path,
 * Replica.writeMany) and 64 at a time one by one (Replica.put), encodes its changes as gossip
 * `entries` messages, and applies messages of entries from a made-up peer, new keys and
 * rewrites of stored ones (the receive path: decodeGossip, Replica.applyReceived). The front
 * ends decode and encode the hot calls on throwaway data alongside (FrontEnd.warmUp). The
 * classes and functions are the node's own, so what V8 learns there serves the node's
 * replica and store: with 4,000 entries that first burst took ~300 ms (medians 405 -> 302 ms at
 * 3 nodes, 677 -> 471 ms at 5). One write at a time it does not help: that path is cold in code
 * it cannot run without a peer and a client (the network stack, node:http2).
 *
 * Same shapes: V8 compiles a function for the shapes of objects and values it has seen, and
 * throws the compiled code away (deoptimises) when another comes. So the warm-up's writes have
 * the shape of the control server's, its keys are flat strings as decoded ones are, its replies
 * carry today's stamps, its replica is opened with the node's own hooks (WarmUpReplicaHooks:
 * placement, resurrection, clock, the same functions), and the classes it shares with the node
 * keep one shape from their construction on (key-filter.ts, batch-rows.ts, hlc.ts). Each of
 * these was a deopt at a fresh node's first burst (`node dist/bench/first-burst-deopts.js`
 * lists them); with them fixed the 3-node first burst took ~290 ms against ~375 (medians).
 *
 * It gives way to real work: one batch at a time, each awaited (the store write goes to
 * LevelDB's thread, so the event loop turns between batches), and before each batch it looks
 * at the node's replica: any commit there (a client's write, a gossiped one, a catch-up
 * session) ends the warm-up at once, as does stop(). So a restarted node that catches up at
 * once never runs it. It never touches the node's replica, store, clock or network (the hooks
 * it calls are queries): nothing of it reaches a peer or a client. Its cost: ~0.3 s of CPU
 * once, while the node is idle, and ~1 MiB of disk for as long as it runs.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { keyHashText, type Entry } from '../core/entry.js';
import { hlcPack } from '../core/hlc.js';
import { gossipBatchEntriesMax } from '../core/limits.js';
import { Replica, type AppliedChange, type ApplyReport, type ReplicaOptions } from '../core/replica.js';
import { decodeGossip, encodeGossip } from '../net/gossip.js';
import { LevelStore } from '../store/level-store.js';
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';

/** The warm-up's store, in the node's data directory. */
export const warmUpDirName = 'warm-up';
/** Entries a local batch and a received message hold (a PutMany of 250; a busy origin's gossip messages). */
const batchEntries = 250;
/** Unary puts in flight at once, as a client with 64 in flight. */
const unaryInFlight = 64;
/** Bytes of each throwaway value: the size the benches write. */
const valueBytes = 100;
/** Default delay after start() (ms): the node has connected to its peers by then, or a restart has begun its catch-up. */
export const warmUpDelayMsDefault = 500;
/** Names a received entry may try before it is left out, when the node holds only some keys (partitioned mode). */
const heldKeyAttemptsMax = 32;

/**
 * What the node's replica was opened with that its commits call or read: the very same
 * functions, so that the calls the node's commits make (placement, resurrection, clock) are
 * ones V8 has seen; code compiled without them is thrown away at the node's first commit. They
 * are queries: the warm-up's entries are ones the node holds and would take.
 */
export type WarmUpReplicaHooks = Pick<ReplicaOptions, 'holds' | 'refuseResurrection' | 'clockAheadOfPeersMs' | 'depth' | 'driftMsMax' | 'valueBytesMax'>;

export interface WarmUpOptions {
  /** The node's data directory: the warm-up's store goes in `warm-up/` there. */
  dataDir: string;
  /** The node's replica: its node id stamps the throwaway writes; any commit of it ends the warm-up. */
  replica: Pick<Replica, 'storeChangeCount' | 'nodeId'>;
  counters: Counters;
  logger: Logger;
  /** The wall clock (ms), as the node's replica gets it. */
  wallClockMs: () => number;
  /** Entries written and received in all (NodeConfig.warmUpEntries); 0 turns the warm-up off. */
  entries: number;
  /** How long after start() the warm-up begins (ms). Default warmUpDelayMsDefault. */
  delayMs?: number;
  /** The front ends' codec exercises (FrontEnd.warmUp), run once per local batch. */
  frontEnds?: () => readonly (() => void)[];
  /** The node's replica's hooks (see WarmUpReplicaHooks); none by default. */
  replicaHooks?: WarmUpReplicaHooks;
}

/** How a warm-up ended: ran to the end; gave way to work (or a stop); failed (logged, the node unaffected). */
export type WarmUpOutcome = 'done' | 'interrupted' | 'failed';

export class WarmUp {
  private readonly dir: string;
  private timer: NodeJS.Timeout | undefined;
  private leftoverRemoved: Promise<void> = Promise.resolve();
  private running: Promise<WarmUpOutcome> | undefined;
  private started = false;
  private stopped = false;
  private changesAtStart = 0;

  constructor(private readonly options: WarmUpOptions) {
    this.dir = join(options.dataDir, warmUpDirName);
  }

  /** Idempotent. Removes a store a crash left, and schedules the warm-up (the node's replica is open). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.leftoverRemoved = rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    if (this.options.entries <= 0) return;
    this.changesAtStart = this.options.replica.storeChangeCount;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.run();
    }, this.options.delayMs ?? warmUpDelayMsDefault);
    this.timer.unref();
  }

  /** Idempotent: a warm-up under way ends before its next batch, and its store is removed. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.leftoverRemoved;
  }

  /** The outcome, once the warm-up has run (undefined before it began, or when off). */
  get finished(): Promise<WarmUpOutcome> | undefined {
    return this.running;
  }

  /** Whether the node has committed anything since start(), or is stopping: the warm-up gives way. */
  private interrupted(): boolean {
    return this.stopped || this.options.replica.storeChangeCount !== this.changesAtStart;
  }

  private async run(): Promise<WarmUpOutcome> {
    const startedMs = performance.now();
    let outcome: WarmUpOutcome;
    try {
      await this.leftoverRemoved;
      outcome = this.interrupted() ? 'interrupted' : await this.exercise();
    } catch (error) {
      outcome = 'failed';
      this.options.logger.warn('warm-up failed (the node is not affected)', { error: errorText(error) });
    } finally {
      await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    }
    this.options.counters.add(`warmup_${outcome}`);
    this.options.logger.info('warm-up', { outcome, ms: Math.round(performance.now() - startedMs) });
    return outcome;
  }

  private async exercise(): Promise<WarmUpOutcome> {
    const store = new LevelStore(this.dir);
    await store.open();
    let replica: Replica | undefined;
    try {
      const published: Entry[] = [];
      const hooks = this.options.replicaHooks ?? {};
      replica = await Replica.open({
        ...hooks,
        nodeId: this.options.replica.nodeId,
        store,
        wallClockMs: this.options.wallClockMs,
        rng: Math.random,
        // As the node's onApplied does with local writes: gossip them (here only encoded).
        onApplied: (changes: readonly AppliedChange[]) => {
          for (const change of changes) if (change.origin === 'local') published.push(change.entry);
        },
      });
      // Every received entry must be applied: one refused would not have run the path to warm.
      const applied = (report: ApplyReport, count: number): void => {
        if (report.applied !== count) throw new Error(`the warm-up's received entries were not all applied: ${JSON.stringify(report)}`);
      };
      const gossip = (): void => {
        while (published.length > 0) encodeGossip({ type: 'entries', entries: published.splice(0, gossipBatchEntriesMax) });
      };
      const value = new Uint8Array(valueBytes).fill(0x61);
      const half = Math.max(1, Math.floor(this.options.entries / 2));
      // Flat strings, as keys decoded from a request are: V8 makes a joined string of this
      // length a rope, and code compiled for ropes is thrown away at the first real key.
      const localKey = (i: number): string => Buffer.from(`warm-up/local/${i}`).toString('utf8');
      // Local writes in batches, as PutMany makes them, each batch gossiped.
      for (let first = 0; first < half; first += batchEntries) {
        if (this.interrupted()) return 'interrupted';
        for (const exercise of this.options.frontEnds?.() ?? []) exercise();
        const count = Math.min(batchEntries, half - first);
        // Writes of the shape the control server hands the node (requests.ts, writeOutcomes):
        // code compiled for another shape would be thrown away at the first real batch.
        await replica.writeMany(Array.from({ length: count }, (_, i) => ({ key: localKey(first + i), value, condition: undefined })));
        gossip();
      }
      // Unary puts, 64 at a time, rewriting stored keys (a version to replace).
      for (let first = 0; first < half / 4; first += unaryInFlight) {
        if (this.interrupted()) return 'interrupted';
        const open = replica;
        await Promise.all(Array.from({ length: unaryInFlight }, (_, i) => open.put(localKey((first + i) % half), value)));
        gossip();
      }
      // Gossip messages from a made-up peer: new keys and rewrites of the local ones, alternately.
      // A node id of its own: 16 hex digits, as every node's (the wire holds its 8 bytes).
      let peer = randomBytes(8).toString('hex');
      if (peer === this.options.replica.nodeId) peer = peer.replace(/^./, (digit) => (digit === '0' ? '1' : '0'));
      const hlcBase = replica.hlcLast;
      // Only keys the node holds (all of them but in partitioned mode): the node would refuse others.
      const held = (key: string): boolean => hooks.holds === undefined || hooks.holds(keyHashText(key));
      const heldKey = (i: number): string | undefined => {
        const local = i % 2 === 1 ? localKey(i) : undefined;
        if (local !== undefined && held(local)) return local;
        for (let attempt = 0; attempt < heldKeyAttemptsMax; attempt++) {
          const key = `warm-up/remote/${i}/${attempt}`;
          if (held(key)) return key;
        }
        return undefined;
      };
      for (let first = 0; first < half; first += batchEntries) {
        if (this.interrupted()) return 'interrupted';
        const entries: Entry[] = [];
        for (let i = first; i < Math.min(first + batchEntries, half); i++) {
          const key = heldKey(i);
          if (key !== undefined) entries.push({ key, value, version: { hlc: hlcBase + hlcPack(0, i + 1), node: peer } });
        }
        if (entries.length === 0) continue;
        const message = decodeGossip(encodeGossip({ type: 'entries', entries }), valueBytes);
        if (message.type !== 'entries' || message.received === undefined) throw new Error('a warm-up entries message did not decode as one');
        applied(await replica.applyReceived(message.received), entries.length);
      }
      return 'done';
    } finally {
      await replica?.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    }
  }
}
