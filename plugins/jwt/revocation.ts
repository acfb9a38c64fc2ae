/**
 * Revoked token ids (`jti`), checked on every request, cache hits included.
 *
 * The check is one Set lookup per source; the sets are kept current in the background, so
 * `npm run token -- revoke <jti>` takes effect without a restart:
 * - a file (one jti a line, `#` starts a comment) polled for changes every `interval`;
 * - a Redis set `<keyPrefix>revoked-jti`, loaded at start, refreshed every `interval` × 30, and updated at
 *   once through the pub/sub channel of the same name, which the CLI publishes to.
 */
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface RevocationList {
  has(jti: string): boolean;
  /**
   * False while the list could not be loaded yet (Redis down at start): tokens with a `jti` are then
   * refused with 503 rather than accepted unchecked (fail closed), and the gateway still starts.
   */
  ready(): boolean;
  close(): Promise<void>;
}

/** Redis key (a set) and pub/sub channel holding revoked jtis; shared with the CLI. */
export function revokedKey(keyPrefix: string): string {
  return `${keyPrefix}revoked-jti`;
}

export function parseRevocationFile(text: string): Set<string> {
  const ids = new Set<string>();
  for (const line of text.split('\n')) {
    const id = line.replace(/#.*/, '').trim();
    if (id) ids.add(id);
  }
  return ids;
}

function readRevocationFile(file: string): Set<string> {
  try {
    return parseRevocationFile(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
}

export function fileRevocationList(file: string, opts: { intervalMs: number; log: Logger }): RevocationList {
  // A missing file is an empty list; an unreadable one fails the plugin's creation (fail closed).
  let revoked = readRevocationFile(file);
  const onChange = (curr: Stats, prev: Stats) => {
    // Node also calls this once for a file that does not exist yet; only a real change matters.
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size) return;
    try {
      revoked = readRevocationFile(file);
      opts.log.info({ file, revoked: revoked.size }, 'revocation list reloaded');
    } catch (err) {
      // Keep the last good list rather than forgetting every revocation.
      opts.log.error({ file, err: (err as Error).message }, 'revocation list unreadable; keeping the previous one');
    }
  };
  // watchFile polls stat(): it survives the file being created later or replaced by a rename.
  watchFile(file, { interval: opts.intervalMs, persistent: false }, onChange);
  return {
    has: (jti) => revoked.has(jti),
    ready: () => true,
    async close() { unwatchFile(file, onChange); },
  };
}

export async function redisRevocationList(redis: Redis, keyPrefix: string, opts: { refreshMs: number; log: Logger }): Promise<RevocationList> {
  const key = revokedKey(keyPrefix);
  let revoked = new Set<string>();
  let loaded = false;
  try {
    revoked = new Set(await redis.smembers(key));
    loaded = true;
  } catch (err) {
    opts.log.error({ err: (err as Error).message }, 'revocation list not loaded (Redis unreachable): tokens with a jti are refused with 503 until it loads');
  }
  // The shared client has no offline queue (commands fail fast while Redis is down); the subscriber
  // is a fresh connection that must be allowed to queue its SUBSCRIBE until it is connected.
  const subscriber = redis.duplicate({ enableOfflineQueue: true });
  subscriber.on('error', (err) => opts.log.warn({ err: err.message }, 'revocation subscriber error'));
  // Ids heard on the channel while a refresh is in flight: its reply may predate them.
  let heardDuringRefresh: string[] | undefined;
  subscriber.on('message', (_channel: string, jti: string) => {
    revoked.add(jti);
    heardDuringRefresh?.push(jti);
  });
  const load = () => {
    heardDuringRefresh = [];
    redis.smembers(key).then(
      (ids) => {
        revoked = new Set([...ids, ...(heardDuringRefresh ?? [])]);
        heardDuringRefresh = undefined;
        if (!loaded) opts.log.info({ revoked: revoked.size }, 'revocation list loaded');
        loaded = true;
      },
      (err: Error) => {
        heardDuringRefresh = undefined;
        opts.log.warn({ err: err.message }, 'revocation list refresh failed; keeping the previous one');
      },
    );
  };
  const refresh = setInterval(load, opts.refreshMs);
  refresh.unref();
  // Until the first load succeeds, retry every second rather than every refresh period.
  const retry = loaded ? undefined : setInterval(() => (loaded ? clearInterval(retry) : load()), 1000);
  retry?.unref();
  // With Redis up, be subscribed before serving (no revocation can slip between load and subscribe);
  // with Redis down, SUBSCRIBE waits in the subscriber's queue and must not hold the gateway's start.
  const subscribed = subscriber.subscribe(key).catch((err: Error) => opts.log.warn({ err: err.message }, 'revocation channel subscribe failed'));
  if (loaded) await subscribed;
  return {
    has: (jti) => revoked.has(jti),
    ready: () => loaded,
    async close() {
      clearInterval(refresh);
      clearInterval(retry);
      subscriber.disconnect();
    },
  };
}

/** Several sources: a jti is revoked when any of them says so. */
export function anyRevocationList(lists: RevocationList[]): RevocationList {
  if (lists.length === 1) return lists[0];
  return {
    has: (jti) => lists.some((l) => l.has(jti)),
    ready: () => lists.every((l) => l.ready()),
    async close() { await Promise.all(lists.map((l) => l.close())); },
  };
}
