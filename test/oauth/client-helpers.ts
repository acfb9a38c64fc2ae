/**
 * Shared by the client-registry tests: a Map-backed OAuthStore and an OAuthError assertion.
 */
import assert from 'node:assert/strict';
import { OAuthError, type OAuthStore } from '../../gateway/oauth/contracts.ts';

/** A Map-backed OAuthStore that also records every write (TTL included). */
export function mapStore() {
  const map = new Map<string, unknown>();
  const puts: Array<{ kind: string; key: string; ttlMs: number }> = [];
  const store: OAuthStore = {
    async put(kind, key, value, ttlMs) { puts.push({ kind, key, ttlMs }); map.set(`${kind}:${key}`, structuredClone(value)); },
    async get<T>(kind: string, key: string) { return structuredClone(map.get(`${kind}:${key}`)) as T | undefined; },
    async take<T>(kind: string, key: string) { const v = map.get(`${kind}:${key}`) as T | undefined; map.delete(`${kind}:${key}`); return v; },
    async delete(kind, key) { map.delete(`${kind}:${key}`); },
  };
  return { store, map, puts };
}

/** Asserts an OAuthError with this code whose description matches. */
export function oauthError(error: string, description: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof OAuthError, `expected an OAuthError, got ${String(err)}`);
    assert.equal(err.error, error);
    assert.match(err.message, description);
    return true;
  };
}
