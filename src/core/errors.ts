/**
 * Typed errors for operating conditions (bad input, hostile peers, clocks). Programmer errors
 * are assertions (`assert` below) and are never caught. Each class has a stable `name` and
 * `code` that callers match on; messages are one line, fit for a user.
 */

export class CkvError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'CkvError';
  }
}

/** A key is empty, too long, or not valid UTF-8 text. */
export class InvalidKeyError extends CkvError {
  constructor(message: string) {
    super('ERR_INVALID_KEY', message);
    this.name = 'InvalidKeyError';
  }
}

/** A value is larger than valueBytesMax. */
export class ValueTooLargeError extends CkvError {
  constructor(readonly valueBytes: number, readonly valueBytesMax: number) {
    super('ERR_VALUE_TOO_LARGE', `value is ${valueBytes} bytes; the limit is ${valueBytesMax} bytes`);
    this.name = 'ValueTooLargeError';
  }
}

/** A remote HLC stamp is further ahead of our wall clock than clockDriftMsMax. */
export class ClockDriftError extends CkvError {
  constructor(readonly aheadMs: number, readonly driftMsMax: number) {
    super('ERR_CLOCK_DRIFT', `remote clock is ${aheadMs} ms ahead of ours; the limit is ${driftMsMax} ms`);
    this.name = 'ClockDriftError';
  }
}

/** Bytes from a peer or from disk that do not decode. Dropped and counted, never fatal. */
export class MalformedError extends CkvError {
  constructor(message: string) {
    super('ERR_MALFORMED', message);
    this.name = 'MalformedError';
  }
}

/** The peer refused or broke the sync protocol (busy, other cluster, version, bounds). */
export class SyncRefusedError extends CkvError {
  constructor(readonly reason: string, message: string) {
    super('ERR_SYNC_REFUSED', message);
    this.name = 'SyncRefusedError';
  }
}

/** Another process holds the data directory. */
export class StoreLockedError extends CkvError {
  constructor(readonly location: string) {
    super('ERR_STORE_LOCKED', `data directory ${location} is in use by another ckv process`);
    this.name = 'StoreLockedError';
  }
}

/** A programmer error: a broken invariant. Never caught; crashes loudly in tests. */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new Error(`ckv assertion: ${message}`);
}

/**
 * This node would stamp writes further in the future than its peers accept: its HLC bound is
 * ahead of its own wall clock (it ran with its clock set ahead, and the bound was persisted),
 * or its wall clock is ahead of its peers'. Writes are refused rather than acknowledged when
 * no peer would take them.
 */
export class ClockAheadError extends CkvError {
  constructor(readonly aheadMs: number, readonly driftMsMax: number, readonly source: 'bound' | 'peers') {
    super(
      'ERR_CLOCK_AHEAD',
      source === 'bound'
        ? `writes refused: this node's clock bound is ${aheadMs} ms ahead of its wall clock (it ran with its clock set ahead); peers refuse stamps over ${driftMsMax} ms ahead. Check the peers' clocks, then restart with 'ckv node start --reset-clock-bound', or wait`
        : `writes refused: this node's clock is ${aheadMs} ms ahead of its peers' (their median), over the ${driftMsMax} ms they accept: fix this host's clock`,
    );
    this.name = 'ClockAheadError';
  }
}

/**
 * A conditional write (`put --if-version`, `--if-absent`, `del --if-version`) whose condition
 * did not hold on the node that took it: nothing was written. `current` is the version the
 * node holds (a tombstone's too), undefined if it holds none.
 */
export class ConditionFailedError extends CkvError {
  constructor(
    readonly key: string,
    readonly expected: string,
    readonly current: string | undefined,
    readonly currentDeleted: boolean,
  ) {
    const found = current === undefined ? 'the key is absent' : currentDeleted ? `it was deleted at version ${current}` : `its version is ${current}`;
    super('ERR_CONDITION_FAILED', `condition failed for key ${JSON.stringify(key)}: expected ${expected}, but ${found}; nothing was written`);
    this.name = 'ConditionFailedError';
  }
}

/** A local write to a key whose stored version is in the future (left by a clock that was ahead). */
export class VersionFromFutureError extends CkvError {
  constructor(readonly key: string, readonly aheadMs: number) {
    super('ERR_VERSION_FROM_FUTURE', `key ${JSON.stringify(key)} holds a version stamped ${aheadMs} ms in the future (written while a clock was ahead); it can be written again once this node's clock passes it`);
    this.name = 'VersionFromFutureError';
  }
}
