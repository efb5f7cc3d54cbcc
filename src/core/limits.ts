/**
 * Every limit and protocol constant of the pure core, in one place.
 *
 * Units are last in names (TigerBeetle style). Each limit says why it exists and what raising
 * it costs. The values here are defaults: the node's config can override the tunable ones,
 * but the wire constants are part of the protocol.
 */

/** Largest key, in UTF-8 bytes. Keys travel in every sync summary, so they stay small. */
export const keyBytesMax = 1024;

/**
 * Largest value. A value is stored and replicated whole; 64 MiB keeps one value's worst-case
 * memory (a few copies while it is encoded and framed) well under a small machine's RAM.
 */
export const valueBytesMax = 64 * 1024 * 1024;

/**
 * How far ahead of our wall clock a remote HLC stamp may be before we refuse it
 * (CockroachDB's default). A refused entry is not applied; anti-entropy offers it again
 * later, when it is no longer in the future. Larger tolerates worse clocks but lets one bad
 * clock drag every node's HLC further ahead of real time.
 */
export const clockDriftMsMax = 500;

/** The HLC's logical counter has 16 bits: at most this many stamps share one millisecond. */
export const hlcCounterMax = 0xffff;

/** The HLC's physical part has 48 bits of milliseconds (good until the year 10889). */
export const hlcWallMsMax = 2 ** 48 - 1;

/**
 * The longest TTL a write may ask (src/core/ttl.ts): 365 days, in ms. Part of the entry
 * encoding (a stored TTL past it is malformed). A value meant to live longer is written
 * without a TTL and deleted.
 */
export const ttlMsMax = 365 * 24 * 60 * 60 * 1000;

/** Node ids are 8 bytes: short on the wire (one per entry) and collision-free in practice. */
export const nodeIdBytes = 8;

/** Merkle fanout: one hex digit of SHA-256(key) per level. Fixed: it is part of the protocol. */
export const merkleFanout = 16;

/**
 * Merkle depth: 4 gives 65,536 leaves (~1.5 keys a leaf at 100k keys). Deeper trees find
 * small differences with fewer keys per leaf but cost one more round trip a level and 16x
 * the memory (32 bytes a node). Both sides of a session must use the same depth.
 */
export const merkleDepthDefault = 4;
export const merkleDepthMax = 5;

/**
 * Key filter layers a saved replica snapshot may hold (replica-snapshot.ts). Layers double
 * from 2^20 bits, so 24 layers hold ~1.7 trillion keys: far past anything a node stores; a
 * snapshot claiming more is corrupt and the replica scans instead.
 */
export const snapshotFilterLayersMax = 24;

/**
 * Bytes of the salted projection of a child digest sent while descending the tree. Full
 * 32-byte digests would cost several times the entries themselves when few keys differ
 * (16 children per differing node per level). A fresh salt each session means a projection
 * collision (probability 2^-(8*bytes) per differing node) only delays that difference to
 * the next session; it can never hide it for good.
 */
export const childDigestBytesDefault = 4;

/** Bytes of an entry fingerprint in a leaf summary; salted per session like child digests. */
export const fingerprintBytes = 4;

/** Sync wire protocol version. Only append new versions; old ones stay decodable. */
export const syncProtocolVersion = 1;

/**
 * Target payload of one frame of entries. Entries are batched up to this size so that many
 * small entries share a frame; a single entry larger than this gets a frame of its own.
 */
export const entriesFrameBytesTarget = 256 * 1024;
/**
 * Target payload of the first frame of an encoded stream (a delta, or a new node's whole
 * state): smaller, so the receiver starts applying while the sender reads the rest.
 */
export const entriesFirstFrameBytesTarget = 32 * 1024;

/**
 * What one seek into the store costs, in entries read sequentially: a sync session reading
 * many small subtrees (thousands of differing leaves) reads a covering ancestor's whole range
 * and skips what it does not need whenever that reads fewer than this many extra entries per
 * seek saved (sync-session.ts, `coverOf`). Measured on LevelDB (100k entries, 100-byte
 * values): a seek and its first rows cost ~45 us of CPU and ~90 us of wall time, a row read
 * in sequence ~4-5 us; per-leaf seeks made a 10k-key catch-up spend 2 s reading 8,700
 * leaves. Larger reads wider ranges (more CPU on a large store for a periodic session that
 * finds a few thousand leaves differing); smaller seeks more.
 */
