/**
 * One direction of an in-memory link: a FIFO of frames with at most one waiting receiver.
 * The loopback pushes frames straight in; the simulator schedules each `push` (and `close`)
 * on its event queue with its delays, and `fail`s both directions to abort a session.
 * Pure: no timers; whoever pushes decides when a frame arrives.
 */
import { assert } from './errors.js';

export class FrameChannel {
  private readonly frames: Uint8Array[] = [];
  private head = 0;
  private closed = false;
  private error: Error | undefined;
  private waiter: { resolve: (frame: Uint8Array | undefined) => void; reject: (error: Error) => void } | undefined;

  /** Frames pushed and not yet received. */
  get pending(): number {
    return this.frames.length - this.head;
  }

  /** Closed by the sender (frames may still be queued). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** A receiver is waiting for a frame. */
  get waiting(): boolean {
    return this.waiter !== undefined;
  }

  /** Deliver a frame; ignored once the channel is closed or failed (the link is gone). */
  push(frame: Uint8Array): void {
    if (this.closed || this.error) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(frame);
    } else {
      this.frames.push(frame);
    }
  }

  /** No more frames: once the queued ones are read, receive() resolves undefined. */
  close(): void {
    if (this.closed || this.error) return;
    this.closed = true;
    if (this.waiter && this.pending === 0) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve(undefined);
    }
  }

  /** The link broke: receive() rejects with `error` from now on, queued frames are dropped. */
  fail(error: Error): void {
    if (this.error) return;
    this.error = error;
    this.frames.length = 0;
    this.head = 0;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }

  receive(): Promise<Uint8Array | undefined> {
    if (this.error) return Promise.reject(this.error);
    assert(this.waiter === undefined, 'two receivers on one frame channel');
    if (this.pending > 0) {
      const frame = this.frames[this.head++]!;
      if (this.head === this.frames.length) {
        this.frames.length = 0;
        this.head = 0;
      }
      return Promise.resolve(frame);
    }
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }
}
