/**
 * Length-prefixed frames over one libp2p v3 stream, for multi-round request/response
 * protocols (the sync protocol). Wire format: unsigned LEB128 varint length (the same
 * encoding as it-length-prefixed and @libp2p/utils' lpStream), then that many bytes.
 *
 * Why not lpStream: @libp2p/utils' lpStream (over byteStream) copies every incoming chunk
 * into an unbounded buffer with no backpressure and aborts the stream once that buffer passes
 * `maxBufferSize` (default 4 MiB), so a sender that runs ahead, or one 8 MiB frame with the
 * default, kills the stream; it also reads the length one byte at a time through a promise
 * each. Here:
 *
 * - Reading is event driven: every 'message' chunk is parsed at once. A length prefix over
 *   `frameBytesMax` is detected as soon as its bytes arrive (even a partial varint whose value
 *   already exceeds the limit), before any of the body is accepted: the stream is aborted
 *   (the peer sees a reset) and `read()` throws `FrameTooLargeError`. Nothing of the frame is
 *   buffered.
 * - A frame's body is copied straight into one buffer of the announced size, so a 64 MiB
 *   frame costs 64 MiB once, not chunks plus a concatenated copy.
 * - A node-wide byte budget (FrameBudget, `frameBufferBytesMax`) bounds what all streams
 *   together buffer: a frame reserves its announced length before any of its body is
 *   accepted and gives it back when `read()` returns it (or the stream is closed or
 *   aborted). A frame that does not fit waits: the rest of the received bytes go back to
 *   the stream, which is paused (the sender stalls) until the budget grants the bytes. A frame
 *   larger than the whole budget is refused like one over `frameBytesMax`.
 * - Optionally (`readIdleMs`), a `read()` that waits that long without a byte arriving aborts
 *   the stream with `ReadIdleError` (time spent waiting for budget counts as idle too).
 * - Backpressure on reads: once a whole frame is waiting and at least `readAheadBytes` are
 *   buffered, the stream is paused (yamux then stops granting window, so the sender stalls);
 *   `read()` resumes it. While paused the stream itself may still receive up to one yamux
 *   window (at most 16 MiB), so the stream's `maxReadBufferLength` is raised to cover that
 *   rather than let the stream reset itself.
 * - Backpressure on writes: `write()` resolves once the frame has been handed to the muxer
 *   (the stream's write buffer is empty and it does not need a drain). It waits on the
 *   stream's 'drain'/'idle' events, not on `stream.onDrain()`: in @libp2p/utils 7.4.1
 *   `onDrain()` caches its promise and never clears it, so after the first drain it resolves
 *   at once forever and gives no backpressure.
 *
 * Ownership: a frame passed to `write()` must not be modified until the returned promise
 * resolves (large frames are sent without a copy). The owner of a FramedStream reads it to
 * its end or error, or calls `close()` or `abort()`: frames received and not yet read hold
 * their budget until then.
 *
 * Deadlock note: both sides writing several large frames without reading in between can
 * stall each other (as with any backpressured duplex); alternate rounds.
 */
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { nodeFrameBudget, type BudgetWait, type FrameBudget } from './frame-budget.js';

/** A peer announced a frame longer than `frameBytesMax` (or we tried to write one). */
export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError';
  /**
   * @param frameBytes the announced length, or a lower bound of it when the varint was cut
   *   short because it already exceeded the limit.
   */
  constructor(
    readonly frameBytes: number,
    readonly frameBytesMax: number,
    message = `frame length ${frameBytes} exceeds the limit of ${frameBytesMax} bytes`,
  ) {
    super(message);
  }
}

/** The stream ended in the middle of a frame (or of its length prefix). */
export class FrameTruncatedError extends Error {
  override name = 'FrameTruncatedError';
}

/** A `read()` waited `readIdleMs` without a byte from the peer; the stream is aborted. */
export class ReadIdleError extends Error {
  override name = 'ReadIdleError';
}

