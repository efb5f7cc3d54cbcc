/**
 * What became of each `--bootstrap` address, for the log, the counters and the status.
 *
 * A bootstrap address can fail in three ways that used to leave a node showing "no peers"
 * with nothing said: nothing listens there (the dial is refused or times out), the node there
 * has another cluster key (the pnet handshake fails: the connection is reset, or never
 * answers), or it is a ckv node of another cluster (or not a ckv node at all): the connection
 * opens, but identify shows it does not speak our sync protocol, so it never becomes a member.
 *
 * The redial loop (PeerKeeper, ./libp2p.ts) reports every dial's end and ClusterNetwork
 * (./cluster.ts) every identify; this class keeps, per address, its state, the likely cause
 * and the last error, since when, and how many dials failed since it last worked. It
 * - logs one warning when an address starts failing (`bootstrap failing address=...
 *   cause="..." error="..."`), then at most one per `warnIntervalMs` (60 s) while it keeps
 *   failing (a redial every 1..30 s does not make a line each), and one info line when it
 *   works again;
 * - counts every failure by reason (`bootstrap_failed_<reason>`, src/util/counters.ts);
 * - lists every address for the status (`ckv status`, gRPC Status `bootstrap`, /api/status).
 */
import type { Counters } from '../util/counters.js';
import { errorText } from '../util/error-text.js';
import type { Logger } from '../util/logger.js';

export type BootstrapState = 'dialing' | 'connected' | 'failing' | 'foreign';

/** Why a bootstrap address does not give us a member: the counter's reason. */
export type BootstrapFailure = 'unreachable' | 'timeout' | 'handshake' | 'foreign' | 'other';

export interface BootstrapView {
  /** As configured (normalized). */
  address: string;
  /** dialing (no answer yet), connected, failing (dials fail), foreign (connected, but not a member of our cluster). */
  state: BootstrapState;
  /** The peer id at that address (configured or learned); '' if not known. */
  peerId: string;
  /** The likely cause and the last error, while failing or foreign; '' otherwise. */
  lastError: string;
  /** Wall ms when it entered this state. */
  sinceMs: number;
  /** Failed dials (and foreign connections) since it last worked. */
  failures: number;
}

export interface BootstrapHealthOptions {
  /** The configured bootstrap addresses, normalized (`multiaddr(a).toString()`). */
  addresses: string[];
  cluster: string;
  /** Our sync protocol id: a member speaks it. */
  syncProtocol: string;
  /** Whether this node uses a cluster key (changes the likely cause of a failed handshake). */
  clusterKey: boolean;
  counters: Counters;
  logger: Logger;
  /** At most one warning per address this often while it keeps failing. Default 60 s. */
  warnIntervalMs?: number;
}

/** Identify results remembered for peers whose dial has not reported yet (identify may come first). */
const identifiedMax = 256;
export const bootstrapWarnIntervalMsDefault = 60_000;

interface Target extends BootstrapView {
  /** When the last warning for it was logged; -Infinity = never. */
  warnedAtMs: number;
  /** The cause of the last warning: a new cause is logged at once. */
  warnedCause: string;
}

export class BootstrapHealth {
  private readonly targets = new Map<string, Target>();
  /** Peer id -> undefined if it speaks our protocol, else why it is not a member. */
  private readonly identified = new Map<string, string | undefined>();
  private readonly warnIntervalMs: number;

  constructor(private readonly options: BootstrapHealthOptions, nowMs: number) {
    this.warnIntervalMs = options.warnIntervalMs ?? bootstrapWarnIntervalMsDefault;
    for (const address of options.addresses) {
      const peerId = /\/p2p\/([^/]+)$/.exec(address)?.[1] ?? '';
      this.targets.set(address, { address, state: 'dialing', peerId, lastError: '', sinceMs: nowMs, failures: 0, warnedAtMs: -Infinity, warnedCause: '' });
    }
  }

  /** Every bootstrap address (but our own), in configured order. */
  list(): BootstrapView[] {
    return [...this.targets.values()].map(({ warnedAtMs: _w, warnedCause: _c, ...view }) => ({ ...view }));
  }

  /** A dial of `address` failed. */
  dialFailed(address: string, error: unknown, nowMs: number): void {
    const target = this.targets.get(address);
    if (!target) return;
    const { reason, cause } = classify(error, this.options.clusterKey);
    this.fail(target, reason, cause, errorText(error), nowMs);
  }

  /** A dial of `address` connected to `peerId`. */
  dialConnected(address: string, peerId: string, nowMs: number): void {
    const target = this.targets.get(address);
    if (!target) return;
    target.peerId = peerId;
    const known = this.identified.get(peerId);
    if (this.identified.has(peerId) && known !== undefined) {
      this.fail(target, 'foreign', known, '', nowMs);
      return;
    }
    this.working(target, this.identified.has(peerId), nowMs);
  }

  /** The address is our own (every node was given the same list): not shown. */
  dialSelf(address: string): void {
    this.targets.delete(address);
  }

