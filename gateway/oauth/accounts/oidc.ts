/**
 * Sign-in delegated to an upstream OpenID Connect provider (Keycloak, Auth0, Entra ID, Google…), with
 * openid-client doing the protocol: discovery, the authorization code flow with PKCE, `state` and
 * `nonce`, and ID token validation (signature by the provider's JWKS, issuer, audience, nonce, expiry;
 * RFC 9207 `iss` in the callback when the provider sends it).
 *
 * `start` keeps what the callback must prove (PKCE verifier, nonce, which authorization request waits)
 * in the OAuthStore under the random `state`, so any replica can finish a sign-in another one started;
 * `finish` takes it (single use), so a replayed or forged callback finds nothing.
 *
 * Discovery is not a condition of starting the gateway: it is tried at once in the background and again
 * on the first sign-in after a failure (at most once per `discoveryRetry`). A provider that is down or a
 * typo in `issuer` then costs this sign-in button (a warning in the log, a clear error page), not the
 * gateway: tokens already issued and users-file sign-in keep working, and a reload is not refused for
 * a provider's bad minute. Once discovered, the metadata is kept until the next reload.
 */
import type { Logger } from 'pino';
import * as oidc from 'openid-client';
import { OAuthError, PendingSignInError, type Account, type OAuthStore, type OidcLogin } from '../contracts.ts';
import { accountFrom, type Claims } from './oidc-claims.ts';
import { OidcConfigSchema, type OidcConfig, type OidcConfigInput } from './oidc-config.ts';

export { OidcConfigSchema, type OidcConfig, type OidcConfigInput };

/** OAuthStore kind of a started sign-in. */
export const OIDC_STATE_KIND = 'oidc-state';

/** What `start` leaves for `finish`, keyed by `state`. */
interface StartedSignIn {
  pendingId: string;
  codeVerifier: string;
  nonce: string;
  callbackUrl: string;
  /** A store shared by several providers must not let one finish another's sign-in. */
  issuer: string;
}

const WELL_KNOWN_LABELS: Record<string, string> = {
  'accounts.google.com': 'Google',
  'login.microsoftonline.com': 'Microsoft',
};

export function defaultLabel(issuer: string): string {
  const host = new URL(issuer).host;
  return `Sign in with ${WELL_KNOWN_LABELS[host] ?? host}`;
}

/** Provider error codes that mean the person (or their policy) said no. */
const REFUSALS = new Set(['access_denied', 'login_required', 'interaction_required', 'consent_required', 'account_selection_required']);
/** oauth4webapi codes for a provider that answered with something unusable: its problem, maybe passing. */
const PROVIDER_TROUBLE = new Set(['OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_RESPONSE_IS_NOT_JSON', 'OAUTH_PARSE_ERROR']);

export async function createOidcLogin(cfg: OidcConfig, deps: { log: Logger; store: OAuthStore }): Promise<OidcLogin> {
  const log = deps.log.child({ component: 'oauth-oidc', issuer: cfg.issuer });
  const issuerUrl = new URL(cfg.issuer);
  const insecure = issuerUrl.protocol === 'http:'; // loopback only: the schema refuses http elsewhere
  const timeoutSeconds = Math.ceil(cfg.timeout / 1000);

  let discovered: oidc.Configuration | undefined;
  let inFlight: Promise<oidc.Configuration> | undefined;
  let lastFailure: { at: number; error: OAuthError } | undefined;

  async function discover(): Promise<oidc.Configuration> {
    // Discover once without client authentication to learn what the provider supports, then build the
    // client's configuration with the method it accepts.
    const probe = await oidc.discovery(issuerUrl, cfg.clientId, undefined, oidc.None(), {
      execute: insecure ? [oidc.allowInsecureRequests] : [],
      timeout: timeoutSeconds,
    });
    const server = probe.serverMetadata();
    const config = new oidc.Configuration(server, cfg.clientId, undefined, clientAuth(cfg, server.token_endpoint_auth_methods_supported));
    config.timeout = timeoutSeconds;
    if (insecure) oidc.allowInsecureRequests(config);
    if (!server.supportsPKCE('S256')) {
      // Some providers support PKCE without saying so (Entra ID). It is sent anyway; should one ignore
      // it, state and nonce still bind the code and the ID token to this sign-in.
      log.info('the provider does not list S256 in code_challenge_methods_supported; PKCE is sent anyway');
    }
    log.info({ authorizationEndpoint: server.authorization_endpoint }, 'OIDC provider discovered');
    return config;
  }

  function configuration(): Promise<oidc.Configuration> {
    if (discovered) return Promise.resolve(discovered);
    if (inFlight) return inFlight;
    if (lastFailure && Date.now() - lastFailure.at < cfg.discoveryRetry) return Promise.reject(lastFailure.error);
    inFlight = discover().then(
      (config) => { discovered = config; lastFailure = undefined; return config; },
      (err: unknown) => {
        const where = new URL('.well-known/openid-configuration', cfg.issuer.endsWith('/') ? cfg.issuer : `${cfg.issuer}/`).href;
        log.warn({ err: describe(err), discoveryUrl: where }, 'OIDC provider discovery failed; sign-in through it is unavailable until it succeeds');
        const error = new OAuthError('temporarily_unavailable',
          `The sign-in provider ${cfg.issuer} cannot be reached right now; try again in a moment or use another way to sign in.`, 503);
        lastFailure = { at: Date.now(), error };
        throw error;
      },
    ).finally(() => { inFlight = undefined; });
    return inFlight;
  }

  // At once, so a typo in `issuer` shows in the log at start rather than at the first sign-in.
  configuration().catch(() => { /* logged; retried on use */ });

  const label = cfg.label ?? defaultLabel(cfg.issuer);

  return {
    label,

    async start(pendingId: string, callbackUrl: string): Promise<string> {
      const config = await configuration();
      const state = oidc.randomState();
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const nonce = oidc.randomNonce();
      const started: StartedSignIn = { pendingId, codeVerifier, nonce, callbackUrl, issuer: cfg.issuer };
      await deps.store.put(OIDC_STATE_KIND, state, started, cfg.stateTtl);
      return oidc.buildAuthorizationUrl(config, {
        ...cfg.authorizationParams,
        redirect_uri: callbackUrl,
        scope: cfg.scopes.join(' '),
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
      }).href;
    },

    async finish(callback: URL, callbackUrl: string): Promise<{ pendingId: string; account: Account }> {
      const state = callback.searchParams.get('state');
      if (!state) throw new OAuthError('invalid_request', 'The answer from the sign-in provider has no state. Start the sign-in again from your application.');
      const started = await deps.store.take<StartedSignIn>(OIDC_STATE_KIND, state);
      if (!started || started.issuer !== cfg.issuer) {
        throw new OAuthError('invalid_request', 'This sign-in has expired or was already completed. Start it again from your application.');
      }
      const { pendingId } = started;
      if (started.callbackUrl !== callbackUrl) {
        throw new PendingSignInError(pendingId, 'invalid_request', 'The sign-in came back to another address than it was started from.');
      }
      const config = await configuration().catch((err: OAuthError) => {
        throw new PendingSignInError(pendingId, err.error, err.message, err.status);
      });

      // The token request's redirect_uri is what openid-client reads off this URL without its query:
      // it must be exactly the callbackUrl the authorization request used, whatever Host the request had.
      const response = new URL(callbackUrl);
      response.search = callback.search;
      let claims: Claims;
      try {
        const tokens = await oidc.authorizationCodeGrant(config, response, {
          pkceCodeVerifier: started.codeVerifier,
          expectedState: state,
          expectedNonce: started.nonce,
          idTokenExpected: true,
        });
        claims = { ...(tokens.claims() as Claims) };
        if (cfg.userinfo) {
          // The userinfo's `sub` must be the ID token's (checked by openid-client); the ID token wins on overlaps.
          const info = await oidc.fetchUserInfo(config, tokens.access_token, String(claims.sub));
          claims = { ...(info as Claims), ...claims };
        }
      } catch (err) {
        throw toSignInError(pendingId, err, log);
      }
      try {
        return { pendingId, account: accountFrom(claims, cfg) };
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        log.info({ reason: err.message }, 'OIDC sign-in refused by the gateway\'s account rules');
        throw new PendingSignInError(pendingId, err.error, err.message, err.status);
      }
    },
  };
}

