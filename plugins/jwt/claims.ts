/**
 * Verified claims → Principal: tenant (at a configurable claim path), subject, scopes, token id, expiry.
 */
import type { JWTPayload } from 'jose';
import type { Principal } from '../../gateway/contract.ts';
import { AuthError } from './challenge.ts';

/** Reads `org.id` as `claims.org.id`. A claim whose own name contains a dot is found too (`"org.id": …`). */
export function claimAt(claims: Record<string, unknown>, claimPath: string): unknown {
  if (Object.hasOwn(claims, claimPath)) return claims[claimPath];
  let node: unknown = claims;
  for (const part of claimPath.split('.')) {
    // Own properties only: a claim path must never reach `__proto__` or `constructor`.
    if (node === null || typeof node !== 'object' || Array.isArray(node) || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** OAuth's `scope` (space-separated string, RFC 8693) and Microsoft/Okta's `scp` (array or string). */
export function scopesOf(claims: Record<string, unknown>): string[] {
  const out = new Set<string>();
  for (const value of [claims.scope, claims.scp]) {
    if (typeof value === 'string') for (const s of value.split(/\s+/)) { if (s) out.add(s); }
    else if (Array.isArray(value)) for (const s of value) { if (typeof s === 'string' && s) out.add(s); }
  }
  return [...out];
}

export function principalFrom(payload: JWTPayload, opts: { tenantClaim: string; tenantPattern: RegExp }): Principal {
  const claims = payload as Record<string, unknown>;
  const raw = claimAt(claims, opts.tenantClaim);
  if (raw === undefined || raw === null || raw === '') {
    throw new AuthError('GW_ERR_TENANT_MISSING', `The token has no "${opts.tenantClaim}" claim naming the tenant.`);
  }
  // Numeric organisation ids are common; anything else that is not a string is refused.
  const tenant = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : raw;
  if (typeof tenant !== 'string' || !opts.tenantPattern.test(tenant)) {
    throw new AuthError('GW_ERR_TENANT_INVALID', `The tenant in "${opts.tenantClaim}" does not match ${opts.tenantPattern.source}.`);
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') {
    throw new AuthError('GW_ERR_TOKEN_INVALID', 'The token has no "sub" (subject) claim.');
  }
  return {
    issuer: payload.iss ?? '',
    tenant,
    subject: payload.sub,
    scopes: scopesOf(claims),
    tokenId: typeof payload.jti === 'string' ? payload.jti : undefined,
    expiresAt: payload.exp,
    claims: Object.freeze({ ...claims }),
  };
}