  /** identify told what `peerId` speaks: a member of our cluster speaks our sync protocol. */
  identify(peerId: string, protocols: readonly string[], nowMs: number): void {
    const problem = protocols.includes(this.options.syncProtocol) ? undefined : foreignCause(protocols, this.options.cluster);
    this.identified.delete(peerId);
    this.identified.set(peerId, problem);
    if (this.identified.size > identifiedMax) this.identified.delete(this.identified.keys().next().value!);
    for (const target of this.targets.values()) {
      if (target.peerId !== peerId) continue;
      if (problem !== undefined) this.fail(target, 'foreign', problem, '', nowMs);
      else this.working(target, true, nowMs);
    }
  }

  private working(target: Target, member: boolean, nowMs: number): void {
    if (target.state !== 'connected') {
      target.state = 'connected';
      target.sinceMs = nowMs;
    }
    target.lastError = '';
    // Said once it is known to be a member, if its failure was logged.
    if (member && target.warnedAtMs !== -Infinity) {
      this.options.logger.info('bootstrap connected', { address: target.address, peer: target.peerId, failures: target.failures });
      target.warnedAtMs = -Infinity;
      target.warnedCause = '';
    }
    if (member) target.failures = 0;
  }

  private fail(target: Target, reason: BootstrapFailure, cause: string, error: string, nowMs: number): void {
    // The same foreign connection told again (identify push, or identify before the dial's end).
    if (reason === 'foreign' && target.state === 'foreign' && target.lastError === cause) return;
    const state: BootstrapState = reason === 'foreign' ? 'foreign' : 'failing';
    if (target.state !== state) {
      target.state = state;
      target.sinceMs = nowMs;
    }
    target.failures++;
    target.lastError = error && !cause.includes(error) ? `${cause}: ${error}` : cause;
    this.options.counters.add(`bootstrap_failed_${reason}`);
    if (cause === target.warnedCause && nowMs - target.warnedAtMs < this.warnIntervalMs) return;
    target.warnedAtMs = nowMs;
    target.warnedCause = cause;
    this.options.logger.warn('bootstrap failing', {
      address: target.address,
      cause,
      ...(error ? { error } : {}),
      failures: target.failures,
      since: new Date(target.sinceMs).toISOString(),
    });
  }
}

/** Why a node that speaks other protocols is not a member of `cluster`. */
function foreignCause(protocols: readonly string[], cluster: string): string {
  // A node serves several versions of the sync protocol: name each cluster once.
  const others = [
    ...new Set(
      protocols.flatMap((p) => {
        const match = /^\/ckv\/(.+)\/sync\/[^/]+$/.exec(p);
        return match ? [match[1]!] : [];
      }),
    ),
  ];
  if (others.length > 0) {
    return `connected, but it is in cluster ${others.map((c) => JSON.stringify(c)).join(', ')}, not ${JSON.stringify(cluster)} (started with another --cluster)`;
  }
  return `connected, but it does not speak ckv's sync protocol for cluster ${JSON.stringify(cluster)} (not a ckv node?)`;
}

/** The likely cause of a failed dial, from its error. */
export function classify(error: unknown, clusterKey: boolean): { reason: BootstrapFailure; cause: string } {
  const text = `${codesOf(error).join(' ')} ${errorText(error)}`;
  if (/ECONNREFUSED/.test(text)) return { reason: 'unreachable', cause: 'nothing listens there (connection refused)' };
  if (/EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL/.test(text)) return { reason: 'unreachable', cause: 'no route to that host' };
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) return { reason: 'unreachable', cause: 'the host name does not resolve' };
  if (/UnexpectedPeer|unexpected peer|peer id mismatch/i.test(text)) {
    return { reason: 'other', cause: 'the node there has another peer id than the address names' };
  }
  if (/ECONNRESET|EPIPE|encrypt|decrypt|noise|handshake|nonce|psk|Unexpected ?EOF|stream closed|closed while reading|InvalidCrypto/i.test(text)) {
    return {
      reason: 'handshake',
      cause: clusterKey
        ? 'the connection handshake failed: the node there has another cluster key, or none'
        : 'the connection handshake failed: the node there probably uses a cluster key (give this node the same --cluster-key)',
    };
  }
  if (/timed? ?out|TimeoutError|AbortError|aborted/i.test(text)) {
    return {
      reason: 'timeout',
      cause: clusterKey
        ? 'no answer in time: the host is down or unreachable, or the node there has another cluster key'
        : 'no answer in time: the host is down or unreachable, or the node there uses a cluster key',
    };
  }
  return { reason: 'other', cause: 'the dial failed' };
}

/** Error codes and names of an error and the errors it aggregates. */
function codesOf(error: unknown, depth = 0): string[] {
  if (!(error instanceof Error) || depth > 3) return [];
  const { code } = error as { code?: unknown };
  const own = [error.name, typeof code === 'string' ? code : ''];
  const inner = error instanceof AggregateError ? error.errors.flatMap((e: unknown) => codesOf(e, depth + 1)) : [];
  const cause = (error as { cause?: unknown }).cause;
  return [...own, ...inner, ...codesOf(cause, depth + 1)].filter((c) => c !== '');
}
