/** One line per notable event, to stderr: `<iso time> <level> <event> key=value ...`. */
export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export function stderrLogger(write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const log = (level: string, event: string, fields: Record<string, unknown> = {}): void => {
    const parts = Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`);
    write(`${new Date().toISOString()} ${level} ${event}${parts.length ? ' ' + parts.join(' ') : ''}\n`);
  };
  return {
    info: (event, fields) => log('info', event, fields),
    warn: (event, fields) => log('warn', event, fields),
    error: (event, fields) => log('error', event, fields),
  };
}

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

function formatValue(value: unknown): string {
  const text = value instanceof Error ? value.message : Array.isArray(value) ? value.join(',') : String(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}