function clientAuth(cfg: OidcConfig, supported: string[] | undefined): oidc.ClientAuth {
  const method = cfg.tokenEndpointAuthMethod
    ?? (!cfg.clientSecret ? 'none'
      : !supported || supported.includes('client_secret_basic') ? 'client_secret_basic'
      : 'client_secret_post');
  switch (method) {
    case 'none': return oidc.None();
    case 'client_secret_post': return oidc.ClientSecretPost(cfg.clientSecret);
    case 'client_secret_basic': return oidc.ClientSecretBasic(cfg.clientSecret);
  }
}

/** The provider's or the protocol's failure → an OAuthError for the client waiting on `pendingId`. */
function toSignInError(pendingId: string, err: unknown, log: Logger): PendingSignInError {
  if (err instanceof oidc.AuthorizationResponseError) {
    // The provider redirected back with an error (the person declined, or its policy refused).
    const said = err.error_description ? `${err.error}: ${err.error_description}` : err.error;
    if (REFUSALS.has(err.error)) return new PendingSignInError(pendingId, 'access_denied', `The sign-in provider refused the sign-in (${said}).`, 403);
    log.warn({ error: err.error, description: err.error_description }, 'OIDC provider answered the authorization request with an error');
    const code = err.error === 'temporarily_unavailable' ? 'temporarily_unavailable' : 'server_error';
    return new PendingSignInError(pendingId, code, `The sign-in provider could not sign you in (${said}).`, code === 'server_error' ? 502 : 503);
  }
  if (err instanceof oidc.ResponseBodyError) {
    const said = err.error_description ? `${err.error}: ${err.error_description}` : err.error;
    log.warn({ error: err.error, description: err.error_description, status: err.status }, 'OIDC token endpoint refused the code');
    if (err.error === 'invalid_grant') return new PendingSignInError(pendingId, 'access_denied', `The sign-in provider did not accept the sign-in (${said}). Start it again.`, 403);
    return new PendingSignInError(pendingId, 'server_error', `The sign-in provider refused the gateway (${said}); check its client settings.`, 502);
  }
  if (err instanceof oidc.ClientError && !PROVIDER_TROUBLE.has(err.code ?? '')) {
    // State, issuer, audience, nonce, signature or expiry did not check out: a forged or misrouted answer.
    // openid-client's own message is generic ("unexpected JWT claim value"); its cause names the claim.
    const why = err.cause instanceof Error ? err.cause.message : err.message;
    log.warn({ err: describe(err), code: err.code }, 'OIDC answer failed validation');
    return new PendingSignInError(pendingId, 'access_denied', `The sign-in provider's answer could not be verified (${why}).`, 403);
  }
  log.warn({ err: describe(err) }, 'OIDC provider request failed');
  return new PendingSignInError(pendingId, 'temporarily_unavailable', 'The sign-in provider could not be reached to complete the sign-in; try again in a moment.', 503);
}

/** An error's message and cause chain, for the log (fetch's "fetch failed" hides the reason in `cause`). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  return parts.join(' <- ');
}
