/**
 * Limits of the control API, in one place. The value limit itself is core's valueBytesMax.
 */
import { valueBytesMax } from '../core/limits.js';

/** A message may carry one maximal value plus headroom for the rest of the message. */
export const grpcMessageBytesMax = valueBytesMax + 1024 * 1024;

/**
 * Bytes of a value per PutStream/GetStream message. 1 MiB: big enough that per-message
 * overhead is noise (~64 messages for a maximal value), small enough that neither side holds
 * more than a few of them in flight.
 */
export const valueChunkBytes = 1024 * 1024;

/** Values up to this size go in one unary Put from ControlClient.put; larger ones stream. */
export const unaryPutBytesMax = valueChunkBytes;

/** Puts in one PutMany call. */
export const putManyCountMax = 10_000;

/** How far a Watch client may fall behind before it is cut off with RESOURCE_EXHAUSTED. */
export const watchBufferBytesMax = 16 * 1024 * 1024;

/**
 * Puts a PutPipeline may have unanswered before the node stops reading it. Enough to keep
 * the replica's group commit full (it takes up to writeBatchOpsMax a batch); more would
 * only queue memory.
 */
export const pipelinePutsInFlightMax = 4096;

/**
 * Entries in one Import call (and in one Export message): a backup block (about 1 MiB of
 * entries, or one large entry; src/cli/backup-format.ts) goes in one message. The smallest
 * entry is 20 bytes, so 1 MiB holds at most ~52,000; the bytes are bounded by
 * grpcMessageBytesMax.
 */
export const importEntriesMax = 65_536;

/** Export messages: flushed before their entries pass this many bytes (one larger entry goes alone)... */
export const exportChunkBytesTarget = 1024 * 1024;
/** ...or this many entries. */
export const exportChunkEntriesMax = 16_384;
