/**
 * Verified tokens, so steady traffic costs one SHA-256 and one LRU lookup per request instead of a
 * signature check. Keyed by a hash of the token (the cache never holds a usable credential), bounded
 * in entries, and an entry never outlives its token's `exp`. Revocation is checked by the caller on
 * every hit, so a cached token can still be revoked.
 */
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export interface VerifyCache<V extends {}> {
  key(token: string): string;
  get(key: string): V | undefined;
  /** `expiresAtMs`: the token's `exp` in epoch ms, or undefined for a token without expiry. */
  set(key: string, value: V, expiresAtMs: number | undefined): void;
  readonly size: number;
}

interface Entry<V> {
  value: V;
  expiresAtMs: number;
}

/**
 * @param max most entries; 0 disables caching (every request verifies the signature).
 * @param maxAgeMs longest an entry lives, also for tokens without `exp` (it bounds how long a key
 *   removed from the JWKS keeps working for a token already seen).
 */
export function createVerifyCache<V extends {}>(max: number, maxAgeMs: number): VerifyCache<V> {
  if (max === 0) {
    return { key: (t) => t, get: () => undefined, set: () => {}, size: 0 };
  }
  const lru = new LRUCache<string, Entry<V>>({ max });
  return {
    key: (token) => hash('sha256', token, 'base64url'),
    get(key) {
      const entry = lru.get(key);
      if (entry === undefined) return undefined;
      // Checked against the wall clock on each hit, which is what `exp` is measured in.
      if (Date.now() >= entry.expiresAtMs) {
        lru.delete(key);
        return undefined;
      }
      return entry.value;
    },
    set(key, value, expiresAtMs) {
      const limit = Date.now() + maxAgeMs;
      const until = expiresAtMs === undefined ? limit : Math.min(expiresAtMs, limit);
      if (until > Date.now()) lru.set(key, { value, expiresAtMs: until });
    },
    get size() { return lru.size; },
  };
}
