/**
 * `jwt`: verifies the token found by `token` (a signed JWT, with jose) and sets PRINCIPAL for the plugins
 * after it (tenant isolation, rate limits, audit), plus STREAM_DEADLINE so an SSE stream ends when its
 * token expires.
 *
 * Per request, a token seen before costs one SHA-256, one LRU lookup and one revocation Set lookup; only
 * a new token costs a signature check. Every refusal carries a stable GW_ERR_* code and a
 * `WWW-Authenticate: Bearer` challenge pointing at this route's RFC 9728 metadata, which this plugin
 * serves (docs/identity.md).
 */
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import path from 'node:path';
import {
  BEARER_TOKEN, PRINCIPAL, STREAM_DEADLINE, definePlugin,
  type Exchange, type GatewayAuthorizationServer, type PluginDeps, type Principal, type Verdict,
} from '../../gateway/contract.ts';
import { AuthError, authVerdict, setRouteAuth, toAuthError } from './challenge.ts';
import { JwtConfigSchema, KeysSchema, type JwtConfig } from './config.ts';
import { principalFrom } from './claims.ts';
import { devKeyFiles } from './dev-keys.ts';
import { loadKeySource, type KeySource } from './keys.ts';
import { metadataServes } from './metadata.ts';
import { routeResource, type RouteResource } from './resource.ts';
import { anyRevocationList, fileRevocationList, redisRevocationList, type RevocationList } from './revocation.ts';
import { gatewayTrust, trustFor, type TrustedIssuer } from './trusted.ts';
import { createVerifyCache } from './verify-cache.ts';

export { JwtConfigSchema, KeysSchema, toAuthError, type JwtConfig };

/** The outcome of verifying a token for this route, as cached. */
interface Verified {
  principal: Principal;
  /** Space-separated required scopes, set when the token lacks some of them. */
  missingScope?: string;
  streamDeadline?: number;
}

export interface JwtVerifier {
  /** Verifies (or finds in the cache) and checks revocation; throws AuthError. */
  authenticate(token: string): Promise<Verified>;
  /** The synchronous hot path: the cached verification of a token seen before (revocation checked), else undefined. */
  fromCache(token: string): Verified | undefined;
  /** The route's own key source; undefined when it trusts only the gateway's authorization server. */
  readonly keys: KeySource | undefined;
  /** The gateway's authorization server, when this route trusts it. */
  readonly gatewayAs: GatewayAuthorizationServer | undefined;
  /** The canonical resource identifier (what `resource` or the listener's public URL says). */
  readonly resource: string;
  /** The identifier as each client sees it (resource.ts). */
  readonly resources: RouteResource;
  readonly audience: string[];
  readonly issuer: string[];
  close(): Promise<void>;
}

const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

