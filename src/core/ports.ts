/**
 * The core's ports besides the Store (store.ts): what it needs from the world, passed in by
 * the caller. The node passes the real clock and crypto randomness; the simulator passes its
 * event queue's clock and a seeded PRNG, so a seed replays exactly.
 */

/** The wall clock, in milliseconds since the Unix epoch. The core never reads one itself. */
export type WallClockMs = () => number;

/** Uniform randomness in [0, 1). The core uses no ambient randomness. */
export type Rng = () => number;
