/**
 * `ckv whereis KEY` and `ckv haskey KEY`: which nodes hold a key, and this node's version of it.
 * In partitioned mode whereis prints the key's partition and its owners in each active layout
 * (up or down) and the owners reads ask; `--probe` also asks each owner its version (the query
 * protocol). haskey always answers from this node's own copy.
 */
import type { Command } from 'commander';
import type { WhereIsReplyMessage } from '../control/client.js';
import { CliError, printJson, versionText, withClient, writeStdout } from './common.js';
import { holderJson, versionFields, versionTime } from './json.js';

export function register(program: Command): void {
  program
    .command('whereis')
    .description('list the nodes that hold a key, with their versions (partitioned mode: its partition and owners)')
    .argument('<key>', 'the key')
    .option('--probe', "partitioned mode: also ask each owner its version")
    .option('--json', 'one JSON document: key and holders (nodeId, peerId, deleted, version, time, error); partitioned mode: partition, layouts (version, owners with up), readOwners')
    .action(async (key: string, options: { json?: boolean; probe?: boolean }, command: Command) => {
      const reply = await withClient(command, (client) => client.whereIs(key, options.probe ?? false));
      const holders = reply.holders;
      if (reply.partitioned) {
        await printPartitioned(key, reply, options.json ?? false);
        return;
      }
      if (options.json) await printJson({ key, holders: holders.map(holderJson) });
      if (holders.length === 0) throw new CliError(`no node holds ${key}`, 'notFound');
      if (options.json) return;
      const rows = holders.map((h) => `${h.nodeId || '-'}  ${h.peerId || '-'}  ${h.error ? `error: ${h.error}` : `${versionText(h.version)} (${versionTime(h.version)})${h.deleted ? ' (deleted)' : ''}`}`);
      await writeStdout(rows.join('\n') + '\n');
    });

  program
    .command('haskey')
    .description("print this node's version of a key (exit 1 if it has none or it was deleted)")
    .argument('<key>', 'the key')
    .option('--json', 'one JSON document: key, found, deleted, version, time')
    .action(async (key: string, options: { json?: boolean }, command: Command) => {
      const reply = await withClient(command, (client) => client.hasKey(key));
      if (options.json) await printJson({ key, found: reply.found && !reply.deleted, deleted: reply.deleted, ...versionFields(reply.version) });
      if (!reply.found) throw new CliError(`key not found: ${key}`, 'notFound');
      // A tombstone is this node's version of a deleted key: not found, like `get` (exit 1).
      if (reply.deleted) throw new CliError(`key was deleted: ${key} (tombstone ${versionText(reply.version)})`, 'notFound');
      if (!options.json) await writeStdout(`${versionText(reply.version)}\n`);
    });
}

async function printPartitioned(key: string, reply: WhereIsReplyMessage, json: boolean): Promise<void> {
  const layouts = reply.layouts.map((l) => ({ version: Number(l.version), owners: l.owners.map((o) => ({ nodeId: o.nodeId, peerId: o.peerId, up: o.up })) }));
  if (json) {
    await printJson({ key, partitioned: true, partition: reply.partition, layouts, readOwners: reply.readOwners, holders: reply.holders.map(holderJson) });
    return;
  }
  const lines = [`partition ${reply.partition}`];
  for (const layout of layouts) {
    lines.push(`layout ${layout.version}: ${layout.owners.map((o) => `${o.nodeId} (${o.up ? 'up' : 'down'})`).join(', ')}`);
  }
  lines.push(`reads ask: ${reply.readOwners.join(', ')}`);
  for (const h of reply.holders) {
    lines.push(`${h.nodeId || '-'}  ${h.peerId || '-'}  ${h.error ? `error: ${h.error}` : `${versionText(h.version)} (${versionTime(h.version)})${h.deleted ? ' (deleted)' : ''}`}`);
  }
  await writeStdout(lines.join('\n') + '\n');
}