export const scanSeekCostEntries = 16;

/** Largest frame accepted from a peer: one maximal entry plus headroom. */
export const frameBytesMax = valueBytesMax + 64 * 1024;

/** Largest non-entry frame (digests, summaries, requests): bounds what a peer can make us buffer. */
export const controlFrameBytesMax = 4 * 1024 * 1024;

/**
 * Round trips one session may take before it is abandoned: depth descent steps plus the
 * hello and the leaf exchange, plus slack for a session that meets concurrent writes.
 */
export function sessionRoundsMax(depth: number): number {
  return depth + 4;
}

/** Sessions a node serves at once; more are refused with a typed `busy` reply. */
export const inboundSessionsMax = 4;

/**
 * Of those, at most this many for one peer: a further session from it is refused `busy`, so
 * one peer (greedy, hostile, or retrying in a loop) cannot take every slot while others wait.
 * Two leave room for a session that overlaps the end of the one before; a well-behaved peer
 * runs one at a time.
 */
export const inboundSessionsPerPeerMax = 2;

/**
 * A sync session (either role) ends when its peer sends nothing for this long while we wait
 * for its next frame. Bytes count, not whole frames, so a large frame on a slow link is not
 * cut off. It bounds how long a peer that says Hello and falls silent holds a slot (the
 * session timeout, 60 s, bounds the whole session). Shorter frees slots sooner; longer
 * tolerates a peer slowed by its own load (applying a large batch before it answers).
 */
export const syncIdleMsMax = 5_000;

/**
 * Bytes of incoming frames that all the streams of a node together may hold before their
 * readers take them (src/net/frame-budget.ts): 132 MiB. A frame reserves its announced length
 * before any of its body is buffered; one that does not fit waits, its stream paused. It must
 * exceed the largest frame (one maximal value plus the frame's headroom) or that value could
 * never move; this lets two maximal values move at once. Without it every stream could buffer
 * a maximal frame: 8 streams announcing 60 MiB frames raised a node from 105 to 283 MiB.
 */
export const frameBufferBytesMax = 2 * (valueBytesMax + 2 * 1024 * 1024);

/**
 * Largest received entry whose bytes travel with it to the store as they came (entry.ts,
 * canonicalEncoding): they are a view of the frame or message, which they keep in memory
 * until the commit, beside the value's own copy. A larger entry is encoded again instead, one
 * copy of its value, which its size dominates anyway (and LevelStore gives a row above its
 * 64 KiB scratch memory of its own either way).
 */
export const receivedEncodingBytesMax = 64 * 1024;

/**
 * The values of one received sync frame or gossip message are copied into shared chunks of at
 * most this many bytes (entry.ts, ReceivedValues) instead of one allocation each: a small
 * typed array of its own costs an off-heap allocation, its tracking and its release by the
 * garbage collector, ~1.3 us on this machine against ~0.15 us for a view of a chunk (a
 * 100-byte value; docs/measurements.md, 2026-12-06 (3)), ~10 % of a catch-up's per-entry
 * work. A value kept beyond its commit keeps its chunk in memory: at most this, and only the
 * values of its own frame or message (a chunk is never shared between two).
 */
export const receivedValuesChunkBytesMax = 64 * 1024;
/** Values above this get an allocation of their own (their copy costs more than its allocation). */
export const receivedValuesSharedBytesMax = 4 * 1024;

/** Writes a replica folds into one storage batch (group commit). */
export const writeBatchOpsMax = 1024;

/**
 * Remote entries (from gossip and sync) a replica holds, queued or in the batch being
 * committed, before `applyRemote` makes further callers wait for room. Without a bound, peers
 * that send faster than storage commits (a gossip burst, a fast sync peer) grow the queue,
 * and memory, without limit; with it, the wait reaches back to them (gossip stops reading
 * the peer's stream, sync stops reading its session). 4 batches (4,096 entries, ~2 MB of
 * 100-byte values; at most 4,096 x the gossip value limit in the worst case) keeps group
 * commit full. A single call larger than the bound is admitted alone once nothing else is
 * queued: it waits, it is never refused or dropped.
 */
