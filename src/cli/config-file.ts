/**
 * `ckv node start --config FILE`: the node's settings in a TOML file, keys named like the
 * flags (`data-dir = "/var/lib/ckv"`, `listen = ["/ip4/0.0.0.0/tcp/4455"]`,
 * `sync-interval-ms = 500`, `mdns = false`). A flag given on the command line wins over the
 * file; the file wins over the defaults. An unknown key, a value of the wrong type, or a file
 * that is not TOML is a usage error (exit 2) naming the key (or the line), before the node
 * opens anything. The file is read whole: it is at most `configFileBytesMax`.
 *
 * Each key maps to the commander option it stands for (its attribute name), in the form the
 * flag parser takes (strings for numbers, arrays for repeatable flags), so a setting from the
 * file goes through exactly the checks of the same flag.
 */
import { readFile, stat } from 'node:fs/promises';
import { parse, TomlError } from 'smol-toml';
import { errnoReason } from '../util/errno.js';
import { CliError } from './common.js';

/** A config file is a few lines; anything this large is not one. */
const configFileBytesMax = 1024 * 1024;

type KeyType = 'string' | 'strings' | 'boolean' | 'integer';

/** Every key a config file may hold: its type, and the commander attribute it sets. */
export const configKeys: Readonly<Record<string, { type: KeyType; attribute: string }>> = {
  'data-dir': { type: 'string', attribute: 'dataDir' },
  socket: { type: 'string', attribute: 'socket' },
  listen: { type: 'strings', attribute: 'listen' },
  bootstrap: { type: 'strings', attribute: 'bootstrap' },
  mdns: { type: 'boolean', attribute: 'mdns' },
  cluster: { type: 'string', attribute: 'cluster' },
  'cluster-key': { type: 'string', attribute: 'clusterKey' },
  http: { type: 'string', attribute: 'http' },
  'sync-interval-ms': { type: 'integer', attribute: 'syncIntervalMs' },
  'value-bytes-max': { type: 'integer', attribute: 'valueBytesMax' },
  'merkle-depth': { type: 'integer', attribute: 'merkleDepth' },
  'clock-drift-ms-max': { type: 'integer', attribute: 'clockDriftMsMax' },
  'inbound-sessions-max': { type: 'integer', attribute: 'inboundSessionsMax' },
  'log-level': { type: 'string', attribute: 'logLevel' },
  'log-format': { type: 'string', attribute: 'logFormat' },
  replicas: { type: 'integer', attribute: 'replicas' },
  weight: { type: 'integer', attribute: 'weight' },
  'auto-join': { type: 'boolean', attribute: 'autoJoin' },
  'gc-interval-ms': { type: 'integer', attribute: 'gcIntervalMs' },
  'gc-batch': { type: 'integer', attribute: 'gcBatch' },
  'warm-up-entries': { type: 'integer', attribute: 'warmUpEntries' },
  // The partitioned-mode contract spells it with an underscore; both are accepted.
  auto_join: { type: 'boolean', attribute: 'autoJoin' },
};

/** The file's settings as commander option values (attribute -> value in flag form). */
export async function readConfigFile(path: string): Promise<Record<string, string | string[] | boolean>> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new CliError(`--config ${path} is not a regular file`, 'usage');
    if (info.size > configFileBytesMax) throw new CliError(`--config ${path} is ${info.size} bytes; a config file is at most ${configFileBytesMax}`, 'usage');
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read --config ${path}: ${errnoReason(error)}`, 'usage');
  }
  return configValues(text, path);
}

/** Parses and checks the TOML text (exported for tests). */
export function configValues(text: string, path: string): Record<string, string | string[] | boolean> {
  let table: Record<string, unknown>;
  try {
    table = parse(text) as Record<string, unknown>;
  } catch (error) {
    const where = error instanceof TomlError ? ` (line ${error.line}, column ${error.column})` : '';
    const reason = (error as Error).message.split('\n')[0]!;
    throw new CliError(`--config ${path} is not valid TOML${where}: ${reason}`, 'usage');
  }
  const values: Record<string, string | string[] | boolean> = {};
  for (const [key, value] of Object.entries(table)) {
    const spec = configKeys[key];
    if (!spec) {
      const known = Object.keys(configKeys).join(', ');
      throw new CliError(`--config ${path}: unknown key ${JSON.stringify(key)} (known keys: ${known})`, 'usage');
    }
    values[spec.attribute] = checked(path, key, spec.type, value);
  }
  return values;
}

function checked(path: string, key: string, type: KeyType, value: unknown): string | string[] | boolean {
  const wrong = (what: string): CliError => new CliError(`--config ${path}: ${key} must be ${what}, not ${JSON.stringify(value)}`, 'usage');
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw wrong('a string');
      return value;
    case 'strings':
      if (typeof value === 'string') return [value];
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw wrong('a string or an array of strings');
      return value as string[];
    case 'boolean':
      if (typeof value !== 'boolean') throw wrong('true or false');
      return value;
    case 'integer':
      if (typeof value !== 'number' && typeof value !== 'bigint') throw wrong('a whole number');
      if (!Number.isSafeInteger(Number(value))) throw wrong('a whole number');
      return String(value);
  }
}
