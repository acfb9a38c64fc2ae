/**
 * For the authorization server's tests: a gateway with `authorization:` over a per-tenant stdio
 * memory server, a users file written by the test, and a "browser" that answers the sign-in pages the
 * way a person would (cookies kept, hidden fields read back, redirects not followed).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { hashPassword } from '../../gateway/oauth/accounts/password-hash.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

export const PASSWORD = 'correct horse battery staple';
/** The redirect URI of the test clients: nothing listens there, the tests read the Location instead. */
export const REDIRECT = 'http://127.0.0.1:9/callback';

/**
 * The MCP SDK's OAuth client side as a test plays it: a public client that registers dynamically,
 * keeps what the SDK saves, and records where it was sent to sign in (`authUrl`) instead of going.
 */
export class SdkClientProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier = '';
  authUrl?: URL;
  readonly clientName: string;
  readonly stateValue: string;
  constructor(clientName: string, stateValue: string) { this.clientName = clientName; this.stateValue = stateValue; }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata(): OAuthClientMetadata {
    return { redirect_uris: [REDIRECT], client_name: this.clientName, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  state() { return this.stateValue; }
  clientInformation() { return this.client; }
  saveClientInformation(c: OAuthClientInformationMixed) { this.client = c; }
  tokens() { return this.saved; }
  saveTokens(t: OAuthTokens) { this.saved = t; }
  redirectToAuthorization(url: URL) { this.authUrl = url; }
  saveCodeVerifier(v: string) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

/** Users: alice (tenant acme), bob (tenant globex); both may have mcp:tools. */
export async function startAuthGateway(extraAuthorization = ''): Promise<TestGateway> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-oauth-'));
  const hash = await hashPassword(PASSWORD);
  await writeFile(path.join(dir, 'users.yaml'), `users:
  alice: { password: '${hash}', tenant: acme, scopes: [mcp:tools], name: Alice }
  bob: { password: '${hash}', tenant: globex, scopes: [mcp:tools] }
`, { mode: 0o600 });
  return startTestGateway(`
listeners:
  - { name: main, host: 127.0.0.1, port: 0 }
upstreams:
  memory:
    stdio:
      command: mcp-server-memory
      poolKey: '{tenant}'
      pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' }
authorization:
  accounts: { usersFile: users.yaml }
  scopes: [mcp:tools]
${extraAuthorization}
routes:
  - listener: main
    path: /mcp
    upstream: memory
    plugins:
      - { type: token }
      - { type: jwt, authorizationServer: gateway, requiredScopes: [mcp:tools] }
`, { dir });
}

export class Browser {
  readonly cookies = new Map<string, string>();

  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(i + 1).trim());
    }
    return res;
  }

  post(url: string | URL, fields: Record<string, string>): Promise<Response> {
    return this.fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
  }
}

export function hidden(html: string, name: string): string {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`no hidden field ${name} in the page: ${html.slice(0, 400)}`);
  return m[1];
}

/**
 * A person signing in: opens the authorization URL, signs in, allows (or denies). Returns the final
 * redirect's Location (to the client's redirect URI), or throws with the page when there is none.
 */
export async function signIn(authUrl: string | URL, opts: { username?: string; password?: string; decision?: 'allow' | 'deny'; browser?: Browser } = {}): Promise<URL> {
  const browser = opts.browser ?? new Browser();
  const page = await browser.fetch(authUrl);
  if (page.status === 302 || page.status === 303) return new URL(page.headers.get('location')!);
  const login = await page.text();
  if (page.status !== 200) throw new Error(`authorization page ${page.status}: ${login.slice(0, 400)}`);
  const origin = new URL(authUrl).origin;
  const consentRes = await browser.post(`${origin}/oauth/login`, {
    request_id: hidden(login, 'request_id'), csrf: hidden(login, 'csrf'), username: opts.username ?? 'alice', password: opts.password ?? PASSWORD,
  });
  const consent = await consentRes.text();
  if (consentRes.status !== 200) throw new Error(`login answered ${consentRes.status}: ${consent.slice(0, 400)}`);
  const done = await browser.post(`${origin}/oauth/consent`, {
    request_id: hidden(consent, 'request_id'), csrf: hidden(consent, 'csrf'), decision: opts.decision ?? 'allow',
  });
  if (done.status !== 303) throw new Error(`consent answered ${done.status}: ${(await done.text()).slice(0, 400)}`);
  return new URL(done.headers.get('location')!);
}
