/**
 * One readable line for anything that was thrown or passed along as an error.
 *
 * libp2p does not always reject with an Error: `p-event` (used by @libp2p/utils streams while
 * they wait for 'drain' with `rejectionEvents: ['close']`) rejects with the `close` Event
 * itself, and `String(event)` is "[object Event]", which is what log lines used to show. An
 * Event that carries an error (`error`, as StreamCloseEvent and ErrorEvent do, or `detail`,
 * as CustomEvent does) is rendered as that error; one that carries none says what happened
 * ("stream closed"). An AggregateError (libp2p's dial of several addresses) lists its errors,
 * and a `cause` chain is followed, so the reason is never lost behind a wrapper.
 *
 * `toError` gives the Error to classify (by `name`) and rethrow: the Error itself, the Error an
 * Event carries, or a new Error whose message is the readable line.
 */

/** Nested errors and causes are followed this deep; beyond, a value is rendered without them. */
const depthMax = 4;

/** Whether `value` is a DOM-style Event (Node's global Event, CustomEvent, libp2p's events). */
export function isEvent(value: unknown): value is Event {
  return typeof Event !== 'undefined' && value instanceof Event;
}

/** The error an Event carries (`error`, then `detail`), if any. */
function carried(event: Event): unknown {
  const { error, detail } = event as Event & { error?: unknown; detail?: unknown };
  if (error !== undefined && error !== null) return error;
  if (detail !== undefined && detail !== null && (detail instanceof Error || isEvent(detail))) return detail;
  return undefined;
}

/** One line: the message of an error (its nested errors and causes included), or a description of an event. */
export function errorText(value: unknown): string {
  return oneLine(render(value, 0));
}

/** An Error for `value`: itself, the Error an Event carries, or a new Error with `errorText(value)` as its message. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (isEvent(value)) {
    const inner = carried(value);
    if (inner instanceof Error) return inner;
  }
  return new Error(errorText(value));
}

function render(value: unknown, depth: number): string {
  if (value instanceof Error) return renderError(value, depth);
  if (isEvent(value)) {
    const inner = carried(value);
    if (inner !== undefined && depth < depthMax) return render(inner, depth + 1);
    const message = (value as Event & { message?: unknown }).message;
    if (typeof message === 'string' && message !== '') return message;
    return value.type === 'close' ? 'stream closed' : `"${value.type}" event`;
  }
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    const message = (value as { message?: unknown }).message;
    if (typeof message === 'string' && message !== '') return message;
    if (value.toString !== Object.prototype.toString) return String(value); // a multiaddr, a peer id, ...
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

function renderError(error: Error, depth: number): string {
  let text = error.message || error.name || 'Error';
  if (error instanceof AggregateError && Array.isArray(error.errors) && error.errors.length > 0 && depth < depthMax) {
    const inner = [...new Set(error.errors.map((e: unknown) => render(e, depth + 1)))];
    text = `${error.message || `${error.errors.length} errors`}: ${inner.join('; ')}`;
  }
  const { cause } = error as { cause?: unknown };
  if (cause !== undefined && cause !== null && depth < depthMax) {
    const causeText = render(cause, depth + 1);
    if (causeText !== '' && !text.includes(causeText)) text = `${text} (cause: ${causeText})`;
  }
  return text;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
