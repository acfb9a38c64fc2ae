/**
 * A real OpenID Connect provider in the test process (panva's oidc-provider, the certified
 * implementation), and a "browser" that walks its sign-in pages with fetch, carrying cookies by hand.
 *
 * Its development interactions are used as they are: a login form (any login, the login is the account
 * id) and a consent form. That keeps the whole protocol real (cookies, redirects, the code, PKCE, the
 * signed ID token) without a browser.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type ClientMetadata } from 'oidc-provider';
import type { OAuthStore } from '../../gateway/oauth/contracts.ts';

/** Account id (what is typed as the login) → the claims the provider states about that person. */
export type Directory = Record<string, Record<string, unknown>>;

export interface TestProvider {
  issuer: string;
  /** With `down: true`: start answering (until then every request gets 503). */
  up(): void;
  close(): Promise<void>;
}

export type ProviderClient = Pick<ClientMetadata, 'client_id' | 'client_secret' | 'redirect_uris'>;

/**
 * `clients` may be a function: with `down: true` it is called at `up()`, so a client whose redirect URI
 * is only known once something else is listening (a gateway on port 0, whose discovery of this provider
 * then first fails and is retried) can be registered after the issuer URL is handed out.
 */
export async function startProvider(opts: {
  clients: ProviderClient[] | (() => ProviderClient[]); directory: Directory; conformIdTokenClaims?: boolean; down?: boolean;
}): Promise<TestProvider> {
  let handler: ((req: never, res: never) => void) | undefined;
  const server: Server = createServer((req, res) => {
    if (handler) handler(req as never, res as never);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const build = () => new Provider(issuer, {
    clients: (typeof opts.clients === 'function' ? opts.clients() : opts.clients)
      .map((c) => ({ grant_types: ['authorization_code'], response_types: ['code'], ...c })),
    jwks: { keys: [{ ...jwk, alg: 'RS256', use: 'sig', kid: 'test' }] as never },
    async findAccount(_ctx, id) {
      const claims = opts.directory[id];
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
    },
    // `org` is a scope of our own carrying the tenant claim, as a Keycloak mapper or an Auth0 action would.
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], org: ['org', 'groups'] },
    // Claims in the ID token itself (as Google and Keycloak do), unless a test wants them only in userinfo.
    conformIdTokenClaims: opts.conformIdTokenClaims ?? false,
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ['a-cookie-signing-key-for-tests-only'] },
    // Set, so the provider does not print a notice for each default it falls back to.
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600 },
  });
  if (!opts.down) handler = build().callback() as never;
  return {
    issuer,
    up: () => { handler ??= build().callback() as never; },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Follows the provider's redirects from `authorizationUrl` until it sends the browser to `callbackUrl`,
 * signing in as `login` and consenting on the way; with `abort`, declines at the first page instead.
 * Returns the callback URL as the browser would request it.
 */
export async function browse(authorizationUrl: string, callbackUrl: string, opts: { login: string; abort?: boolean }): Promise<URL> {
  const jar = new Map<string, string>();
  let url = authorizationUrl;
  let form: URLSearchParams | undefined;
  for (let step = 0; step < 20; step++) {
    const headers: Record<string, string> = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method: form ? 'POST' : 'GET', body: form, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0];
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      if (value === '') jar.delete(pair.slice(0, eq));
      else jar.set(pair.slice(0, eq), value);
    }
    form = undefined;
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      const next = new URL(location, url);
      if (next.href.startsWith(callbackUrl)) return next;
      url = next.href;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`provider answered ${res.status} at ${url}: ${html.slice(0, 300)}`);
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (!prompt || !action) throw new Error(`no sign-in form at ${url}`);
    if (opts.abort) {
      url = new URL(`${new URL(action, url).pathname}/abort`, url).href;
      continue;
    }
    url = new URL(action, url).href;
    form = prompt === 'login'
      ? new URLSearchParams({ prompt, login: opts.login, password: 'any' })
      : new URLSearchParams({ prompt });
  }
  throw new Error('the provider never redirected to the callback');
}

/** The OAuthStore contract on a Map (values copied through JSON, as the real stores do). */
export function mapStore(): OAuthStore & { entries: Map<string, string> } {
  const entries = new Map<string, string>();
  const id = (kind: string, key: string) => `${kind}:${key}`;
  return {
    entries,
    async put(kind, key, value) { entries.set(id(kind, key), JSON.stringify(value)); },
    async get<T>(kind: string, key: string) {
      const v = entries.get(id(kind, key));
      return v === undefined ? undefined : (JSON.parse(v) as T);
    },
    async take<T>(kind: string, key: string) {
      const v = entries.get(id(kind, key));
      entries.delete(id(kind, key));
      return v === undefined ? undefined : (JSON.parse(v) as T);
    },
    async delete(kind, key) { entries.delete(id(kind, key)); },
  };
}
