/**
 * The one driver of sync sessions: it runs a SyncInitiator or a SyncResponder over a
 * transport until the session has a result. The libp2p binding (src/net/sync-protocol.ts),
 * the in-process loopback (sync-loopback.ts) and the simulator (test/sim/) all use it, so
 * the effect loop, the order of sends and applies, and the end of a session are the same
 * code everywhere; they differ only in how frames move.
 *
 * Contract:
 * - Effects run in order: `send` is awaited (a transport may apply backpressure).
 * - `apply` is pipelined: consecutive Entries frames are handed to `hooks.apply` without
 *   waiting for each other's commit, so the replica commits one batch while the next frames
 *   arrive and decode. Bounded: while applies of `syncApplyBytesInFlightMax` bytes (keys and
 *   values) are pending, the oldest is awaited before the next starts (one is always let
 *   through, however large). Every pending apply is awaited before a frame of any other type
 *   is handled and before any `send` or result: the state machines compare their trees only
 *   after all they received is merged, and a responder closes only after applying everything.
 * - The next frame is read only once the previous one's effects are started (sends done).
 * - `receive()` resolving undefined means the peer closed its side: before our result that
 *   is an error ('peer ended the session early').
 * - With a result, the responder closes its side; it does so only after applying
 *   everything the initiator pushed. The initiator then waits for that close (anything
 *   else is an error), so its next session does not see, and re-send, entries still in
 *   flight; then it closes its side too.
 * - Errors (a malformed frame, a failed transport, a failed apply) reject; the caller
 *   aborts the transport. Nothing received after a bad frame is applied.
 * There are no timers here: the caller bounds a session's time (and aborts the transport).
 */
import { syncApplyBytesInFlightMax } from './limits.js';
import type { ReceivedEntries } from './received-entries.js';
import { FrameType } from './sync-frames.js';
import { SyncInitiator, type SyncEffect, type SyncResponder, type SyncResult } from './sync-session.js';

/** How frames move between the two parties: a stream, an in-memory channel, a simulated link. */
export interface FrameTransport {
  send(frame: Uint8Array): void | Promise<void>;
  /** The peer's next frame; undefined once the peer closed its side. Rejects if the link failed. */
  receive(): Promise<Uint8Array | undefined>;
  /** Close our sending side (the peer's receive() then resolves undefined). */
  close(): void | Promise<void>;
}

export interface SessionHooks {
  /**
   * Merge entries from the peer (into the replica: Replica.applyReceived), as their received
   * bytes; awaited before the session goes on.
   */
  apply(entries: ReceivedEntries): Promise<unknown>;
  /** Responder only: once, when the peer's Hello is read: its wall clock (0 if it did not say) and entry count. */
  onHello?(peerWallMs: number, peerEntryCount: number): void;
}

export async function driveSession(
  machine: SyncInitiator | SyncResponder,
  transport: FrameTransport,
  hooks: SessionHooks,
): Promise<SyncResult> {
  const initiator = machine instanceof SyncInitiator ? machine : undefined;
  const responder = initiator === undefined ? (machine as SyncResponder) : undefined;
  const applies = new Applies(hooks);
  // The responder reports the peer's Hello as soon as it has read it, before carrying out
  // any effect: its answer may stream a whole delta or state first, and the peer's clock
  // offset is measured from when the Hello arrived (late, the peer would look behind).
  let helloSeen = false;
  const noteHello = (): void => {
    if (responder && !helloSeen && responder.peerWallMs !== undefined) {
      helloSeen = true;
      hooks.onHello?.(responder.peerWallMs, responder.peerEntryCount ?? -1);
    }
  };
  try {
    let result = initiator ? await run(initiator.start(), transport, applies) : undefined;
    while (!result) {
      const frame = await transport.receive();
      if (frame === undefined) throw new Error('peer ended the session early');
      // Byte 1 is the frame type (sync-frames.ts); anything but Entries waits for the applies.
      if (frame[1] !== FrameType.entries) await applies.settle();
      result = await run(machine.handle(frame), transport, applies, noteHello);
      noteHello();
    }
    await applies.settle();
    if (initiator && (await transport.receive()) !== undefined) throw new Error('peer sent frames after the session ended');
    await transport.close();
    return result;
  } finally {
    // On an error, applies already started still finish (what they merge stays merged); only
    // their failures are not reported twice.
    applies.abandon();
  }
}

/** Applies started and not yet awaited, oldest first, within syncApplyBytesInFlightMax. */
class Applies {
  private readonly pending: { done: Promise<void>; bytes: number }[] = [];
  private bytes = 0;
  private failure: { error: unknown } | undefined;

  constructor(private readonly hooks: SessionHooks) {}

  async start(entries: ReceivedEntries): Promise<void> {
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) bytes += entries.keyBytes(i) + entries.valueBytes(i);
    while (this.pending.length > 0 && this.bytes + bytes > syncApplyBytesInFlightMax) await this.awaitOldest();
    this.check();
    const done = this.hooks.apply(entries).then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= { error };
      },
    );
    this.pending.push({ done, bytes });
    this.bytes += bytes;
  }

  /** Every pending apply done; rejects with the first failure. */
  async settle(): Promise<void> {
    while (this.pending.length > 0) await this.awaitOldest();
    this.check();
  }

  abandon(): void {
    this.pending.length = 0;
    this.bytes = 0;
  }

  private async awaitOldest(): Promise<void> {
    const oldest = this.pending.shift()!;
    this.bytes -= oldest.bytes;
    await oldest.done;
    this.check();
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
  }
}

/** Carry out effects until the state machine waits for the next frame or is done. */
async function run(
  effects: AsyncGenerator<SyncEffect>,
  transport: FrameTransport,
  applies: Applies,
  beforeEach?: () => void,
): Promise<SyncResult | undefined> {
  for await (const effect of effects) {
    beforeEach?.();
    if (effect.kind === 'apply') {
      await applies.start(effect.entries);
      continue;
    }
    await applies.settle();
    if (effect.kind === 'send') await transport.send(effect.frame);
    else return effect.result;
  }
  return undefined;
}
