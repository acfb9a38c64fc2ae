/**
 * What the authorization server keeps across reloads: its store (sign-ins in progress, codes, refresh
 * tokens, registered clients), the tokens it revoked, and the login guards' counters. A reload builds a
 * new authorization server from the new config (new pages, accounts, clients policy), but a person in
 * the middle of signing in, or a client holding a refresh token, must not notice.
 *
 * Kept per gateway, keyed by the SharedServices object the gateway builds once at start (services.ts)
 * and hands to every runtime it builds, so nothing in gateway.ts has to carry it.
 */
import type { LoginGuard, OAuthStore } from './contracts.ts';
import type { SharedServices } from '../contract.ts';
import { RevokedTokens } from './revocations.ts';
import { memoryStore, redisStore } from './store.ts';

export interface OAuthState {
  store: OAuthStore;
  revoked: RevokedTokens;
  /** Login guards by their canonical options: a reload with the same limits keeps the counters. */
  guards: Map<string, LoginGuard>;
}

interface Kept extends OAuthState {
  storeKind: 'memory' | 'redis';
}

const states = new WeakMap<SharedServices, Kept>();

export function oauthState(shared: SharedServices, storeKind: 'memory' | 'redis'): OAuthState {
  let kept = states.get(shared);
  if (!kept) {
    kept = { storeKind, store: makeStore(shared, storeKind), revoked: new RevokedTokens(), guards: new Map() };
    states.set(shared, kept);
  } else if (kept.storeKind !== storeKind) {
    // Switching stores starts afresh: sign-ins in progress and refresh tokens of the old one are gone.
    kept.storeKind = storeKind;
    kept.store = makeStore(shared, storeKind);
  }
  return kept;
}

function makeStore(shared: SharedServices, kind: 'memory' | 'redis'): OAuthStore {
  if (kind === 'memory') return memoryStore();
  if (!shared.redis) throw new Error('authorization.store: redis needs redis.url');
  return redisStore(shared.redis, shared.redisKeyPrefix);
}