export const remoteQueueEntriesMax = 4 * writeBatchOpsMax;

/**
 * Memory for the replica's version cache (src/core/version-cache.ts): the last stored
 * version, tombstone flag, expiry and seq of keys being rewritten, so a commit that rewrites
 * one again reads nothing from the store. 59 bytes a slot; the table starts at 1,024 slots
 * and doubles when half of them hold keys, so only a node that rewrites many keys reaches
 * this. 8 MiB is 131,072 slots: 50,000 keys rewritten over and over were ~97 % found
 * (docs/measurements.md, 2026-12-05 (evening)). More would hold a larger rewritten set.
 */
export const versionCacheBytesMax = 8 * 1024 * 1024;

/**
 * Entries in one gossip `entries` message (src/net/gossip.ts: the local writes of one commit
 * travel together). One group commit's worth, so a message is applied by the receiver as at
 * most one storage batch and fits its remote queue (remoteQueueEntriesMax) four times over.
 * Fewer costs a message (its encryption, framing, id hash and syscalls) per fewer writes;
 * more would make one message span several commits at the receiver.
 */
export const gossipBatchEntriesMax = writeBatchOpsMax;

/**
 * Encoded bytes of one gossip `entries` message (entries are added while the total stays
 * under it; a single entry of up to the gossip value limit, 64 KiB, always fits). Well under
 * the largest RPC gossipsub accepts (gossipRpcBytesMax, 4 MiB, src/net/libp2p.ts) and the same
 * size as a sync frame of entries: big enough that per-message costs vanish, small enough
 * that a message is a few noise frames and one peer's message does not hold the link long.
 */
export const gossipBatchBytesMax = 256 * 1024;

/**
 * Bytes (keys and values) of entries a sync session has handed to the replica and not yet
 * seen committed (session-driver.ts): Entries frames are applied without waiting for each
 * other, so the replica commits one batch while the next frames arrive. 1 MiB is four
 * frames of entriesFrameBytesTarget, enough to keep the remote queue (remoteQueueEntriesMax)
 * full; past it the session stops reading its peer until the oldest apply is done. One apply
 * larger than this (one large value) goes alone.
 */
export const syncApplyBytesInFlightMax = 4 * entriesFrameBytesTarget;

/** Sync scheduling defaults (see scheduler.ts). */
export const syncIntervalMsDefault = 1000;
export const syncJitterRatioDefault = 0.25;
export const syncBackoffMsBase = 500;
export const syncBackoffMsMax = 30_000;
/**
 * Periodic anti-entropy pauses during a burst of writes (scheduler.ts): a periodic round that
 * comes due when this node has applied at least `syncBurstEntriesMin` entries since the
 * previous round is put off by one interval, at most `syncBurstRoundsDeferMax` rounds in a
 * row. Mid-burst, every leaf holding a write still in flight differs between two nodes, so a
 * session descends through most of the tree, reads those leaves and sends entries gossip is
 * delivering anyway (measured at 5 nodes: 20-650 KB a session; bursts of 30k writes
 * converged 6 % faster at 5 nodes and 14 % at 3 nodes with the deferral: docs/measurements.md,
 * 2026-12-05 (night)). At 1,000 entries a second, writes are in flight at most moments; far
 * below it two nodes' trees mostly compare equal. Trade-off: while writes flow without a pause,
 * what gossip lost is repaired within ~(1 + syncBurstRoundsDeferMax) intervals (5 s at the
 * default interval) instead of one; catch-ups, new peers and watermark refreshes are urgent
 * sessions and never wait.
 */
export const syncBurstEntriesMin = 1000;
export const syncBurstRoundsDeferMax = 4;
/**
 * When two nodes that are both catching up open sessions with each other at once (every pair
 * at a cluster's start), each answers the other `busy` and both back off. The one with the
 * smaller node id retries after this (jittered) instead of `syncBackoffMsBase`, on the first
 * refusal only: the other's session has ended by then, so it is served, and both nodes have
 * a catch-up watermark for each other ~this long after they meet rather than after a backoff
 * that collisions with third nodes can repeat (membership.ts `sessionEnded`).
 */
