/**
 * A byte budget shared by every FramedStream of a node: what all incoming frames together
 * may hold in memory before their reader takes them. A stream reserves a frame's announced
 * length from it before buffering any of the frame's body, and gives the bytes back when
 * `read()` hands the frame on (or when the stream ends, is closed or aborted). A frame that
 * does not fit waits, its stream paused (so the sender stalls on flow control), in a FIFO
 * queue: a large frame is not starved by a stream of small ones, and the total reserved
 * never exceeds the capacity. Without it, every stream could buffer one maximal frame: 8
 * streams announcing 60 MiB frames raised a node from 105 to 283 MiB.
 *
 * The waits are bounded by their owners: a sync session ends after `syncIdleMsMax` without
 * progress, and a query after its timeout; ending one cancels its wait.
 *
 * One budget serves the whole process (`nodeFrameBudget`, `frameBufferBytesMax` in
 * src/core/limits.ts); a ckv process runs one node. Tests may make their own.
 */
import { frameBufferBytesMax } from '../core/limits.js';

/** A queued request for bytes; `cancel()` gives them back if they were already granted. */
export interface BudgetWait {
  cancel(): void;
}

interface Waiter {
  bytes: number;
  state: 'waiting' | 'granted' | 'delivered' | 'cancelled';
  onGranted: () => void;
}

export class FrameBudget {
  /** Bytes reserved now. */
  #reservedBytes = 0;
  /** The most ever reserved at once (never above `capacityBytes`). */
  #peakReservedBytes = 0;
  #queue: Waiter[] = [];

  constructor(readonly capacityBytes: number) {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0) {
      throw new RangeError(`a frame budget needs a positive whole number of bytes, got ${capacityBytes}`);
    }
  }

  get reservedBytes(): number {
    return this.#reservedBytes;
  }

  get peakReservedBytes(): number {
    return this.#peakReservedBytes;
  }

  /** Requests queued and not yet granted. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Reserves `bytes` now if they fit and nobody is queued ahead; false otherwise (then
   * `wait()`). A request over the whole capacity can never be met: the caller must refuse it.
   */
  tryReserve(bytes: number): boolean {
    this.#check(bytes);
    if (this.#queue.length > 0 || this.#reservedBytes + bytes > this.capacityBytes) return false;
    this.#add(bytes);
    return true;
  }

  /**
   * Queues a request; `onGranted` runs (in a microtask) once the bytes are reserved for the
   * caller, who then owns them and must `release()` them. `cancel()` before that withdraws
   * the request (or gives back bytes granted but not yet delivered).
   */
  wait(bytes: number, onGranted: () => void): BudgetWait {
    this.#check(bytes);
    const waiter: Waiter = { bytes, state: 'waiting', onGranted };
    this.#queue.push(waiter);
    this.#grant();
    return {
      cancel: () => {
        if (waiter.state === 'waiting') {
          waiter.state = 'cancelled';
          this.#queue.splice(this.#queue.indexOf(waiter), 1);
          this.#grant();
        } else if (waiter.state === 'granted') {
          waiter.state = 'cancelled';
          this.release(waiter.bytes);
        }
      },
    };
  }

  /** Gives back bytes reserved by `tryReserve()` or delivered by `wait()`. */
  release(bytes: number): void {
    if (bytes === 0) return;
    if (bytes < 0 || bytes > this.#reservedBytes) {
      throw new RangeError(`releasing ${bytes} bytes of a frame budget that has ${this.#reservedBytes} reserved`);
    }
    this.#reservedBytes -= bytes;
    this.#grant();
  }

  #check(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > this.capacityBytes) {
      throw new RangeError(`cannot reserve ${bytes} bytes of a frame budget of ${this.capacityBytes}`);
    }
  }

  #add(bytes: number): void {
    this.#reservedBytes += bytes;
    this.#peakReservedBytes = Math.max(this.#peakReservedBytes, this.#reservedBytes);
  }

  /** Grants queued requests in order while the head fits. */
  #grant(): void {
    for (;;) {
      const head = this.#queue[0];
      if (head === undefined || this.#reservedBytes + head.bytes > this.capacityBytes) return;
      this.#queue.shift();
      this.#add(head.bytes);
      head.state = 'granted';
      queueMicrotask(() => {
        if (head.state !== 'granted') return;
        head.state = 'delivered';
        head.onGranted();
      });
    }
  }
}

/** The node's budget: every FramedStream not given another shares it. */
export const nodeFrameBudget = new FrameBudget(frameBufferBytesMax);
