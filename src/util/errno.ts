/** A file system error as a user reads it: `EACCES: permission denied, mkdir '/x'` -> `permission denied`. */
const reasons: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
};

/** The reason of a failed system call without its path (the caller names the path). */
export function errnoReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return (e.code && reasons[e.code]) ?? (error instanceof Error ? error.message : String(error));
}
