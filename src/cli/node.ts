/**
 * `ckv node start ...` (run a node in the foreground), `ckv node stop`, and in partitioned mode
 * `ckv node remove NODE` (a dead node out of the layout) and `ckv node leave` (hand off, then stop).
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { defaultConfig, defaultDataDir, socketPathFor } from '../config.js';
import { clockDriftMsMax, inboundSessionsMax, layoutReplicasMax, layoutWeightMax, merkleDepthDefault, merkleDepthMax, valueBytesMax, warmUpEntriesDefault, warmUpEntriesMax } from '../core/limits.js';
import { gcBatchMaxDefault, gcBatchMaxLimit } from '../core/tombstone-gc.js';
import { isLogLevel } from '../util/log-level.js';
import { CliError, globalOptions, printJson, withClient, writeStdout } from './common.js';
import { layoutJson } from './layout.js';

/** How often `node leave` reads the layout while it waits for the hand-off. */
const leavePollMs = 500;
import { readConfigFile } from './config-file.js';

interface StartOptions {
  config?: string;
  socket?: string;
  valueBytesMax?: string;
  merkleDepth?: string;
  clockDriftMsMax?: string;
  inboundSessionsMax?: string;
  logLevel?: string;
  logFormat?: string;
  dataDir?: string;
  listen?: string[];
  bootstrap?: string[];
  mdns: boolean;
  cluster: string;
  rebindCluster?: boolean;
  clusterKey?: string;
  http?: string;
  syncIntervalMs?: string;
  testNoGossip?: boolean;
  resetClockBound?: boolean;
  testClockSkewMs?: string;
  deliveryBytesMax?: string;
  replicas?: string;
  weight?: string;
  autoJoin: boolean;
  gcIntervalMs?: string;
  gcBatch?: string;
  warmUpEntries?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** The shallowest Merkle tree (one level of 16 leaves; MerkleTree asserts 1..merkleDepthMax). */
const merkleDepthMin = 1;

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${flag} must be a whole number from ${min} to ${max}, not ${text}`, 'usage');
  }
  return n;
}

/**
 * The flags, with every setting of --config FILE that the command line did not give
 * (commander says where each value came from: 'cli', 'default', ...).
 */
async function withConfigFile(flags: StartOptions, command: Command): Promise<StartOptions> {
  if (flags.config === undefined) return flags;
  const fromFile = await readConfigFile(flags.config);
  const merged: Record<string, unknown> = { ...flags };
  for (const [attribute, value] of Object.entries(fromFile)) {
    const source = attribute === 'socket' ? undefined : command.getOptionValueSource(attribute);
    if (source !== 'cli') merged[attribute] = value;
  }
  return merged as unknown as StartOptions;
}

export function register(program: Command): void {
  const node = program.command('node').description('run or stop a node');

  node
    .command('start')
    .description('run a node in the foreground until Ctrl-C or SIGTERM')
    .option('--config <file>', 'read settings from this TOML file (keys named like these flags; a flag given here wins)')
    .option('--data-dir <dir>', 'data directory (default: $CKV_DATA_DIR, $XDG_DATA_HOME/ckv or ~/.local/share/ckv)')
    .option('--listen <multiaddr>', 'libp2p listen address, repeatable (default /ip4/0.0.0.0/tcp/4455)', collect)
    .option('--bootstrap <multiaddr>', 'peer to dial at start and redial when lost, repeatable', collect)
    .option('--no-mdns', 'do not discover peers on the LAN by mDNS')
    .option('--cluster <name>', 'cluster name, 1..64 of A-Z a-z 0-9 . _ -; nodes of other clusters are ignored', 'default')
    .option('--rebind-cluster', 'move a data directory that belongs to another cluster, data and all, to --cluster')
    .option('--cluster-key <file>', 'pre-shared cluster key file (make one with: ckv cluster-key -o FILE)')
    .option('--http <host:port>', "status page and HTTP gateway address, or 'off'; a busy address fails the start (default 127.0.0.1:7070, or the next free port)")
    .option('--sync-interval-ms <ms>', 'mean time between anti-entropy sessions with a peer, ms, >= 10 (default 1000)')
    .option('--reset-clock-bound', "start the clock at this host's time even if the node ran with its clock set ahead (check the peers' clocks first)")
    .option('--value-bytes-max <bytes>', `largest value accepted, bytes, 1..${valueBytesMax} (default ${valueBytesMax})`)
    .option('--merkle-depth <n>', `Merkle tree depth, ${merkleDepthMin}..${merkleDepthMax}; every node of a cluster must use the same (default ${merkleDepthDefault})`)
    .option('--clock-drift-ms-max <ms>', `how far ahead of this node's clock a peer's stamp may be before it is refused, ms (default ${clockDriftMsMax})`)
    .option('--inbound-sessions-max <n>', `anti-entropy sessions served at once, 1..64 (default ${inboundSessionsMax})`)
    .option('--replicas <k>', `partitioned mode: each key on K nodes of the cluster's layout, 1..${layoutReplicasMax}; every node must say the same (default: every key on every node)`)
    .option('--weight <w>', `partitioned mode: this node's share of the data, 0..${layoutWeightMax}; 0 = a gateway that owns nothing (default 1)`)
    .option('--no-auto-join', 'partitioned mode: do not join the layout by itself; an operator adds it (ckv layout add NODE, ckv layout apply)')
    .option('--gc-interval-ms <ms>', 'time between tombstone collection runs, ms; 0 = only on `ckv gc --run` (default 10000)')
    .option('--gc-batch <n>', `tombstones per collection round, 1..${gcBatchMaxLimit} (default ${gcBatchMaxDefault})`)
    .option('--warm-up-entries <n>', `throwaway writes a fresh node runs while idle so its first real ones are fast, 0..${warmUpEntriesMax}; 0 = off (default ${warmUpEntriesDefault})`)
    .option('--log-level <level>', "least severe log lines written: info, warn or error (default info)")
    .option('--log-format <format>', "log lines as text ('<time> <level> <event> key=value ...') or json (one object a line) (default text)")
    .addOption(new Option('--test-no-gossip', 'tests only: neither publish nor receive gossip').hideHelp())
    .addOption(new Option('--test-clock-skew-ms <ms>', "tests only: add this to the node's wall clock").hideHelp())
    .addOption(new Option('--delivery-bytes-max <bytes>', 'partitioned mode: bytes of writes kept for owners that have not acknowledged them before writes to their keys are refused (default 1 GiB)').hideHelp())
    .addHelpText(
      'after',
      `
The global --socket PATH (before or after the command) moves this node's control socket
(default <data-dir>/ckv.sock). A path another node answers on is refused (exit 5); a stale
socket left by a killed node is replaced. The data directory is created if needed (mode
0700) and must be writable (exit 2 otherwise).`,
    )
    .action(async (flags: StartOptions, command: Command) => {
      const options = await withConfigFile(flags, command);
      const dataDir = resolve(options.dataDir ?? defaultDataDir());
      const config = defaultConfig(dataDir);
      // --socket on `node start` moves the control socket; default <data-dir>/ckv.sock.
      config.socketPath = globalOptions(command).socket ?? options.socket ?? socketPathFor(dataDir);
      config.cluster = options.cluster;
      config.rebindCluster = options.rebindCluster === true;
      config.mdns = options.mdns;
      if (options.listen) config.listen = options.listen;
      if (options.bootstrap) config.bootstrap = options.bootstrap;
      config.clusterKeyFile = options.clusterKey;
      if (options.http !== undefined) {
        config.http = options.http;
        config.httpExplicit = true;
      }
      if (options.syncIntervalMs !== undefined) {
        const ms = Number(options.syncIntervalMs);
        if (!Number.isInteger(ms) || ms < 10) throw new CliError(`--sync-interval-ms must be a whole number >= 10, not ${options.syncIntervalMs}`, 'usage');
        config.syncIntervalMs = ms;
      }
      if (options.valueBytesMax !== undefined) config.valueBytesMax = wholeNumber('--value-bytes-max', options.valueBytesMax, 1, valueBytesMax);
      if (options.merkleDepth !== undefined) config.merkleDepth = wholeNumber('--merkle-depth', options.merkleDepth, merkleDepthMin, merkleDepthMax);
      if (options.clockDriftMsMax !== undefined) config.clockDriftMsMax = wholeNumber('--clock-drift-ms-max', options.clockDriftMsMax, 1, 86_400_000);
      if (options.inboundSessionsMax !== undefined) config.inboundSessionsMax = wholeNumber('--inbound-sessions-max', options.inboundSessionsMax, 1, 64);
      if (options.replicas !== undefined) config.replicas = wholeNumber('--replicas', options.replicas, 1, layoutReplicasMax);
      if (options.weight !== undefined) config.weight = wholeNumber('--weight', options.weight, 0, layoutWeightMax);
      config.autoJoin = options.autoJoin !== false;
      if (options.gcIntervalMs !== undefined) config.gcIntervalMs = wholeNumber('--gc-interval-ms', options.gcIntervalMs, 0, 86_400_000);
      if (options.gcBatch !== undefined) config.gcBatchMax = wholeNumber('--gc-batch', options.gcBatch, 1, gcBatchMaxLimit);
      if (options.warmUpEntries !== undefined) config.warmUpEntries = wholeNumber('--warm-up-entries', options.warmUpEntries, 0, warmUpEntriesMax);
      if (config.replicas === undefined && (options.weight !== undefined || !config.autoJoin)) {
        throw new CliError('--weight and --no-auto-join are settings of the partitioned mode: give --replicas K too', 'usage');
      }
      const logLevel = options.logLevel ?? 'info';
      if (!isLogLevel(logLevel)) throw new CliError(`--log-level must be info, warn or error, not ${logLevel}`, 'usage');
      const logFormat = options.logFormat ?? 'text';
      if (logFormat !== 'text' && logFormat !== 'json') throw new CliError(`--log-format must be text or json, not ${logFormat}`, 'usage');
      if (options.testNoGossip) config.gossip = false;
      if (options.resetClockBound) config.resetClockBound = true;
      if (options.deliveryBytesMax !== undefined) config.deliveryBytesMax = wholeNumber('--delivery-bytes-max', options.deliveryBytesMax, 1, Number.MAX_SAFE_INTEGER);
      if (options.testClockSkewMs !== undefined) {
        const ms = Number(options.testClockSkewMs);
        if (!Number.isInteger(ms)) throw new CliError(`--test-clock-skew-ms must be a whole number, not ${options.testClockSkewMs}`, 'usage');
        config.testClockSkewMs = ms;
      }
      // Loaded here, not at the top: every other command stays free of libp2p's start-up cost.
      const { startNode } = await import('../node/wiring.js');
      const { stderrLogger } = await import('../util/logger.js');
      const logger = stderrLogger({ level: logLevel, format: logFormat });
      const running = await startNode(config, logger);
      await new Promise<void>((done) => {
        running.onStop(done);
        let signals = 0;
        const onSignal = (signal: NodeJS.Signals): void => {
          signals++;
          if (signals > 1) {
            logger.warn('second signal: exiting without a clean stop', { signal });
            process.exit(130);
          }
          void running.stop(`received ${signal}`);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      // Stopped: the store is closed and every socket, timer and stream of ckv's with it. A
      // debounce timer libp2p's address manager may have started in its stop (1 s, not
      // unref'd) would still hold the process that long after 'node stopped': exit once main()
      // has set the exit code (its microtasks run before this check-phase callback).
      setImmediate(() => process.exit());
    });

  node
    .command('remove')
    .description('partitioned mode: remove a node that is down from the layout (its partitions go to the others); a running node runs ckv node leave instead')
    .argument('<node>', 'node id (16 hex digits) or peer id')
    .option('--json', 'print the layout after the change as one JSON document')
    .action(async (target: string, options: { json?: boolean }, command: Command) => {
      const reply = await withClient(command, (client) => client.removeNode(target));
      if (options.json) await printJson(layoutJson(reply));
      else await writeStdout(`removed ${target}: committed layout version ${reply.committedVersion}\n`);
    });

  node
    .command('leave')
    .description('partitioned mode: hand this node off (commit its removal from the layout), wait until its data moved to the others, then stop it')
    .action(async (_options: object, command: Command) => {
      await withClient(command, async (client) => {
        const committed = await client.leaveCluster();
        const version = committed.committedVersion;
        process.stderr.write(`leaving: committed layout version ${version}; waiting for the others to take this node's partitions (Ctrl-C leaves the node running; the change goes on)\n`);
        let last = '';
        for (;;) {
          const layout = await client.layout();
          const handedOff = layout.active.length === 1 && !layout.current?.members.some((m) => m.nodeId === layout.self);
          // Writes this node keeps for owners that have not acknowledged them yet (delivery
          // until acknowledged) would be lost with it: it stops only once they are delivered.
          const pending = Number((await client.status()).delivery?.pendingRows ?? '0');
          if (handedOff && pending === 0) break;
          const newest = layout.active.at(-1);
          const partitions = handedOff
            ? 'partitions handed off'
            : newest
              ? `v${newest.version} ${newest.partitionsSynced} of ${newest.partitionsSynced + newest.partitionsPending} partitions synced at every owner`
              : 'waiting';
          const line = `leaving: ${partitions}${pending > 0 ? `; ${pending} writes pending for owners that have not acknowledged them (ckv status: delivery)` : ''}`;
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
          await new Promise((resolve) => setTimeout(resolve, leavePollMs));
        }
        await client.leave();
      });
      await writeStdout('left the cluster; stopping\n');
    });

  node
    .command('stop')
    .description('stop the node gracefully (queued writes reach disk first)')
    .action(async (_options: object, command: Command) => {
      await withClient(command, (client) => client.leave());
      await writeStdout('stopping\n');
    });
}
