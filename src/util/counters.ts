/**
 * Named monotonic counters of a node (writes, gossip messages, sync sessions by result, ...).
 * Every counter is declared here, once: its name (stable: `ckv status` shows it and tools read
 * it), the Prometheus metric it is exported as, that metric's labels, and a help text. `ckv
 * status`, `/api/status` and `/metrics` all iterate this one list (src/node/status.ts,
 * src/http/metrics.ts), so a counter is either everywhere or nowhere.
 *
 * `Counters.add` takes a declared name, so `counters.add('typo')` does not type-check. The two
 * families built at run time in src/net/sync-protocol.ts (`sync_sessions_<outcome>`,
 * `sync_refused_<reason>`) are declared member by member below; the type accepts the family's
 * pattern so those call sites compile, and an undeclared member is a programmer error (an
 * assertion) that test/unit/counters.test.ts catches by enumerating every outcome and reason.
 */

/** Prometheus metrics built from counters: help text and label names. */
export const counterMetrics = {
  ckv_writes_applied_total: {
    help: 'Writes applied to this replica, by origin (local: through this node; remote: from gossip or sync).',
    labelNames: ['origin'],
  },
  ckv_gossip_messages_received_total: { help: 'Gossip messages received.', labelNames: [] },
  ckv_gossip_messages_published_total: { help: 'Gossip messages published.', labelNames: [] },
  ckv_gossip_entries_received_total: { help: 'Entries received in gossip write messages (a message carries the writes of one commit).', labelNames: [] },
  ckv_gossip_write_messages_received_total: { help: 'Gossip write messages (entry, entries) received, each once.', labelNames: [] },
  ckv_gossip_write_copies_received_total: {
    help: 'Copies of gossip write messages received from peers, repeats included (gossipsub drops a repeat after computing its id, before validating it).',
    labelNames: [],
  },
  ckv_gossip_messages_rejected_total: { help: 'Gossip messages rejected (undecodable or invalid entries).', labelNames: [] },
  ckv_gossip_publish_failed_total: { help: 'Gossip publishes that failed.', labelNames: [] },
  ckv_gossip_unsent_no_peers_total: { help: 'Local writes not gossiped because no peer subscribed (anti-entropy carries them).', labelNames: [] },
  ckv_sync_sessions_total: { help: 'Anti-entropy sessions this node started, by result.', labelNames: ['result'] },
  ckv_sync_bytes_in_total: { help: 'Bytes received in anti-entropy sessions (both roles).', labelNames: [] },
  ckv_sync_bytes_out_total: { help: 'Bytes sent in anti-entropy sessions (both roles).', labelNames: [] },
  ckv_sync_entries_applied_total: { help: 'Entries repaired by anti-entropy: received in a session and newer than ours.', labelNames: [] },
  ckv_sync_rejected_total: { help: 'Sync sessions or entries rejected as malformed or invalid.', labelNames: [] },
  ckv_sync_failed_total: { help: 'Sync sessions that failed for other reasons (connection lost, timeout, node stopping).', labelNames: [] },
  ckv_sync_refused_busy_total: { help: 'Inbound sync sessions refused because this node was busy.', labelNames: [] },
  ckv_sync_refused_total: { help: 'Inbound sync sessions this node refused after their Hello, by reason.', labelNames: ['reason'] },
  ckv_sync_delta_sessions_total: {
    help: 'Sessions in which the entries applied after a recorded watermark were streamed (catch-up by delta), by role; initiator_descended: the delta did not bring the roots together and the descent went on.',
    labelNames: ['role'],
  },
  ckv_sync_delta_entries_received_total: { help: 'Entries received in deltas (sessions this node started).', labelNames: [] },
  ckv_sync_watermarks_recorded_total: { help: 'Watermarks recorded: sessions that proved this node holds everything a peer had applied up to a seq.', labelNames: [] },
  ckv_sync_rounds_deferred_total: {
    help: 'Periodic anti-entropy rounds put off by an interval because this node was applying a burst of writes (at most a few in a row).',
    labelNames: [],
  },
  ckv_sync_entries_outside_partitions_total: {
    help: 'Entries a peer sent in a session restricted to some partitions (partitioned mode) that lay outside them: dropped.',
    labelNames: [],
  },
  ckv_partitions_pulled_total: { help: 'Partitions this node pulled from their previous owners after a layout change made it a new owner.', labelNames: [] },
  ckv_partition_pull_sessions_failed_total: { help: 'Pull or offload sessions (partitioned mode) that failed or did not cover what they asked.', labelNames: [] },
  ckv_partitions_pulled_whole_total: { help: 'Partitions a new owner received whole: streamed in one range scan by one source, no descent.', labelNames: [] },
  ckv_partitions_pulled_descended_total: { help: 'Partitions asked whole (empty here) whose session still descended (a write arrived first).', labelNames: [] },
  ckv_partition_pull_whole_received_bytes_total: { help: 'Bytes received by whole-partition transfer sessions (frames included).', labelNames: [] },
  ckv_partitions_purged_total: { help: 'Partitions this node no longer holds whose rows it offloaded to their owners and dropped.', labelNames: [] },
  ckv_purge_dropped_entries_total: { help: 'Entries dropped by purges of partitions this node no longer holds.', labelNames: [] },
  ckv_purge_dropped_bytes_total: { help: 'Key and value bytes dropped by purges of partitions this node no longer holds.', labelNames: [] },
  ckv_clock_drift_rejected_total: { help: 'Remote entries refused because their stamp was too far in our future.', labelNames: [] },
  ckv_member_dial_failed_total: { help: 'Dials to announced cluster members that failed.', labelNames: [] },
  ckv_identify_retried_total: { help: 'Identifies run again on connections to peers that had not become members (src/net/identify-watch.ts).', labelNames: [] },
  ckv_identify_hung_up_total: { help: 'Connections closed because identify never succeeded on them (redialed fresh).', labelNames: [] },
  ckv_member_rejected_total: { help: 'Membership messages dropped: bad signature, or signed by another peer than they name.', labelNames: [] },
  ckv_layout_rejected_total: {
    help: 'Layout gossip dropped (partitioned mode): malformed, bad signature, or an ack or join about another node than its signer.',
    labelNames: [],
  },
  ckv_layout_unknown_sender_total: { help: "Layout acks and joins taken on their signer's own claim of its node id (a peer not known as a member yet).", labelNames: [] },
  ckv_layout_replicas_mismatch_total: { help: "Times this node found its --replicas disagreeing with the cluster's layout (it refuses to serve).", labelNames: [] },
  ckv_layout_committed_total: { help: 'Layout versions this node committed (operator changes and automatic joins).', labelNames: [] },
  ckv_layout_join_removed_total: { help: 'Join requests ignored: their node was removed from the layout (an operator re-adds it with ckv layout add).', labelNames: [] },
  ckv_layout_self_removed_total: { help: 'Times this node saw itself removed from the layout (it refuses to serve until ckv purge --all).', labelNames: [] },
  ckv_query_rejected_total: { help: 'Malformed queries (and query replies) from peers.', labelNames: [] },
  ckv_scan_owner_failed_total: { help: 'Owners that failed a page of a prefix read (partitioned mode); their partitions went to the next owner.', labelNames: [] },
  ckv_replicate_rejected_total: { help: 'Malformed replicate frames (requests and replies) from peers; the stream is reset.', labelNames: [] },
  ckv_replicate_refused_busy_total: { help: 'Replicate streams refused: too many open at once.', labelNames: [] },
  ckv_replicate_entries_received_total: { help: 'Entries received from coordinators (partitioned mode).', labelNames: [] },
  ckv_replicate_reads_served_total: { help: 'Reads served to coordinators (partitioned mode).', labelNames: [] },
  ckv_replicate_frames_received_total: { help: 'Apply frames received from coordinators (partitioned mode; entries per frame = entries / frames).', labelNames: [] },
  ckv_coordinated_writes_total: { help: 'Writes this node coordinated to owners (partitioned mode), by result.', labelNames: ['result'] },
  ckv_write_retries_total: { help: 'Background retries of writes to owners that did not acknowledge, by result.', labelNames: ['result'] },
  ckv_read_repair_total: { help: 'Entries sent to stale or missing owners after a read (read repair).', labelNames: [] },
  ckv_delivery_rows_total: { help: 'Pending deliveries (hints) by event: held, acked, retargeted, dropped_malformed.', labelNames: ['event'] },
  ckv_delivery_batches_failed_total: { help: 'Delivery batches that got no answer (target down or unreachable).', labelNames: [] },
  ckv_delivery_backlog_refused_total: { help: 'Writes refused because pending deliveries passed their limit.', labelNames: [] },
  ckv_delivery_batches_total: {
    help: 'Delivery batches sent, by why they were due: the target came up (reconnect), a retry after a failure (backoff), rows read back at start (load), a first row (new), the previous batch acknowledged (next).',
    labelNames: ['cause'],
  },
  ckv_delivery_persist_failed_total: { help: 'Delivery row batches the store failed to write.', labelNames: [] },
  ckv_start_tree_total: {
    help: 'How this process built its Merkle tree and key filter at start (0 or 1 each): from the snapshot its last clean stop or checkpoint saved, or by a scan of every entry, and why (no snapshot; stale: written to after it was saved; rejected: failed its checks).',
    labelNames: ['from'],
  },
  ckv_bootstrap_failed_total: {
    help: 'Bootstrap addresses that did not give a member, by likely cause: dials refused or unroutable (unreachable), unanswered (timeout), failed handshakes (handshake: another cluster key), connections to a node of another cluster (foreign), other.',
    labelNames: ['reason'],
  },
  ckv_checkpoints_total: {
    help: 'Checkpoints of a running node (src/node/checkpointer.ts: the snapshot a clean stop saves, saved once quiet so a start after a crash skips the scan), by result: saved, failed.',
    labelNames: ['result'],
  },
  ckv_warmup_total: {
    help: 'The warm-up a started node runs on throwaway data while idle (src/node/warm-up.ts), by outcome: done, interrupted (the node got work first, or stopped), failed (logged; the node is not affected). 0 or 1 in all per process.',
    labelNames: ['outcome'],
  },
  ckv_ttl_swept_total: { help: 'Expired values this node turned into tombstones (TTL sweeper).', labelNames: [] },
  ckv_ttl_pending_full_total: { help: 'Expiries the TTL sweeper could not remember (its heap was full): found again by a later store scan.', labelNames: [] },
  ckv_gc_total: {
    help: 'Tombstone GC (docs/design-delivery-gc.md section 2), by event: rounds this node ran, rounds abandoned (a holder did not acknowledge phase one), rows collected here (phase two), remote entries refused by a collected floor (a collected key coming back), tombstones pushed here (phase one), gc protocol frames rejected as malformed.',
    labelNames: ['event'],
  },
} as const satisfies Record<string, { help: string; labelNames: readonly string[] }>;

