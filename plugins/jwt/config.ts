/**
 * The `jwt` plugin's options: where keys come from, which issuers, audiences and algorithms are
 * accepted, how tenant and scopes are read, revocation, and what its RFC 9728 metadata says. Every
 * default is written next to its field; docs/identity.md is the reader's version.
 */
import { z } from 'zod';
import { bool, duration, int } from '../../config/units.ts';
import { DEV_ALGORITHMS, DEV_DIR } from './dev-keys.ts';
import { JWS_ALGORITHMS } from './keys.ts';

const oneOrMore = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const KEY_SOURCES = ['jwksUrl', 'jwksFile', 'publicKeyFile', 'secret', 'dev'] as const;

export const KeysSchema = z
  .strictObject({
    /** An identity provider's JWKS endpoint, e.g. `https://idp.example.com/.well-known/jwks.json`. */
    jwksUrl: z.url().optional(),
    /** A JWKS file (relative to gateway.yaml), re-read when a token names a key it lacks. */
    jwksFile: z.string().min(1).optional(),
    /** A PEM public key (SPKI) file: RSA (RS256…, PS256…), EC (ES256…) or Ed25519 (EdDSA). */
    publicKeyFile: z.string().min(1).optional(),
    /** An HMAC secret (HS*), at least 32 bytes; write it as `${JWT_SECRET}`, never literally. */
    secret: z.string().optional(),
    /**
     * The gateway's development issuer: keys in `dir` (relative to gateway.yaml; default `.dev-keys`),
     * created on first use with `alg` (`EdDSA` default, or `ES256`). Tokens: `npm run token -- create`.
     */
    dev: z
      .strictObject({
        dir: z.string().min(1).default(DEV_DIR),
        alg: z.enum(DEV_ALGORITHMS).default('EdDSA'),
      })
      .optional(),
    /** jwksUrl: shortest time between two fetches caused by an unknown `kid`. Default 30s. */
    cooldown: duration().default(30_000),
    /** jwksUrl: refetch the key set after this long. Default 10m. */
    cacheMaxAge: duration().default(600_000),
    /** jwksUrl: fetch timeout; a slow IdP is a 503 GW_ERR_AUTH_UNAVAILABLE. Default 5s. */
    timeout: duration().default(5_000),
  })
  .superRefine((keys, ctx) => {
    const set = KEY_SOURCES.filter((k) => keys[k] !== undefined);
    if (set.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `set exactly one of ${KEY_SOURCES.join(', ')} (found ${set.length ? set.join(', ') : 'none'})` });
    }
  });

export const JwtConfigSchema = z.strictObject({
  /** Where verification keys come from. Required, except with `authorizationServer: gateway` (then optional). */
  keys: KeysSchema.optional(),
  /**
   * Required allow-list of signature algorithms, e.g. `[EdDSA]` or `[RS256]`. `none` does not exist
   * here, and each key is only used with algorithms of its own family.
   */
  algorithms: z.array(z.enum(JWS_ALGORITHMS)).min(1).optional(),
  /** Accepted `iss` value(s) for `keys`. Required with `keys`. The development issuer is `mcp-gateway-dev`. */
  issuer: oneOrMore.optional(),
  /**
   * `gateway`: also accept the tokens of the gateway's own authorization server (gateway.yaml
   * `authorization:`): its issuer and keys are trusted for this route, with this route's resource as
   * audience, it issues tokens for this route, and the protected-resource metadata names it. Opt-in per
   * route, so that turning the authorization server on never widens who can reach a route that trusts
   * another identity provider (docs/identity.md). Default: not trusted.
   */
  authorizationServer: z.literal('gateway').optional(),
  /**
   * Accepted `aud` value(s). Default: the resource (`resource` below), as the MCP authorization spec
   * requires tokens to be bound to the server they are for; on a loopback public URL, each loopback
   * spelling of it (`localhost`, `127.0.0.1`, `[::1]`), since the advertised resource follows the one
   * the client used (resource.ts).
   */
  audience: oneOrMore.optional(),
  /** Allowed clock skew for `exp`, `nbf` and `iat`. Default 30s. */
  clockTolerance: duration().default(30_000),
  /** Refuse tokens without `exp` (they would be valid forever). Default true. */
  requireExpiry: bool().default(true),
  /** Claim holding the tenant id; a dotted path reads nested claims (`org.id`). Default `tenant_id`. */
  tenantClaim: z.string().min(1).default('tenant_id'),
  /**
   * Anchored regular expression a tenant id must match, so it is safe in names, paths and prefixes.
   * Default `^[a-z0-9-]{1,64}$` (no `_`, the separator tenant prefixes use).
   */
  tenantPattern: z
    .string()
    .default('^[a-z0-9-]{1,64}$')
    .refine((p) => p.startsWith('^') && p.endsWith('$'), 'must be anchored with ^ and $')
    .refine((p) => { try { new RegExp(p); return true; } catch { return false; } }, 'not a valid regular expression'),
  /** Scopes every request on this route needs; missing ones are 403 GW_ERR_INSUFFICIENT_SCOPE. Default none. */
  requiredScopes: z.array(z.string().min(1)).default([]),
  /**
   * How long an SSE stream may outlive its token's `exp` before the gateway ends it (the client then
   * reconnects with a fresh token). Default 30s.
   */
  streamGrace: duration().default(30_000),
  /** Verified-token cache. `max` entries (0 disables; default 10000), each kept at most `maxAge` (default 1h) and never past `exp`. */
  cache: z
    .strictObject({
      max: int().pipe(z.number().min(0)).default(10_000),
      maxAge: duration().default(3_600_000),
    })
    .default({ max: 10_000, maxAge: 3_600_000 }),
  revocation: z
    .strictObject({
      /**
       * File of revoked `jti`s, one a line (relative to gateway.yaml), watched for changes. Default:
       * `<dev dir>/revoked.txt` with `keys.dev`, else none.
       */
      file: z.string().min(1).optional(),
      /** Also use the Redis set `<redis.keyPrefix>revoked-jti` when the gateway has Redis. Default true. */
      redis: bool().default(true),
      /** How often the file is checked for changes (Redis: ×30, besides its instant pub/sub). Default 1s. */
      interval: duration().default(1_000),
    })
    .default({ redis: true, interval: 1_000 }),
  /** RFC 9728 `resource`. Default the route's public URL, e.g. `http://localhost:3001/mcp`. */
  resource: z.url().optional(),
  /**
   * RFC 9728 `authorization_servers`: issuer URLs of the authorization servers clients should use.
   * Default none, and then no metadata is served (the MCP spec requires at least one) and challenges
   * carry no `resource_metadata`, only how to get a token.
   */
  authorizationServers: z.array(z.url()).default([]),
  /** RFC 9728 `scopes_supported`. Default `requiredScopes`. */
  scopesSupported: z.array(z.string().min(1)).optional(),
}).superRefine((c, ctx) => {
  if (c.keys === undefined && c.authorizationServer === undefined) {
    ctx.addIssue({ code: 'custom', path: ['keys'], message: 'set keys (and algorithms, issuer), or authorizationServer: gateway, or both' });
    return;
  }
  if (c.keys === undefined) return;
  if (c.algorithms === undefined) ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'required with keys: the algorithms they may verify, e.g. [EdDSA]' });
  if (c.issuer === undefined) ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'required with keys: the iss value(s) their tokens carry' });
});

export type JwtConfig = z.output<typeof JwtConfigSchema>;
