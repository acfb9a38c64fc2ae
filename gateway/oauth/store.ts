/**
 * Where the authorization server keeps its short-lived state (OAuthStore, contracts.ts): authorization
 * requests waiting for a sign-in, codes, refresh-token families, registered clients.
 *
 * - `memory`: one replica. Every entry expires, and every kind has its own capacity (CAPACITY below).
 * - `redis`: several replicas share one store (`redis.url`), keys `<redis.keyPrefix>oauth:<kind>:<key>`,
 *   each with its TTL; `take` is GETDEL, so a code is redeemed once even when two replicas race.
 *
 * Why one capacity per kind: `/oauth/register` and `GET /oauth/authorize` need no authentication, and
 * each call stores something (a client, a pending sign-in). With one shared bound, a flood of either
 * evicted everything else, oldest first: every refresh-token family (everybody signed out) and every
 * registered client (every client must register again). Now a kind can only ever push out its own kind,
 * and what happens when one is full depends on what an entry is worth:
 *
 * - `pending`, `oidc-state` (sign-ins in progress, 10 minutes): the oldest goes. A flood then costs at
 *   worst the sign-ins started before it, which the person retries; refusing instead would let the
 *   flood block every new sign-in for as long as it lasts.
 * - `client` (registered clients, 30 days): full means refusing new registrations (503,
 *   `temporarily_unavailable`). Evicting would let anyone unregister real clients by registering junk;
 *   a refused registration only delays a new client, and the per-address limit (limits.ts) makes
 *   filling the kind slow. This is the only kind Redis bounds too (an index of the clients and their
 *   expiry, see redisStore): 30 days of junk would otherwise sit in Redis.
 * - codes, refresh tokens and families: only a person who signed in creates them, so they cannot be
 *   flooded anonymously. When full the least recently written goes (a family is rewritten on each
 *   refresh, so that is the grant unused the longest): the alternative, refusing every new sign-in
 *   until a grant expires in up to 30 days, would be worse. `code-used`/`refresh-used` (reuse
 *   detection, small entries) losing their oldest only stops a very late replay being noticed; the
 *   replayed token is refused anyway.
 *
 * Values are stored as JSON in both, so a caller never shares an object with the store (a change to what
 * `get` returned is not a change to the store, as with Redis).
 */
import type { Redis } from 'ioredis';
import type { OAuthStore } from './contracts.ts';
import { RetryLater } from './retry-later.ts';

export interface KindCapacity {
  max: number;
  whenFull: 'evict-oldest' | 'refuse';
}

/** Sizes: a few kB per entry at most, so the whole store stays within some hundred MB even when full. */
export const CAPACITY: Readonly<Record<string, KindCapacity>> = {
  pending: { max: 10_000, whenFull: 'evict-oldest' },
  'oidc-state': { max: 10_000, whenFull: 'evict-oldest' },
  client: { max: 10_000, whenFull: 'refuse' },
  code: { max: 10_000, whenFull: 'evict-oldest' },
  'code-used': { max: 100_000, whenFull: 'evict-oldest' },
  family: { max: 50_000, whenFull: 'evict-oldest' },
  refresh: { max: 50_000, whenFull: 'evict-oldest' },
  'refresh-used': { max: 100_000, whenFull: 'evict-oldest' },
};
/** A kind not listed above. */
const OTHER: KindCapacity = { max: 10_000, whenFull: 'evict-oldest' };
/** A refused entry says "retry in" at most this long: the operator may act sooner than the oldest expires. */
const MAX_RETRY_AFTER_S = 3_600;

/** A `refuse` kind is full: answered 503 with Retry-After (RetryLater). */
export class StoreFull extends RetryLater {
  readonly kind: string;
  constructor(kind: string, retryAfterSeconds: number) {
    super(`the server holds as many ${kind === 'client' ? 'registered clients' : `${kind} entries`} as it can; retry later`,
      Math.min(MAX_RETRY_AFTER_S, retryAfterSeconds), 503);
    this.kind = kind;
  }
}

interface Options {
  /** Per-kind capacities replacing CAPACITY's (tests); kinds not given keep theirs. */
  capacity?: Record<string, KindCapacity>;
  now?: () => number;
}

function capacities(opts: Options): (kind: string) => KindCapacity {
  const table = { ...CAPACITY, ...opts.capacity };
  return (kind) => table[kind] ?? OTHER;
}

interface Entry {
  json: string;
  expiresAt: number;
}

