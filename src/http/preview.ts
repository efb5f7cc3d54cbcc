/**
 * A value's preview for the key browser (`GET /kv?prefix=P&values=1`): its first
 * `previewBytesMax` (200) bytes as text when they are UTF-8 text, or "binary" with its size.
 *
 * Text means: the bytes decode as UTF-8 (a multi-byte character cut by the 200-byte limit is
 * dropped whole, not counted against the value) and hold no control characters other than tab,
 * newline and carriage return. Anything else is binary: the page shows "binary N bytes" rather
 * than mojibake. Whatever a value holds, the preview is at most 200 bytes of it, so a listing
 * of `limit` keys costs at most limit x 200 bytes of values in the reply.
 */

export const previewBytesMax = 200;

export interface ValuePreview {
  /** The value's whole size in bytes. */
  bytes: number;
  /** Its first bytes as text; '' for binary or empty values. */
  text: string;
  binary: boolean;
  /** The text is shorter than the value. */
  truncated: boolean;
}

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function valuePreview(value: Uint8Array, max = previewBytesMax): ValuePreview {
  const head = value.subarray(0, Math.min(value.byteLength, max));
  const whole = head.byteLength === value.byteLength;
  let text: string | undefined;
  // Cut at the limit, a character may be split: back off up to 3 bytes (the rest of a 4-byte
  // sequence). A whole value must decode as it is.
  for (let cut = 0; cut <= (whole ? 0 : Math.min(3, head.byteLength)); cut++) {
    try {
      text = strict.decode(head.subarray(0, head.byteLength - cut));
      break;
    } catch {
      text = undefined;
    }
  }
  // eslint-disable-next-line no-control-regex
  if (text === undefined || /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) {
    return { bytes: value.byteLength, text: '', binary: true, truncated: false };
  }
  return { bytes: value.byteLength, text, binary: false, truncated: value.byteLength > head.byteLength };
}