export interface FramedStreamOptions {
  /** Largest frame accepted from the peer, and largest one `write()` will send. */
  frameBytesMax: number;
  /** Largest frame `write()` will send, when it differs (a small request read, a large reply written). Default frameBytesMax. */
  writeFrameBytesMax?: number;
  /** Aborting it aborts the stream: pending and later reads and writes reject with its reason. */
  signal?: AbortSignal;
  /** Complete frames buffered beyond the one being read before the stream is paused. Default 1 MiB. */
  readAheadBytes?: number;
  /** Where incoming frames reserve their bytes. Default: the node's (`nodeFrameBudget`). */
  budget?: FrameBudget;
  /** Abort the stream when a `read()` waits this long with no byte arriving. Default: no limit. */
  readIdleMs?: number;
}

const readAheadBytesDefault = 1024 * 1024;
/** yamux's largest stream window (16 MiB) plus slack: what a paused stream may still receive. */
const pausedStreamBufferBytes = 17 * 1024 * 1024;
/** Frames up to this size are sent as one buffer with their prefix; larger ones without a copy. */
const coalesceBytesMax = 64 * 1024;
/** 8 varint bytes encode 56 bits: far beyond any frame limit, and exact in a double. */
const varintBytesMax = 8;

interface ReadyFrame {
  frame: Uint8Array;
  wireBytes: number;
}

export class FramedStream {
  readonly stream: Stream;
  /** Bytes of frames returned by `read()`, length prefixes included. */
  bytesRead = 0;
  /** Bytes of frames passed to `write()`, length prefixes included. */
  bytesWritten = 0;

  readonly #frameBytesMax: number;
  readonly #writeFrameBytesMax: number;
  readonly #readAheadBytes: number;
  readonly #signal: AbortSignal | undefined;
  readonly #budget: FrameBudget;
  readonly #readIdleMs: number | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #ready: ReadyFrame[] = [];
  #readyBytes = 0;
  /** Length prefix being parsed: value so far and bytes seen. */
  #prefixValue = 0;
  #prefixBytes = 0;
  /** Frame body being filled (its bytes are reserved from the budget). */
  #body: Uint8Array | undefined;
  /** A frame whose length is known, waiting for its bytes from the budget. */
  #pending: { frameBytes: number; wireBytes: number } | undefined;
  #budgetWait: BudgetWait | undefined;
  #bodyFilled = 0;
  #bodyWireBytes = 0;
  #ended = false;
  #error: Error | undefined;
  #paused = false;
  #updatingFlow = false;
  #reading = true;
  #waiters: Array<() => void> = [];

  constructor(stream: Stream, options: FramedStreamOptions) {
    if (!Number.isSafeInteger(options.frameBytesMax) || options.frameBytesMax < 0) {
      throw new RangeError(`frameBytesMax must be a non-negative safe integer, got ${options.frameBytesMax}`);
    }
    this.stream = stream;
    this.#frameBytesMax = options.frameBytesMax;
    this.#writeFrameBytesMax = options.writeFrameBytesMax ?? options.frameBytesMax;
    this.#readAheadBytes = options.readAheadBytes ?? readAheadBytesDefault;
    this.#signal = options.signal;
    this.#budget = options.budget ?? nodeFrameBudget;
    this.#readIdleMs = options.readIdleMs;
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, pausedStreamBufferBytes);