/** Everything `jwt` decides, without the HTTP: used by the plugin and by `npm run token -- inspect`. */
export async function createJwtVerifier(
  config: JwtConfig,
  deps: Pick<PluginDeps, 'route' | 'configDir' | 'log' | 'shared'> & { createDevKeys?: boolean },
): Promise<JwtVerifier> {
  const gatewayAs = config.authorizationServer === 'gateway' ? deps.shared.authorizationServer : undefined;
  if (config.authorizationServer === 'gateway' && !gatewayAs) {
    throw new Error('authorizationServer: gateway needs the gateway\'s own authorization server, which is not configured (no authorization: section) or could not start (see its error)');
  }
  const keys = config.keys === undefined ? undefined : await loadKeySource(config.keys, config.algorithms!, {
    configDir: deps.configDir,
    createDevKeys: deps.createDevKeys,
    onDevKeysCreated: (dir) => deps.log.warn(
      { dir, privateKey: devKeyFiles(dir).privateKey },
      `Created the development issuer's signing keys in ${dir} (private key mode 0600). ` +
        'Mint a token with: npm run token -- create --tenant acme --sub alice',
    ),
  });
  if (keys && 'reload' in keys.key && typeof keys.key.reload === 'function') {
    // Warm the JWKS cache so the first request does not wait; an IdP down at boot is not fatal.
    (keys.key.reload as () => Promise<void>)().catch((err: Error) => deps.log.warn({ err: err.message, keys: keys.description }, 'JWKS not reachable yet'));
  }

  const resources = routeResource(deps.route, config.resource);
  const resource = resources.canonical;
  const issuer = config.issuer ? list(config.issuer) : [];
  const audience = config.audience ? list(config.audience) : [...resources.all];
  const trusts: TrustedIssuer[] = [];
  if (keys) trusts.push({ key: keys.key, algorithms: keys.algorithms, issuer, audience, tenantClaim: config.tenantClaim });
  if (gatewayAs) {
    trusts.push(gatewayTrust(gatewayAs, resources));
    // From here on the authorization server issues tokens for this route.
    gatewayAs.trust(deps.route, resources, config.scopesSupported ?? config.requiredScopes);
  }
  const tenantPattern = new RegExp(config.tenantPattern);
  const requiredScope = config.requiredScopes.join(' ');
  const cache = createVerifyCache<Verified>(config.cache.max, config.cache.maxAge);

  const revocations: RevocationList[] = [];
  const revocationFile = config.revocation.file ?? (config.keys?.dev ? path.join(config.keys.dev.dir, 'revoked.txt') : gatewayAs?.revocationFile);
  if (revocationFile) {
    revocations.push(fileRevocationList(path.resolve(deps.configDir, revocationFile), { intervalMs: config.revocation.interval, log: deps.log }));
  }
  if (config.revocation.redis && deps.shared.redis) {
    revocations.push(await redisRevocationList(deps.shared.redis, deps.shared.redisKeyPrefix, { refreshMs: config.revocation.interval * 30, log: deps.log }));
  }
  // Tokens the authorization server revoked itself (a reused code or refresh token), at once.
  if (gatewayAs) revocations.push({ has: (jti) => gatewayAs.revoked(jti), ready: () => true, close: async () => {} });
  const revocation = revocations.length ? anyRevocationList(revocations) : undefined;

  async function verifySignatureAndClaims(token: string): Promise<Verified> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new AuthError('GW_ERR_TOKEN_MALFORMED', 'The token is not a well-formed signed JWT.');
    }
    if (token.split('.').length !== 3) throw new AuthError('GW_ERR_TOKEN_MALFORMED', 'Encrypted (JWE) tokens are not accepted; send a signed JWT.');
    const trust = trustFor(token, trusts);
    // Decided before any key lookup, so a forged header never causes a JWKS fetch.
    if (typeof alg !== 'string' || !trust.algorithms.includes(alg)) {
      throw new AuthError('GW_ERR_TOKEN_ALGORITHM', alg === 'none'
        ? 'Unsigned tokens (alg "none") are never accepted.'
        : `The token's algorithm ${JSON.stringify(alg)} is not accepted here (allowed: ${trust.algorithms.join(', ')}).`);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, trust.key as Parameters<typeof jwtVerify>[1], {
        algorithms: [...trust.algorithms],
        issuer: trust.issuer,
        audience: trust.audience,
        clockTolerance: config.clockTolerance / 1000,
        requiredClaims: config.requireExpiry ? ['exp'] : [],
      }));
    } catch (err) {
      throw toAuthError(err);
    }
    const principal = principalFrom(payload, { tenantClaim: trust.tenantClaim, tenantPattern });
    const has = new Set(principal.scopes);
    const missing = config.requiredScopes.some((s) => !has.has(s));
    return {
      principal,
      missingScope: missing ? requiredScope : undefined,
      streamDeadline: principal.expiresAt !== undefined ? principal.expiresAt * 1000 + config.streamGrace : undefined,
    };
  }

  function checkRevoked(verified: Verified): Verified {
    const jti = verified.principal.tokenId;
    if (jti !== undefined && revocation) {
      if (!revocation.ready()) throw new AuthError('GW_ERR_AUTH_UNAVAILABLE', 'The revocation list cannot be checked right now; try again shortly.');
      if (revocation.has(jti)) throw new AuthError('GW_ERR_TOKEN_REVOKED', 'The token has been revoked.');
    }
    return verified;
  }

  return {
    keys,
    gatewayAs,
    resource,
    resources,
    audience,
    issuer: [...issuer, ...(gatewayAs?.issuers ?? [])],
    fromCache(token) {
      const hit = cache.get(cache.key(token));
      return hit && checkRevoked(hit);
    },
    async authenticate(token) {
      const key = cache.key(token);
      const hit = cache.get(key);
      if (hit) return checkRevoked(hit);
      const verified = await verifySignatureAndClaims(token);
      cache.set(key, verified, verified.principal.expiresAt !== undefined ? verified.principal.expiresAt * 1000 : undefined);
      return checkRevoked(verified);
    },
    async close() { await revocation?.close(); },
  };
}

