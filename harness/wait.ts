/**
 * Waiting, with a deadline on every wait. Nothing in tests or benches sleeps to let something
 * happen: `waitFor` polls a condition every `intervalMs` until it holds or the deadline
 * passes, and `withDeadline` bounds a promise. Both fail with
 * `timed out after N ms waiting for <what>`, so a hang names what it was waiting for.
 *
 * A condition that throws counts as "not yet" (the last error is reported at the deadline),
 * except a `GiveUp` error, which ends the wait at once (e.g. the process being waited for
 * has exited). One check that has not settled a second past the deadline ends the wait too.
 * `sleep` exists for benches' measurement windows (pacing writes, an idle
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

/**
 * How long past the deadline one call of a condition may run before the wait gives up on it:
 * a condition that never settles (a request to a server that never answers) must not turn
 * the wait into a hang.
 */
const conditionOverrunMs = 1000;

/** Polls `condition` until it returns true; throws `timed out ... waiting for <what>` at the deadline. */
export async function waitFor(condition: () => Promise<boolean> | boolean, options: WaitOptions): Promise<void> {
  const { deadlineMs, what, intervalMs = 25 } = options;
  const deadline = performance.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      const boundMs = Math.max(0, deadline - performance.now()) + conditionOverrunMs;
      const holds = condition();
      if (typeof holds === 'boolean' ? holds : await withDeadline(holds, boundMs, `${what} (one check of the condition)`)) return;
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

/** How long one HTTP request of a test or bench may take, its body included. */
export const requestMsMax = 30_000;

/**
 * `fetch` with a deadline: unless `init` brings its own signal, the request and the reading
 * of its body are aborted after `deadlineMs`, so a server that never answers (or never ends a
 * body) fails the test, naming the URL, instead of hanging it. (Node's fetch would wait five
 * minutes for headers and five more between body chunks.)
 */
export async function fetchWithin(input: string | URL, init: RequestInit = {}, deadlineMs = requestMsMax): Promise<Response> {
  try {
    return await fetch(input, { signal: AbortSignal.timeout(deadlineMs), ...init });
  } catch (error) {
    const reason = error instanceof Error ? (error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message) : String(error);
    throw new Error(`${init.method ?? 'GET'} ${String(input)}: ${reason}`, { cause: error });
  }
}
