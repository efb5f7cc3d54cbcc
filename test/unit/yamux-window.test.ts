/**
 * The yamux window-update policy (src/net/yamux-window.ts) on the library's real YamuxStream
 * class: the frames a receiving stream sends back are collected, and counted against the data
 * frames it receives. Without the policy every data frame is answered by a WindowUpdate; with
 * it, one update per half window, carrying the bytes consumed, and none while paused.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { logger } from '@libp2p/logger';
import { Uint8ArrayList } from 'uint8arraylist';
import { installYamuxWindowPolicy } from '../../src/net/yamux-window.js';

interface Header {
  type: number;
  flag: number;
  streamID: number;
  length: number;
}
interface Stream {
  state: number;
  recvWindow: number;
  handleData(frame: { header: Header; data: Uint8ArrayList }): void;
  sendPause(): void;
  sendResume(): void;
}
type StreamCtor = new (init: Record<string, unknown>) => Stream;

let YamuxStream: StreamCtor;
let StreamState: { SYNReceived: number; Established: number };
let FrameType: { Data: number; WindowUpdate: number };
let Flag: { ACK: number };

before(async () => {
  assert.equal(await installYamuxWindowPolicy(), 'installed', 'the policy must apply to the yamux version in use');
  const entry = import.meta.resolve('@chainsafe/libp2p-yamux');
  ({ YamuxStream, StreamState } = (await import(new URL('./stream.js', entry).href)) as { YamuxStream: StreamCtor; StreamState: typeof StreamState });
  ({ FrameType, Flag } = (await import(new URL('./frame.js', entry).href)) as { FrameType: typeof FrameType; Flag: typeof Flag });
});

/** An inbound stream (as the remote opened it) whose outgoing frames are collected. */
function receiver(): { stream: Stream; sent: Header[] } {
  const sent: Header[] = [];
  const stream = new YamuxStream({
    id: '1',
    streamId: 1,
    state: StreamState.SYNReceived,
    direction: 'inbound',
    log: logger('ckv:test:yamux'),
    getRTT: () => -1, // no round-trip estimate: the window stays at its initial size
    sendFrame: (header: Header) => {
      sent.push(header);
      return true;
    },
  });
  return { stream, sent };
}

function data(stream: Stream, bytes: number): void {
  stream.handleData({ header: { type: FrameType.Data, flag: 0, streamID: 1, length: bytes }, data: new Uint8ArrayList(new Uint8Array(bytes)) });
}

describe('yamux window updates', () => {
  it('answers the first frame (ACK), then stays silent while more than half the window is granted', () => {
    const { stream, sent } = receiver();
    const window = stream.recvWindow;
    data(stream, 100);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.type, FrameType.WindowUpdate);
    assert.equal(sent[0]!.flag & Flag.ACK, Flag.ACK);
    assert.equal(stream.state, StreamState.Established);
    // 1000 small messages (a gossip stream's traffic): 100 KiB, under half of the 256 KiB window.
    for (let i = 0; i < 1000; i++) data(stream, 100);
    assert.ok(1000 * 100 < window / 2);
    assert.equal(sent.length, 1, 'no window update per data frame');
  });

  it('sends one update, for all consumed bytes, once half the window is used', () => {
    const { stream, sent } = receiver();
    const window = stream.recvWindow;
    data(stream, 1); // the ACK; the window is topped up again
    const frame = 1024;
    const framesToHalf = Math.ceil(window / 2 / frame);
    for (let i = 0; i < framesToHalf - 1; i++) data(stream, frame);
    assert.equal(sent.length, 1);
    data(stream, frame);
    assert.equal(sent.length, 2);
    assert.equal(sent[1]!.type, FrameType.WindowUpdate);
    assert.equal(sent[1]!.length, framesToHalf * frame);
    // And again for the next half window: a long transfer never runs out of window.
    for (let i = 0; i < framesToHalf; i++) data(stream, frame);
    assert.equal(sent.length, 3);
    assert.equal(sent[2]!.length, framesToHalf * frame);
  });

  it('grants nothing while paused (backpressure), and the consumed bytes on resume', () => {
    const { stream, sent } = receiver();
    const window = stream.recvWindow;
    data(stream, 1);
    stream.sendPause();
    for (let i = 0; i < 4; i++) data(stream, window / 4 - 1); // nearly the whole window
    assert.equal(sent.length, 1);
    stream.sendResume();
    assert.equal(sent.length, 2);
    assert.equal(sent[1]!.length, 4 * (window / 4 - 1));
  });
});
