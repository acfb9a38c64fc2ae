/**
 * Where audit lines go: one shared writer per destination, whichever routes and config generations
 * use it.
 *
 * Every route of a config builds its own audit plugin, and a reload builds them all again before the
 * old ones close. Opening a file per plugin cost four descriptors per reload on the default config, and
 * closing them on reload would cut the lines of exchanges still finishing on the old config. So writers
 * are counted by destination: each plugin acquires one, the last release ends it, and a reload only
 * moves the count (new plugins acquire before old ones release).
 *
 * Files are the trail an auditor reads: created 0600 in folders created 0700 (existing files and
 * folders keep their modes; a group- or world-readable audit file is warned about). `reopen` reopens a
 * file by its name, for log rotation.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';

type Stream = ReturnType<typeof pino.destination>;

export interface AuditWriter {
  readonly stream: Stream;
  /** Writes what waits in the buffer (the plugin's timer calls it every `flushInterval`). */
  flush(): void;
  /** Reopens a file destination by name: lines written before go to the old file, later ones to the new. */
  reopen(): void;
  /** Gives this holder's share back; the last one flushes and closes the file. Resolves once closed. */
  release(): Promise<void>;
}

interface Entry {
  stream: Stream;
  holders: number;
  file: string | undefined;
  reopening: boolean;
  closed: Promise<void> | undefined;
}

const writers = new Map<string, Entry>();

/** Lines are batched: a write system call per line costs more than the line itself. */
const BATCH = 8 * 1024;

/** How many destinations are open now (for tests). */
export function openWriters(): number {
  return writers.size;
}

/** `dest` is `stdout`, `stderr` or a file path, absolute or relative to `configDir`. */
export function acquireWriter(dest: string, configDir: string, log: Logger): AuditWriter {
  const file = dest === 'stdout' || dest === 'stderr' ? undefined : path.resolve(configDir, dest);
  const key = file ?? dest;
  let entry = writers.get(key);
  if (!entry) {
    entry = { stream: open(dest, file, log), holders: 0, file, reopening: false, closed: undefined };
    writers.set(key, entry);
  }
  entry.holders++;
  const e = entry;
  let released = false;
  return {
    stream: e.stream,
    flush: () => flush(e),
    reopen: () => reopen(e, log),
    release: () => {
      if (released) return e.closed ?? Promise.resolve();
      released = true;
      if (--e.holders > 0) return Promise.resolve();
      writers.delete(key);
      e.closed = close(e);
      return e.closed;
    },
  };
}

function open(dest: string, file: string | undefined, log: Logger): Stream {
  if (!file) return pino.destination({ fd: dest === 'stdout' ? 1 : 2, sync: false, minLength: BATCH });
  // Created here rather than by pino (`mkdir: true` gives 0777 minus the umask).
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const stream = pino.destination({ dest: file, sync: false, minLength: BATCH, mode: 0o600 });
  // Without a listener an unwritable file (a full disk, a removed folder) would end the process.
  stream.on('error', (err: Error) => log.error({ err, file }, 'the audit file cannot be written'));
  stream.on('ready', () => warnIfShared(file, log));
  return stream;
}

function warnIfShared(file: string, log: Logger): void {
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) log.warn({ file, mode: mode.toString(8) }, 'the audit file is readable by other users than the gateway\'s; chmod 600 it');
  } catch {
    // Gone already (rotated away): the next open checks the new one.
  }
}

function flush(e: Entry): void {
  try {
    e.stream.flush();
  } catch {
    // Not open yet, or being reopened: the next tick writes what waits.
  }
}

function reopen(e: Entry, log: Logger): void {
  // Every route's plugin asks on the same reload: one reopen is enough.
  if (!e.file || e.reopening || e.closed) return;
  e.reopening = true;
  const stream = e.stream;
  const readyBefore = new Set(stream.rawListeners('ready'));
  // A failed open emits 'error', not 'ready': the flag must clear then too, or no later rotation would
  // ever reopen the file. sonic-boom also leaves behind the listener that closes the old descriptor
  // once a new one opens: kept, the next reopen would close that descriptor twice.
  const settle = (failed: boolean) => {
    e.reopening = false;
    stream.off('ready', onReady);
    stream.off('error', onError);
    if (failed) for (const l of stream.rawListeners('ready')) if (!readyBefore.has(l)) stream.off('ready', l as () => void);
  };
  const onReady = () => settle(false);
  const onError = () => settle(true);
  stream.once('ready', onReady);
  stream.once('error', onError);
  try {
    // What waits belongs to the old file.
    e.stream.flushSync();
  } catch {
    // Still opening: sonic-boom writes the buffer to whichever file it opens next.
  }
  try {
    e.stream.reopen();
  } catch (err) {
    settle(true);
    log.error({ err, file: e.file }, 'the audit file could not be reopened');
  }
}

function close(e: Entry): Promise<void> {
  if (!e.file) {
    // stdout and stderr stay open: the process still writes to them.
    try {
      e.stream.flushSync();
    } catch {
      flush(e);
    }
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    e.stream.once('close', () => resolve());
    e.stream.once('error', () => resolve());
    try {
      // Ends after the buffer is written; the descriptor is closed then.
      e.stream.end();
    } catch {
      resolve();
    }
  });
}