export default definePlugin({
  type: 'jwt',
  requires: ['token'],
  config: JwtConfigSchema,
  async create(config, deps) {
    const verifier = await createJwtVerifier(config, deps);
    const gatewayAs = verifier.gatewayAs;
    const tokenHint = verifier.keys?.devDir !== undefined
      ? 'Mint one with: npm run token -- create --tenant <tenant> --sub <you>'
      : `Get one from the identity provider that issues for this gateway (issuer ${verifier.issuer.join(', ')}).`;
    const routeAuth = { metadata: config.authorizationServers.length > 0 || gatewayAs !== undefined, tokenHint };
    setRouteAuth(deps.route, routeAuth);
    deps.log.info({
      keys: verifier.keys?.description, algorithms: verifier.keys?.algorithms, issuer: verifier.issuer, audience: verifier.audience,
      authorizationServer: gatewayAs ? gatewayAs.issuers[0] : undefined,
    }, 'jwt verification ready');

    function admit(x: Exchange, verified: Verified): Verdict | void {
      if (verified.missingScope !== undefined) {
        return authVerdict(x, 'GW_ERR_INSUFFICIENT_SCOPE', `This route needs the scope(s): ${verified.missingScope}.`, { scope: verified.missingScope, auth: routeAuth });
      }
      x.set(PRINCIPAL, verified.principal);
      if (verified.streamDeadline !== undefined) x.set(STREAM_DEADLINE, verified.streamDeadline);
    }

    function refuse(x: Exchange, err: unknown): Verdict {
      const authError = toAuthError(err);
      if (!(err instanceof AuthError) && !(err instanceof errors.JOSEError)) {
        // Not a verdict about the token: something broke. Logged (without the token) and refused.
        x.log.error({ err: (err as Error)?.message }, 'token verification failed unexpectedly');
      }
      return authVerdict(x, authError.code, authError.message, { auth: routeAuth });
    }

    return {
      name: 'jwt',
      serves: metadataServes(deps.route, {
        resource: verifier.resources,
        authorizationServers: config.authorizationServers,
        gatewayIssuer: gatewayAs ? (host) => gatewayAs.issuerFor(host) : undefined,
        scopesSupported: config.scopesSupported ?? config.requiredScopes,
        devDir: verifier.keys?.devDir,
        tokenHint,
      }),
      onRequest(x) {
        const token = x.get(BEARER_TOKEN);
        // `token` runs first and refuses requests without one; this is the fail-closed backstop.
        if (token === undefined) return authVerdict(x, 'GW_ERR_TOKEN_MISSING', 'No token.', { auth: routeAuth });
        // Synchronous when the token was verified before: no promise, no microtask on the hot path.
        let cached: Verified | undefined;
        try {
          cached = verifier.fromCache(token);
        } catch (err) {
          return refuse(x, err);
        }
        if (cached) return admit(x, cached);
        return verifier.authenticate(token).then((verified) => admit(x, verified), (err) => refuse(x, err));
      },
      close: () => verifier.close(),
    };
  },
});
