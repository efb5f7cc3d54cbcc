/**
 * The tombstone GC simulator: the core's GC state machine (src/core/tombstone-gc.ts,
 * src/core/gc-watermark.ts) driven over a seeded, lossy network with crashes, partitions and
 * clock skew, judged against ground truth. Everything random comes from one Prng: a seed
 * replays exactly.
 *
 * Model (a data model of its own, not the Replica-based partition-sim.ts; docs/design-delivery-gc.md):
 * - `nodes` members, K=3: the holders of partition p are nodes p..p+2 (mod n), the collector
 *   is the first; a layout change may add node p+3 as a holder of p (old and new layouts both
 *   active: holders are the union), which pulls p by anti-entropy from each older holder, and
 *   the partition is collected only once that pull is done (a holder's collected floor would
 *   otherwise refuse the older rows it has not pulled yet). Each node's rows, clock, pending deliveries, collected
 *   floors and phase-two requests are durable (survive a crash); open phase-one rounds and the
 *   floors it heard are not.
 * - Writes (puts and deletes of a small key space) are stamped by a random up coordinator
 *   (HLC-like: wall ms with skew, never backwards, node index in the low bits) and delivered to
 *   every holder, retried every tick until each acknowledges (delivery until acknowledged, the
 *   premise of the floors: issue 12 part 1). A write pending at its coordinator holds its floor.
 *   (Giving up after a quorum, as today's RetryQueue, loses writes here: a live write older than
 *   a partition's collected floor reaching a holder by anti-entropy is refused. GC must not be
 *   enabled before durable delivery.)
 *   A holder applies a row if it is newer than its own, and for an absent key only if the
 *   partition's collected floor does not refuse it (`refuseResurrection`); it acks either way.
 * - Every tick a node publishes its floor (oldest pending write it coordinated, else its clock)
 *   to every member; anti-entropy pushes a random shared partition's rows to a co-holder.
 * - GC: every tick each collector plans a round (tombstones below the watermark of its
 *   FloorBook), pushes them (phase one) and, once every holder acked, sends phase two
 *   (delete-if-unchanged), resent until each holder acks it. Other holders nominate their own
 *   collectable tombstones to the collector (a new holder may pull one mid-phase-two that the
 *   collector already collected; phase one then finds it refused by the collector's floor,
 *   which counts as having it).
 * Faults (during the fault window): message loss, network splits, crashes and restarts; then
 * everything heals and the cluster goes quiet for `settleMs`.
 *
 * Invariants: (1) nothing collected ever returns: a node never re-creates a row of a key at or
 * below the version it collected for it; (2) a tombstone is collected only when no write older
 * than it is still in flight anywhere (the watermark held: GC did not advance past a member cut
 * off with older writes); (3) at the end every holder has the key's newest write, or nothing
 * if that was a delete, and no deleted key is live; (4) the quiet cluster holds no tombstones.
 * Canaries, each a GC bug the checker must catch: `skip-phase-one`, `watermark-ignores-unreachable`,
 * `floor-not-enforced`. A collector reads a partition only if its TombstoneBounds
 * (src/core/tombstone-bounds.ts) say it may hold a tombstone below the watermark (or another
 * holder nominated one there); every tombstone a node stores is noted, and the canary
 * `bounds-note-local-only` notes only the node's own deletes and sweeps (4 catches it).
 *
 * Values that expire (src/core/ttl.ts), in both modes: about a third of the puts carry a TTL
 * (50 ms to 2 s, counted from the write's HLC wall time), and half of those get a re-write of
 * the same key by another client shortly before they expire (the race the TTL rules are about).
 * Every tick each node's sweeper turns the values expired at its HLC reading into tombstones of
 * the same version (Replica.expireUnchanged), which GC then collects; phase two's
 * delete-if-unchanged is by version, so it also drops an expired value not yet swept there
 * (GcHolder.deleteIfUnchanged). Invariants: at the end no expired value is live anywhere and
 * a key whose newest write expired is gone everywhere (3); a re-write after a TTL write is never
 * lost to the sweeper (3: the newest write held). Canaries: `ttl-never-swept` (no sweeper) and
 * `ttl-sweep-new-version` (the tombstone stamped at the sweeping node's clock, which beats a
 * re-write stamped before the sweep that had not reached that node yet).
 *
 * Full-replication mode (`mode: 'full'`, the rule src/node/gc-floor.ts runs): every node holds
 * every key and the collector is node 0; a write is stored by its coordinator and gossiped once
 * (lossy, no retry); each tick a node runs an anti-entropy session with a random peer, which
 * repairs only one missing row when the rows differ (a session's rounds are bounded) and, when
 * they are equal, records the coordinator's clock read before it as that peer's in-sync bound;
 * a node's floor is the minimum over the other members of those bounds (none until it has one
 * for every member; lost in a crash). At each collection it also checks that no row older than
 * the tombstone is missing on any node (it would be refused when it arrives: lost). Canaries:
 * `floor-from-any-session` (a bound recorded after a session that did not find equal rows) and
 * `members-forget-the-absent` (floors, watermark and holders over the members reachable now:
 * what the node did before its member set was persisted).
 */