export function memoryStore(opts: Options = {}): OAuthStore & { readonly size: number; sizeOf(kind: string): number } {
  const capacityOf = capacities(opts);
  const now = opts.now ?? Date.now;
  const kinds = new Map<string, Map<string, Entry>>();
  const kindMap = (kind: string) => {
    let m = kinds.get(kind);
    if (!m) kinds.set(kind, (m = new Map()));
    return m;
  };
  const live = (m: Map<string, Entry> | undefined, key: string): Entry | undefined => {
    const e = m?.get(key);
    if (e && e.expiresAt <= now()) {
      m!.delete(key);
      return undefined;
    }
    return e;
  };
  /** Room for one more entry of this kind, or StoreFull. */
  const makeRoom = (kind: string, m: Map<string, Entry>) => {
    const cap = capacityOf(kind);
    if (m.size < cap.max) return;
    const t = now();
    if (cap.whenFull === 'evict-oldest') {
      // Map iterates in insertion order, and a rewrite re-inserts: the first entries are the ones written
      // longest ago. The oldest hundredth goes at once: starting an iteration skips every entry deleted
      // since the Map last compacted, which one eviction per put (under a flood) pays each time.
      const keep = cap.max - Math.max(1, Math.floor(cap.max / 100));
      for (const k of m.keys()) {
        if (m.size <= keep) break;
        m.delete(k);
      }
      return;
    }
    // A kind's entries share one lifetime, so insertion order is expiry order: the expired ones are at
    // the front, and a refusal costs no scan of the whole kind (it may come once per flooding request).
    for (const [k, e] of m) {
      if (e.expiresAt > t) throw new StoreFull(kind, (e.expiresAt - t) / 1000);
      m.delete(k);
      if (m.size < cap.max) return;
    }
  };
  return {
    get size() {
      let n = 0;
      for (const m of kinds.values()) n += m.size;
      return n;
    },
    sizeOf(kind) {
      return kinds.get(kind)?.size ?? 0;
    },
    async put(kind, key, value, ttlMs) {
      const m = kindMap(kind);
      const json = JSON.stringify(value);
      // A rewrite of a live entry takes no new room (a refusing kind still renews its entries), and is
      // re-inserted at the end: it counts as the newest for eviction.
      if (!live(m, key)) makeRoom(kind, m);
      m.delete(key);
      m.set(key, { json, expiresAt: now() + Math.max(1, ttlMs) });
    },
    async get<T>(kind: string, key: string) {
      const e = live(kinds.get(kind), key);
      return e ? (JSON.parse(e.json) as T) : undefined;
    },
    async take<T>(kind: string, key: string) {
      const m = kinds.get(kind);
      const e = live(m, key);
      if (!e) return undefined;
      m!.delete(key);
      return JSON.parse(e.json) as T;
    },
    async delete(kind, key) {
      kinds.get(kind)?.delete(key);
    },
  };
}

/**
 * Redis keeps every kind until its TTL. A `refuse` kind (registered clients) is also counted: a sorted
 * set `<prefix>oauth:index:<kind>` holds its keys scored by expiry, so a new key is refused while the
 * set holds `max` unexpired ones. Replicas registering at the same instant may each see room and go a
 * little over: a bound, not an exact count. Other kinds are bounded by their short TTLs and the
 * per-address request limits.
 */
export function redisStore(redis: Redis, keyPrefix: string, opts: Options = {}): OAuthStore {
  const capacityOf = capacities(opts);
  const now = opts.now ?? Date.now;
  const id = (kind: string, key: string) => `${keyPrefix}oauth:${kind}:${key}`;
  const indexOf = (kind: string) => `${keyPrefix}oauth:index:${kind}`;
  const counted = (kind: string) => capacityOf(kind).whenFull === 'refuse';
  const parse = <T>(text: string | null): T | undefined => (text === null ? undefined : (JSON.parse(text) as T));

  async function admit(kind: string, key: string, ttl: number): Promise<void> {
    const index = indexOf(kind);
    const t = now();
    if (!(await redis.exists(id(kind, key)))) {
      const [, count, oldest] = (await redis.multi()
        .zremrangebyscore(index, '-inf', t)
        .zcard(index)
        .zrange(index, 0, 0, 'WITHSCORES')
        .exec())!.map(([err, v]) => {
        if (err) throw err;
        return v;
      }) as [unknown, number, string[]];
      if (count >= capacityOf(kind).max) throw new StoreFull(kind, (Number(oldest[1]) - t) / 1000);
    }
    // The index lives as long as its newest entry could.
    await redis.multi().zadd(index, t + ttl, key).pexpire(index, ttl).exec();
  }

  return {
    async put(kind, key, value, ttlMs) {
      const ttl = Math.max(1, Math.ceil(ttlMs));
      if (counted(kind)) await admit(kind, key, ttl);
      await redis.set(id(kind, key), JSON.stringify(value), 'PX', ttl);
    },
    async get<T>(kind: string, key: string) {
      return parse<T>(await redis.get(id(kind, key)));
    },
    async take<T>(kind: string, key: string) {
      // GETDEL (Redis 6.2+): read and delete in one step, so a second redeemer always gets nothing.
      const value = parse<T>(await redis.getdel(id(kind, key)));
      if (counted(kind)) await redis.zrem(indexOf(kind), key);
      return value;
    },
    async delete(kind, key) {
      await redis.del(id(kind, key));
      if (counted(kind)) await redis.zrem(indexOf(kind), key);
    },
  };
}
