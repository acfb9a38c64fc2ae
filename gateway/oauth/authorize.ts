/**
 * The authorization endpoint and the sign-in pages behind it (OAuth 2.1 §4.1.1, RFC 8707, RFC 9207).
 *
 *   GET  /oauth/authorize   validate the request, keep it as a pending request, show the login page
 *   POST /oauth/login       username and password (users file), rate-limited by the LoginGuard
 *   GET  /oauth/oidc        or sign in at the OpenID Connect provider …
 *   GET  /oauth/callback    … which sends the browser back here
 *   POST /oauth/consent     allow → redirect with `code`, `state`, `iss`; deny → `error=access_denied`
 *
 * Until the client and its redirect URI are known to be genuine, every problem is an error page: a
 * redirect to an unchecked URI would make this server an open redirector (RFC 6749 §4.1.2.1). After
 * that, problems go back to the client's redirect URI as OAuth errors, with `state` and `iss`.
 *
 * Each pending request has its own CSRF token, sent as an HttpOnly, SameSite=Lax cookie and as a form
 * field; a POST (and the OIDC steps) must carry both, matching the hash kept with the request. A form
 * posted from another site, or a sign-in link opened in another browser, has no such cookie.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { OAuthError, PendingSignInError, type Account, type ClientInfo, type ClientRegistry, type LoginGuard, type OAuthStore, type OidcLogin, type PasswordAccounts } from './contracts.ts';
import { redirectUriMatches } from './clients/redirect-uri.ts';
import { pagePolicy } from './csp.ts';
import { sha256, type Grants } from './grants.ts';
import { clientAddress, parseCookies, readForm, redirect, sendHtml, singleParams } from './http.ts';
import type { Issuer } from './issuer.ts';
import { PATHS } from './metadata.ts';
import type { Pages } from './pages-contract.ts';

const PENDING = 'pending';
const COOKIE_PREFIX = 'mcpgw_oauth_';
/** RFC 7636 §4.2: base64url of a SHA-256 is 43 characters; verifiers and challenges are 43–128. */
const PKCE_VALUE = /^[A-Za-z0-9\-._~]{43,128}$/;

interface Pending {
  clientId: string;
  clientName: string;
  redirectUri: string;
  state?: string;
  codeChallenge: string;
  scopes: string[];
  resource: string;
  issuer: string;
  csrfHash: string;
  refresh: boolean;
  account?: Account;
}

/** Which resources this server issues tokens for, and the scopes asked for when a client names none. */
export interface Resources {
  lookup(resource: string): { defaultScopes: readonly string[] } | undefined;
  /** The only resource, when there is exactly one (a request without `resource` then means it). */
  single(): string | undefined;
}

export interface AuthorizeDeps {
  issuer: Issuer;
  clients: ClientRegistry;
  store: OAuthStore;
  grants: Grants;
  resources: Resources;
  pages: Pages;
  password?: PasswordAccounts;
  guard: LoginGuard;
  oidc?: OidcLogin;
  /** How long a person has to sign in and consent. */
  requestTtl: number;
  log: Logger;
}