import { FloorBook } from '../../src/core/gc-watermark.js';
import { isExpired } from '../../src/core/ttl.js';
import type { Hlc } from '../../src/core/hlc.js';
import { TombstoneBounds, noTombstone } from '../../src/core/tombstone-bounds.js';
import { CollectedFloors, TombstoneCollector, type DeleteIfUnchanged, type RowState, type TombstoneRef } from '../../src/core/tombstone-gc.js';
import { EventQueue, violationLog, type RunReport } from './event-queue.js';
import { Prng } from './prng.js';

export type GcCanary =
  | 'skip-phase-one'
  | 'watermark-ignores-unreachable'
  | 'floor-not-enforced'
  | 'floor-from-any-session'
  | 'members-forget-the-absent'
  | 'ttl-never-swept'
  | 'ttl-sweep-new-version'
  | 'bounds-note-local-only';

export interface GcSimOptions {
  seed: number;
  /** Members, 3..9. */
  nodes: number;
  writes?: number;
  faultWindowMs?: number;
  settleMs?: number;
  canary?: GcCanary;
  /**
   * 'partitioned' (default): K = 3 holders, delivery until acknowledged, floors from pending
   * deliveries. 'full': full replication as the node runs it (src/node/gc-floor.ts): every node
   * holds every key, writes are gossiped once (lossy, no retry: anti-entropy repairs), and a
   * node's floor is the minimum over the other members of its clock read before the last
   * anti-entropy session it started with each that found their rows equal; none until it has
   * one with every member (kept in memory: lost in a crash).
   */
  mode?: 'partitioned' | 'full';
}

export type GcSimReport = RunReport<{ writes: number; deletes: number; collected: number; refused: number; crashes: number; splits: number; tombstonesLeft: number; ttlWrites: number; expired: number; partitionsSkipped: number }>;

interface Row {
  version: Hlc;
  deleted: boolean;
  /** A value with a TTL: when it expires, on the HLC's wall scale (wallOf). */
  expiresAtMs?: number;
}
interface Write {
  key: number;
  row: Row;
  unacked: Set<number>;
}
interface GcNode {
  index: number;
  up: boolean;
  group: number;
  skewMs: number;
  last: Hlc;
  rows: Map<number, Row>;
  pending: Write[];
  floors: CollectedFloors;
  collectedAt: Map<number, Hlc>;
  phaseTwo: { request: DeleteIfUnchanged; waiting: Set<number> }[];
  book: FloorBook;
  /** Tombstones other holders asked this collector to collect (a holder may have one the collector already collected). */
  nominated: Map<number, Hlc>;
  collector: TombstoneCollector;
  /** Which partitions may hold a tombstone below a watermark (src/core/tombstone-bounds.ts): in memory, lost in a crash. */
  bounds: TombstoneBounds;
  boot: number;
  /** Full mode: per member, the clock read before the last session this node started that found their rows equal. */
  inSync: Map<number, Hlc>;
}

const partitions = 4;
const keys = 12;
const tickMs = 200;
const partitionOf = (key: number): number => key % partitions;
/** The wall ms of a sim HLC (wall << 8 for the logical counter, << 4 for the node index). */
const wallOf = (hlc: Hlc): number => Number(hlc >> 12n);