    stream.addEventListener('message', this.#onMessage);
    stream.addEventListener('end', this.#onEnd);
    stream.addEventListener('close', this.#onClose);
    if (stream.status === 'aborted' || stream.status === 'reset') {
      this.#error = new Error(`stream already ${stream.status}`);
    } else if (stream.readableEnded) {
      this.#ended = true;
    }
    if (this.#signal !== undefined) {
      if (this.#signal.aborted) this.abort(abortReason(this.#signal));
      else this.#signal.addEventListener('abort', this.#onAbortSignal, { once: true });
    }
  }

  /**
   * Sends one frame. Resolves once it has been handed to the muxer, so a slow reader slows
   * the writer. Rejects if the stream is closed or reset, or the signal aborts.
   */
  async write(frame: Uint8Array): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    if (frame.byteLength > this.#writeFrameBytesMax) throw new FrameTooLargeError(frame.byteLength, this.#writeFrameBytesMax);
    const prefix = encodeVarint(frame.byteLength);
    let sendMore: boolean;
    if (frame.byteLength <= coalesceBytesMax) {
      const wire = new Uint8Array(prefix.byteLength + frame.byteLength);
      wire.set(prefix, 0);
      wire.set(frame, prefix.byteLength);
      sendMore = this.stream.send(wire);
    } else {
      this.stream.send(prefix);
      sendMore = this.stream.send(frame);
    }
    this.bytesWritten += prefix.byteLength + frame.byteLength;
    if (!sendMore || this.stream.writableNeedsDrain || this.stream.writeBufferLength > 0) await this.#flushed();
  }

  /**
   * The next frame; `undefined` once the peer has closed its end cleanly after a whole frame.
   * Throws `FrameTooLargeError` (the stream is then aborted), `FrameTruncatedError`, the
   * stream's reset error, or the `abort()` error / signal's reason. Frames that arrived
   * complete before a reset or an oversized frame are still returned first.
   */
  async read(): Promise<Uint8Array | undefined> {
    try {
      for (;;) {
        const next = this.#ready.shift();
        if (next !== undefined) {
          this.#readyBytes -= next.frame.byteLength;
          this.bytesRead += next.wireBytes;
          // The frame is the caller's now: its bytes go back to the budget.
          if (next.frame.byteLength > 0) this.#budget.release(next.frame.byteLength);
          this.#updateFlow();
          return next.frame;
        }
        if (this.#error !== undefined) {
          this.#dropPartial();
          throw this.#error;
        }
        if (this.#ended) {
          if (this.#body !== undefined || this.#prefixBytes > 0 || this.#pending !== undefined) {
            this.#error = new FrameTruncatedError(
              this.#body !== undefined
                ? `stream ended after ${this.#bodyFilled} of ${this.#body.byteLength} frame bytes`
                : this.#pending !== undefined
                  ? `stream ended before any of a ${this.#pending.frameBytes}-byte frame`
                  : 'stream ended inside a length prefix',
            );
            this.#dropPartial();
            throw this.#error;
          }
          return undefined;
        }
        this.#updateFlow();
        this.#armIdle();
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    } finally {
      this.#disarmIdle();
    }
  }

  /** Closes our writable end after everything written so far is sent; reading continues. */
  async closeWrite(): Promise<void> {
    await this.stream.close(this.#signal !== undefined ? { signal: this.#signal } : undefined);
  }

  /**
   * Closes our writable end (flushing it) and stops reading: unread frames are discarded. The
   * stream is released once the peer closes its end as well.
   */
  async close(): Promise<void> {
    try {
      await this.closeWrite();
    } finally {
      this.#stopReading();
      this.#discardUnread();
      await this.stream.closeRead().catch(() => undefined);
    }
  }

  /** Resets the stream at once, discarding anything unsent or unread; reads and writes then throw `err`. */
  abort(err: Error): void {
    this.#error ??= err;
    this.#discardUnread();
    this.#stopReading();
    this.#disarmIdle();
    this.stream.abort(err);
    this.#wake();
  }

  readonly #onMessage = (event: StreamMessageEvent): void => {
    if (!this.#reading) return;
    this.#idleTimer?.refresh();
    const data = event.data;
    const chunks = data instanceof Uint8Array ? [data] : [...data];
    for (let i = 0; i < chunks.length && this.#reading; i++) {
      const chunk = chunks[i] as Uint8Array;
      const used = this.#ingest(chunk);
      if (this.#pending !== undefined && this.#reading) {
        // Waiting for budget: the rest goes back to the stream, which #updateFlow pauses.
        this.#holdBack([chunk.subarray(used), ...chunks.slice(i + 1)]);
        break;
      }
    }
    this.#updateFlow();
    this.#wake();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#wake();
  };

  readonly #onClose = (event: StreamCloseEvent): void => {
    if (event.error !== undefined) {
      this.#error ??= event.error;
      // Reset: the frame being received can never complete; whole frames stay readable.
      this.#dropPartial();
    } else if (this.stream.readBufferLength === 0) this.#ended = true;
    this.#signal?.removeEventListener('abort', this.#onAbortSignal);
    this.#wake();
  };

  readonly #onAbortSignal = (): void => {
    if (this.#signal !== undefined) this.abort(abortReason(this.#signal));
  };

  /**
   * Parses one received chunk into length prefixes and frame bodies. Returns the bytes used:
   * fewer than the chunk when a frame must wait for budget (or the stream failed).
   */
  #ingest(chunk: Uint8Array): number {
    let offset = 0;
    while (offset < chunk.byteLength && this.#reading && this.#pending === undefined) {
      const body = this.#body;
      if (body === undefined) {
        const byte = chunk[offset++] as number;
        this.#prefixValue += (byte & 0x7f) * 2 ** (7 * this.#prefixBytes);
        this.#prefixBytes += 1;
        // The value so far is a lower bound of the announced length: fail as soon as it is
        // over, without waiting for the rest of the varint or any of the body.
        if (this.#prefixValue > this.#frameBytesMax) {
          this.#fail(new FrameTooLargeError(this.#prefixValue, this.#frameBytesMax));
          return offset;
        }
        if ((byte & 0x80) !== 0 && this.#prefixBytes >= varintBytesMax) {
          const message = `length prefix longer than ${varintBytesMax} bytes (limit ${this.#frameBytesMax} bytes)`;
          this.#fail(new FrameTooLargeError(this.#prefixValue, this.#frameBytesMax, message));
          return offset;
        }
        if ((byte & 0x80) !== 0) continue;
        const frameBytes = this.#prefixValue;
        const wireBytes = this.#prefixBytes + frameBytes;
        this.#prefixValue = 0;
        this.#prefixBytes = 0;
        if (frameBytes === 0) this.#ready.push({ frame: new Uint8Array(0), wireBytes });
        else this.#startFrame(frameBytes, wireBytes);
      } else {
        const n = Math.min(chunk.byteLength - offset, body.byteLength - this.#bodyFilled);
        body.set(chunk.subarray(offset, offset + n), this.#bodyFilled);
        this.#bodyFilled += n;
        offset += n;
        if (this.#bodyFilled === body.byteLength) {
          this.#ready.push({ frame: body, wireBytes: this.#bodyWireBytes });
          this.#readyBytes += body.byteLength;
          this.#body = undefined;
          this.#bodyFilled = 0;
        }
      }
    }
    return offset;
  }

  /** A frame of `frameBytes` is announced: reserve its bytes, then buffer it, or wait for them. */
  #startFrame(frameBytes: number, wireBytes: number): void {
    const budget = this.#budget;
    if (frameBytes > budget.capacityBytes) {
      const message = `frame length ${frameBytes} exceeds the frame buffer budget of ${budget.capacityBytes} bytes`;
      this.#fail(new FrameTooLargeError(frameBytes, budget.capacityBytes, message));
      return;
    }
    if (budget.tryReserve(frameBytes)) {
      this.#openBody(frameBytes, wireBytes);
      return;
    }
    this.#pending = { frameBytes, wireBytes };
    this.#budgetWait = budget.wait(frameBytes, () => {
      // Granted: the bytes are ours. Not called once the wait is cancelled (#dropPartial).
      this.#budgetWait = undefined;
      this.#pending = undefined;
      this.#openBody(frameBytes, wireBytes);
      // Resuming re-delivers the bytes held back, into the new body.
      this.#updateFlow();
      this.#wake();
    });
  }

  #openBody(frameBytes: number, wireBytes: number): void {
    this.#body = new Uint8Array(frameBytes);
    this.#bodyFilled = 0;
    this.#bodyWireBytes = wireBytes;
  }

