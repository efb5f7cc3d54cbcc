/**
 * One table of error kinds: every error a user can meet, with the gRPC status the control API
 * answers it with, the HTTP status the gateway answers it with, and the exit code of the `ckv`
 * command (README, "Exit codes"). The control server (src/control/server.ts), the HTTP server
 * (src/http/server.ts) and the CLI (src/cli/common.ts, `describeError`) all map errors through
 * this table and nowhere else; the CLI maps a gRPC status back to its kind, so the exit code
 * of a refused request is the same whichever side found the problem.
 *
 * An error is matched to its kind by its stable `code` (CkvError, src/core/errors.ts) or its
 * stable `name`, so this file imports no error class from the core or the network (and the
 * CLI stays free of them). Anything unmatched is `failed` (INTERNAL, 500, exit 5).
 *
 * `where`: 'request' kinds can be the answer to a control API call, so a gRPC status must
 * name one exit code (test/unit/errors.test.ts checks it); 'start' kinds only happen while a
 * node starts (in the `ckv node start` process itself) and 'client' kinds only in the CLI.
 */
import { CkvError } from './core/errors.js';
import { GrpcStatus } from './control/h2.js';

/** Exit codes of `ckv`. Documented in `ckv --help` and the README; scripts rely on them. */
export const ExitCode = {
  ok: 0,
  notFound: 1,
  usage: 2,
  unreachable: 3,
  refused: 4,
  failed: 5,
  /** A write whose outcome is unknown: the node went away after the request was sent. */
  outcomeUnknown: 6,
  /** A conditional write (--if-version, --if-absent) whose condition did not hold: nothing written. */
  conditionFailed: 7,
  /** `ckv health`: the cluster is degraded (a member down or silent, data out of sync, a clock off). */
  degraded: 8,
  /**
   * `ckv import` of a backup file that is damaged (truncated, corrupt) or not a backup: the
   * blocks before the damage may have been applied, nothing after it. Not a usage error (2):
   * something may have changed, and retrying with the same file fails the same way.
   */
  backupDamaged: 9,
} as const;

interface ErrorKindSpec {
  /** Error codes (CkvError.code) and error names matched to this kind. */
  matches: readonly string[];
  grpc: number;
  http: number;
  exit: (typeof ExitCode)[keyof typeof ExitCode];
  where: 'request' | 'start' | 'client';
}

