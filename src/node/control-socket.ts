/**
 * Who may bind the control socket path. A path where something answers belongs to a running
 * node: `ckv --socket A node start --data-dir B` must not take it over (the first node would
 * become unreachable, and the second would delete its socket on stop), so that start is
 * refused (SocketInUseError, exit 5). A socket nothing accepts on is stale (left by a kill -9)
 * and is replaced. A path that is not a socket at all is never deleted (usage error, exit 2).
 */
import { lstat, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { SocketInUseError, UsageError } from '../errors.js';
import { errnoReason } from '../util/errno.js';

/** A connect that neither succeeds nor fails by then: something holds the socket (e.g. a frozen node). */
const probeDeadlineMs = 2000;

type Probe = 'accepts' | 'stale' | 'gone' | 'denied' | 'no answer';

function probe(path: string): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (result: Probe): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('no answer'), probeDeadlineMs);
    socket.once('connect', () => done('accepts'));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') done('stale');
      else if (error.code === 'ENOENT') done('gone');
      else if (error.code === 'EACCES' || error.code === 'EPERM') done('denied');
      else done('no answer');
    });
  });
}

/**
 * Throws unless `path` is free for this node: nothing there, or a stale socket. With
 * `removeStale`, a stale socket is removed (call it only just before binding).
 */
export async function claimSocketPath(path: string, removeStale: boolean): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) {
      throw new UsageError(`the control socket path ${path} exists and is not a socket; not replacing it (choose another --socket)`);
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UsageError(`cannot use the control socket path ${path}: ${errnoReason(error)}`);
  }
  switch (await probe(path)) {
    case 'accepts':
      throw new SocketInUseError(path);
    case 'denied':
      throw new SocketInUseError(path, 'it belongs to another user');
    case 'no answer':
      throw new SocketInUseError(path, 'something holds it but does not answer');
    case 'gone':
      return;
    case 'stale':
      if (removeStale) await rm(path, { force: true });
  }
}
