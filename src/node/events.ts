/**
 * The node's recent events, for the status page's timeline (`GET /api/events?after=SEQ`): a
 * ring buffer of the last `capacity` (500) events, each numbered by a sequence that only
 * rises (1, 2, ...), so a reader asks for "what came after the last one I saw" and gets only
 * that. When the ring is full the oldest event is overwritten; a reader that fell behind by
 * more than the capacity sees `dropped` (how many it missed) rather than a silent gap.
 *
 * What goes in: membership's effects (member up, down = unreachable, left, refused, expired;
 * cluster.ts), sync sessions that failed and why (cluster.ts), and clock warnings appearing and
 * clearing (the node, when its status shows the change). Each event is a few short strings
 * (their lengths are cut here), so the buffer's memory is bounded by capacity x ~1 KiB.
 * Pure: the caller gives the time.
 */

export type NodeEventKind = 'member up' | 'member down' | 'member left' | 'member refused' | 'member expired' | 'refuted leave' | 'sync failed' | 'clock warning' | 'clock ok';

export interface NodeEvent {
  /** Rises by one per event, from 1. */
  seq: number;
  /** This node's wall clock when it happened (epoch ms). */
  timeMs: number;
  kind: NodeEventKind | string;
  /** The other node's id ('' if none or unknown). */
  nodeId: string;
  peerId: string;
  /** Why, or what (at most detailCharsMax characters). */
  detail: string;
}

export const eventsCapacityDefault = 500;
/** Longest detail kept (an error message can be long; the timeline shows one line). */
export const detailCharsMax = 300;
const idCharsMax = 128;
/** Most events one read returns. */
export const eventsReadMax = 500;

export class EventRing {
  private readonly ring: (NodeEvent | undefined)[];
  private next = 1;

  constructor(readonly capacity = eventsCapacityDefault) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
    this.ring = new Array<NodeEvent | undefined>(capacity);
  }

  /** The sequence number of the newest event (0 if none yet). */
  get lastSeq(): number {
    return this.next - 1;
  }

  add(event: { timeMs: number; kind: string; nodeId?: string; peerId?: string; detail?: string }): NodeEvent {
    const stored: NodeEvent = {
      seq: this.next,
      timeMs: event.timeMs,
      kind: event.kind.slice(0, 64),
      nodeId: (event.nodeId ?? '').slice(0, idCharsMax),
      peerId: (event.peerId ?? '').slice(0, idCharsMax),
      detail: oneLine(event.detail ?? '').slice(0, detailCharsMax),
    };
    this.ring[(this.next - 1) % this.capacity] = stored;
    this.next++;
    return stored;
  }

  /**
   * Events with seq > after, oldest first, at most `limit`: the oldest of those still held.
   * `dropped`: how many after `after` were overwritten before this read (0 normally).
   */
  since(after = 0, limit = eventsReadMax): { events: NodeEvent[]; lastSeq: number; dropped: number } {
    const oldest = Math.max(1, this.next - this.capacity);
    const from = Math.max(Math.floor(after) + 1, oldest, 1);
    const dropped = Math.max(0, oldest - (Math.floor(after) + 1));
    const events: NodeEvent[] = [];
    const count = Math.min(Math.max(0, limit), eventsReadMax);
    for (let seq = from; seq < this.next && events.length < count; seq++) {
      const event = this.ring[(seq - 1) % this.capacity];
      if (event) events.push(event);
    }
    return { events, lastSeq: this.lastSeq, dropped: after > 0 ? dropped : 0 };
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
