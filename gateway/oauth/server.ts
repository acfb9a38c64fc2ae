/**
 * The gateway's own OAuth 2.1 authorization server (gateway.yaml `authorization:`), built with each
 * runtime from its config: its endpoints on one listener, served before route matching
 * (`owns`/`handle`, called by entry.ts), and what `jwt` plugins that trust it see
 * (`trust`, handed to them as `shared.authorizationServer`).
 *
 * State that must outlive a reload (the store, revoked tokens, login counters) comes from state.ts;
 * the per-address request counters of the open endpoints from limits.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type LoadedConfig } from '../../config/load.ts';
import { isLoopbackUrl } from '../public-origin.ts';
import type { GatewayAuthorizationServer, ListenerInfo, SharedServices } from '../contract.ts';
import { createLoginGuard } from './accounts/login-guard.ts';
import { loadPasswordAccounts } from './accounts/users-file.ts';
import { AuthorizationEndpoint, type Resources } from './authorize.ts';
import { createClientRegistry } from './clients/index.ts';
import type { AuthorizationConfig } from './config.ts';
import { OAuthError, type LoginGuard, type OidcLogin, type PasswordAccounts } from './contracts.ts';
import { Grants } from './grants.ts';
import { openCors, preflight, sendHtml, sendJson, sendOAuthError } from './http.ts';
import { makeIssuer } from './issuer.ts';
import { endpointLimiter, type LimitedEndpoint } from './limits.ts';
import { authorizationServerMetadata, METADATA_PATH, PATHS } from './metadata.ts';
import * as pages from './pages/index.ts';
import { RetryLater } from './retry-later.ts';
import { publishRevocation } from './revocations.ts';
import { loadSigningKeys } from './signing.ts';
import { oauthState } from './state.ts';
import { StoreFull } from './store.ts';
import { TokenEndpoint } from './token-endpoint.ts';

export interface AuthorizationService {
  /** The listener whose requests it answers. */
  readonly listener: string;
  readonly trust: GatewayAuthorizationServer;
  /** Whether a request on this listener is for one of its endpoints (answered before any route). */
  owns(listener: string, requestTarget: string | undefined): boolean;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** How many resource identifiers it issues tokens for (0: no route trusts it). */
  resources(): number;
  close(): Promise<void>;
}

/** Endpoints a browser page calls (errors are pages), as opposed to those a client calls (errors are JSON). */
const PAGE_PATHS = new Set<string>([PATHS.authorize, PATHS.login, PATHS.consent, PATHS.oidcStart, PATHS.callback]);