export const syncBusyTieRetryMs = 30;

/**
 * Catch-up watermarks after a burst (watermark-refresh.ts): a peer's watermark is refreshed
 * (one in-sync session, one round trip) once this node has applied this many entries since it
 * was last proven and then nothing for `watermarkRefreshQuietMs`. Below it the periodic
 * sessions keep it fresh enough: a stale watermark costs the next catch-up from that peer
 * those entries again (a burst of 30k writes, a kill 0.5 s after convergence: 22k-40k entries
 * received for 10k missed, docs/measurements.md).
 */
export const watermarkRefreshLagEntries = 1024;
/**
 * Applied nothing for this long: the burst is over (a session during one proves no position,
 * and costs a descent). At 50 ms, gaps inside bursts (the writer starved of CPU) started
 * refresh sessions mid-burst: the 5-node throughput bench fell ~10-20 %; at 500 ms it was
 * within the machine's swing (docs/measurements.md). A kill within this long after a burst
 * still finds the watermarks lagging.
 */
export const watermarkRefreshQuietMs = 500;
/**
 * A peer asked for a refresh whose watermark still lags (its session found the roots
 * different, failed, or was refused) is asked again after this long: one round trip per
 * lagging peer at most this often.
 */
export const watermarkRefreshRetryMs = 5_000;
/**
 * A member that came up (connected, or reconnected) after the burst began is not asked for a
 * refresh until it has been up this long: it is catching up (from us or another peer), and a
 * session we start would push at it the entries it pulls in its own (measured: a restarted
 * node then received its missed writes by our descent, alongside its own delta).
 */
export const watermarkRefreshUpForMs = 5_000;

/**
 * Members remembered (up, left, unreachable, removed). Past it the one away longest is
 * dropped: a LAN full of short-lived or hostile identities cannot grow the table without bound.
 */
export const membersMax = 1024;

/**
 * Nodes in one layout (partitioned mode, layout.ts): as many as membership remembers. A
 * layout travels whole in gossip, ~20 bytes a node, so 1024 nodes cost ~20 KiB a version.
 */
export const layoutMembersMax = membersMax;

/**
 * Removed nodes a layout records (layout.ts `removed`): the same bound as its members. Past it
 * the oldest removals are forgotten (such a node could be joined again automatically; its own
 * data directory still refuses to start, by its local mark).
 */
export const layoutRemovedMax = layoutMembersMax;

/**
 * Largest node weight (relative capacity) in a layout. Integers, so every node computes the
 * same scores from the same layout; 10^6 lets an operator give capacities in GB up to a PB.
 */
export const layoutWeightMax = 1_000_000;

/**
 * Largest K (`--replicas`). Each write goes to K owners (to the owners of two layouts during
 * a change); past a few, a write costs more than it buys. Full replication is "all", not a
 * number, and has no such limit.
 */
export const layoutReplicasMax = 64;

/**
 * Layouts active at once (the oldest, being left, and newer ones being moved to). A commit
 * is refused while this many are active: each adds owners to every write until the data
 * has moved. 4 lets an operator fix a mistake (remove a node that died mid-change) without
 * waiting, and bounds a write's owners at 4 K.
 */
export const layoutVersionsActiveMax = 4;

/**
 * Layouts one gossip message may carry. More than layoutVersionsActiveMax so that a node
 * that took part in a same-version conflict still sends every version it holds.
 */
export const layoutVersionsPerMessageMax = 16;

/**
 * Clock offset samples kept per member (one per sync Hello it sends us; membership.ts takes
 * the greatest, the one least delayed on its way). More rides out longer stretches of delayed
 * Hellos on a loaded machine; fewer notices sooner that our own clock jumped ahead (until
 * then peers refuse our newest stamps for a while and sync offers them again).
 */
export const clockOffsetSamplesMax = 4;

/**
 * Samples a member's offset needs before it counts toward "our clock is ahead of our peers"
 * (which refuses local writes past the drift limit). A Hello can only arrive late, which reads
 * as "we are ahead"; a node that just started is busiest in its first seconds (catch-up,
 * pulls, layout), so its first Hellos are the most delayed, and with one sample a joiner on a
 * loaded machine refused writes as if its clock were ahead. Two samples (the greater counts)
 * ride that out; a clock really off by more than the limit is still seen at the second Hello
 * (one sync interval later, 1 s by default), and the sync protocol refuses its stamps meanwhile.
 */
