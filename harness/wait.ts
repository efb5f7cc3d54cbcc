/**
 * Waiting, with a deadline on every wait. Nothing in tests or benches sleeps to let something
 * happen: `waitFor` polls a condition every `intervalMs` until it holds or the deadline
 * passes, and `withDeadline` bounds a promise. Both fail with
 * `timed out after N ms waiting for <what>`, so a hang names what it was waiting for.
 *
 * A condition that throws counts as "not yet" (the last error is reported at the deadline),
 * except a `GiveUp` error, which ends the wait at once (e.g. the process being waited for
 * has exited). `sleep` exists for benches' measurement windows (pacing writes, an idle
 * interval being measured), never to wait for a state.
 */

export interface WaitOptions {
  /** Give up (throw) after this many ms. */
  deadlineMs: number;
  /** What we are waiting for, for the error message: "the node to answer status". */
  what: string;
  /** Poll every this many ms. Default 25. */
  intervalMs?: number;
}

/** Thrown by a waitFor condition to stop waiting at once (other errors count as "not yet"). */
export class GiveUp extends Error {
  override name = 'GiveUp';
}

function timedOut(deadlineMs: number, what: string, lastError?: unknown): Error {
  const cause = lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})` : '';
  return new Error(`timed out after ${deadlineMs} ms waiting for ${what}${cause}`);
}

/** Polls `condition` until it returns true; throws `timed out ... waiting for <what>` at the deadline. */
export async function waitFor(condition: () => Promise<boolean> | boolean, options: WaitOptions): Promise<void> {
  const { deadlineMs, what, intervalMs = 25 } = options;
  const deadline = performance.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      lastError = error;
    }
    if (performance.now() >= deadline) throw timedOut(deadlineMs, what, lastError);
    await sleep(intervalMs);
  }
}

/** `promise`, or a rejection naming `what` if it takes longer than `deadlineMs`. */
export function withDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut(deadlineMs, what)), deadlineMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A pause of `ms` (benches' measurement windows and pacing only; never to wait for a state). */
export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
