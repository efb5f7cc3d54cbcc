/**
 * The one driver of sync sessions: it runs a SyncInitiator or a SyncResponder over a
 * transport until the session has a result. The libp2p binding (src/net/sync-protocol.ts),
 * the in-process loopback (sync-loopback.ts) and the simulator (test/sim/) all use it, so
 * the effect loop, the order of sends and applies, and the end of a session are the same
 * code everywhere; they differ only in how frames move.
 *
 * Contract:
 * - Effects run in order: `send` is awaited (a transport may apply backpressure), `apply`
 *   is awaited before the next effect is pulled (entries are merged before we read on).
 * - The next frame is read only once the previous one's effects are done.
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
import type { Entry } from './entry.js';
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
  /** Merge entries from the peer (into the replica); awaited before the session goes on. */
  apply(entries: Entry[]): Promise<unknown>;
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
  let result = initiator ? await run(initiator.start(), transport, hooks) : undefined;
  let helloSeen = false;
  while (!result) {
    const frame = await transport.receive();
    if (frame === undefined) throw new Error('peer ended the session early');
    result = await run(machine.handle(frame), transport, hooks);
    if (responder && !helloSeen && responder.peerWallMs !== undefined) {
      helloSeen = true;
      hooks.onHello?.(responder.peerWallMs, responder.peerEntryCount ?? -1);
    }
  }
  if (initiator && (await transport.receive()) !== undefined) throw new Error('peer sent frames after the session ended');
  await transport.close();
  return result;
}

/** Carry out effects until the state machine waits for the next frame or is done. */
async function run(effects: AsyncGenerator<SyncEffect>, transport: FrameTransport, hooks: SessionHooks): Promise<SyncResult | undefined> {
  for await (const effect of effects) {
    if (effect.kind === 'send') await transport.send(effect.frame);
    else if (effect.kind === 'apply') await hooks.apply(effect.entries);
    else return effect.result;
  }
  return undefined;
}
