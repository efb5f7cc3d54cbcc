/**
 * One line per notable event, to stderr: `<iso time> <level> <event> key=value ...`, or with
 * format 'json' one object a line: {"time", "level", "event", ...fields} (an Error or Event
 * field as its text, numbers and booleans as they are). Lines less severe than `level` are
 * dropped (error < warn < info).
 *
 * Values are rendered on one line: an Error by its message (an AggregateError's errors and a
 * `cause` included), an Event by the error it carries or what it says happened (never
 * "[object Event]"), arrays joined by commas; a value with spaces, quotes or `=` is quoted.
 */
import { errorText } from './error-text.js';
import { logLevels, type LogLevel } from './log-level.js';

export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  /** Least severe level written. Default info (everything). */
  level?: LogLevel;
  /** Default text. */
  format?: 'text' | 'json';
  /** Default: process.stderr. */
  write?: (line: string) => void;
}

export function stderrLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const most = logLevels.indexOf(options.level ?? 'info');
  const format = options.format === 'json' ? formatJsonLine : formatLine;
  const log = (level: LogLevel, event: string, fields: Record<string, unknown> = {}): void => {
    if (logLevels.indexOf(level) > most) return;
    write(format(new Date().toISOString(), level, event, fields));
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

/** One log line as JSON, newline included. */
export function formatJsonLine(time: string, level: string, event: string, fields: Record<string, unknown> = {}): string {
  const record: Record<string, unknown> = { time, level, event };
  for (const [k, v] of Object.entries(fields)) {
    if (k in record) continue; // a field never hides the line's own time, level or event
    record[k] = jsonValue(v);
  }
  return `${JSON.stringify(record)}\n`;
}

function jsonValue(value: unknown): unknown {
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string' || value === null || value === undefined) return value;
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(jsonValue);
  return errorText(value);
}

export function formatValue(value: unknown): string {
  const one = (v: unknown): string => (v !== null && typeof v === 'object' ? errorText(v) : String(v));
  const text = (Array.isArray(value) ? value.map(one).join(',') : one(value)).replace(/\s*\n\s*/g, ' ');
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}