export const errorKinds = {
  invalidKey: { matches: ['ERR_INVALID_KEY', 'InvalidKeyError'], grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, exit: ExitCode.refused, where: 'request' },
  invalidArgument: { matches: ['ERR_INVALID_ARGUMENT', 'InvalidArgumentError'], grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, exit: ExitCode.refused, where: 'request' },
  valueTooLarge: { matches: ['ERR_VALUE_TOO_LARGE', 'ValueTooLargeError'], grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 413, exit: ExitCode.refused, where: 'request' },
  watcherBehind: { matches: ['ERR_WATCHER_BEHIND', 'WatcherBehindError'], grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 503, exit: ExitCode.refused, where: 'request' },
  notFound: { matches: ['ERR_NOT_FOUND', 'NotFoundError'], grpc: GrpcStatus.NOT_FOUND, http: 404, exit: ExitCode.notFound, where: 'request' },
  noPeers: { matches: ['ERR_NO_PEERS', 'NoPeersError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 503, exit: ExitCode.refused, where: 'request' },
  unknownPeer: { matches: ['ERR_UNKNOWN_PEER', 'UnknownPeerError'], grpc: GrpcStatus.NOT_FOUND, http: 404, exit: ExitCode.notFound, where: 'request' },
  peerConnected: { matches: ['ERR_PEER_CONNECTED', 'PeerConnectedError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 409, exit: ExitCode.refused, where: 'request' },
  clockAhead: { matches: ['ERR_CLOCK_AHEAD', 'ClockAheadError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 503, exit: ExitCode.refused, where: 'request' },
  conditionFailed: { matches: ['ERR_CONDITION_FAILED', 'ConditionFailedError'], grpc: GrpcStatus.ABORTED, http: 412, exit: ExitCode.conditionFailed, where: 'request' },
  versionFromFuture: { matches: ['ERR_VERSION_FROM_FUTURE', 'VersionFromFutureError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 409, exit: ExitCode.refused, where: 'request' },
  stopping: {
    matches: ['ERR_NODE_STOPPING', 'NodeStoppingError', 'ERR_REPLICA_CLOSED', 'ReplicaClosedError'],
    grpc: GrpcStatus.UNAVAILABLE,
    http: 503,
    exit: ExitCode.unreachable,
    where: 'request',
  },
  ownersUnavailable: {
    matches: ['ERR_OWNERS_UNAVAILABLE', 'OwnersUnavailableError'],
    grpc: GrpcStatus.UNAVAILABLE,
    http: 503,
    exit: ExitCode.unreachable,
    where: 'request',
  },
  notOwner: { matches: ['ERR_NOT_OWNER', 'NotOwnerError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 409, exit: ExitCode.refused, where: 'request' },
  unreachable: { matches: ['ERR_NODE_UNREACHABLE', 'NodeUnreachableError'], grpc: GrpcStatus.UNAVAILABLE, http: 503, exit: ExitCode.unreachable, where: 'client' },
  socketPermissionDenied: {
    matches: ['ERR_SOCKET_PERMISSION', 'SocketPermissionError'],
    grpc: GrpcStatus.UNAVAILABLE,
    http: 503,
    exit: ExitCode.unreachable,
    where: 'client',
  },
  outcomeUnknown: { matches: ['ERR_OUTCOME_UNKNOWN', 'OutcomeUnknownError'], grpc: GrpcStatus.UNAVAILABLE, http: 503, exit: ExitCode.outcomeUnknown, where: 'client' },
  degraded: { matches: ['ERR_DEGRADED', 'DegradedError'], grpc: GrpcStatus.UNAVAILABLE, http: 503, exit: ExitCode.degraded, where: 'client' },
  backupDamaged: { matches: ['ERR_BACKUP_DAMAGED', 'BackupDamagedError'], grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, exit: ExitCode.backupDamaged, where: 'client' },
  usage: { matches: ['ERR_USAGE', 'UsageError'], grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, exit: ExitCode.usage, where: 'start' },
  clusterKeyUnreadable: { matches: ['ERR_CLUSTER_KEY', 'ClusterKeyError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 500, exit: ExitCode.usage, where: 'start' },
  storeLocked: { matches: ['ERR_STORE_LOCKED', 'StoreLockedError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 503, exit: ExitCode.failed, where: 'start' },
  clusterMismatch: { matches: ['ERR_CLUSTER_MISMATCH', 'ClusterMismatchError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 409, exit: ExitCode.usage, where: 'start' },
  listenFailed: { matches: ['ERR_LISTEN', 'ListenError'], grpc: GrpcStatus.UNAVAILABLE, http: 503, exit: ExitCode.failed, where: 'start' },
  socketInUse: { matches: ['ERR_SOCKET_IN_USE', 'SocketInUseError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 503, exit: ExitCode.failed, where: 'start' },
  /**
   * Partitioned mode: this node's --replicas disagrees with its cluster's layout (or a
   * full-replication node hears a partitioned cluster). At start it refuses to start; at run
   * time it refuses reads and writes until the layouts agree.
   */
  replicasMismatch: { matches: ['ERR_REPLICAS_MISMATCH', 'ReplicasMismatchError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 503, exit: ExitCode.refused, where: 'request' },
  /** A layout change that cannot be made (`ckv layout ...`): a bad node or weight, nothing to commit, too many changes in progress. */
  layoutChange: { matches: ['ERR_LAYOUT_CHANGE', 'LayoutChangeError'], grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, exit: ExitCode.refused, where: 'request' },
  /** A partitioned-mode command (`ckv layout`, `node leave|remove`, `purge`, `balance`) on a node in full-replication mode. */
  notPartitioned: { matches: ['ERR_NOT_PARTITIONED', 'NotPartitionedError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 409, exit: ExitCode.refused, where: 'request' },
  /**
   * Partitioned mode (hints): the writes some owner has not acknowledged yet exceed this
   * node's delivery limits, and this write's owners include one with pending rows: refused
   * before anything is stored (backpressure, not loss). Retry once the owner catches up.
   */
  deliveryBacklog: { matches: ['ERR_DELIVERY_BACKLOG', 'DeliveryBacklogError'], grpc: GrpcStatus.UNAVAILABLE, http: 503, exit: ExitCode.unreachable, where: 'request' },
  /**
   * Partitioned mode: this node was removed from the layout (its data is of a removed
   * incarnation). At start it refuses to start; running, it refuses reads and writes.
   */
  nodeRemoved: { matches: ['ERR_NODE_REMOVED', 'NodeRemovedError'], grpc: GrpcStatus.FAILED_PRECONDITION, http: 409, exit: ExitCode.refused, where: 'request' },
  failed: { matches: [], grpc: GrpcStatus.INTERNAL, http: 500, exit: ExitCode.failed, where: 'request' },
} as const satisfies Record<string, ErrorKindSpec>;

export type ErrorKind = keyof typeof errorKinds;
const kindNames = Object.keys(errorKinds) as ErrorKind[];

const kindByMatch = new Map<string, ErrorKind>(kindNames.flatMap((kind) => errorKinds[kind].matches.map((m) => [m, kind] as const)));

/** The kind of an error: by its `code`, else its `name`; anything else is `failed`. */
export function kindOf(error: unknown): ErrorKind {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && kindByMatch.has(code)) return kindByMatch.get(code)!;
    const byName = kindByMatch.get(error.name);
    if (byName) return byName;
  }
  return 'failed';
}

/** The kind a control API answer stands for: the 'request' kind with that gRPC status (else failed). */
export function kindOfGrpcStatus(code: number): ErrorKind {
  return kindNames.find((kind) => errorKinds[kind].where === 'request' && errorKinds[kind].grpc === code) ?? 'failed';
}

// --- kinds with no class elsewhere --------------------------------------------------------------

/** A key that does not exist (or was deleted), or an HTTP path that does not. */
export class NotFoundError extends CkvError {
  constructor(message: string) {
    super('ERR_NOT_FOUND', message);
    this.name = 'NotFoundError';
  }
}

/** A request parameter out of range (not the key, not the value size). */
export class InvalidArgumentError extends CkvError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message);
    this.name = 'InvalidArgumentError';
  }
}

/** The node is stopping: new requests are refused, streams are ended. */
export class NodeStoppingError extends CkvError {
  constructor() {
    super('ERR_NODE_STOPPING', 'the node is stopping');
    this.name = 'NodeStoppingError';
  }
}

/** A watcher fell too far behind the changes and was cut off. */
export class WatcherBehindError extends CkvError {
  constructor() {
    super('ERR_WATCHER_BEHIND', 'watcher fell too far behind; watch again');
    this.name = 'WatcherBehindError';
  }
}

/** A command-line argument or flag, or a node setting, that cannot be used. */
/**
 * Partitioned mode: fewer owners acknowledged a write (or answered a read) than its consistency
 * asks, within the deadline. A write may still be stored on the owners that acknowledged it
 * (and is retried on the others in the background): its outcome is partial, not nothing.
 */
export class OwnersUnavailableError extends CkvError {
  constructor(message: string) {
    super('ERR_OWNERS_UNAVAILABLE', message);
    this.name = 'OwnersUnavailableError';
  }
}

/** Partitioned mode: too many writes wait for an owner that has not acknowledged them (see errorKinds.deliveryBacklog). */
export class DeliveryBacklogError extends CkvError {
  constructor(message: string) {
    super('ERR_DELIVERY_BACKLOG', message);
    this.name = 'DeliveryBacklogError';
  }
}

/** Partitioned mode: a conditional write sent to a node that does not own the key. */
export class NotOwnerError extends CkvError {
  constructor(message: string) {
    super('ERR_NOT_OWNER', message);
    this.name = 'NotOwnerError';
  }
}

export class UsageError extends CkvError {
  constructor(message: string) {
    super('ERR_USAGE', message);
    this.name = 'UsageError';
  }
}

/** `--cluster-key FILE` cannot be read (or does not hold a cluster key). */
export class ClusterKeyError extends CkvError {
  constructor(message: string) {
    super('ERR_CLUSTER_KEY', message);
    this.name = 'ClusterKeyError';
  }
}

/**
 * `node start` whose control socket path already answers: another node serves there, and
 * taking the path over would leave that node unreachable (and delete its socket on stop).
 */
export class SocketInUseError extends CkvError {
  constructor(readonly socketPath: string, why = 'a node is already running there') {
    super('ERR_SOCKET_IN_USE', `the control socket ${socketPath} is in use: ${why}; not taking it over (stop that node, or choose another --socket)`);
    this.name = 'SocketInUseError';
  }
}

/**
 * A partitioned-mode command (layout, node leave/remove, purge, balance) asked of a
 * full-replication node: every node holds every key there. The one kind for "this cluster is
 * not in partitioned mode"; LayoutChangeError is only for changes that cannot be made.
 */
export class NotPartitionedError extends CkvError {
  constructor(what: string) {
    super('ERR_NOT_PARTITIONED', `${what} is for partitioned mode (--replicas K); this node runs in full-replication mode (every node holds every key): nothing to do`);
    this.name = 'NotPartitionedError';
  }
}

/** `peers forget PEER` of a peer that is connected now: it would come straight back. */
export class PeerConnectedError extends CkvError {
  constructor(readonly peerId: string) {
    super('ERR_PEER_CONNECTED', `peer ${peerId} is connected; only a disconnected peer can be forgotten (stop it first)`);
    this.name = 'PeerConnectedError';
  }
}

/**
 * The data directory belongs to another cluster than `--cluster` names (its name is kept in
 * the store on first start). `--rebind-cluster` moves it, data and all, to the new cluster.
 */
export class ClusterMismatchError extends CkvError {
  constructor(readonly dataDir: string, readonly boundTo: string, readonly asked: string) {
    super(
      'ERR_CLUSTER_MISMATCH',
      `data directory ${dataDir} belongs to cluster ${JSON.stringify(boundTo)}, not ${JSON.stringify(asked)}: ` +
        `start it with --cluster ${boundTo}, or add --rebind-cluster to move it and its data to ${JSON.stringify(asked)}`,
    );
    this.name = 'ClusterMismatchError';
  }
}

/**
 * An address the node was told to listen on (`--listen`, `--http`) cannot be bound: in use,
 * not an address of this host, or a privileged port. The host's problem, not the command
 * line's: exit 5, like any failed start.
 */
export class ListenError extends CkvError {
  constructor(message: string) {
    super('ERR_LISTEN', message);
    this.name = 'ListenError';
  }
}

/** Why a bind failed, in words: from the errno code, else from the message (libp2p keeps only the text). */
export function listenProblem(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  const text = `${typeof code === 'string' ? code : ''} ${error instanceof Error ? error.message : String(error)}`;
  if (/EADDRINUSE/.test(text)) return 'address in use';
  if (/EADDRNOTAVAIL/.test(text)) return 'not an address of this host';
  if (/EACCES|EPERM/.test(text)) return 'permission denied (ports below 1024 need privileges)';
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!.trim() || 'failed';
}