  /** Gives received bytes back to the stream (first in line), to be delivered again on resume. */
  #holdBack(rest: Uint8Array[]): void {
    try {
      for (let i = rest.length - 1; i >= 0; i--) {
        const chunk = rest[i] as Uint8Array;
        if (chunk.byteLength > 0) this.stream.unshift(chunk);
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Drops the frame being received or waited for, and gives its bytes back to the budget. */
  #dropPartial(): void {
    this.#budgetWait?.cancel();
    this.#budgetWait = undefined;
    this.#pending = undefined;
    if (this.#body !== undefined) {
      this.#budget.release(this.#body.byteLength);
      this.#body = undefined;
      this.#bodyFilled = 0;
    }
  }

  /** Drops every frame not yet read (whole or partial) and gives their bytes back. */
  #discardUnread(): void {
    this.#dropPartial();
    if (this.#readyBytes > 0) this.#budget.release(this.#readyBytes);
    this.#ready.length = 0;
    this.#readyBytes = 0;
  }

  #armIdle(): void {
    if (this.#readIdleMs === undefined || this.#idleTimer !== undefined || this.#error !== undefined) return;
    const idleMs = this.#readIdleMs;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      this.abort(new ReadIdleError(`no data from the peer for ${idleMs} ms`));
    }, idleMs);
  }

  #disarmIdle(): void {
    if (this.#idleTimer === undefined) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #fail(err: Error): void {
    this.#error ??= err;
    this.#dropPartial();
    this.#stopReading();
    this.stream.abort(err);
    this.#wake();
  }

  #stopReading(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.stream.removeEventListener('message', this.#onMessage);
  }

  /**
   * Pauses the stream while a whole frame and `readAheadBytes` wait unread, or while a frame
   * waits for budget; resumes otherwise.
   */
  #updateFlow(): void {
    // resume() dispatches data the stream buffered while paused synchronously, which
    // re-enters here through #onMessage: the outer call re-evaluates once it returns.
    if (!this.#reading || this.#updatingFlow) return;
    this.#updatingFlow = true;
    try {
      for (;;) {
        const shouldPause =
          this.#reading &&
          (this.#pending !== undefined || (this.#ready.length > 0 && this.#readyBytes + this.#bodyFilled >= this.#readAheadBytes));
        if (shouldPause === this.#paused) return;
        this.#paused = shouldPause;
        if (shouldPause) this.stream.pause();
        else this.stream.resume();
      }
    } catch {
      // The readable end already closed: nothing more will arrive either way.
    } finally {
      this.#updatingFlow = false;
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Waits until the stream has handed everything to the muxer and needs no drain. */
  async #flushed(): Promise<void> {
    const stream = this.stream;
    while (stream.writableNeedsDrain || stream.writeBufferLength > 0) {
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve, reject) => {
        const cleanup = (): void => {
          stream.removeEventListener('drain', onProgress);
          stream.removeEventListener('idle', onProgress);
          stream.removeEventListener('close', onClose);
          this.#signal?.removeEventListener('abort', onAbort);
        };
        const onProgress = (): void => {
          cleanup();
          resolve();
        };
        const onClose = (event: StreamCloseEvent): void => {
          cleanup();
          reject(event.error ?? this.#error ?? new Error('stream closed before the frame was sent'));
        };
        const onAbort = (): void => {
          cleanup();
          reject(this.#signal !== undefined ? abortReason(this.#signal) : new Error('aborted'));
        };
        if (stream.status !== 'open' && stream.status !== 'closing') {
          reject(this.#error ?? new Error(`stream ${stream.status} before the frame was sent`));
          return;
        }
        stream.addEventListener('drain', onProgress);
        stream.addEventListener('idle', onProgress);
        stream.addEventListener('close', onClose);
        this.#signal?.addEventListener('abort', onAbort);
      });
      // The stream queues the next send on a microtask after 'drain': let it run.
      await Promise.resolve();
    }
  }
}

/** Unsigned LEB128, as it-length-prefixed writes it. */
export function encodeVarint(value: number): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return Uint8Array.from(out);
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason ?? 'aborted'));
}