export function runGcSimulation(options: GcSimOptions): GcSimReport {
  const { seed, canary } = options;
  const full = options.mode === 'full';
  const n = options.nodes;
  if (n < 3 || n > 9) throw new Error(`nodes must be 3..9, not ${n}`);
  const rng = new Prng(seed);
  const queue = new EventQueue();
  const { violations, violate } = violationLog(queue);
  const faultWindowMs = options.faultWindowMs ?? 6_000;
  const settleMs = options.settleMs ?? (full ? 12_000 : 6_000);
  const loss = rng.float() * 0.2;
  const stats: GcSimReport['stats'] = { writes: 0, deletes: 0, collected: 0, refused: 0, crashes: 0, splits: 0, tombstonesLeft: 0, ttlWrites: 0, expired: 0, partitionsSkipped: 0 };
  let faults = true;
  const nodes: GcNode[] = Array.from({ length: n }, (_, index) => ({
    index,
    up: true,
    group: 0,
    skewMs: rng.chance(0.5) ? 0 : rng.int(-400, 400),
    last: 0n,
    rows: new Map(),
    pending: [],
    floors: new CollectedFloors(),
    collectedAt: new Map(),
    phaseTwo: [],
    book: new FloorBook(),
    nominated: new Map(),
    collector: new TombstoneCollector({ batchMax: 4, roundsMax: 2 }),
    bounds: new TombstoneBounds(),
    boot: 0,
    inSync: new Map(),
  }));
  const members = nodes.map((node) => `${node.index}`);
  // A layout change adds a holder to some partitions during the fault window (node p+3, with
  // n >= 4): it pulls the partition by anti-entropy from each older holder.
  const added = new Map<number, { holder: number; pulledFrom: Set<number> }>();
  const baseOf = (p: number): number[] => (full ? nodes.map((node) => node.index) : [0, 1, 2].map((i) => (p + i) % n));
  const holdersOf = (p: number): number[] => {
    const extra = added.get(p);
    return extra ? [...baseOf(p), extra.holder] : baseOf(p);
  };
  /** GC of a partition waits until its new holder pulled it from every older holder. */
  const pulled = (p: number): boolean => {
    const extra = added.get(p);
    return !extra || baseOf(p).every((h) => extra.pulledFrom.has(h));
  };
  const holderNames = (p: number, from?: GcNode): string[] =>
    holdersOf(p)
      // The canary's membership forgets members it cannot reach: they are no longer holders either.
      .filter((i) => canary !== 'members-forget-the-absent' || from === undefined || reachable(from, nodes[i]!))
      .map((i) => `${i}`);
  const reachable = (a: GcNode, b: GcNode): boolean => a.up && b.up && a.group === b.group;
  const stampedTop = new Map<number, Row>();

  /** Runs `run` at `to` after a delay if it can still be reached then; lossy during faults. */
  function send(from: GcNode, to: GcNode, run: () => void): void {
    if (from === to) return run();
    if (!reachable(from, to) || (faults && rng.chance(loss))) return;
    const boot = to.boot;
    queue.schedule(rng.int(1, 40), () => {
      if (to.boot === boot && reachable(from, to)) run();
    });
  }

  function clock(node: GcNode): Hlc {
    const wall = BigInt(Math.max(0, 1_000_000 + queue.nowMs + node.skewMs)) << 8n;
    const next = wall > node.last >> 4n ? wall : (node.last >> 4n) + 1n;
    node.last = (next << 4n) | BigInt(node.index);
    return node.last;
  }

  /** The node's HLC reading without ticking it (Replica.hlcNow), as wall ms. */
  function hlcNowMs(node: GcNode): number {
    return Math.max(1_000_000 + queue.nowMs + node.skewMs, wallOf(node.last));
  }

  /**
   * The TTL sweeper (src/node/ttl-sweeper.ts): every value expired at this node's HLC reading
   * becomes its tombstone, same version (the canary stamps a new one, as a naive sweeper would).
   */
  function sweep(node: GcNode): void {
    if (canary === 'ttl-never-swept') return;
    const nowMs = hlcNowMs(node);
    for (const [key, row] of node.rows) {
      if (!isExpired({ key: `${key}`, value: row.deleted ? null : new Uint8Array(0), version: { hlc: row.version, node: `${node.index}` }, ...(row.expiresAtMs === undefined ? {} : { expiresAtMs: row.expiresAtMs }) }, nowMs)) continue;
      stats.expired++;
      const version = canary === 'ttl-sweep-new-version' ? clock(node) : row.version;
      node.rows.set(key, { version, deleted: true });
      node.bounds.noteTombstone(partitionOf(key), version);
    }
  }

  function floorOf(node: GcNode): Hlc | undefined {
    let floor = clock(node);
    for (const write of node.pending) if (write.row.version < floor) floor = write.row.version;
    if (!full) return floor;
    for (const peer of nodes) {
      if (peer === node) continue;
      if (canary === 'members-forget-the-absent' && !reachable(node, peer)) continue;
      const bound = node.inSync.get(peer.index);
      if (bound === undefined) return undefined;
      if (bound < floor) floor = bound;
    }
    return floor;
  }

  /** Full mode: one anti-entropy session `node` starts with `peer` (both ways); equal rows record the bound read before it. */
  function session(node: GcNode, peer: GcNode): void {
    const bound = clock(node);
    const mine = new Map([...node.rows].map(([key, row]) => [key, { ...row }] as const));
    send(node, peer, () => {
      const equal = mine.size === peer.rows.size && [...mine].every(([key, row]) => peer.rows.get(key)?.version === row.version);
      // A session that finds a difference repairs only part of it (its rounds are bounded):
      // here one row it lacks.
      if (!equal) {
        const missing = [...mine].filter(([key, row]) => (peer.rows.get(key)?.version ?? -1n) < row.version);
        if (missing.length > 0) {
          const [key, row] = rng.pick(missing);
          apply(peer, key, row);
        }
      }
      const theirs = [...peer.rows].map(([key, row]) => [key, { ...row }] as const);
      send(peer, node, () => {
        if (!equal) for (const [key, row] of theirs) apply(node, key, row);
        if ((equal || canary === 'floor-from-any-session') && bound > (node.inSync.get(peer.index) ?? -1n)) node.inSync.set(peer.index, bound);
      });
    });
  }

  /** Full mode: no write older than `version` may be missing anywhere (it would be refused when it arrives, and lost). */
  function checkNothingOlderMissing(key: number, version: Hlc): void {
    for (const from of nodes) {
      for (const [k, row] of from.rows) {
        if (row.version >= version) continue;
        for (const to of nodes) {
          const held = to.rows.get(k);
          if ((held === undefined || held.version < row.version) && (to.collectedAt.get(k) ?? -1n) < row.version) {
            violate(`collected k${key} v${version} while node ${to.index} still lacked k${k} v${row.version} (in flight)`);
            return;
          }
        }
      }
    }
  }

  /**
   * A row as phase two judges it. Delete-if-unchanged is by version (GcHolder.deleteIfUnchanged):
   * a value with a TTL at the tombstone's version is that same write, not yet swept here.
   */
  function rowState(node: GcNode, key: number): RowState {
    const row = node.rows.get(key);
    return row === undefined ? { kind: 'absent' } : { kind: row.deleted || row.expiresAtMs !== undefined ? 'tombstone' : 'value', version: row.version };
  }

  /**
   * A holder receives a row (delivery, sync, phase one, gossip), or its coordinator stores its
   * own write (`local`, full mode). A tombstone stored is noted in the node's bounds, as the
   * replica's commit does whatever the path (the canary notes only the node's own deletes and
   * sweeps: a hook in the delete path instead of the commit).
   */
  function apply(node: GcNode, key: number, row: Row, via: 'local' | 'remote' = 'remote'): void {
    const current = node.rows.get(key);
    if (current !== undefined && current.version >= row.version) return;
    if (current === undefined && canary !== 'floor-not-enforced' && node.floors.refuseResurrection(partitionOf(key), row.version)) {
      stats.refused++;
      return;
    }
    const collected = node.collectedAt.get(key);
    if (current === undefined && collected !== undefined && row.version <= collected) {
      violate(`node ${node.index}: k${key} v${row.version} came back after it collected v${collected}`);
    }
    node.rows.set(key, { ...row });
    if (row.deleted && !(canary === 'bounds-note-local-only' && via === 'remote')) node.bounds.noteTombstone(partitionOf(key), row.version);
  }

  function deliver(node: GcNode): void {
    for (const write of node.pending) {
      for (const h of write.unacked) {
        const holder = nodes[h]!;
        send(node, holder, () => {
          apply(holder, write.key, write.row);
          send(holder, node, () => write.unacked.delete(h));
        });
      }
    }
    node.pending = node.pending.filter((write) => write.unacked.size > 0);
  }

  function clientWrite(rewriteOf?: number): void {
    const up = nodes.filter((node) => node.up);
    if (up.length === 0) return;
    const node = rng.pick(up);
    const key = rewriteOf ?? rng.int(0, keys - 1);
    const deleted = rng.chance(0.5);
    const version = clock(node);
    const row: Row = { version, deleted };
    stats.writes++;
    if (deleted) stats.deletes++;
    if (!deleted && rewriteOf === undefined && rng.chance(0.35)) {
      const ttlMs = rng.int(50, 2_000);
      row.expiresAtMs = wallOf(version) + ttlMs;
      stats.ttlWrites++;
      // Half of them: another client re-writes the key shortly before it expires.
      if (rng.chance(0.5)) queue.schedule(Math.max(1, ttlMs - rng.int(0, 300)), () => clientWrite(key));
    }
    if ((stampedTop.get(key)?.version ?? -1n) < version) stampedTop.set(key, row);
    if (full) {
      // Stored here, gossiped once (lossy, no retry); anti-entropy repairs what is lost.
      apply(node, key, row, 'local');
      for (const peer of nodes) if (peer !== node) send(node, peer, () => apply(peer, key, row));
      return;
    }
    node.pending.push({ key, row, unacked: new Set(holdersOf(partitionOf(key))) });
    deliver(node);
  }

  /** The true safety condition: no write older than `version` is still in flight anywhere. */
  function checkCollectable(key: number, version: Hlc): void {
    for (const node of nodes) {
      const older = node.pending.find((write) => write.row.version < version);
      if (older) violate(`collected k${key} v${version} while node ${node.index} still had k${older.key} v${older.row.version} in flight`);
    }
  }

  function phaseTwoAt(holder: GcNode, request: DeleteIfUnchanged): void {
    const deleted = holder.floors.deleteIfUnchanged(request.partition, request.tombstones, (key) => rowState(holder, Number(key)));
    for (const key of deleted) {
      const k = Number(key);
      const version = holder.rows.get(k)!.version;
      checkCollectable(k, version);
      if (full) checkNothingOlderMissing(k, version);
      holder.rows.delete(k);
      if ((holder.collectedAt.get(k) ?? -1n) < version) holder.collectedAt.set(k, version);
      stats.collected++;
    }
  }

  function gcTick(node: GcNode): void {
    // Phase two, resent until every holder acknowledged it.
    for (const pending of node.phaseTwo) {
      for (const h of pending.waiting) {
        const holder = nodes[h]!;
        send(node, holder, () => {
          phaseTwoAt(holder, pending.request);
          send(holder, node, () => pending.waiting.delete(h));
        });
      }
    }
    node.phaseTwo = node.phaseTwo.filter((p) => p.waiting.size > 0);
    const visible = canary === 'watermark-ignores-unreachable' || canary === 'members-forget-the-absent' ? members.filter((m) => reachable(node, nodes[Number(m)]!)) : members;
    const { watermark } = node.book.watermark(visible);
    for (let p = 0; p < partitions; p++) {
      const holders = holderNames(p, node).map(Number);
      if (!pulled(p)) continue;
      // Read the partition only if it may hold a tombstone below the watermark (the collector
      // also for the tombstones other holders nominated), as the node's collector does.
      const nominatedHere = [...node.nominated.keys()].some((key) => partitionOf(key) === p);
      if (!nominatedHere && (watermark === undefined || !node.bounds.mayHoldBelow(p, watermark))) {
        stats.partitionsSkipped++;
        continue;
      }
      node.bounds.scanStarted(p);
      const mine = [...node.rows].filter(([key, row]) => row.deleted && partitionOf(key) === p).map(([key, row]) => ({ key: `${key}`, version: row.version }));
      // Nothing is deleted while the read runs (phase two comes later): what it found stays.
      node.bounds.scanFinished(p, true, mine.reduce((oldest, t) => (t.version < oldest ? t.version : oldest), noTombstone));
      if (holders[0] !== node.index) {
        // Not the collector: nominate the collectable tombstones it holds (one the collector
        // already collected, e.g. pulled by a new holder mid-phase-two, would stay forever).
        const collector = nodes[holders[0]!]!;
        const nominate = node.collector.collectable(mine, watermark);
        if (nominate.length > 0) send(node, collector, () => {
          for (const t of nominate) if (collector.nominated.size < keys) collector.nominated.set(Number(t.key), t.version);
        });
        continue;
      }
      const candidates: TombstoneRef[] = mine.filter((t) => !node.nominated.has(Number(t.key)));
      for (const [key, version] of node.nominated) if (partitionOf(key) === p) candidates.push({ key: `${key}`, version });
      for (const key of [...node.nominated.keys()]) if (partitionOf(key) === p) node.nominated.delete(key);
      const round = node.collector.plan(p, candidates, watermark, holderNames(p, node));
      if (!round) continue;
      const finish = (): void => {
        if (!pulled(p)) return; // a holder added meanwhile must have pulled first (then the round is planned again)
        const requests = node.collector.phaseTwo(round.id, holderNames(p, node));
        if (!requests) return;
        for (const request of requests) node.phaseTwo.push({ request, waiting: new Set([Number(request.holder)]) });
      };
      if (canary === 'skip-phase-one') {
        for (const h of round.holders) node.collector.acknowledge(round.id, h);
        finish();
        continue;
      }
      for (const h of holders) {
        const holder = nodes[h]!;
        send(node, holder, () => {
          for (const t of round.tombstones) apply(holder, Number(t.key), { version: t.version, deleted: true });
          send(holder, node, () => {
            node.collector.acknowledge(round.id, `${h}`);
            finish();
          });
        });
      }
      // A round whose holder never answers is abandoned after a while and planned again.
      const boot = node.boot;
      queue.schedule(5 * tickMs, () => {
        if (node.boot === boot) node.collector.abandon(round.id);
      });
    }
  }

  function tick(node: GcNode, boot: number): void {
    if (node.boot !== boot || !node.up) return;
    sweep(node);
    deliver(node);
    const floor = floorOf(node);
    if (floor !== undefined) for (const peer of nodes) send(node, peer, () => peer.book.hear(`${node.index}`, floor, 1));
    const p = rng.int(0, partitions - 1);
    const holders = holdersOf(p);
    if (full) {
      const peer = rng.pick(nodes.filter((other) => other !== node));
      session(node, peer);
    } else if (holders.includes(node.index)) {
      // Anti-entropy: push one shared partition's rows to a co-holder.
      const peer = nodes[rng.pick(holders)]!;
      const rows = [...node.rows].filter(([key]) => partitionOf(key) === p).map(([key, row]) => [key, { ...row }] as const);
      send(node, peer, () => {
        for (const [key, row] of rows) apply(peer, key, row);
      });
    }
    // Pulls: a new holder asks each older holder for the partition's rows.
    for (const [p, extra] of added) {
      if (extra.holder !== node.index) continue;
      for (const h of baseOf(p)) {
        if (extra.pulledFrom.has(h)) continue;
        const source = nodes[h]!;
        send(node, source, () => {
          const rows = [...source.rows].filter(([key]) => partitionOf(key) === p).map(([key, row]) => [key, { ...row }] as const);
          send(source, node, () => {
            for (const [key, row] of rows) apply(node, key, row);
            extra.pulledFrom.add(h);
          });
        });
      }
    }
    gcTick(node);
    if (queue.nowMs < faultWindowMs + settleMs) queue.schedule(tickMs + rng.int(0, 20), () => tick(node, boot));
  }

  function restart(node: GcNode): void {
    node.up = true;
    node.book = new FloorBook();
    node.inSync = new Map();
    node.collector = new TombstoneCollector({ batchMax: 4, roundsMax: 2 });
    node.bounds = new TombstoneBounds();
    tick(node, node.boot);
  }

  function faultStep(): void {
    if (!faults) return;
    const roll = rng.float();
    if (roll < 0.35) {
      const node = rng.pick(nodes);
      if (node.up) {
        stats.crashes++;
        node.up = false;
        node.boot++;
        queue.schedule(rng.int(300, 2_500), () => {
          if (!node.up) restart(node);
        });
      }
    } else if (roll < 0.6) {
      stats.splits++;
      for (const node of nodes) node.group = rng.chance(0.3) ? 1 : 0;
    } else if (roll < 0.8) {
      for (const node of nodes) node.group = 0;
    }
    queue.schedule(rng.int(200, 1_200), faultStep);
  }

  for (const node of nodes) queue.schedule(rng.int(0, tickMs), () => tick(node, node.boot));
  if (n >= 4 && !full) {
    for (let p = 0; p < partitions; p++) {
      if (!rng.chance(0.5)) continue;
      queue.schedule(rng.int(0, faultWindowMs), () => {
        const holder = (p + 3) % n;
        added.set(p, { holder, pulledFrom: new Set() });
        // Pending deliveries of the partition are re-targeted to the new holder too (issue 12
        // part 1): otherwise a write acked by the old holders after the pull is on none of its.
        for (const node of nodes) for (const write of node.pending) if (partitionOf(write.key) === p) write.unacked.add(holder);
      });
    }
  }
  const writes = options.writes ?? 30;
  for (let i = 0; i < writes; i++) queue.schedule(rng.int(0, faultWindowMs - 1), () => clientWrite());
  queue.schedule(rng.int(100, 800), faultStep);
  queue.schedule(faultWindowMs, () => {
    faults = false;
    for (const node of nodes) {
      node.group = 0;
      node.skewMs = 0;
      if (!node.up) restart(node);
    }
  });
  for (let event = queue.pop(); event; event = queue.pop()) event.run();

  // The end: every holder has each key's newest write (or nothing after a delete or an
  // expiry: every TTL has run out by now); no tombstones; no expired value live.
  const endMs = 1_000_000 + queue.nowMs;
  for (const node of nodes) {
    for (const [key, row] of node.rows) {
      if (!row.deleted && row.expiresAtMs !== undefined && row.expiresAtMs <= endMs) violate(`node ${node.index}: k${key} v${row.version} expired at ${row.expiresAtMs} is live at ${endMs}`);
    }
  }
  for (let key = 0; key < keys; key++) {
    const top = stampedTop.get(key);
    if (top === undefined) continue;
    if (top.expiresAtMs !== undefined && top.expiresAtMs > endMs) violate(`k${key}: a TTL still running at the end (the model assumes every one ran out)`);
    const gone = top.deleted || top.expiresAtMs !== undefined;
    for (const h of holdersOf(partitionOf(key))) {
      const row = nodes[h]!.rows.get(key);
      if (row && !row.deleted && gone) violate(`node ${h}: ${top.deleted ? 'deleted' : 'expired'} k${key} (v${top.version}) is live at v${row.version}`);
      else if (row && row.version !== top.version) violate(`node ${h}: k${key} at v${row.version}, not the newest v${top.version}`);
      else if (!row && !gone) violate(`node ${h}: k${key} v${top.version} lost`);
    }
  }
  for (const node of nodes) for (const row of node.rows.values()) if (row.deleted) stats.tombstonesLeft++;
  if (stats.tombstonesLeft > 0) violate(`${stats.tombstonesLeft} tombstones left in the quiet cluster (${nodes.map((node) => [...node.rows].filter(([, row]) => row.deleted).map(([key]) => `${node.index}:k${key}`).join(" ")).join(" ")}; pulls ${[...added].map(([p, a]) => `p${p}->${a.holder}:${[...a.pulledFrom].join(",")}`).join(" ")})`);
  for (const node of nodes) if (node.pending.length > 0) violate(`node ${node.index}: ${node.pending.length} deliveries still pending`);
  return { seed, ok: violations.length === 0, violations, stats };
}
