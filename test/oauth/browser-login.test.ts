/**
 * A person signs in with a real browser: Debian's chromium, headless, driven by playwright-core, on the
 * login and consent pages the gateway serves, for an authorization request built the way an MCP client
 * builds it (discovery from the route, dynamic registration, PKCE S256, resource, state) with the MCP
 * SDK's own functions. The client's redirect server receives `code`, `state` and `iss`, and the code
 * redeems for a token of the account's tenant; so does a client whose redirect URI has a private-use
 * scheme (Cursor's `cursor://…`), which the consent page's CSP must let through. A wrong password shows
 * the alert.
 *
 * Locators are the accessible ones (label text, roles and names), so the test also fails if a label
 * stops being bound to its input or the error stops being an alert.
 *
 * Skipped with the reason when /usr/bin/chromium is missing (`apt-get install chromium`), except with
 * CI=true, where that is a failure (.ci/run installs it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import {
  discoverAuthorizationServerMetadata, discoverOAuthProtectedResourceMetadata, exchangeAuthorization, registerClient, startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TestGateway } from '../helpers/gateway.ts';
import { PASSWORD, startAuthGateway } from './as-helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`CI=true but ${CHROMIUM} is missing: apt-get install -y chromium`);
const skip = haveChromium ? false : `${CHROMIUM} is missing (apt-get install -y chromium); CI=true makes this a failure`;

/** The client's loopback redirect server (RFC 8252): records each authorization response. */
interface RedirectServer {
  url: string;
  next(): Promise<URLSearchParams>;
  close(): Promise<void>;
}

async function startRedirectServer(): Promise<RedirectServer> {
  let waiting: ((q: URLSearchParams) => void) | undefined;
  const received: URLSearchParams[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Done</title><p>Signed in.</p>');
    if (waiting) waiting(url.searchParams);
    else received.push(url.searchParams);
    waiting = undefined;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`,
    next: () => received.length ? Promise.resolve(received.shift()!) : new Promise((resolve) => { waiting = resolve; }),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('signing in with a browser', { skip }, () => {
  let tg: TestGateway;
  let browser: Browser;
  let redirect: RedirectServer;
  let mcpUrl: string;

  before(async () => {
    // The gateway the other authorization-server tests use (as-helpers.ts): alice of tenant acme.
    tg = await startAuthGateway();
    mcpUrl = `${tg.url('main')}/mcp`;
    redirect = await startRedirectServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close();
    await redirect?.close();
    await tg?.close();
  });

  /** What an MCP client does before opening the browser: discover, register, build the URL. */
  async function authorizationRequest(redirectUri = redirect.url) {
    const prm = await discoverOAuthProtectedResourceMetadata(mcpUrl);
    const asUrl = prm.authorization_servers![0];
    const metadata = (await discoverAuthorizationServerMetadata(asUrl))!;
    const clientInformation = await registerClient(asUrl, {
      metadata,
      clientMetadata: {
        client_name: 'Browser <b>Test</b>', redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'], token_endpoint_auth_method: 'none',
      },
    });
    const state = randomBytes(16).toString('base64url');
    const { authorizationUrl, codeVerifier } = await startAuthorization(asUrl, {
      metadata, clientInformation, redirectUrl: redirectUri, scope: 'mcp:tools', state, resource: new URL(prm.resource),
    });
    assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
    return { asUrl, metadata, clientInformation, state, authorizationUrl, codeVerifier, resource: prm.resource };
  }

  async function openPage(): Promise<{ page: Page; cspViolations: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Slow CI machines: generous, and never a timing assertion.
    page.setDefaultTimeout(60_000);
    const cspViolations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
    return { page, cspViolations };
  }

  it('signs in with username and password, allows, and the client gets code, state and iss', async () => {
    const req = await authorizationRequest();
    const { page, cspViolations } = await openPage();
    try {
      await page.goto(req.authorizationUrl.href);
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      // The client's name is shown as text, next to its id.
      await page.getByText('Browser <b>Test</b>').first().waitFor();
      await page.getByText(req.clientInformation.client_id).waitFor();

      await page.getByLabel('Username').fill('Alice');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();

      await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
      const consentText = await page.locator('main').innerText();
      assert.match(consentText, /as Alice \(alice\) in tenant acme/);
      assert.match(consentText, /mcp:tools/);
      const answer = redirect.next();
      await page.getByRole('button', { name: 'Allow' }).click();
      const params = await answer;

      assert.equal(params.get('state'), req.state);
      assert.equal(params.get('iss'), req.metadata.issuer);
      const code = params.get('code');
      assert.ok(code, `no code in ${params}`);
      assert.deepEqual(cspViolations, [], 'the pages need nothing the CSP forbids');

      const tokens = await exchangeAuthorization(req.asUrl, {
        metadata: req.metadata, clientInformation: req.clientInformation, authorizationCode: code,
        codeVerifier: req.codeVerifier, redirectUri: redirect.url, resource: new URL(req.resource),
      });
      const claims = decodeJwt(tokens.access_token);
      assert.equal(claims.sub, 'alice');
      assert.equal(claims.tenant_id, 'acme');
    } finally {
      await page.context().close();
    }
  });

  it("sends the code to a custom-scheme redirect URI (Cursor's): the consent page's CSP lets the 303 through", async () => {
    // Chromium checks a form's redirects against form-action too; a policy without `cursor:` blocks the
    // navigation ("Sending form data … violates … form-action") and the app never hears back.
    const cursor = 'cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback';
    const req = await authorizationRequest(cursor);
    const { page, cspViolations } = await openPage();
    try {
      await page.goto(req.authorizationUrl.href);
      await page.getByLabel('Username').fill('alice');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
      // Headless Chromium has no app for the scheme, so the navigation is attempted and then fails;
      // the attempt is what matters (a CSP block never starts it).
      const handedOff = page.waitForRequest((r) => r.url().startsWith('cursor:'));
      await page.getByRole('button', { name: 'Allow' }).click();
      const params = new URL((await handedOff).url()).searchParams;
      assert.equal(params.get('state'), req.state);
      assert.equal(params.get('iss'), req.metadata.issuer);
      assert.deepEqual(cspViolations, []);
      const tokens = await exchangeAuthorization(req.asUrl, {
        metadata: req.metadata, clientInformation: req.clientInformation, authorizationCode: params.get('code')!,
        codeVerifier: req.codeVerifier, redirectUri: cursor, resource: new URL(req.resource),
      });
      assert.equal(decodeJwt(tokens.access_token).tenant_id, 'acme');
    } finally {
      await page.context().close();
    }
  });

  it('a wrong password shows the alert, linked from the fields, and keeps the username', async () => {
    const req = await authorizationRequest();
    const { page } = await openPage();
    try {
      await page.goto(req.authorizationUrl.href);
      await page.getByLabel('Username').fill('alice');
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in' }).click();

      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.equal((await alert.innerText()).trim(), 'Wrong username or password.');
      const alertId = await alert.getAttribute('id');
      assert.equal(await page.getByLabel('Password').getAttribute('aria-describedby'), alertId);
      assert.equal(await page.getByLabel('Username').inputValue(), 'alice');
      assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password is never sent back');
      assert.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'password', 'focus waits in the password field');
    } finally {
      await page.context().close();
    }
  });
});
