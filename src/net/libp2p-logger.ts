/**
 * The logger libp2p's components get. libp2p makes one per component, and more per
 * connection and per stream (`newScope`); @libp2p/logger's default builds three `debug`
 * instances for each, and every instance asks whether stderr is a terminal (an isatty
 * system call) to pick its colours. None of them print unless DEBUG names them, yet on a
 * restarted node they took 4-11 ms of CPU in its first 200 ms (the way to its first member
 * up; `--cpu-prof`, docs/measurements.md, 2026-12-04 (night)), and more for each stream
 * later.
 *
 * So with DEBUG unset (nothing could print) every component shares one logger that does
 * nothing; with DEBUG set, libp2p's default is used and `DEBUG=libp2p:* ckv node start`
 * prints libp2p's own debug log as libp2p documents it.
 */
import type { ComponentLogger, Logger } from '@libp2p/interface';

function silentLogger(): Logger {
  const log = (() => undefined) as unknown as Logger;
  log.error = () => undefined;
  log.trace = () => undefined;
  log.enabled = false;
  log.newScope = () => log;
  return log;
}

const silent = silentLogger();

/** A ComponentLogger whose loggers print nothing and cost nothing to make. */
export const silentComponentLogger: ComponentLogger = { forComponent: () => silent };

/**
 * The `logger` option for createLibp2p: the silent one unless DEBUG is set in `env`
 * (undefined then: libp2p falls back to its default, @libp2p/logger over `debug`).
 */
export function libp2pLoggerFor(env: NodeJS.ProcessEnv = process.env): ComponentLogger | undefined {
  return env.DEBUG === undefined || env.DEBUG === '' ? silentComponentLogger : undefined;
}
