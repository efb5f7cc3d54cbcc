/**
 * `ckv layout [--json]` (partitioned mode): the cluster's layout as this node sees it: the
 * newest version with K and each member's weight, partitions and whether it is up; every
 * active layout while a change is in progress (partitions synced and pending); the changes
 * staged on this node and the plan of applying them (partitions that change owners, replicas
 * moved, per node before/after/gained/lost, and what moves where with sizes: keys and bytes
 * per (owners before, gaining owner), from the partition sizes nodes report in layout
 * gossip), or the plan of the change in progress; conflicts; the removed nodes.
 * `--partitions` adds each partition's owners and size, and the plan's moves per partition.
 *
 * `ckv layout add NODE [--weight W]`, `remove NODE`, `weight NODE W`, `replicas K|all` stage a
 * change on this node (printing the layout and plan after it); `apply` commits the staged
 * changes as the next version (printing it and the plan); `revert` drops them. NODE is a node
 * id (16 hex digits) or a member's peer id. A change that cannot be made is a one-line error,
 * exit 4; a node in full-replication mode refuses every layout command (exit 4).
 */
import type { Command } from 'commander';
import type { LayoutReplyMessage } from '../control/proto.js';
import { CliError, formatBytes, printJson, withClient, writeStdout } from './common.js';

const weightMax = 1_000_000;

export function register(program: Command): void {
  const layout = program
    .command('layout')
    .description('partitioned mode: show the layout (members, weights, K, changes in progress, staged changes and their plan); add, remove, weight, replicas, apply, revert change it')
    .option('--json', 'print as one JSON document (README "JSON output")')
    .option('--partitions', "also each partition: its owners and size, and the plan's moves per partition")
    .action(async (options: { json?: boolean; partitions?: boolean }, command: Command) => {
      const reply = await withClient(command, (client) => client.layout());
      await show(reply, options.json === true, options.partitions === true);
    });

  const staging = (name: string, description: string, args: string[], build: (values: string[], options: { weight?: string }) => { action: string; node?: string; weight?: number; replicas?: string }, weightOption = false): void => {
    const sub = layout.command(name).description(description);
    for (const arg of args) sub.argument(arg);
    if (weightOption) sub.option('--weight <w>', `its weight, 0..${weightMax} (0 = a gateway, owning nothing; default 1)`);
    sub.option('--json', 'print the layout after the change as one JSON document');
    sub.action(async (...params: unknown[]) => {
      const command = params.at(-1) as Command;
      // --json after the subcommand is the parent's option (commander parses it there): read both.
      const options = command.optsWithGlobals<{ weight?: string; json?: boolean }>();
      const values = params.slice(0, args.length) as string[];
      const request = build(values, options);
      const reply = await withClient(command, (client) => client.layoutChange(request));
      if (!options.json && reply.committedVersion !== '0') await writeStdout(`committed layout version ${reply.committedVersion}\n`);
      await show(reply, options.json === true);
    });
  };
  staging('add', 'stage adding a node (or changing its weight)', ['<node>'], ([node], options) => ({ action: 'add', node, weight: weightOf(options.weight ?? '1') }), true);
  staging('remove', 'stage removing a node (a running node should rather run ckv node leave)', ['<node>'], ([node]) => ({ action: 'remove', node }));
  staging('weight', "stage a member's new weight", ['<node>', '<w>'], ([node, w]) => ({ action: 'weight', node, weight: weightOf(w!) }));
  staging('replicas', "stage a new K for the cluster ('all': every key on every node of weight > 0)", ['<k>'], ([k]) => {
    if (k !== 'all' && !/^\d+$/.test(k!)) throw new CliError(`replicas must be 'all' or a whole number from 1 to 64, not ${k}`, 'usage');
    return { action: 'replicas', replicas: k };
  });
  staging('apply', 'commit the staged changes as the next layout version', [], () => ({ action: 'apply' }));
  staging('revert', 'drop the staged changes', [], () => ({ action: 'revert' }));
}

function weightOf(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n > weightMax) throw new CliError(`weight must be a whole number from 0 to ${weightMax}, not ${text}`, 'usage');
  return n;
}

async function show(reply: LayoutReplyMessage, json: boolean, partitions = false): Promise<void> {
  if (json) {
    await printJson(layoutJson(reply, partitions));
    return;
  }
  await writeStdout(layoutText(reply) + (partitions ? partitionsText(reply) : ''));
}

/** `ckv layout --json`: numbers as numbers, K as a number or "all"; `partitions`: the per-partition detail too. */
export function layoutJson(r: LayoutReplyMessage, partitions = false): object {
  return {
    self: r.self,
    replicas: r.replicas,
    current: r.current && {
      version: Number(r.current.version),
      replicas: r.current.replicas === 0 ? 'all' : r.current.replicas,
      digest: r.current.digest,
      members: r.current.members.map((m) => ({ nodeId: m.nodeId, peerId: m.peerId, weight: m.weight, partitions: m.partitions, up: m.up })),
      removed: r.current.removed.map((x) => ({ nodeId: x.nodeId, at: Number(x.at) })),
    },
    active: r.active.map((a) => ({
      version: Number(a.version),
      digest: a.digest,
      nodes: a.nodes,
      partitionsSynced: a.partitionsSynced,
      partitionsPending: a.partitionsPending,
      syncStarted: a.syncStarted,
    })),
    staged: r.staged.map((s) => (s.remove ? { nodeId: s.nodeId, remove: true } : { nodeId: s.nodeId, weight: s.weight })),
    stagedReplicas: r.stagedReplicas === '' ? null : r.stagedReplicas === 'all' ? 'all' : Number(r.stagedReplicas),
    stagedError: r.stagedError,
    conflicts: r.conflicts.map((c) => ({ version: Number(c.version), kept: c.kept, dropped: c.dropped })),
    plan: r.plan && {
      of: r.planOf,
      fromVersion: Number(r.plan.fromVersion),
      toVersion: Number(r.plan.toVersion),
      partitionsChanged: r.plan.partitionsChanged,
      replicasMoved: r.plan.replicasMoved,
      replicasAfter: r.plan.replicasAfter,
      nodes: r.plan.nodes,
      keysMoved: Number(r.plan.keysMoved),
      bytesMoved: Number(r.plan.bytesMoved),
      transfers: r.plan.transfers.map((t) => ({ from: t.from, to: t.to, partitions: t.partitions, keys: Number(t.keys), bytes: Number(t.bytes) })),
      ...(partitions ? { moves: r.plan.moves.map((m) => ({ partition: m.partition, from: m.from, to: m.to, gaining: m.gaining, keys: Number(m.keys), bytes: Number(m.bytes) })) } : {}),
    },
    sizesReporters: r.sizesReporters,
    ...(partitions ? { partitions: r.partitions.map((p) => ({ partition: p.partition, owners: p.owners, keys: Number(p.keys), bytes: Number(p.bytes) })) } : {}),
    committedVersion: Number(r.committedVersion),
  };
}

