/**
 * The `authorization:` section of gateway.yaml: the gateway's own OAuth 2.1 authorization server. Off
 * when the section is absent. Every default is written next to its field; docs/config.md and
 * docs/identity.md are the reader's versions.
 *
 * The parts other modules own are composed here: who may be a client (clients/config.ts), sign-in
 * through an OpenID Connect provider (accounts/oidc-config.ts), password-guessing limits
 * (accounts/login-guard.ts), per-address limits on the open endpoints (limits.ts).
 */
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import { DEV_ALGORITHMS, DEV_DIR } from '../dev-keys.ts';
import { LoginLimitsSchema } from './accounts/login-guard.ts';
import { OidcConfigSchema } from './accounts/oidc-config.ts';
import { ClientsConfigSchema, clientsConfigDefault } from './clients/config.ts';
import { EndpointLimitsSchema } from './limits.ts';
import { SCOPE_PATTERN } from './scope.ts';

/** RFC 6749 §3.3 scope-token. */
const scope = z.string().regex(SCOPE_PATTERN, 'a scope is printable ASCII without spaces, quotes or backslashes');

export const SigningKeysSchema = z
  .strictObject({
    /**
     * A key folder as `npm run token -- keygen` writes it (`private.pem`, `jwks.json`, `revoked.txt`),
     * relative to gateway.yaml, created on first use. Default `.dev-keys`, the development issuer's.
     */
    dir: z.string().min(1).optional(),
    /** Algorithm of a key the folder gets when it is created. Default `EdDSA`. */
    alg: z.enum(DEV_ALGORITHMS).default('EdDSA'),
    /** Or a PEM private key (PKCS#8: Ed25519, EC P-256/384/521 or RSA) managed elsewhere. */
    privateKeyFile: z.string().min(1).optional(),
  })
  .refine((k) => !(k.dir !== undefined && k.privateKeyFile !== undefined), 'set dir or privateKeyFile, not both');

export const AuthorizationConfigSchema = z.strictObject({
  /** The listener that serves the endpoints (`/oauth/*`, `/.well-known/oauth-authorization-server`). Default: the first. */
  listener: z.string().min(1).optional(),
  /**
   * The issuer identifier (`iss`). Default: that listener's public URL; on a loopback public URL it
   * follows the loopback name the client used (localhost, 127.0.0.1, [::1]). Set it (https) behind a
   * proxy or load balancer, together with the listener's `publicUrl`.
   */
  issuer: z.url().optional(),
  /** Keys the tokens are signed with. Default `{ dir: .dev-keys }`: the development issuer's folder. */
  signingKeys: SigningKeysSchema.default({ alg: 'EdDSA' }),
  /** Lifetime of access tokens. Default 1h. */
  accessTokenTtl: duration().pipe(z.number().min(1_000)).default(3_600_000),
  /** A refresh token unused this long expires (each use gives a new one). Default 30d. */
  refreshTokenTtl: duration().pipe(z.number().min(60_000)).default(30 * 86_400_000),
  /** Lifetime of an authorization code. Default 60s. */
  codeTtl: duration().pipe(z.number().min(1_000).max(600_000)).default(60_000),
  /** Time a person has to sign in and consent. Default 10m. */
  requestTtl: duration().pipe(z.number().min(10_000)).default(600_000),
  /** `scopes_supported` in the metadata. Default none listed. What a person gets is always limited by their account. */
  scopes: z.array(scope).default([]),
  /** Claim the tenant is written in. Default `tenant_id`, what the jwt plugin reads by default. */
  tenantClaim: z.string().min(1).default('tenant_id'),
  /** Who may be a client: Client ID Metadata Documents and Dynamic Client Registration (both on by default). */
  clients: ClientsConfigSchema.default(clientsConfigDefault),
  /** Who may sign in: a users file, an OpenID Connect provider, or both. At least one. */
  accounts: z
    .strictObject({
      /** Password accounts (`npm run users -- add …`), relative to gateway.yaml, re-read when it changes. */
      usersFile: z.string().min(1).optional(),
      oidc: OidcConfigSchema.optional(),
    })
    .refine((a) => a.usersFile !== undefined || a.oidc !== undefined, 'set usersFile, oidc or both'),
  /** Password-guessing limits per account and per address. Default 5 failures per account, 20 per address, per 15 minutes. */
  loginLimits: LoginLimitsSchema,
  /**
   * Requests per client address (IPv6: per /64) on the endpoints anyone may call. Default: register 60
   * per hour; authorize (with /oauth/oidc) 60, token 300, revoke 60 per minute.
   */
  limits: EndpointLimitsSchema,
  /** `memory` (one replica) or `redis` (replicas share sign-ins, codes and refresh tokens; needs redis.url). Default memory. */
  store: z.enum(['memory', 'redis']).default('memory'),
});

export { DEV_DIR };
export type AuthorizationConfig = z.output<typeof AuthorizationConfigSchema>;