const b64 = (n: number) => randomBytes(n).toString('base64url');
const sameHash = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export class AuthorizationEndpoint {
  readonly #d: AuthorizeDeps;
  constructor(deps: AuthorizeDeps) {
    this.#d = deps;
  }

  async authorize(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const d = this.#d;
    const issuer = d.issuer.forHost(req.headers.host);
    let params: Map<string, string>;
    try {
      params = singleParams(url.searchParams);
    } catch (err) {
      return this.#errorPage(res, 'This sign-in link is not valid', (err as Error).message);
    }
    // 1. Who is asking, and where the answer goes: not known to be genuine yet, so errors are pages.
    const clientId = params.get('client_id');
    if (!clientId) return this.#errorPage(res, 'This sign-in link is not valid', 'It does not say which application is asking (client_id).');
    let client: ClientInfo;
    try {
      client = await d.clients.resolve(clientId);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      return this.#errorPage(res, 'Unknown application', `The application that sent you here is not known to this server: ${err.message}`);
    }
    const redirectUri = params.get('redirect_uri');
    if (!redirectUri || !redirectUriMatches(client.redirectUris, redirectUri)) {
      d.log.warn({ client: clientId }, 'authorization request with a redirect_uri the client did not register');
      return this.#errorPage(res, 'This sign-in link is not valid',
        `The address to return to (redirect_uri) is not one that ${client.clientName ?? 'the application'} registered, so this server will not send you there.`);
    }
    // 2. From here on, problems go back to the client.
    const state = params.get('state');
    const fail = (error: string, description: string) => redirect(res, errorLocation(redirectUri, error, description, state, issuer));
    if (params.get('response_type') !== 'code') return fail('unsupported_response_type', 'Only response_type=code is supported.');
    const challenge = params.get('code_challenge');
    const method = params.get('code_challenge_method');
    if (!challenge) return fail('invalid_request', 'PKCE is required: send code_challenge with code_challenge_method=S256.');
    if (method !== 'S256') return fail('invalid_request', 'Only the S256 PKCE method is accepted (plain is not).');
    if (!PKCE_VALUE.test(challenge)) return fail('invalid_request', 'code_challenge is not a base64url SHA-256.');
    const resource = params.get('resource') ?? d.resources.single();
    if (!resource) return fail('invalid_target', 'Say which MCP server the token is for (the resource parameter, RFC 8707).');
    const known = d.resources.lookup(resource);
    if (!known) return fail('invalid_target', `This server does not issue tokens for ${resource}.`);
    const asked = params.get('scope')?.split(' ').filter(Boolean);
    const scopes = asked?.length ? [...new Set(asked)] : [...known.defaultScopes];
    const csrf = b64(32);
    const requestId = b64(18);
    const pending: Pending = {
      clientId, clientName: client.clientName ?? clientId, redirectUri, state, codeChallenge: challenge, scopes, resource, issuer,
      csrfHash: sha256(csrf), refresh: client.grantTypes.includes('refresh_token'),
    };
    await d.store.put(PENDING, requestId, pending, d.requestTtl);
    this.#loginPage(res, requestId, csrf, pending, 200, {}, { 'set-cookie': this.#cookie(requestId, csrf, issuer) });
  }

  async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const d = this.#d;
    const form = await readForm(req);
    const { requestId, pending, csrf } = await this.#pendingFromPost(req, form);
    if (!pending) return this.#expired(res);
    if (!d.password) return this.#errorPage(res, 'Password sign-in is off', 'This server signs people in through their organisation only.', 400);
    const username = (form.get('username') ?? '').trim().toLowerCase();
    const password = form.get('password') ?? '';
    const address = clientAddress(req);
    const allowed = await d.guard.allow(username, address);
    if (!allowed.ok) {
      const minutes = Math.ceil(allowed.retryAfterSeconds / 60);
      return this.#loginPage(res, requestId, csrf, pending, 429, {
        username, error: `Too many attempts. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`,
      }, { 'retry-after': String(allowed.retryAfterSeconds) });
    }
    const account = username && password ? await d.password.verify(username, password) : undefined;
    if (!account) {
      await d.guard.failed(username, address);
      d.log.info({ client: pending.clientId, username, address }, 'sign-in refused: wrong username or password');
      return this.#loginPage(res, requestId, csrf, pending, 401, { username, error: 'Wrong username or password.' });
    }
    await d.guard.succeeded(username, address);
    await this.#signedIn(res, requestId, csrf, pending, account);
  }

  async oidcStart(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const d = this.#d;
    const requestId = url.searchParams.get('request_id') ?? '';
    const pending = await this.#pendingWithCookie(req, requestId);
    if (!pending) return this.#expired(res);
    if (!d.oidc) return this.#errorPage(res, 'Organisation sign-in is off', 'This server has no OpenID Connect provider configured.', 400);
    let target: string;
    try {
      target = await d.oidc.start(requestId, d.issuer.endpoint(pending.issuer, PATHS.callback));
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      return this.#errorPage(res, 'Organisation sign-in is unavailable', err.message, 502);
    }
    redirect(res, target);
  }

  async callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const d = this.#d;
    if (!d.oidc) return this.#errorPage(res, 'Organisation sign-in is off', 'This server has no OpenID Connect provider configured.', 400);
    const callbackUrl = d.issuer.endpoint(d.issuer.forHost(req.headers.host), PATHS.callback);
    let result: { pendingId: string; account: Account };
    try {
      result = await d.oidc.finish(url, callbackUrl);
    } catch (err) {
      if (err instanceof PendingSignInError) {
        // The person said no (or has no tenant): tell the client, as a denial from here would.
        const pending = await this.#pendingWithCookie(req, err.pendingId);
        if (pending) {
          await d.store.delete(PENDING, err.pendingId);
          return redirect(res, errorLocation(pending.redirectUri, err.error, err.message, pending.state, pending.issuer),
            302, { 'set-cookie': this.#clearCookie(err.pendingId, pending.issuer) });
        }
      }
      if (!(err instanceof OAuthError)) throw err;
      return this.#errorPage(res, 'Sign-in did not complete', err.message, 400);
    }
    const pending = await this.#pendingWithCookie(req, result.pendingId);
    if (!pending) return this.#expired(res);
    // The CSRF token is in the cookie; the consent form needs it as a field too.
    const csrf = parseCookies(req.headers.cookie).get(COOKIE_PREFIX + result.pendingId)!;
    await this.#signedIn(res, result.pendingId, csrf, pending, result.account);
  }

  async consent(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const d = this.#d;
    const form = await readForm(req);
    const { requestId, pending } = await this.#pendingFromPost(req, form);
    if (!pending?.account) return this.#expired(res);
    // Single use: a second click (or a replayed form) finds nothing.
    if (!(await d.store.take(PENDING, requestId))) return this.#expired(res);
    const clear = { 'set-cookie': this.#clearCookie(requestId, pending.issuer) };
    if (form.get('decision') !== 'allow') {
      d.log.info({ client: pending.clientId, subject: pending.account.subject }, 'authorization denied by the user');
      return redirect(res, errorLocation(pending.redirectUri, 'access_denied', 'The user denied the request.', pending.state, pending.issuer), 303, clear);
    }
    const code = await d.grants.issueCode({
      clientId: pending.clientId, redirectUri: pending.redirectUri, codeChallenge: pending.codeChallenge, resource: pending.resource,
      scopes: grantedScopes(pending.scopes, pending.account), account: pending.account, issuer: pending.issuer, refresh: pending.refresh,
    });
    d.log.info({ client: pending.clientId, subject: pending.account.subject, tenant: pending.account.tenant, resource: pending.resource }, 'authorization granted');
    const location = new URL(pending.redirectUri);
    location.searchParams.set('code', code);
    if (pending.state !== undefined) location.searchParams.set('state', pending.state);
    location.searchParams.set('iss', pending.issuer);
    redirect(res, location.href, 303, clear);
  }

  async #signedIn(res: ServerResponse, requestId: string, csrf: string, pending: Pending, account: Account): Promise<void> {
    const d = this.#d;
    pending.account = account;
    await d.store.put(PENDING, requestId, pending, d.requestTtl);
    // Allow and Deny are answered with a 303 to the client's redirect URI, which Chromium checks
    // against this page's form-action: the policy names that URI's origin or scheme (csp.ts).
    sendHtml(res, 200, d.pages.renderConsentPage({
      action: PATHS.consent, csrfToken: csrf, requestId,
      client: describeClient(pending),
      account: { displayName: account.displayName, subject: account.subject, tenant: account.tenant },
      scopes: grantedScopes(pending.scopes, account), resource: pending.resource,
    }), { 'content-security-policy': pagePolicy(pending.redirectUri) });
  }

  /** The pending request of a POSTed form, when the form's CSRF token matches the cookie and the request. */
  async #pendingFromPost(req: IncomingMessage, form: Map<string, string>): Promise<{ requestId: string; csrf: string; pending?: Pending }> {
    const requestId = form.get('request_id') ?? '';
    const csrf = form.get('csrf') ?? '';
    const cookie = parseCookies(req.headers.cookie).get(COOKIE_PREFIX + requestId);
    if (!requestId || !csrf || cookie === undefined || !sameHash(cookie, csrf)) {
      this.#d.log.warn({ address: clientAddress(req) }, 'sign-in form refused: CSRF token missing or not matching its cookie');
      return { requestId, csrf };
    }
    const pending = await this.#d.store.get<Pending>(PENDING, requestId);
    if (!pending || !sameHash(pending.csrfHash, sha256(csrf))) return { requestId, csrf };
    return { requestId, csrf, pending };
  }

  async #pendingWithCookie(req: IncomingMessage, requestId: string): Promise<Pending | undefined> {
    const cookie = parseCookies(req.headers.cookie).get(COOKIE_PREFIX + requestId);
    if (!requestId || cookie === undefined) return undefined;
    const pending = await this.#d.store.get<Pending>(PENDING, requestId);
    return pending && sameHash(pending.csrfHash, sha256(cookie)) ? pending : undefined;
  }

  #loginPage(res: ServerResponse, requestId: string, csrf: string, pending: Pending, status: number,
    extra: { username?: string; error?: string }, headers: Record<string, string> = {}): void {
    const d = this.#d;
    sendHtml(res, status, d.pages.renderLoginPage({
      action: PATHS.login, csrfToken: csrf, requestId, client: describeClient(pending), scopes: pending.scopes, resource: pending.resource,
      passwordEnabled: d.password !== undefined, ...extra,
      oidc: d.oidc ? { label: d.oidc.label, href: `${PATHS.oidcStart}?request_id=${encodeURIComponent(requestId)}` } : undefined,
    }), headers);
  }

  #expired(res: ServerResponse): void {
    this.#errorPage(res, 'This sign-in has expired', 'Start again from your application: it will open a new sign-in page.', 400);
  }

  #errorPage(res: ServerResponse, title: string, message: string, status = 400): void {
    sendHtml(res, status, this.#d.pages.renderErrorPage({ title, message }));
  }

  #cookie(requestId: string, csrf: string, issuer: string): string {
    const secure = issuer.startsWith('https:') ? '; Secure' : '';
    return `${COOKIE_PREFIX}${requestId}=${csrf}; Path=/oauth; Max-Age=${Math.ceil(this.#d.requestTtl / 1000)}; HttpOnly; SameSite=Lax${secure}`;
  }

  #clearCookie(requestId: string, issuer: string): string {
    const secure = issuer.startsWith('https:') ? '; Secure' : '';
    return `${COOKIE_PREFIX}${requestId}=; Path=/oauth; Max-Age=0; HttpOnly; SameSite=Lax${secure}`;
  }
}

/** What the person is asked to grant: what was asked for and the account may have; never more. */
export function grantedScopes(asked: readonly string[], account: Account): string[] {
  return asked.filter((s) => account.scopes.includes(s));
}

function describeClient(p: Pending): { name: string; id: string; redirectHost: string } {
  let host: string;
  try {
    const u = new URL(p.redirectUri);
    host = u.host || u.protocol;
  } catch {
    host = p.redirectUri;
  }
  return { name: p.clientName, id: p.clientId, redirectHost: host };
}

export function errorLocation(redirectUri: string, error: string, description: string, state: string | undefined, issuer: string): string {
  const url = new URL(redirectUri);
  url.searchParams.set('error', error);
  url.searchParams.set('error_description', description);
  if (state !== undefined) url.searchParams.set('state', state);
  url.searchParams.set('iss', issuer);
  return url.href;
}
