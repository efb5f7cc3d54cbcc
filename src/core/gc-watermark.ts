/**
 * GC watermark: the HLC below which no write can still arrive anywhere, so a tombstone older
 * than it may be collected (docs/design-delivery-gc.md section 2, rule 2).
 *
 * Every node publishes its *floor*: the oldest HLC among the writes it coordinated that some
 * owner has not yet acknowledged (pending deliveries, retries, offloads in progress), or its
 * current HLC when it has none. A floor never goes down (a write a node coordinates later is
 * stamped at or above its clock, which is at or above what it published), so the book keeps
 * the highest floor heard from each member and reordered or duplicated publications cannot
 * move it back.
 *
 * The watermark is the minimum over the members of the newest layout. A member never heard
 * from, or heard from only before (its floor is kept where it last was), holds it back:
 * no timer ever moves the watermark past a member that is silent; only its return (a newer
 * floor) or its removal from the layout (`forget`) does. `watermark()` names the member
 * holding it back, for `ckv gc` and for the simulator's invariants.
 *
 * Pure: no I/O, no clock; floors and membership are passed in. Bounded: one entry per member
 * heard from; `forget` drops removed members.
 */
import { assert } from './errors.js';
import type { Hlc } from './hlc.js';

/** A member's published floor and the layout version it was heard at. */
export interface HeardFloor {
  readonly floor: Hlc;
  readonly layoutVersion: number;
}

/** The cluster watermark over the members of the newest layout. */
export interface Watermark {
  /** Tombstones strictly below this may be collected; undefined: none may (a member unheard). */
  readonly watermark: Hlc | undefined;
  /** The member whose floor (or silence) sets it; undefined with no members. */
  readonly holdsBack: string | undefined;
}

/** Members of the newest layout are passed in; the book holds what each published. */
export class FloorBook {
  private readonly floors = new Map<string, HeardFloor>();

  /** Records `member`'s floor heard at `layoutVersion`; a lower floor than one already heard is ignored. */
  hear(member: string, floor: Hlc, layoutVersion: number): void {
    assert(floor >= 0n, `floor ${floor}`);
    assert(Number.isInteger(layoutVersion) && layoutVersion >= 0, `layout version ${layoutVersion}`);
    const known = this.floors.get(member);
    if (known !== undefined && known.floor >= floor) {
      if (layoutVersion > known.layoutVersion) this.floors.set(member, { floor: known.floor, layoutVersion });
      return;
    }
    this.floors.set(member, { floor, layoutVersion: Math.max(layoutVersion, known?.layoutVersion ?? 0) });
  }

  /** The floor heard from `member`, if any. */
  heard(member: string): HeardFloor | undefined {
    return this.floors.get(member);
  }

  /** Drops a member removed from the layout: it no longer holds the watermark back. */
  forget(member: string): void {
    this.floors.delete(member);
  }

  /** Members heard from (bounded by the members ever in a layout minus those forgotten). */
  size(): number {
    return this.floors.size;
  }

  /**
   * The minimum floor over `members` (the newest layout's members). A member never heard
   * from holds it back entirely (watermark undefined): its writes are unknown.
   */
  watermark(members: readonly string[]): Watermark {
    let watermark: Hlc | undefined;
    let holdsBack: string | undefined;
    for (const member of [...members].sort()) {
      const heard = this.floors.get(member);
      if (heard === undefined) return { watermark: undefined, holdsBack: member };
      if (watermark === undefined || heard.floor < watermark) {
        watermark = heard.floor;
        holdsBack = member;
      }
    }
    return { watermark, holdsBack };
  }
}
