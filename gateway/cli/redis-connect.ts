/**
 * Redis for the token CLI: connected within a few seconds, or a clear error.
 *
 * The CLI used ioredis' defaults, which retry a refused connection forever: `revoke` and `inspect`
 * printed nothing and never exited while Redis was down. A one-shot command wants the opposite: one
 * attempt, a short connect timeout, no offline queue, and an error naming the server and what to do.
 */
import { Redis } from 'ioredis';
import { safeUrl } from '../banner.ts';
import { describeNetError } from '../net-error.ts';

const CONNECT_TIMEOUT_MS = 3_000;

/**
 * Connects once. Rejects with an error naming the URL (without password), the cause and `remedy`
 * when Redis does not answer within a few seconds.
 */
export async function connectRedisOnce(url: string, remedy: string): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // One attempt: a CLI reports and exits rather than waiting for Redis to come back.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  let cause: unknown;
  // Reported below, once; without a listener ioredis prints every attempt's error itself.
  redis.on('error', (err) => { cause ??= err; });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${(CONNECT_TIMEOUT_MS + 2_000) / 1000}s`)), CONNECT_TIMEOUT_MS + 2_000);
  });
  try {
    await Promise.race([redis.connect(), deadline]);
    return redis;
  } catch (err) {
    redis.disconnect();
    const why = describeNetError(cause ?? err);
    throw new Error(`cannot reach Redis at ${safeUrl(url)} (${why.code ?? why.message}). ${remedy}`);
  } finally {
    clearTimeout(timer);
  }
}
