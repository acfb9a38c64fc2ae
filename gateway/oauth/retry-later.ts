/**
 * "Not now": an OAuth error (`temporarily_unavailable`) that also says when to come back. The endpoint
 * wrapper (server.ts) turns `retryAfterSeconds` into a `Retry-After` header, on the JSON answer of a
 * client endpoint as on the error page of a browser endpoint.
 *
 * Two causes: an address that sent too many requests (429, limits.ts), and a store kind that is full
 * and refuses new entries rather than evict live ones (503, store.ts: the server's state, not the
 * caller's behaviour).
 */
import { OAuthError } from './contracts.ts';

export class RetryLater extends OAuthError {
  readonly retryAfterSeconds: number;
  constructor(description: string, retryAfterSeconds: number, status: 429 | 503) {
    super('temporarily_unavailable', description, status);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}
