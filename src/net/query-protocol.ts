/**
 * `/ckv/<cluster>/query/1.0.0`: one request frame, one reply frame, then the stream closes.
 * Used by WhereIs: "which version of this key do you hold?". Frames: u8 version, u8 type
 * (only append: part of the protocol); request `whereis` = key; reply = the holder's node id
 * (8 bytes), u8 found, then for a found key u8 deleted and the version.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { ByteReader, ByteWriter, fromHex, toHex } from '../core/bytes.js';
import { checkKey, readVersion, writeVersion, type Version } from '../core/entry.js';
import { MalformedError } from '../core/errors.js';
import { keyBytesMax, nodeIdBytes } from '../core/limits.js';
import type { Replica } from '../core/replica.js';
import type { Counters } from '../util/counters.js';
import { FramedStream } from './framed-stream.js';
import type { CkvLibp2p } from './libp2p.js';

const queryVersion = 1;
const QueryType = { whereIs: 1 } as const;
const queryFrameBytesMax = keyBytesMax + 64;
const queryTimeoutMs = 5_000;

export function queryProtocolId(cluster: string): string {
  return `/ckv/${cluster}/query/1.0.0`;
}

export interface Holding {
  /** The answering node's id. */
  nodeId: string;
  /** Undefined if it holds no version of the key. */
  version: Version | undefined;
  deleted: boolean;
}

export class QueryService {
  readonly protocol: string;
  private started = false;

  constructor(
    private readonly components: { libp2p: CkvLibp2p; replica: Replica; counters: Counters },
    cluster: string,
  ) {
    this.protocol = queryProtocolId(cluster);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.components.libp2p.handle(this.protocol, (stream, connection) => void this.serve(stream, connection), {
      maxInboundStreams: 32,
    });
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.components.libp2p.unhandle(this.protocol).catch(() => undefined);
  }

  /** What `peer` holds of `key`. Throws on failure. */
  async whereIs(peer: PeerId, key: string): Promise<Holding> {
    checkKey(key);
    const signal = AbortSignal.timeout(queryTimeoutMs);
    const stream = await this.components.libp2p.dialProtocol(peer, this.protocol, { signal });
    const framed = new FramedStream(stream, { frameBytesMax: queryFrameBytesMax, signal });
    try {
      await framed.write(new ByteWriter().u8(queryVersion).u8(QueryType.whereIs).string(key).finish());
      const reply = await framed.read();
      if (!reply) throw new Error('peer closed the query without a reply');
      const r = new ByteReader(reply);
      if (r.u8() !== queryVersion) throw new MalformedError('unsupported query reply version');
      const nodeId = toHex(r.raw(nodeIdBytes));
      const found = r.u8() === 1;
      const holding: Holding = found ? { nodeId, deleted: r.u8() === 1, version: readVersion(r) } : { nodeId, deleted: false, version: undefined };
      r.end();
      await framed.close().catch(() => undefined);
      return holding;
    } catch (error) {
      framed.abort(error as Error);
      throw error;
    }
  }

  private async serve(stream: Stream, _connection: Connection): Promise<void> {
    const framed = new FramedStream(stream, { frameBytesMax: queryFrameBytesMax, signal: AbortSignal.timeout(queryTimeoutMs) });
    try {
      const request = await framed.read();
      if (!request) return;
      const r = new ByteReader(request);
      if (r.u8() !== queryVersion || r.u8() !== QueryType.whereIs) throw new MalformedError('unsupported query');
      const key = r.string(keyBytesMax, 'key');
      r.end();
      const entry = await this.components.replica.get(key);
      const w = new ByteWriter().u8(queryVersion).raw(fromHex(this.components.replica.nodeId)).u8(entry ? 1 : 0);
      if (entry) {
        w.u8(entry.value === null ? 1 : 0);
        writeVersion(w, entry.version);
      }
      await framed.write(w.finish());
      await framed.close();
    } catch (error) {
      this.components.counters.add('query_rejected');
      framed.abort(error as Error);
    }
  }
}