/** `ckv layout --partitions`: each partition's owners and size, and what moves (the plan's moves). */
function partitionsText(r: LayoutReplyMessage): string {
  const lines = ['partition  keys        bytes  owners'];
  const moves = new Map((r.plan?.moves ?? []).map((m) => [m.partition, m]));
  for (const p of r.partitions) {
    const move = moves.get(p.partition);
    const moving = move ? `  (-> ${move.to.join(',')}: gains ${move.gaining.join(',')})` : '';
    lines.push(`${hexOf(p.partition).padEnd(9)}  ${p.keys.padStart(8)}  ${formatBytes(Number(p.bytes)).padStart(10)}  ${p.owners.join(',')}${moving}`);
  }
  return lines.join('\n') + '\n';
}

function hexOf(partition: number): string {
  return partition.toString(16).padStart(2, '0');
}

function layoutText(r: LayoutReplyMessage): string {
  const lines: string[] = [];
  if (!r.current) {
    lines.push(`no layout yet (this node: ${r.self}, --replicas ${r.replicas})`);
  } else {
    const k = r.current.replicas === 0 ? 'all' : String(r.current.replicas);
    lines.push(`layout v${r.current.version}  replicas ${k}  ${r.current.members.length} nodes  digest ${r.current.digest}`);
    for (const m of r.current.members) {
      const state = m.nodeId === r.self ? 'self' : m.up ? 'up' : 'down';
      lines.push(`  ${m.nodeId}  weight ${String(m.weight).padStart(4)}  ${String(m.partitions).padStart(3)} partitions  ${state}${m.peerId ? `  ${m.peerId}` : ''}`);
    }
    if (r.current.removed.length > 0) lines.push(`removed (not rejoined automatically; ckv layout add NODE lifts it): ${r.current.removed.map((x) => `${x.nodeId} at v${x.at}`).join(', ')}`);
  }
  if (r.active.length > 1) {
    lines.push(`change in progress: ${r.active.length} active layouts`);
    for (const a of r.active.slice(1)) {
      lines.push(`  v${a.version}: ${a.partitionsSynced} partitions synced, ${a.partitionsPending} pending${a.syncStarted ? '' : ' (waiting for every node to know it)'}`);
    }
  }
  if (r.staged.length > 0 || r.stagedReplicas !== '') {
    lines.push('staged (ckv layout apply to commit, revert to drop):');
    for (const s of r.staged) lines.push(`  ${s.remove ? 'remove' : 'add'} ${s.nodeId}${s.remove ? '' : ` weight ${s.weight}`}`);
    if (r.stagedReplicas !== '') lines.push(`  replicas ${r.stagedReplicas}`);
    if (r.stagedError) lines.push(`  cannot be applied: ${r.stagedError}`);
  }
  for (const c of r.conflicts) lines.push(`conflict at v${c.version}: kept ${c.kept}, dropped ${c.dropped}`);
  if (r.plan) {
    const from = r.plan.fromVersion === '0' ? 'nothing' : `v${r.plan.fromVersion}`;
    lines.push(
      `plan (${r.planOf}) ${from} -> v${r.plan.toVersion}: ${r.plan.partitionsChanged} partitions change owners, ${r.plan.replicasMoved} of ${r.plan.replicasAfter} partition-replicas move`,
    );
    for (const n of r.plan.nodes) {
      if (n.gained === 0 && n.lost === 0 && n.partitionsBefore === n.partitionsAfter) continue;
      lines.push(`  ${n.nodeId}  ${n.partitionsBefore} -> ${n.partitionsAfter} partitions  (+${n.gained} -${n.lost})`);
    }
    const sources = r.sizesReporters === 0 ? 'no node reported sizes yet' : `sizes as ${r.sizesReporters} node${r.sizesReporters === 1 ? '' : 's'} reported them; bytes estimated`;
    lines.push(`moves: ${r.plan.keysMoved} keys, ${formatBytes(Number(r.plan.bytesMoved))} in all (${sources})`);
    if (r.plan.transfers.length > 0) {
      lines.push(`  ${'to'.padEnd(16)}  ${'partitions'.padStart(10)}  ${'keys'.padStart(10)}  ${'bytes'.padStart(10)}  from (owners before)`);
      for (const t of r.plan.transfers) {
        lines.push(`  ${t.to.padEnd(16)}  ${String(t.partitions).padStart(10)}  ${t.keys.padStart(10)}  ${formatBytes(Number(t.bytes)).padStart(10)}  ${t.from.join(',') || '(nothing: a first layout)'}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}
