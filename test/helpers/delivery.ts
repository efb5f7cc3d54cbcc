/**
 * Helpers for the real-process tests of delivery until acknowledged (test/integration/
 * delivery-*.test.ts), against the user-visible surface: the `delivery` block of a node's
 * status (gRPC Status, polled every few ms without a CLI process), its peer list, and the
 * local reads that say which version of a key this very node holds (HasKey: this node's store
 * only, tombstones included).
 *
 * Versions are compared as the protocol orders them: the HLC (48 bits of wall ms, 16 of
 * counter), then the writer's node id (`newestVersion`), which is the winner every owner must
 * end up holding after a heal.
 */
import assert from 'node:assert/strict';
import type { VersionMessage } from '../../src/control/proto.js';
import { waitFor, type NodeProcess } from '../../harness/testing.js';
import { ownersOf } from './partitioned.js';

/** A node's delivery block over gRPC (pending rows in all and per target). */
export interface DeliveryView {
  pendingRows: number;
  targets: Map<string, number>;
}

export async function deliveryOf(node: NodeProcess): Promise<DeliveryView> {
  const status = await node.status();
  assert.ok(status.delivery, `${node.name} reports no delivery block`);
  return {
    pendingRows: Number(status.delivery.pendingRows),
    targets: new Map(status.delivery.targets.map((t) => [t.node, Number(t.rows)])),
  };
}

export async function pendingOf(node: NodeProcess): Promise<number> {
  return (await deliveryOf(node)).pendingRows;
}

/** A counter of the node's status (0 if absent). */
export async function counterOf(node: NodeProcess, name: string): Promise<number> {
  const status = await node.status();
  return Number(status.counters[name] ?? 0);
}

export async function seesUp(observer: NodeProcess, nodeId: string): Promise<boolean> {
  return (await observer.peers()).some((p) => p.nodeId === nodeId && p.state === 'up');
}

export async function waitSeesDown(observer: NodeProcess, nodeId: string, deadlineMs = 20_000): Promise<void> {
  await waitFor(async () => !(await seesUp(observer, nodeId)), { deadlineMs, what: `${observer.name} to see ${nodeId} down` });
}

/** `count` keys `prefix<i>` whose owners (in a layout of `members`) include `owner`. */
export function keysOwnedBy(prefix: string, owner: string, members: readonly string[], count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count && i < count * 100; i++) if (ownersOf(`${prefix}${i}`, members).includes(owner)) keys.push(`${prefix}${i}`);
  assert.equal(keys.length, count);
  return keys;
}

/** Orders versions as the merge does: HLC, then node id. */
export function compareVersionMessages(a: VersionMessage, b: VersionMessage): number {
  const ha = BigInt(a.hlc);
  const hb = BigInt(b.hlc);
  if (ha !== hb) return ha < hb ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

export function newestVersion(versions: readonly VersionMessage[]): VersionMessage {
  assert.ok(versions.length > 0);
  return versions.reduce((best, v) => (compareVersionMessages(v, best) > 0 ? v : best));
}

/** This node's own version of each key (`text`, or 'none'), and whether it is a tombstone. */
export async function localVersions(node: NodeProcess, keys: readonly string[], inFlight = 16): Promise<Map<string, { text: string; deleted: boolean }>> {
  const out = new Map<string, { text: string; deleted: boolean }>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) {
      const key = keys[i]!;
      const reply = await node.client.hasKey(key);
      out.set(key, { text: reply.version?.text ?? 'none', deleted: reply.deleted });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return out;
}

/**
 * Undefined when every node of `holders(key)` holds exactly `expected(key)` of each key;
 * otherwise the first differences, for a failure message.
 */
export async function versionProblems(
  nodes: readonly NodeProcess[],
  keys: readonly string[],
  holders: (key: string) => readonly string[],
  expected: (key: string) => string,
): Promise<string | undefined> {
  const problems: string[] = [];
  let count = 0;
  for (const node of nodes) {
    const mine = keys.filter((key) => holders(key).includes(node.nodeId));
    const held = await localVersions(node, mine);
    for (const key of mine) {
      const got = held.get(key)!.text;
      if (got !== expected(key) && count++ < 5) problems.push(`${key} on ${node.name}: ${got}, expected ${expected(key)}`);
    }
  }
  return count === 0 ? undefined : `${count} wrong versions: ${problems.join('; ')}`;
}

/** Waits until `versionProblems` finds nothing; throws with the last problems at the deadline. */
export async function waitVersions(
  nodes: readonly NodeProcess[],
  keys: readonly string[],
  holders: (key: string) => readonly string[],
  expected: (key: string) => string,
  deadlineMs: number,
  what: string,
): Promise<void> {
  let last: string | undefined = 'not checked yet';
  try {
    await waitFor(
      async () => {
        last = await versionProblems(nodes, keys, holders, expected);
        return last === undefined;
      },
      { deadlineMs, intervalMs: 300, what },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last: ${last}`);
  }
}

/** Puts `keys` through `node`, `inFlight` at a time, with `valueOf(i)`; returns each key's acked version. */
export async function putAll(
  node: NodeProcess,
  keys: readonly string[],
  valueOf: (i: number) => Uint8Array,
  consistencyOf: (i: number) => string,
  inFlight = 16,
): Promise<Map<string, VersionMessage>> {
  const versions = new Map<string, VersionMessage>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) {
      const reply = await node.client.put(keys[i]!, valueOf(i), {}, consistencyOf(i));
      versions.set(keys[i]!, reply.version);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return versions;
}
