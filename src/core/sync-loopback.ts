/**
 * Runs one sync session between two in-process parties with no network: each side runs the
 * session driver (session-driver.ts) over a pair of in-memory frame channels, so frames go
 * straight across, in order, with nothing lost. Counts round trips and bytes each way. Used
 * by unit tests and bench/sync-core.ts; the simulator and the libp2p binding run the same
 * driver over links with real delays and failures.
 */
import type { ReceivedEntries } from './received-entries.js';
import { assert } from './errors.js';
import { FrameChannel } from './frame-channel.js';
import { driveSession, type FrameTransport } from './session-driver.js';
import { SyncInitiator, SyncResponder, type SyncContext, type SyncResult } from './sync-session.js';

export interface LoopbackParty {
  ctx: SyncContext;
  apply: (entries: ReceivedEntries) => Promise<unknown>;
}

export interface LoopbackResult {
  initiator: SyncResult;
  responder: SyncResult;
  bytesToResponder: number;
  bytesToInitiator: number;
  framesToResponder: number;
  framesToInitiator: number;
}

export interface LoopbackOptions {
  /**
   * Sees each frame as its receiver reads it, after the receiver has handled every earlier
   * frame (bench/sync-core decodes them to count bytes by part).
   */
  onFrame?: (direction: 'toResponder' | 'toInitiator', frame: Uint8Array) => Promise<void> | void;
}

const framesMax = 1_000_000;

export async function runLoopbackSession(
  initiator: LoopbackParty,
  responder: LoopbackParty,
  salt: number,
  options: LoopbackOptions = {},
): Promise<LoopbackResult> {
  const toR = new FrameChannel();
  const toI = new FrameChannel();
  const counts = { bytesToResponder: 0, bytesToInitiator: 0, framesToResponder: 0, framesToInitiator: 0 };
  const fail = (error: Error): void => {
    toR.fail(error);
    toI.fail(error);
  };
  const transport = (inbox: FrameChannel, outbox: FrameChannel, direction: 'toResponder' | 'toInitiator'): FrameTransport => ({
    send: (frame) => {
      assert(counts.framesToResponder + counts.framesToInitiator < framesMax, 'loopback session does not end');
      if (direction === 'toResponder') {
        counts.bytesToResponder += frame.byteLength;
        counts.framesToResponder++;
      } else {
        counts.bytesToInitiator += frame.byteLength;
        counts.framesToInitiator++;
      }
      outbox.push(frame);
    },
    receive: async () => {
      // Both sides waiting for a frame and none in flight: the session can never end.
      if (inbox.pending === 0 && !inbox.isClosed && outbox.waiting && outbox.pending === 0) {
        fail(new Error('ckv assertion: loopback session ended without a result on both sides'));
      }
      const frame = await inbox.receive();
      if (frame !== undefined) await options.onFrame?.(direction === 'toResponder' ? 'toInitiator' : 'toResponder', frame);
      return frame;
    },
    close: () => outbox.close(),
  });
  const settled = await Promise.allSettled([
    driveSession(new SyncInitiator(initiator.ctx, salt), transport(toI, toR, 'toResponder'), { apply: initiator.apply }).catch(
      (error: unknown) => {
        fail(error as Error);
        throw error;
      },
    ),
    driveSession(new SyncResponder(responder.ctx), transport(toR, toI, 'toInitiator'), { apply: responder.apply }).catch(
      (error: unknown) => {
        fail(error as Error);
        throw error;
      },
    ),
  ]);
  const [i, r] = settled;
  if (i.status === 'rejected') throw i.reason;
  if (r.status === 'rejected') throw r.reason;
  assert(i.value && r.value, 'loopback session ended without a result on both sides');
  return { initiator: i.value, responder: r.value, ...counts };
}