export type CounterMetricName = keyof typeof counterMetrics;
/** The labels a counter of metric M must give: exactly M's label names. */
export type CounterLabels<M extends CounterMetricName> = { readonly [L in (typeof counterMetrics)[M]['labelNames'][number]]: string };

export interface CounterSpec<M extends CounterMetricName> {
  metric: M;
  labels: CounterLabels<M>;
  help: string;
}

/** A counter of any metric (a union, so each member's labels are checked against its metric). */
export type AnyCounterSpec = { [M in CounterMetricName]: CounterSpec<M> }[CounterMetricName];

function counter<M extends CounterMetricName>(metric: M, labels: CounterLabels<M>, help: string): CounterSpec<M> {
  return { metric, labels, help };
}

/** Every counter, in the order status shows them. */
export const counterSpecs = {
  writes_local: counter('ckv_writes_applied_total', { origin: 'local' }, 'writes applied that came through this node'),
  writes_remote: counter('ckv_writes_applied_total', { origin: 'remote' }, 'writes applied that came from peers (gossip or sync)'),
  gossip_received: counter('ckv_gossip_messages_received_total', {}, 'gossip messages received'),
  gossip_published: counter('ckv_gossip_messages_published_total', {}, 'gossip messages published'),
  gossip_entries_received: counter('ckv_gossip_entries_received_total', {}, 'entries received in gossip write messages'),
  gossip_write_messages_received: counter('ckv_gossip_write_messages_received_total', {}, 'gossip write messages received, each once'),
  gossip_write_copies_received: counter('ckv_gossip_write_copies_received_total', {}, 'copies of gossip write messages received, repeats included'),
  gossip_rejected: counter('ckv_gossip_messages_rejected_total', {}, 'gossip messages or entries rejected'),
  gossip_publish_failed: counter('ckv_gossip_publish_failed_total', {}, 'gossip publishes that failed'),
  gossip_unsent_no_peers: counter('ckv_gossip_unsent_no_peers_total', {}, 'local writes not gossiped: no subscribed peer'),
  sync_sessions_in_sync: counter('ckv_sync_sessions_total', { result: 'in_sync' }, 'sessions started that found both sides equal'),
  sync_sessions_synced: counter('ckv_sync_sessions_total', { result: 'synced' }, 'sessions started that repaired differences'),
  sync_sessions_incomplete: counter('ckv_sync_sessions_total', { result: 'incomplete' }, 'sessions started that ended before repairing everything'),
  sync_sessions_refused: counter('ckv_sync_sessions_total', { result: 'refused' }, 'sessions started that the peer refused'),
  sync_sessions_error: counter('ckv_sync_sessions_total', { result: 'error' }, 'sessions started that failed'),
  sync_bytes_in: counter('ckv_sync_bytes_in_total', {}, 'sync bytes received'),
  sync_bytes_out: counter('ckv_sync_bytes_out_total', {}, 'sync bytes sent'),
  sync_entries_applied: counter('ckv_sync_entries_applied_total', {}, 'entries repaired by sync'),
  sync_rejected: counter('ckv_sync_rejected_total', {}, 'sync sessions or entries rejected as malformed'),
  sync_failed: counter('ckv_sync_failed_total', {}, 'sync sessions that failed otherwise'),
  sync_refused_busy: counter('ckv_sync_refused_busy_total', {}, 'inbound sessions refused: busy'),
  sync_refused_wrongCluster: counter('ckv_sync_refused_total', { reason: 'wrongCluster' }, 'inbound sessions refused: another cluster'),
  sync_refused_unsupportedDepth: counter('ckv_sync_refused_total', { reason: 'unsupportedDepth' }, 'inbound sessions refused: another Merkle depth'),
  sync_refused_tooManyRounds: counter('ckv_sync_refused_total', { reason: 'tooManyRounds' }, 'inbound sessions refused: too many rounds'),
  sync_refused_stopping: counter('ckv_sync_refused_total', { reason: 'stopping' }, 'inbound sessions refused: this node was stopping'),
  sync_refused_unknown: counter('ckv_sync_refused_total', { reason: 'unknown' }, 'inbound sessions refused for no known reason'),
  sync_delta_received: counter('ckv_sync_delta_sessions_total', { role: 'initiator' }, 'sessions started that received a delta'),
  sync_delta_descended: counter('ckv_sync_delta_sessions_total', { role: 'initiator_descended' }, 'deltas after which the roots still differed (the descent went on)'),
  sync_delta_sent: counter('ckv_sync_delta_sessions_total', { role: 'responder' }, 'sessions served with a delta'),
  sync_delta_entries_received: counter('ckv_sync_delta_entries_received_total', {}, 'entries received in deltas'),
  sync_watermarks_recorded: counter('ckv_sync_watermarks_recorded_total', {}, 'watermarks recorded'),
  sync_rounds_deferred: counter('ckv_sync_rounds_deferred_total', {}, 'periodic sync rounds put off during bursts of writes'),
  sync_refused_unsupportedVersion: counter('ckv_sync_refused_total', { reason: 'unsupportedVersion' }, 'inbound sessions refused: another protocol version (a partitioned node syncs over 1.2.0 only)'),
  sync_entries_outside_partitions: counter('ckv_sync_entries_outside_partitions_total', {}, 'entries outside a restricted session\'s partitions, dropped'),
  partitions_pulled: counter('ckv_partitions_pulled_total', {}, 'partitions pulled as a new owner'),
  partition_pull_sessions_failed: counter('ckv_partition_pull_sessions_failed_total', {}, 'pull or offload sessions that failed'),
  partitions_pulled_whole: counter('ckv_partitions_pulled_whole_total', {}, 'partitions received whole (no descent)'),
  partitions_pulled_descended: counter('ckv_partitions_pulled_descended_total', {}, 'partitions asked whole that descended'),
  partition_pull_whole_received_bytes: counter('ckv_partition_pull_whole_received_bytes_total', {}, 'bytes received by whole transfers'),
  partitions_purged: counter('ckv_partitions_purged_total', {}, 'partitions no longer held, offloaded and dropped'),
  purge_dropped_entries: counter('ckv_purge_dropped_entries_total', {}, 'entries dropped by purges'),
  purge_dropped_bytes: counter('ckv_purge_dropped_bytes_total', {}, 'key and value bytes dropped by purges'),
  clock_drift_rejected: counter('ckv_clock_drift_rejected_total', {}, 'remote entries refused: stamp too far ahead'),
  member_dial_failed: counter('ckv_member_dial_failed_total', {}, 'failed dials to announced members'),
  identify_retried: counter('ckv_identify_retried_total', {}, 'identifies run again on a connected non-member'),
  identify_hung_up: counter('ckv_identify_hung_up_total', {}, 'connections closed: identify never succeeded'),
  member_rejected: counter('ckv_member_rejected_total', {}, 'membership messages with a bad signature'),
  layout_rejected: counter('ckv_layout_rejected_total', {}, 'layout gossip dropped: malformed, bad signature, or about another node'),
  layout_unknown_sender: counter('ckv_layout_unknown_sender_total', {}, 'layout acks and joins taken on the claim of a peer not yet a member'),
  layout_replicas_mismatch: counter('ckv_layout_replicas_mismatch_total', {}, "--replicas found disagreeing with the cluster's layout"),
  layout_committed: counter('ckv_layout_committed_total', {}, 'layout versions committed by this node'),
  layout_join_removed: counter('ckv_layout_join_removed_total', {}, 'join requests of removed nodes ignored'),
  layout_self_removed: counter('ckv_layout_self_removed_total', {}, 'this node saw itself removed from the layout'),
  query_rejected: counter('ckv_query_rejected_total', {}, 'malformed queries and query replies'),
  scan_owner_failed: counter('ckv_scan_owner_failed_total', {}, 'owners that failed a page of a prefix read'),
  replicate_rejected: counter('ckv_replicate_rejected_total', {}, 'malformed replicate frames'),
  replicate_refused_busy: counter('ckv_replicate_refused_busy_total', {}, 'replicate streams refused: busy'),
  replicate_entries_received: counter('ckv_replicate_entries_received_total', {}, 'entries received from coordinators'),
  replicate_reads_served: counter('ckv_replicate_reads_served_total', {}, 'reads served to coordinators'),
  replicate_frames_received: counter('ckv_replicate_frames_received_total', {}, 'apply frames received from coordinators'),
  coordinated_writes_acked: counter('ckv_coordinated_writes_total', { result: 'acked' }, 'coordinated writes acknowledged by enough owners'),
  coordinated_writes_unavailable: counter('ckv_coordinated_writes_total', { result: 'unavailable' }, 'coordinated writes that did not get enough acks in time'),
  write_retry_acked: counter('ckv_write_retries_total', { result: 'acked' }, 'background retries an owner acknowledged'),
  write_retry_failed: counter('ckv_write_retries_total', { result: 'failed' }, 'background retries that failed (rescheduled while attempts remain)'),
  write_retry_dropped: counter('ckv_write_retries_total', { result: 'dropped' }, 'retries given up: out of attempts or queue full'),
  delivery_rows_held: counter('ckv_delivery_rows_total', { event: 'held' }, 'writes kept for an owner that did not acknowledge them (hints)'),
  delivery_rows_acked: counter('ckv_delivery_rows_total', { event: 'acked' }, 'pending deliveries an owner acknowledged (row deleted)'),
  delivery_rows_retargeted: counter('ckv_delivery_rows_total', { event: 'retargeted' }, 'pending deliveries moved to new owners after a layout change'),
  delivery_rows_dropped: counter('ckv_delivery_rows_total', { event: 'dropped_malformed' }, 'persisted delivery rows that did not decode (deleted at start)'),
  delivery_batches_failed: counter('ckv_delivery_batches_failed_total', {}, 'delivery batches no answer came back for (target down or unreachable)'),
  delivery_backlog_refused: counter('ckv_delivery_backlog_refused_total', {}, 'writes refused: pending deliveries past their limit'),
  delivery_batches_reconnect: counter('ckv_delivery_batches_total', { cause: 'reconnect' }, 'delivery batches sent because their target came up'),
  delivery_batches_backoff: counter('ckv_delivery_batches_total', { cause: 'backoff' }, 'delivery batches sent as a retry after a failure'),
  delivery_batches_load: counter('ckv_delivery_batches_total', { cause: 'load' }, 'delivery batches of rows read back at start'),
  delivery_batches_new: counter('ckv_delivery_batches_total', { cause: 'new' }, "delivery batches for a target's first pending rows"),
  delivery_batches_next: counter('ckv_delivery_batches_total', { cause: 'next' }, 'delivery batches following a fully acknowledged one'),
  delivery_persist_failed: counter('ckv_delivery_persist_failed_total', {}, 'delivery row batches the store failed to write'),
  read_repair: counter('ckv_read_repair_total', {}, 'entries sent to stale owners after a read'),
  start_tree_snapshot: counter('ckv_start_tree_total', { from: 'snapshot' }, 'tree and key filter restored from the snapshot of a clean stop or a checkpoint'),
  start_tree_replay: counter('ckv_start_tree_total', { from: 'snapshot_replay' }, 'tree and key filter restored from a snapshot, then the entries written after it replayed (a kill after the last checkpoint)'),
  start_tree_scan_behind: counter('ckv_start_tree_total', { from: 'scan_behind' }, 'tree built by a scan: more entries were written after the snapshot than replaying them is worth'),
  start_tree_scan_no_snapshot: counter('ckv_start_tree_total', { from: 'scan_no_snapshot' }, 'tree built by a scan: no snapshot (first start, or a crash before any checkpoint)'),
  start_tree_scan_stale: counter('ckv_start_tree_total', { from: 'scan_stale' }, 'tree built by a scan: the snapshot was changed after it was saved in a way a replay cannot follow'),
  start_tree_scan_rejected: counter('ckv_start_tree_total', { from: 'scan_rejected' }, 'tree built by a scan: the snapshot failed its checks (corrupt, format, depth)'),
  bootstrap_failed_unreachable: counter('ckv_bootstrap_failed_total', { reason: 'unreachable' }, 'bootstrap dials refused or with no route: nothing listens there'),
  bootstrap_failed_timeout: counter('ckv_bootstrap_failed_total', { reason: 'timeout' }, 'bootstrap dials unanswered in time'),
  bootstrap_failed_handshake: counter('ckv_bootstrap_failed_total', { reason: 'handshake' }, 'bootstrap dials whose handshake failed: another cluster key'),
  bootstrap_failed_foreign: counter('ckv_bootstrap_failed_total', { reason: 'foreign' }, 'bootstrap connections to a node of another cluster'),
  bootstrap_failed_other: counter('ckv_bootstrap_failed_total', { reason: 'other' }, 'bootstrap dials that failed otherwise'),
  checkpoints_saved: counter('ckv_checkpoints_total', { result: 'saved' }, 'checkpoints saved (a start after a crash before the next write skips the scan)'),
  checkpoints_failed: counter('ckv_checkpoints_total', { result: 'failed' }, 'checkpoints that failed to save (tried again later)'),
  warmup_done: counter('ckv_warmup_total', { outcome: 'done' }, 'warm-ups that ran to the end'),
  warmup_interrupted: counter('ckv_warmup_total', { outcome: 'interrupted' }, 'warm-ups ended early: the node got work first, or stopped'),
  warmup_failed: counter('ckv_warmup_total', { outcome: 'failed' }, 'warm-ups that failed (logged; the node is not affected)'),
  ttl_swept: counter('ckv_ttl_swept_total', {}, 'expired values turned into tombstones by the TTL sweeper'),
  ttl_pending_full: counter('ckv_ttl_pending_full_total', {}, 'expiries not remembered (sweeper heap full; a later scan finds them)'),
  gc_rounds: counter('ckv_gc_total', { event: 'rounds' }, 'tombstone collection rounds this node ran (phase one sent)'),
  gc_rounds_abandoned: counter('ckv_gc_total', { event: 'rounds_abandoned' }, 'collection rounds given up: a holder did not acknowledge phase one'),
  gc_partitions_scanned: counter('ckv_gc_total', { event: 'partitions_scanned' }, 'partitions a collection run read for tombstones (one holding none below the watermark is skipped)'),
  gc_collected: counter('ckv_gc_total', { event: 'collected' }, 'tombstones deleted here by phase two of a collection round'),
  gc_refused: counter('ckv_gc_total', { event: 'refused' }, 'remote entries of absent keys refused: at or below the collected floor of their partition'),
  gc_pushed_received: counter('ckv_gc_total', { event: 'pushed_received' }, 'tombstones pushed here by phase one of a collection round'),
  gc_rejected: counter('ckv_gc_total', { event: 'rejected' }, 'gc protocol frames dropped as malformed'),
} as const satisfies Record<string, AnyCounterSpec>;

export type CounterName = keyof typeof counterSpecs;
export const counterNames = Object.keys(counterSpecs) as CounterName[];

/** Names built at run time by src/net/sync-protocol.ts; each member must still be declared above. */
export type CounterFamilyName = `sync_sessions_${string}` | `sync_refused_${string}`;

/** Every declared counter's value, in declaration order. */
export type CounterValues = Record<CounterName, number>;

export function isCounterName(name: string): name is CounterName {
  return Object.hasOwn(counterSpecs, name);
}

export class Counters {
  private readonly values = new Map<string, number>(counterNames.map((name) => [name, 0]));

  add(name: CounterName | CounterFamilyName, by = 1): void {
    const value = this.values.get(name);
    if (value === undefined) throw new Error(`ckv assertion: counter ${name} is not declared in src/util/counters.ts`);
    this.values.set(name, value + by);
  }

  get(name: CounterName): number {
    return this.values.get(name) ?? 0;
  }

  /** Every declared counter, zeros included, in declaration order. */
  snapshot(): CounterValues {
    return Object.fromEntries(this.values) as CounterValues;
  }
}
