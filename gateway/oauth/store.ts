/**
 * Where the authorization server keeps its short-lived state (OAuthStore, contracts.ts): authorization
 * requests waiting for a sign-in, codes, refresh-token families, registered clients.
 *
 * - `memory`: one replica. Bounded (the oldest entries go first when full) and every entry expires, so
 *   nobody can grow it without limit by starting sign-ins they never finish.
 * - `redis`: several replicas share one store (`redis.url`), keys `<redis.keyPrefix>oauth:<kind>:<key>`,
 *   each with its TTL; `take` is GETDEL, so a code is redeemed once even when two replicas race.
 *
 * Values are stored as JSON in both, so a caller never shares an object with the store (a change to what
 * `get` returned is not a change to the store, as with Redis).
 */
import type { Redis } from 'ioredis';
import type { OAuthStore } from './contracts.ts';

interface Entry {
  json: string;
  expiresAt: number;
}

export function memoryStore(opts: { maxEntries?: number; now?: () => number } = {}): OAuthStore & { readonly size: number } {
  const max = opts.maxEntries ?? 100_000;
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const id = (kind: string, key: string) => `${kind}\u0000${key}`;
  const live = (k: string): Entry | undefined => {
    const e = entries.get(k);
    if (e && e.expiresAt <= now()) {
      entries.delete(k);
      return undefined;
    }
    return e;
  };
  const makeRoom = () => {
    if (entries.size < max) return;
    const t = now();
    for (const [k, e] of entries) if (e.expiresAt <= t) entries.delete(k);
    // Still full: the oldest insertions go (Map iterates in insertion order).
    for (const k of entries.keys()) {
      if (entries.size < max) break;
      entries.delete(k);
    }
  };
  return {
    get size() {
      return entries.size;
    },
    async put(kind, key, value, ttlMs) {
      const k = id(kind, key);
      entries.delete(k); // re-inserted at the end: a rewrite counts as new for eviction
      makeRoom();
      entries.set(k, { json: JSON.stringify(value), expiresAt: now() + Math.max(1, ttlMs) });
    },
    async get<T>(kind: string, key: string) {
      const e = live(id(kind, key));
      return e ? (JSON.parse(e.json) as T) : undefined;
    },
    async take<T>(kind: string, key: string) {
      const k = id(kind, key);
      const e = live(k);
      if (!e) return undefined;
      entries.delete(k);
      return JSON.parse(e.json) as T;
    },
    async delete(kind, key) {
      entries.delete(id(kind, key));
    },
  };
}

export function redisStore(redis: Redis, keyPrefix: string): OAuthStore {
  const id = (kind: string, key: string) => `${keyPrefix}oauth:${kind}:${key}`;
  const parse = <T>(text: string | null): T | undefined => (text === null ? undefined : (JSON.parse(text) as T));
  return {
    async put(kind, key, value, ttlMs) {
      await redis.set(id(kind, key), JSON.stringify(value), 'PX', Math.max(1, Math.ceil(ttlMs)));
    },
    async get<T>(kind: string, key: string) {
      return parse<T>(await redis.get(id(kind, key)));
    },
    async take<T>(kind: string, key: string) {
      // GETDEL (Redis 6.2+): read and delete in one step, so a second redeemer always gets nothing.
      return parse<T>(await redis.getdel(id(kind, key)));
    },
    async delete(kind, key) {
      await redis.del(id(kind, key));
    },
  };
}
