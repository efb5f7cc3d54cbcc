/**
 * Every setting of a ckv node, with what it does, its trade-off and its default. The CLI
 * fills these from flags; tests use presets with short intervals.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  clockDriftMsMax,
  inboundSessionsMax,
  merkleDepthDefault,
  syncIntervalMsDefault,
  valueBytesMax,
  warmUpEntriesDefault,
} from './core/limits.js';
import { gcBatchMaxDefault } from './core/tombstone-gc.js';

/** Default time between tombstone GC runs (NodeConfig.gcIntervalMs). */
export const gcIntervalMsDefault = 10_000;

export interface NodeConfig {
  /** Where the node keeps its LevelDB, identity and control socket. */
  dataDir: string;
  /** Control socket path; default `<dataDir>/ckv.sock`. */
  socketPath: string;
  /**
   * Cluster name: nodes of different clusters ignore each other. 1..64 characters of
   * [A-Za-z0-9._-] (it is part of protocol ids and the gossip topic). Default `default`.
   * The data directory keeps the name of its first start and refuses another one.
   */
  cluster: string;
  /**
   * Move the data directory, data and all, to `cluster` although it belongs to another one
   * (`--rebind-cluster`). Default off: a different name is refused (ClusterMismatchError).
   */
  rebindCluster: boolean;
  /** libp2p listen multiaddrs. Default `/ip4/0.0.0.0/tcp/4455`; `/tcp/0` picks a free port. */
  listen: string[];
  /** Peers to dial at start and redial when lost. Default none (mDNS finds LAN peers). */
  bootstrap: string[];
  /** Find peers on the LAN by mDNS. Default on; needs a multicast route. */
  mdns: boolean;
  /** File holding a pre-shared cluster key; strangers without it cannot connect. Default none. */
  clusterKeyFile: string | undefined;
  /** HTTP status page and gateway address, or 'off'. Default `127.0.0.1:7070`. */
  http: string;
  /**
   * Whether `http` was given (`--http`): then it is bound as given or the start fails. The
   * default address moves to the next free port (up to 20) if it is taken.
   */
  httpExplicit: boolean;
  /** Largest value accepted. Larger costs memory per in-flight value. Default 64 MiB. */
  valueBytesMax: number;
  /** Merkle depth; all nodes of a cluster must agree. Default 4 (65,536 leaves). */
  merkleDepth: number;
  /** Mean time between anti-entropy sessions. Shorter repairs sooner, costs idle traffic. Default 1000. */
  syncIntervalMs: number;
  /** How far ahead a remote stamp may be before it is refused. Default 500. */
  clockDriftMsMax: number;
  /** Sync sessions served at once; more are refused as busy. Default 4. */
  inboundSessionsMax: number;
  /**
   * Publish and receive writes by gossip. Default on. Off only in tests that prove
   * anti-entropy alone converges (hidden flag `--test-no-gossip`).
   */
  gossip: boolean;
  /**
   * Start the HLC at the wall clock even if its persisted bound is ahead (the way out after
   * running with a clock set ahead; entries stamped in the future keep their versions).
   * Default off: the bound only ever moves forward.
   */
  resetClockBound: boolean;
  /**
   * Added to this node's wall clock. Tests only (hidden flag `--test-clock-skew-ms`): a node
   * whose clock is wrong, on one machine. Default 0.
   */
  testClockSkewMs: number;
  /**
   * Partitioned mode (`--replicas K`, 1..64): each key on K nodes chosen by the cluster's
   * layout (docs/partitioned-mode.md) instead of on every node. Fewer copies hold more data
   * in all and cost fewer writes per node, at the price of forwarded reads and writes and of
   * moving data on every layout change. Every node of a cluster must say the same K (a node
   * that disagrees refuses to serve). Default undefined: full replication, every key on every
   * node (the layout machinery stays off).
   */
  replicas?: number;
  /**
   * Partitioned mode: bytes of writes kept for owners that have not acknowledged them (hints)
   * past which new writes to those owners' keys are refused (DeliveryBacklogError, exit 3):
   * backpressure instead of unbounded growth. Higher rides out longer outages at the cost of
   * disk. Default 1 GiB (hidden flag `--delivery-bytes-max`).
   */
  deliveryBytesMax?: number;
  /**
   * This node's weight in the layout (`--weight W`, 0..10^6): its share of the partitions grows
   * with it (relative capacity); 0 makes a gateway that owns no data but forwards requests.
   * Only used in partitioned mode, when the node joins. Default 1.
   */
  weight: number;
  /**
   * Whether this node joins the layout by itself (`--no-auto-join` turns it off). On, the
   * cluster's coordinator adds it as soon as it is up (and a lone first node makes the first
   * layout); off, an operator adds it (`ckv layout add NODE`, `ckv layout apply`): a node
   * joins only when someone decides it. Default on.
   */
  autoJoin: boolean;
  /**
   * Tombstone GC (`--gc-interval-ms`): how often this node runs a collection round (asks the
   * members' floors, collects the tombstones below the watermark that every holder
   * acknowledged; docs/design-delivery-gc.md section 2). Shorter frees deleted keys sooner at
   * the cost of a floor request to every member and a scan of the partitions holding
   * tombstones each time. 0 turns the timer off (`ckv gc --run` still runs one). Default 10,000.
   */
  gcIntervalMs: number;
  /**
   * Tombstones per collection round (`--gc-batch`, 1..1024): larger batches mean fewer
   * messages but larger frames and more work lost when a round is abandoned. Default 256.
   */
  gcBatchMax: number;
  /**
   * The warm-up (`--warm-up-entries N`, src/node/warm-up.ts): entries a freshly started node
   * writes and applies on throwaway data in a scratch store while it is idle, so that the
   * first writes clients send do not run on code V8 has not optimised yet (a fresh cluster's
   * first burst of 5,000 writes took ~35 % longer without it on the reference machine). It
   * gives way to any real work at once. More costs more CPU after a start for little more
   * gain; 0 turns it off. Default 4,000 (~0.3 s of CPU, once per process).
   */
  warmUpEntries: number;
}

/** `$CKV_DATA_DIR`, else `$XDG_DATA_HOME/ckv`, else `~/.local/share/ckv`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CKV_DATA_DIR) return env.CKV_DATA_DIR;
  if (env.XDG_DATA_HOME) return join(env.XDG_DATA_HOME, 'ckv');
  return join(homedir(), '.local', 'share', 'ckv');
}

export function socketPathFor(dataDir: string): string {
  return join(dataDir, 'ckv.sock');
}

export function defaultConfig(dataDir = defaultDataDir()): NodeConfig {
  return {
    dataDir,
    socketPath: socketPathFor(dataDir),
    cluster: 'default',
    rebindCluster: false,
    listen: ['/ip4/0.0.0.0/tcp/4455'],
    bootstrap: [],
    mdns: true,
    clusterKeyFile: undefined,
    http: '127.0.0.1:7070',
    httpExplicit: false,
    valueBytesMax,
    merkleDepth: merkleDepthDefault,
    syncIntervalMs: syncIntervalMsDefault,
    clockDriftMsMax,
    inboundSessionsMax,
    gossip: true,
    resetClockBound: false,
    testClockSkewMs: 0,
    weight: 1,
    autoJoin: true,
    gcIntervalMs: gcIntervalMsDefault,
    gcBatchMax: gcBatchMaxDefault,
    warmUpEntries: warmUpEntriesDefault,
  };
}

/** The software version, reported by `Status`. */
export const ckvVersion = '0.1.0';
