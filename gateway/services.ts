/**
 * What the gateway builds once at start and keeps across reloads: the Redis connection shared with
 * plugins, the session sealer, and the cache of stdio upstreams (whose processes and sessions outlive
 * a reload that leaves their config unchanged).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ConfigError, type LoadedConfig } from '../config/load.ts';
import type { SharedServices } from './contract.ts';
import type { Runtime, StdioCache, UpstreamTarget } from './runtime.ts';
import { SessionSealer } from './session-seal.ts';
import type { StdioUpstream } from './stdio/upstream.ts';

/** The services every plugin instance gets; Redis connected (or given up on after 5s) when configured. */
export async function connectSharedServices(loaded: LoadedConfig, log: Logger): Promise<SharedServices> {
  const shared: SharedServices = { redisKeyPrefix: loaded.config.redis?.keyPrefix ?? 'mcpgw:' };
  if (loaded.config.redis?.url) {
    // No offline queue: while Redis is down, commands fail at once (plugins fall back or refuse)
    // instead of piling up behind a reconnect.
    const { Redis } = await import('ioredis'); // only when configured: Redis is optional
    shared.redis = new Redis(loaded.config.redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    shared.redis.on('error', (err) => log.warn({ err: { message: err.message } }, 'redis error'));
    await waitForRedis(shared.redis, 5_000, log);
  }
  return shared;
}

async function waitForRedis(redis: Redis, timeoutMs: number, log: Logger): Promise<void> {
  if (redis.status === 'ready') return;
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (!ready) log.warn({ timeoutMs }, 'redis is not reachable yet: starting anyway; plugins that use it fall back as configured and /readyz reports it');
}

/** The configured session keys, or a random key (with a warning: sessions then die with the process). */
export function sessionSealer(loaded: LoadedConfig, log: Logger): SessionSealer {
  let sealer: SessionSealer | undefined;
  try {
    sealer = SessionSealer.fromConfig(loaded.config.sessions.key, loaded.config.sessions.previousKeys);
  } catch (err) {
    throw new ConfigError(loaded.source, [`sessions.key: ${(err as Error).message}`]);
  }
  if (sealer) return sealer;
  log.warn('sessions.key is not set: session ids are sealed with a random key made at start; they do not survive a restart and replicas cannot share them');
  return SessionSealer.random();
}

/** Puts a new runtime's stdio upstreams into the cache; returns those it no longer uses. */
export function adoptStdio(cache: StdioCache, runtime: Runtime): StdioUpstream[] {
  const retired: StdioUpstream[] = [];
  for (const [name, entry] of runtime.startedStdio) {
    const old = cache.get(name);
    if (old) retired.push(old.upstream);
    cache.set(name, entry);
  }
  for (const [name, entry] of cache) {
    if (![...runtime.upstreams.values()].some((u) => u.stdio === entry.upstream)) {
      cache.delete(name);
      retired.push(entry.upstream);
    }
  }
  return retired;
}

/**
 * Ends a federation's session for the admin API (`DELETE /admin/sessions/{id}`) the way a client's
 * DELETE would, in process: a federation has no address to send one to, and its session id is all it
 * needs to end its members' sessions. Best effort, as the DELETE to an HTTP upstream: no answer awaited.
 */
export function endFederationSession(target: UpstreamTarget, upstreamSessionId: string): boolean {
  const fed = target.federation;
  if (!fed) return false;
  const call = {
    method: 'DELETE',
    pathAndQuery: target.basePath,
    headers: { 'mcp-session-id': upstreamSessionId },
    body: undefined,
    principal: undefined,
    signal: AbortSignal.timeout(5_000),
  };
  void Promise.resolve()
    .then(() => fed.dispatch(call))
    .then((res) => res.resume(), () => undefined);
  return true;
}
