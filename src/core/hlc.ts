/**
 * Hybrid logical clock (Kulkarni et al. 2014), 64 bits: 48 bits of wall milliseconds and a
 * 16-bit logical counter, held as a bigint so stamps compare with `<`.
 *
 * `now(wallMs)` stamps a local write; `receive(remote, wallMs)` folds in every remote stamp
 * we accept, so a causally later write always gets a larger stamp. The wall clock is passed
 * in (the core reads no clock). A remote stamp more than `driftMsMax` ahead of our wall
 * clock is refused (ClockDriftError) instead of dragging our clock into the future.
 *
 * Counter overflow (65,536 stamps in one millisecond) moves the stamp to the next
 * millisecond rather than blocking: stamps stay unique and increasing, and the clock runs
 * ahead of the wall by at most 1 ms per 65,536 stamps, which the next real tick absorbs.
 *
 * Restarts: the node persists `last` with every write batch and passes it back to the
 * constructor, so a restart, even with the wall clock set back, never issues a smaller stamp.
 */
import { ClockDriftError, assert } from './errors.js';
import { clockDriftMsMax, hlcCounterMax, hlcWallMsMax } from './limits.js';

export type Hlc = bigint;

export const hlcZero: Hlc = 0n;

export function hlcPack(wallMs: number, counter: number): Hlc {
  // Messages made only on failure (a number made into text for every stamp costs more than the stamp).
  if (!(Number.isInteger(wallMs) && wallMs >= 0 && wallMs <= hlcWallMsMax)) assert(false, `wall ms out of range: ${wallMs}`);
  if (!(Number.isInteger(counter) && counter >= 0 && counter <= hlcCounterMax)) assert(false, `counter out of range: ${counter}`);
  return (BigInt(wallMs) << 16n) | BigInt(counter);
}

export function hlcWallMs(hlc: Hlc): number {
  return Number(hlc >> 16n);
}

export function hlcCounter(hlc: Hlc): number {
  return Number(hlc & 0xffffn);
}

export function hlcCompare(a: Hlc, b: Hlc): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function hlcToString(hlc: Hlc): string {
  return `${hlcWallMs(hlc)}.${hlcCounter(hlc)}`;
}

export interface HybridClockOptions {
  /** The largest stamp issued or received before (persisted); default 0. */
  last?: Hlc;
  driftMsMax?: number;
}

export class HybridClock {
  private lastHlc: Hlc;
  readonly driftMsMax: number;

  constructor(options: HybridClockOptions = {}) {
    this.lastHlc = options.last ?? hlcZero;
    this.driftMsMax = options.driftMsMax ?? clockDriftMsMax;
  }

  /** The largest stamp this clock has issued or accepted. */
  get last(): Hlc {
    return this.lastHlc;
  }

  /** A new stamp for a local event: greater than every stamp seen so far. */
  now(wallMs: number): Hlc {
    return this.advance(this.lastHlc, Math.floor(wallMs));
  }

  /**
   * Fold in a remote stamp; returns our clock after it. Throws ClockDriftError, and leaves
   * the clock unchanged, if `remote` is too far ahead of `wallMs`.
   */
  receive(remote: Hlc, wallMs: number): Hlc {
    this.check(remote, wallMs);
    if (remote > this.lastHlc) this.lastHlc = remote;
    return this.lastHlc;
  }

  /**
   * The smallest stamp too far ahead of wall millisecond `aheadLimitWallMs`: check() compares
   * with it, where taking a received stamp's milliseconds out made a bigint an entry (a
   * catch-up checks every entry it receives). Made again when the wall clock's millisecond moves.
   */
  // NaN, not -1: a field's first number decides how V8 stores it, and a small integer later
  // replaced by a millisecond reading changes the object's shape, which throws away code
  // compiled for clocks in use (the warm-up's, node/warm-up.ts) at a node's first write.
  private aheadLimitWallMs = Number.NaN;
  private aheadLimit: Hlc | undefined;

  /** Throws ClockDriftError if `remote` is too far ahead of `wallMs`; changes nothing. */
  check(remote: Hlc, wallMs: number): void {
    // The message is made only on failure: this runs for every entry received.
    if (!Number.isFinite(wallMs)) assert(false, `wall clock reading is not a number: ${wallMs}`);
    const floorMs = Math.floor(wallMs);
    if (floorMs !== this.aheadLimitWallMs) {
      this.aheadLimitWallMs = floorMs;
      // A stamp is too far ahead once its milliseconds exceed floorMs + driftMsMax; beyond
      // the stamps' range (or a negative reading) every stamp takes the exact path below.
      const limitMs = floorMs + this.driftMsMax + 1;
      this.aheadLimit = Number.isInteger(limitMs) && limitMs >= 0 && limitMs <= hlcWallMsMax ? hlcPack(limitMs, 0) : undefined;
    }
    if (this.aheadLimit !== undefined && remote < this.aheadLimit) return;
    const aheadMs = hlcWallMs(remote) - floorMs;
    if (aheadMs > this.driftMsMax) throw new ClockDriftError(aheadMs, this.driftMsMax);
  }

  private advance(floor: Hlc, wallReadingMs: number): Hlc {
    if (!Number.isFinite(wallReadingMs)) assert(false, `wall clock reading is not a number: ${wallReadingMs}`);
    const floorMs = hlcWallMs(floor);
    const wallMs = Math.min(Math.max(0, wallReadingMs), hlcWallMsMax);
    let next: Hlc;
    if (wallMs > floorMs) {
      next = hlcPack(wallMs, 0);
    } else if (hlcCounter(floor) < hlcCounterMax) {
      next = floor + 1n;
    } else {
      next = hlcPack(floorMs + 1, 0); // counter overflow: borrow the next millisecond
    }
    this.lastHlc = next;
    return next;
  }
}
