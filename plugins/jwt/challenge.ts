/**
 * Refusals of the identity plugins: stable error codes and the `WWW-Authenticate: Bearer` challenge that
 * every 401/403 carries (RFC 6750 §3, RFC 9728 §5.1), so an MCP client can discover where to get a token.
 */
import { errors } from 'jose';
import type { Exchange, RouteInfo, Verdict } from '../../gateway/contract.ts';
import { publicOriginFor } from './resource.ts';

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

/** Where a client that sent `host` finds the route's metadata (see resource.ts for why Host matters). */
export function metadataUrl(route: RouteInfo, host?: string): string {
  return publicOriginFor(route.listener, host) + routeMetadataPath(route);
}

/**
 * What a route's challenges may say, set by its `jwt` plugin when it starts. `token` refuses before
 * `jwt` runs yet must point at the same metadata (or none), so the two meet here, keyed by the route
 * object both are given (a WeakMap: a reloaded route is a new object, and the old entry goes with it).
 */
export interface RouteAuth {
  /**
   * True when the route serves RFC 9728 metadata, i.e. has authorization servers. The MCP spec requires
   * at least one in the metadata, and a challenge pointing at metadata without one sends clients into
   * OAuth discovery that can only fail, hiding the real cause (a missing or bad token).
   */
  metadata: boolean;
  /** How a person gets a token, added to 401 descriptions when there is no metadata to discover it by. */
  tokenHint?: string;
}

const routeAuth = new WeakMap<RouteInfo, RouteAuth>();

export function setRouteAuth(route: RouteInfo, auth: RouteAuth): void {
  routeAuth.set(route, auth);
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

/**
 * The verdict for a refusal: status, stable code, and the challenge, which points at this route's
 * metadata when it serves some, and otherwise tells the person how to get a token.
 */
export function authVerdict(
  x: Pick<Exchange, 'route' | 'req'>,
  code: AuthErrorCode,
  message: string,
  extra: { scope?: string; auth?: RouteAuth } = {},
): Verdict {
  const { status, error } = AUTH_ERRORS[code];
  // `jwt` passes its own; `token`, which runs before it, finds what the route's `jwt` registered.
  const auth = extra.auth ?? routeAuth.get(x.route);
  const headers: Record<string, string> = {};
  let description = message;
  if (status === 503) {
    headers['retry-after'] = '5';
  } else {
    if (status === 401 && !auth?.metadata && auth?.tokenHint) description = `${message} ${auth.tokenHint}`;
    headers['www-authenticate'] = bearerChallenge({
      resourceMetadata: auth?.metadata ? metadataUrl(x.route, x.req.headers.host) : undefined,
      error,
      description,
      scope: extra.scope,
    });
  }
  return { kind: 'respond', status, code, message: description, headers };
}

/** jose's errors → our stable codes. Messages are for people and never include the token. */
export function toAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWTExpired) return new AuthError('GW_ERR_TOKEN_EXPIRED', 'The token has expired.');
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf': return new AuthError('GW_ERR_TOKEN_NOT_YET_VALID', 'The token is not valid yet (nbf).');
      case 'iss': return new AuthError('GW_ERR_TOKEN_ISSUER', 'The token was issued by an issuer this route does not trust.');
      case 'aud': return new AuthError('GW_ERR_TOKEN_AUDIENCE', 'The token is not meant for this resource (aud).');
      default: return new AuthError('GW_ERR_TOKEN_INVALID', `The token's "${err.claim}" claim is ${err.reason === 'missing' ? 'missing' : 'invalid'}.`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new AuthError('GW_ERR_TOKEN_ALGORITHM', 'The token is signed with an algorithm this route does not accept.');
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new AuthError('GW_ERR_TOKEN_SIGNATURE', 'The token signature is invalid.');
  if (err instanceof errors.JWKSNoMatchingKey) return new AuthError('GW_ERR_TOKEN_SIGNATURE', 'No trusted key matches the token (kid).');
  if (err instanceof errors.JWKSTimeout) return new AuthError('GW_ERR_AUTH_UNAVAILABLE', "The identity provider's keys could not be fetched in time.");
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return new AuthError('GW_ERR_TOKEN_MALFORMED', 'The token is not a well-formed signed JWT.');
  return new AuthError('GW_ERR_TOKEN_INVALID', 'The token could not be verified.');
}