export const clockOffsetSamplesMin = 2;

/**
 * A node announces itself (alive, with its addresses) this often, so every node dials every
 * other: a cluster built by bootstrapping to one node survives that node. Shorter heals a
 * split mesh sooner at the cost of one small gossip message per node per interval.
 */
export const memberAnnounceIntervalMs = 30_000;

/** ...and this soon after a member joins, so the newcomer learns everyone quickly. */
export const memberAnnounceAfterJoinMs = 1_000;

/** A member heard of but not connected is dialled at most this often. */
export const memberDialIntervalMs = 10_000;

/**
 * A member unreachable or left, not connected and not heard of (no connection, membership
 * message or session) for this long is dropped from the membership table, so dead nodes and
 * one-off identities (a hostile peer's throwaway keys) are not listed forever. A day keeps a
 * node that is down for maintenance visible to its operators; one that comes back later is
 * simply a new member again (it catches up like any new node).
 */
export const memberUnreachableForgetMsDefault = 24 * 60 * 60 * 1000;

/**
 * Checkpoints (checkpoint-schedule.ts): a running node saves the snapshot a clean stop saves
 * once it has applied nothing for this long, so a crash or kill after that starts from it
 * instead of scanning every entry (100k keys: ~220 ms to serving against ~520 ms). Shorter
 * catches more kills right after a burst but risks a save (which holds writes back for its
 * few milliseconds) in a pause inside one.
 */
export const checkpointQuietMs = 1_000;
/**
 * A quiet node saves a new checkpoint at once if this many entries changed since its last
 * one; fewer wait for `checkpointIntervalMs`: each save writes the whole snapshot (~2.5 MiB at
 * the default Merkle depth, plus ~1.25 bytes a key of key filter) and syncs it, which a trickle
 * of writes should not pay every second.
 */
export const checkpointEntriesMin = 1_000;
/**
 * A start whose snapshot is behind the entries (only writes came after it, Store.readSnapshot)
 * replays the tail (replica-replay.ts) if that costs at most this fraction of a scan of every
 * entry, else it scans. Costs are counted in entries a scan reads (~2.5 us each: it reads rows
 * in place, replica-scan.ts): the replay decodes each tail entry, and each leaf the tail
 * touched costs a LevelDB seek (`replayLeafCostEntries`) plus its entries (entries / leaves).
 */
export const replayCostFractionMax = 0.5;
/**
 * What reading one leaf costs the replay, in entries a scan reads: a seek of a fresh iterator
 * position runs on the main thread and took ~60-100 us with 100k keys (docs/measurements.md,
 * 2026-12-06), against ~2.5 us an entry for the scan.
 */
export const replayLeafCostEntries = 40;
/** A tail of at most this many entries is replayed however few entries the store holds (a few ms either way). */
export const replayTailAlwaysEntries = 64;
/** The least time between two checkpoints of a node whose writes are a trickle (see checkpointEntriesMin). */
export const checkpointIntervalMs = 30_000;
/**
 * A node holding fewer entries saves no checkpoint (src/node/checkpointer.ts): a start scans
 * them in a few milliseconds, less than a save costs (the snapshot is ~2.5 MiB at the default
 * depth however few the keys), and a cluster of many small nodes would write it on every start.
 */
export const checkpointEntriesHeldMin = 1_000;

/**
 * The warm-up of a fresh node (src/node/warm-up.ts): entries it writes and applies on
 * throwaway data while idle. The first ~2,000-5,000 writes of a fresh process ran at a third of
 * the speed of later ones (docs/measurements.md, 2026-12-07 (10)); 4,000 took a fresh 3-node
 * cluster's first burst from ~405 to ~300 ms, 10,000 no further. At most warmUpEntriesMax
 * (`--warm-up-entries`): its store is ~250 bytes an entry, removed afterwards.
 */
export const warmUpEntriesDefault = 4_000;
export const warmUpEntriesMax = 100_000;
