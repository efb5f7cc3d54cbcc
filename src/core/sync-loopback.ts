/**
 * Runs one sync session between two in-process parties with no network: the initiator's
 * frames go straight to the responder and back, in order, with nothing lost. Counts round
 * trips and bytes each way. Used by unit tests and bench/sync-core.ts; the simulator and the
 * libp2p binding drive the same state machines with real delays and failures.
 */
import type { Entry } from './entry.js';
import { assert } from './errors.js';
import { SyncInitiator, SyncResponder, type SyncContext, type SyncEffect, type SyncResult } from './sync-session.js';

export interface LoopbackParty {
  ctx: SyncContext;
  apply: (entries: Entry[]) => Promise<unknown>;
}

export interface LoopbackResult {
  initiator: SyncResult;
  responder: SyncResult;
  bytesToResponder: number;
  bytesToInitiator: number;
  framesToResponder: number;
  framesToInitiator: number;
}

export async function runLoopbackSession(
  initiator: LoopbackParty,
  responder: LoopbackParty,
  salt: number,
): Promise<LoopbackResult> {
  const i = new SyncInitiator(initiator.ctx, salt);
  const r = new SyncResponder(responder.ctx);
  const toR: Uint8Array[] = [];
  const toI: Uint8Array[] = [];
  const counts = { bytesToResponder: 0, bytesToInitiator: 0, framesToResponder: 0, framesToInitiator: 0 };
  let iResult: SyncResult | undefined;
  let rResult: SyncResult | undefined;

  const drive = async (
    effects: AsyncGenerator<SyncEffect>,
    party: LoopbackParty,
    outbox: Uint8Array[],
    onDone: (r: SyncResult) => void,
  ): Promise<void> => {
    for await (const effect of effects) {
      if (effect.kind === 'send') outbox.push(effect.frame);
      else if (effect.kind === 'apply') await party.apply(effect.entries);
      else onDone(effect.result);
    }
  };

  await drive(i.start(), initiator, toR, (x) => (iResult = x));
  let guard = 0;
  while (toR.length > 0 || toI.length > 0) {
    assert(guard++ < 1_000_000, 'loopback session does not end');
    const frameForR = toR.shift();
    if (frameForR) {
      counts.bytesToResponder += frameForR.byteLength;
      counts.framesToResponder++;
      if (!r.isDone) await drive(r.handle(frameForR), responder, toI, (x) => (rResult = x));
      continue;
    }
    const frameForI = toI.shift()!;
    counts.bytesToInitiator += frameForI.byteLength;
    counts.framesToInitiator++;
    if (!i.isDone) await drive(i.handle(frameForI), initiator, toR, (x) => (iResult = x));
  }
  assert(iResult && rResult, 'loopback session ended without a result on both sides');
  return { initiator: iResult, responder: rResult, ...counts };
}
