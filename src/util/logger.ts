/**
 * One line per notable event, to stderr: `<iso time> <level> <event> key=value ...`.
 *
 * Values are rendered on one line: an Error by its message (an AggregateError's errors and a
 * `cause` included), an Event by the error it carries or what it says happened (never
 * "[object Event]"), arrays joined by commas; a value with spaces, quotes or `=` is quoted.
 */
import { errorText } from './error-text.js';

export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export function stderrLogger(write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const log = (level: string, event: string, fields: Record<string, unknown> = {}): void => {
    write(formatLine(new Date().toISOString(), level, event, fields));
  };
  return {
    info: (event, fields) => log('info', event, fields),
    warn: (event, fields) => log('warn', event, fields),
    error: (event, fields) => log('error', event, fields),
  };
}

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** One log line, newline included. */
export function formatLine(time: string, level: string, event: string, fields: Record<string, unknown> = {}): string {
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`);
  return `${time} ${level} ${event}${parts.length ? ' ' + parts.join(' ') : ''}\n`;
}

export function formatValue(value: unknown): string {
  const one = (v: unknown): string => (v !== null && typeof v === 'object' ? errorText(v) : String(v));
  const text = (Array.isArray(value) ? value.map(one).join(',') : one(value)).replace(/\s*\n\s*/g, ' ');
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}