export async function createAuthorizationServer(
  loaded: LoadedConfig,
  deps: { listeners: ReadonlyMap<string, ListenerInfo>; shared: SharedServices; log: Logger },
): Promise<AuthorizationService | undefined> {
  const cfg: AuthorizationConfig | undefined = loaded.config.authorization;
  if (!cfg) return undefined;
  const log = deps.log.child({ component: 'authorization' });
  const listenerName = cfg.listener ?? loaded.config.listeners[0].name;
  const listener = deps.listeners.get(listenerName);
  const problems: string[] = [];
  if (!listener) problems.push(`authorization.listener: no listener named "${listenerName}"`);
  if (cfg.store === 'redis' && !loaded.config.redis?.url) problems.push('authorization.store: redis needs redis.url');
  if (problems.length || !listener) throw new ConfigError(loaded.source, problems);

  const issuer = makeIssuer(cfg.issuer, listener.publicUrl);
  const issuerUrl = new URL(issuer.canonical);
  if (issuerUrl.protocol !== 'https:' && !isLoopbackUrl(issuerUrl)) {
    log.warn({ issuer: issuer.canonical }, 'the authorization server is reached over plain http on a non-loopback address: passwords and tokens cross the network in clear; use TLS (listeners[].tls, or a proxy and publicUrl)');
  }
  const keys = await loadSigningKeys(cfg.signingKeys, loaded.dir, {
    onCreated: (dir) => log.warn({ dir }, `Created signing keys for the authorization server in ${dir} (private key mode 0600)`),
  });
  const state = oauthState(deps.shared, cfg.store);
  const opened: Array<{ close?(): Promise<void> }> = [];
  try {
    const clients = createClientRegistry(cfg.clients, { store: state.store, log });
    opened.push(clients);
    let password: PasswordAccounts | undefined;
    if (cfg.accounts.usersFile !== undefined) {
      password = await loadPasswordAccounts(path.resolve(loaded.dir, cfg.accounts.usersFile), log, { allowMissing: true });
      opened.push(password);
    }
    let oidc: OidcLogin | undefined;
    if (cfg.accounts.oidc) {
      // openid-client only for gateways that sign in through a provider.
      const { createOidcLogin } = await import('./accounts/oidc.ts');
      oidc = await createOidcLogin(cfg.accounts.oidc, { log, store: state.store });
      opened.push(oidc);
    }
    const guardKey = JSON.stringify([cfg.store, cfg.loginLimits]);
    let guard: LoginGuard | undefined = state.guards.get(guardKey);
    if (!guard) {
      guard = createLoginGuard(cfg.loginLimits, {
        redis: cfg.store === 'redis' ? deps.shared.redis : undefined,
        keyPrefix: `${deps.shared.redisKeyPrefix}oauth:login:`,
      });
      state.guards.clear();
      state.guards.set(guardKey, guard);
    }

    const limits = endpointLimiter(cfg.limits, cfg.store, deps.shared);
    let lastFullWarning = 0;

    const revocationFile = keys.dir !== undefined ? path.join(keys.dir, 'revoked.txt') : undefined;
    const revoke = (jti: string, untilMs: number, why: string) => {
      state.revoked.add(jti, untilMs);
      return publishRevocation(jti, why, { redis: deps.shared.redis, keyPrefix: deps.shared.redisKeyPrefix, file: revocationFile, log });
    };
    const grants = new Grants({
      store: state.store, keys, revoke, log,
      settings: { accessTokenTtl: cfg.accessTokenTtl, refreshTokenTtl: cfg.refreshTokenTtl, codeTtl: cfg.codeTtl, tenantClaim: cfg.tenantClaim },
    });

    // Filled by the jwt plugins that trust this server, as the runtime builds them.
    const trusted = new Map<string, { defaultScopes: readonly string[] }>();
    const canonical = new Set<string>();
    const resources: Resources = {
      lookup: (r) => trusted.get(r),
      single: () => (canonical.size === 1 ? [...canonical][0] : undefined),
    };
    const trust: GatewayAuthorizationServer = {
      issuers: issuer.all,
      issuerFor: issuer.forHost,
      verificationKey: keys.verificationKey,
      algorithms: keys.algorithms,
      tenantClaim: cfg.tenantClaim,
      revocationFile,
      revoked: (jti) => state.revoked.has(jti),
      trust(route, resource, defaultScopes) {
        for (const id of resource.all) trusted.set(id, { defaultScopes });
        canonical.add(resource.canonical);
        log.debug({ route: route.name, resource: resource.canonical }, 'route trusts the authorization server');
      },
    };
    const authorize = new AuthorizationEndpoint({
      issuer, clients, store: state.store, grants, resources, pages, password, guard, oidc, requestTtl: cfg.requestTtl, log,
    });
    const registration = cfg.clients.dynamicRegistration.enabled;
    const tokens = new TokenEndpoint({ clients, grants, keys, issuers: issuer.all, revokeAccessToken: revoke, registration, log });
    const metadataPaths = new Set([METADATA_PATH, METADATA_PATH + issuer.path]);
    log.info({ issuer: issuer.canonical, listener: listenerName, keys: keys.description, accounts: [password && 'users-file', oidc && 'oidc'].filter(Boolean) }, 'authorization server ready');

    async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
      const method = req.method ?? 'GET';
      const p = url.pathname;
      const allow = (methods: string) => {
        if (methods.split(', ').includes(method)) return true;
        sendOAuthError(res, new OAuthError('invalid_request', `${p} accepts ${methods}.`, 405), { allow: methods, ...openCors(req) });
        return false;
      };
      /** `allow`, then the address's budget for an endpoint anyone may call (a refusal throws RetryLater). */
      const admit = async (methods: string, endpoint: LimitedEndpoint) => {
        if (!allow(methods)) return false;
        await limits.check(endpoint, req);
        return true;
      };
      if (method === 'OPTIONS') return preflight(res);
      if (metadataPaths.has(p)) {
        if (!allow('GET, HEAD')) return;
        const doc = authorizationServerMetadata(issuer.forHost(req.headers.host), {
          issuer, scopes: cfg!.scopes, registration, metadataDocuments: cfg!.clients.metadataDocuments.enabled,
        });
        return sendJson(res, 200, doc, { 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' });
      }
      switch (p) {
        case PATHS.authorize: return (await admit('GET', 'authorize')) ? authorize.authorize(req, res, url) : undefined;
        case PATHS.login: return allow('POST') ? authorize.login(req, res) : undefined;
        case PATHS.consent: return allow('POST') ? authorize.consent(req, res) : undefined;
        case PATHS.oidcStart: return (await admit('GET', 'authorize')) ? authorize.oidcStart(req, res, url) : undefined;
        case PATHS.callback: return allow('GET') ? authorize.callback(req, res, url) : undefined;
        case PATHS.token: return (await admit('POST', 'token')) ? tokens.token(req, res) : undefined;
        case PATHS.revoke: return (await admit('POST', 'revoke')) ? tokens.revoke(req, res) : undefined;
        case PATHS.register: return (await admit('POST', 'register')) ? tokens.register(req, res) : undefined;
        case PATHS.jwks:
          if (!allow('GET, HEAD')) return;
          return sendJson(res, 200, keys.jwks(), { 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' });
        default:
          throw new OAuthError('invalid_request', `No such endpoint: ${p}.`, 404);
      }
    }

    return {
      listener: listenerName,
      trust,
      resources: () => trusted.size,
      owns(name, target) {
        if (name !== listenerName || target === undefined) return false;
        const p = target.split('?')[0];
        return p.startsWith('/oauth/') || metadataPaths.has(p);
      },
      async handle(req, res) {
        const url = new URL(req.url ?? '/', 'http://gateway.invalid');
        try {
          await route(req, res, url);
        } catch (err) {
          if (res.headersSent) return void res.destroy();
          const oauth = err instanceof OAuthError ? err : undefined;
          if (!oauth) log.error({ err, path: url.pathname }, 'authorization endpoint failed');
          if (err instanceof StoreFull && Date.now() - lastFullWarning > 60_000) {
            // Once a minute at most: a flood that filled the kind goes on knocking.
            lastFullWarning = Date.now();
            log.warn({ kind: err.kind, path: url.pathname }, 'the authorization server\'s store is full for this kind: new entries are refused until some expire');
          }
          const e = oauth ?? new OAuthError('server_error', 'The authorization server failed; see the gateway log.', 500);
          // The request body of a refused POST is not read: drained, so the connection can be reused.
          if (err instanceof RetryLater) req.resume();
          const retry: Record<string, string> = err instanceof RetryLater ? { 'retry-after': String(err.retryAfterSeconds) } : {};
          if (PAGE_PATHS.has(url.pathname)) {
            return sendHtml(res, e.status, pages.renderErrorPage({ title: err instanceof RetryLater ? 'Try again later' : 'Sign-in failed', message: e.message }), retry);
          }
          const basic: Record<string, string> = e.status === 401 && req.headers.authorization !== undefined ? { 'www-authenticate': 'Basic realm="oauth"' } : {};
          sendOAuthError(res, e, { ...basic, ...retry, ...openCors(req) });
        }
      },
      async close() {
        await Promise.all(opened.map((o) => o.close?.()));
      },
    };
  } catch (err) {
    await Promise.all(opened.map((o) => o.close?.().catch(() => {})));
    throw err;
  }
}
