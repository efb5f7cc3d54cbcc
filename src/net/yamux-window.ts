/**
 * yamux window updates when half the receive window is used, not after every data frame.
 *
 * @chainsafe/libp2p-yamux 8.0.1 (the latest) sends a WindowUpdate frame from
 * `YamuxStream.handleData` after EVERY data frame it receives: its "is an update needed"
 * test is `recvWindowCapacity >= recvWindow`, false after any data. So each gossip message a
 * node receives cost it a second frame the other way (a noise encryption, a socket write) and
 * cost the sender a read, a decryption and a frame dispatch: in the convergence bench (500
 * writes/s, 5 nodes) sendWindowUpdate alone was 7.6 % of a node's busy time, besides the
 * sender's handling of the update. Sync streams paid the same per frame.
 *
 * The yamux specification leaves the moment to the implementation; hashicorp/yamux and
 * go-yamux send an update once the unacknowledged bytes reach half the window, which is what
 * this module makes the JS stream do: while the stream is established, an update is skipped
 * as long as more than half of the receive window is still granted to the sender. The sender
 * then always has at least half a window (128 KiB at the start) to send in while the update
 * travels, so throughput does not stall, and the window auto-tuning (doubling when a window
 * is used within 4 round trips) still runs at each update. Every other case runs the library's
 * own code unchanged: the first frames of a stream (SYN/ACK flags), a paused stream (no
 * update: the sender stalls, backpressure), a finished one.
 *
 * The class is not exported by the package, so it is loaded by file URL next to the package's
 * resolved entry point: the same module instance libp2p uses (one URL, one module); in the
 * bundle, the bundle's own copy (./yamux-stream-module.ts). If a
 * future version changes the class's shape, nothing is patched and `installYamuxWindowPolicy`
 * says so (the node logs it; test/unit/yamux-window.test.ts fails): the library's own
 * behaviour is kept, only slower.
 */
import { loadYamuxStreamModule } from './yamux-stream-module.js';

type YamuxStreamLike = {
  state: number;
  recvWindow: number;
  recvWindowCapacity: number;
};

interface StreamModule {
  YamuxStream?: { prototype: { sendWindowUpdate?: (this: YamuxStreamLike) => void } };
  StreamState?: { Established?: number };
}

export type YamuxWindowPolicy = 'installed' | 'unsupported';

const patched = Symbol.for('ckv.yamux.halfWindowUpdates');
let installing: Promise<YamuxWindowPolicy> | undefined;

/** Idempotent: patches YamuxStream once per process. */
export function installYamuxWindowPolicy(): Promise<YamuxWindowPolicy> {
  installing ??= install();
  return installing;
}

async function install(): Promise<YamuxWindowPolicy> {
  let module: StreamModule;
  try {
    module = (await loadYamuxStreamModule()) as StreamModule;
  } catch {
    return 'unsupported';
  }
  const proto = module.YamuxStream?.prototype as (Record<symbol, unknown> & { sendWindowUpdate?: (this: YamuxStreamLike) => void }) | undefined;
  const established = module.StreamState?.Established;
  const original = proto?.sendWindowUpdate;
  if (proto === undefined || typeof original !== 'function' || typeof established !== 'number') return 'unsupported';
  if (proto[patched] === true) return 'installed';
  proto.sendWindowUpdate = function sendWindowUpdate(this: YamuxStreamLike): void {
    // The fields are the library's; if they are not numbers, its code decides (as before).
    if (this.state === established && typeof this.recvWindowCapacity === 'number' && this.recvWindowCapacity > this.recvWindow / 2) return;
    original.call(this);
  };
  proto[patched] = true;
  return 'installed';
}
