/**
 * Rate-limit response headers, in the structured-field form of the IETF draft "RateLimit header fields
 * for HTTP" (draft-ietf-httpapi-ratelimit-headers):
 *   RateLimit-Policy: "default";q=600;w=60, "query";q=20;w=60
 *   RateLimit: "query";r=0;t=42
 * plus `Retry-After` (RFC 9110 §10.2.3, whole seconds) on refusals.
 */
import type { EffectiveLimit } from './budgets.ts';

export interface LimitState {
  limit: EffectiveLimit;
  remaining: number;
  resetMs: number;
}

/** Whole seconds, rounded up, at least 1: a client told "0" would retry at once. */
export function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function policyHeader(limits: Iterable<EffectiveLimit>): string {
  const items: string[] = [];
  for (const l of limits) items.push(`"${l.name}";q=${l.points};w=${l.windowMs / 1000}`);
  return items.join(', ');
}

export function stateHeader(states: Iterable<LimitState>): string {
  const items: string[] = [];
  for (const s of states) items.push(`"${s.limit.name}";r=${s.remaining};t=${seconds(s.resetMs)}`);
  return items.join(', ');
}

/** Headers of a 429 for `limit`, whose window resets in `retryAfterMs`. */
export function refusalHeaders(limit: EffectiveLimit, retryAfterMs: number): Record<string, string> {
  return {
    'retry-after': String(seconds(retryAfterMs)),
    'ratelimit-policy': policyHeader([limit]),
    ratelimit: stateHeader([{ limit, remaining: 0, resetMs: retryAfterMs }]),
  };
}
