/**
 * Refusals of the identity plugins: stable error codes and the `WWW-Authenticate: Bearer` challenge that
 * every 401/403 carries (RFC 6750 §3, RFC 9728 §5.1), so an MCP client can discover where to get a token.
 */
import type { RouteInfo, Verdict } from '../../gateway/contract.ts';

/**
 * Stable codes (documented in docs/identity.md). `error` is the RFC 6750 error code clients act on.
 */
export const AUTH_ERRORS = {
  GW_ERR_TOKEN_MISSING: { status: 401, error: 'invalid_request' },
  GW_ERR_TOKEN_MALFORMED: { status: 401, error: 'invalid_request' },
  GW_ERR_TOKEN_SOURCE: { status: 401, error: 'invalid_request' },
  GW_ERR_TOKEN_ALGORITHM: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_SIGNATURE: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_INVALID: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_EXPIRED: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_NOT_YET_VALID: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_ISSUER: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_AUDIENCE: { status: 401, error: 'invalid_token' },
  GW_ERR_TOKEN_REVOKED: { status: 401, error: 'invalid_token' },
  GW_ERR_TENANT_MISSING: { status: 401, error: 'invalid_token' },
  GW_ERR_TENANT_INVALID: { status: 401, error: 'invalid_token' },
  GW_ERR_INSUFFICIENT_SCOPE: { status: 403, error: 'insufficient_scope' },
  // Keys could not be fetched (JWKS endpoint down): the token may well be good, so this is not a 401.
  GW_ERR_AUTH_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
} as const;

export type AuthErrorCode = keyof typeof AUTH_ERRORS;

/** A refusal decided while verifying; turned into a Verdict by `authVerdict`. */
export class AuthError extends Error {
  readonly code: AuthErrorCode;
  constructor(code: AuthErrorCode, message: string) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
  }
}

/** RFC 9728 §3.1: the metadata of resource `<origin><path>` lives at `<origin>/.well-known/oauth-protected-resource<path>`. */
export const METADATA_PREFIX = '/.well-known/oauth-protected-resource';

export function routeMetadataPath(route: RouteInfo): string {
  const p = route.path === '/' ? '' : route.path.replace(/\/+$/, '');
  return METADATA_PREFIX + p;
}

export function metadataUrl(route: RouteInfo): string {
  return route.listener.publicUrl.replace(/\/+$/, '') + routeMetadataPath(route);
}

/** Quoted-string per RFC 9110 §5.6.4; descriptions are ours, but never let one break the header. */
function quote(value: string): string {
  return '"' + value.replace(/[^\x20-\x7e]/g, '?').replace(/(["\\])/g, '\\$1') + '"';
}

export function bearerChallenge(params: { error?: string; description?: string; scope?: string; resourceMetadata?: string }): string {
  const parts: string[] = [];
  if (params.resourceMetadata) parts.push(`resource_metadata=${quote(params.resourceMetadata)}`);
  if (params.error) parts.push(`error=${quote(params.error)}`);
  if (params.description) parts.push(`error_description=${quote(params.description)}`);
  if (params.scope) parts.push(`scope=${quote(params.scope)}`);
  return parts.length ? `Bearer ${parts.join(', ')}` : 'Bearer';
}

/** The verdict for a refusal: status, stable code, and the challenge pointing at this route's metadata. */
export function authVerdict(route: RouteInfo, code: AuthErrorCode, message: string, extra: { scope?: string } = {}): Verdict {
  const { status, error } = AUTH_ERRORS[code];
  const headers: Record<string, string> = {};
  if (status === 503) {
    headers['retry-after'] = '5';
  } else {
    headers['www-authenticate'] = bearerChallenge({
      resourceMetadata: metadataUrl(route),
      error,
      description: message,
      scope: extra.scope,
    });
  }
  return { kind: 'respond', status, code, message, headers };
}
