/**
 * The sign-in pages: every value escaped (client data is untrusted), labels and ARIA wired up, the
 * forms' fields as the authorization endpoint reads them, and nothing that needs more than the CSP the
 * endpoint sends (no scripts, no external assets).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderConsentPage, renderErrorPage, renderLoginPage } from '../../gateway/oauth/pages/index.ts';
import { escapeHtml, safeHref } from '../../gateway/oauth/pages/html.ts';

const EVIL = `"><script>alert('x')</script><img src=x onerror=alert(1)>`;
const client = { name: `Claude ${EVIL}`, id: `https://evil.example/${EVIL}`, redirectHost: `evil.example${EVIL}` };

const login = (over: Partial<Parameters<typeof renderLoginPage>[0]> = {}) => renderLoginPage({
  action: '/oauth/login', csrfToken: 'csrf-token-1', requestId: 'req-1', client: { name: 'Inspector', id: 'https://inspector.example/client.json', redirectHost: 'localhost:6274' },
  scopes: ['mcp:tools'], resource: 'http://localhost:3001/mcp', passwordEnabled: true, ...over,
});
const consent = (over: Partial<Parameters<typeof renderConsentPage>[0]> = {}) => renderConsentPage({
  action: '/oauth/consent', csrfToken: 'csrf-token-2', requestId: 'req-2', client: { name: 'Inspector', id: 'client-123', redirectHost: '127.0.0.1' },
  account: { displayName: 'Alice Example', subject: 'alice', tenant: 'acme' }, scopes: ['mcp:tools', 'mcp:admin'], resource: 'http://localhost:3001/mcp', ...over,
});

/** Attributes of every element named `tag`. */
function elements(page: string, tag: string): Array<Record<string, string>> {
  return [...page.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'g'))].map((m) => {
    const attrs: Record<string, string> = {};
    for (const a of m[1].matchAll(/([a-z-]+)(?:="([^"]*)")?/g)) attrs[a[1]] = a[2] ?? '';
    return attrs;
  });
}

/**
 * What a page must never contain whatever the data: markup that runs or loads anything. Escaped text
 * holds no `<`, so every `<name …>` found is a real tag; attribute values hold no `"`.
 */
function assertInert(page: string): void {
  const tags = [...page.matchAll(/<([a-z][a-z0-9]*)\b([^>]*)>/gi)];
  const allowed = new Set(['html', 'head', 'meta', 'title', 'style', 'body', 'main', 'h1', 'h2', 'p', 'strong', 'code', 'dl', 'dt', 'dd', 'ul', 'li', 'form', 'input', 'label', 'button', 'div', 'a']);
  for (const [tag, name, rawAttrs] of tags) {
    // Values are quoted and hold no `"` (escaped): what is left outside quotes is attribute names.
    const attrs = rawAttrs.replace(/"[^"]*"/g, '""');
    assert.ok(allowed.has(name.toLowerCase()), `unexpected element ${tag}`);
    assert.doesNotMatch(attrs, /\son[a-z]+\s*=/i, `no event handler attributes: ${tag}`);
    assert.doesNotMatch(attrs, /\s(src|style|srcdoc|formaction)\s*=/i, `no external assets or style attributes: ${tag}`);
  }
  assert.doesNotMatch(page, /<script|<img/i);
}

function assertDocument(page: string, title: string): void {
  assert.match(page, /^<!doctype html>\n<html lang="en">/);
  assert.match(page, /<meta charset="utf-8">/);
  assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  assert.match(page, new RegExp(`<title>${title}</title>`));
  assert.equal(page.match(/<main>/g)?.length, 1);
  assert.equal(page.match(/<h1>/g)?.length, 1);
}

describe('login page', () => {
  it('shows the client name (escaped), its id and redirect host, the scopes and the resource', () => {
    const page = login({ client, scopes: [`mcp:${EVIL}`], resource: `http://x/${EVIL}`, username: EVIL, error: EVIL });
    assertInert(page);
    assert.ok(page.includes('Claude &quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;'), 'the name is text');
    assert.ok(page.includes('<code>https://evil.example/&quot;&gt;&lt;script&gt;'), 'the id is shown');
    assert.ok(page.includes('<code>evil.example&quot;&gt;'), 'the redirect host is shown');
    assert.ok(page.includes('<li><code>mcp:&quot;&gt;&lt;script&gt;'));
    assert.ok(page.includes('<code>http://x/&quot;&gt;'));
    const username = elements(page, 'input').find((i) => i.name === 'username')!;
    assert.equal(username.value, escapeHtml(EVIL), 'an attribute value cannot be broken out of');
  });

  it('has labelled inputs with autocomplete, hidden request_id and csrf, posting to the action', () => {
    const page = login();
    assertDocument(page, 'Sign in');
    assertInert(page);
    const [form] = elements(page, 'form');
    assert.deepEqual({ method: form.method, action: form.action }, { method: 'post', action: '/oauth/login' });
    const inputs = elements(page, 'input');
    assert.deepEqual(inputs.map((i) => i.name), ['request_id', 'csrf', 'username', 'password']);
    assert.equal(inputs[0].value, 'req-1');
    assert.equal(inputs[1].value, 'csrf-token-1');
    assert.equal(inputs[2].autocomplete, 'username');
    assert.equal(inputs[3].autocomplete, 'current-password');
    assert.equal(inputs[3].type, 'password');
    const labels = elements(page, 'label').map((l) => l.for);
    assert.deepEqual(labels, ['username', 'password']);
    for (const i of inputs.slice(2)) assert.ok(labels.includes(i.id), `input ${i.name} has a <label for>`);
    assert.ok('autofocus' in inputs[2], 'a first visit starts at the username');
    assert.doesNotMatch(page, /role="alert"|aria-describedby/, 'no error, no alert');
    assert.deepEqual(elements(page, 'button').map((b) => b.type), ['submit']);
  });

  it('announces an error with role="alert", linked from both inputs, and keeps the username', () => {
    const page = login({ username: 'alice', error: 'Wrong username or password.' });
    const [alert] = elements(page, 'p').filter((p) => p.role === 'alert');
    assert.equal(alert.id, 'login-error');
    assert.match(page, /role="alert">Wrong username or password\.<\/p>/);
    const inputs = elements(page, 'input').filter((i) => i.type !== 'hidden');
    for (const i of inputs) assert.equal(i['aria-describedby'], 'login-error');
    assert.equal(inputs[0].value, 'alice');
    assert.ok('autofocus' in inputs[1] && !('autofocus' in inputs[0]), 'the password is where typing resumes');
  });

  it('offers the OpenID Connect provider as a link, alone or beside the password form', () => {
    const both = login({ oidc: { label: 'Sign in with Acme <SSO>', href: '/oauth/oidc/start?request_id=req-1&x=1' } });
    assert.match(both, /<a class="button secondary" href="\/oauth\/oidc\/start\?request_id=req-1&amp;x=1">Sign in with Acme &lt;SSO&gt;<\/a>/);
    const only = login({ passwordEnabled: false, oidc: { label: 'Acme', href: '/oauth/oidc/start?request_id=req-1' } });
    assert.doesNotMatch(only, /<form|type="password"/);
    assert.match(only, /<a class="button" href=/);
    assert.match(login({ oidc: { label: 'x', href: 'javascript:alert(1)' } }), /href="#"/);
    assert.match(login({ passwordEnabled: false }), /no way to sign in configured/);
  });
});

describe('consent page', () => {
  it('names the account and the tenant it will act as, the client with id and redirect host, scopes and resource', () => {
    const page = consent();
    assertDocument(page, 'Allow access\\?');
    assertInert(page);
    assert.match(page, /<strong>Inspector<\/strong> asks to act as <strong>Alice Example<\/strong> \(<code>alice<\/code>\) in tenant <strong><code>acme<\/code><\/strong>/);
    assert.match(page, /<code>client-123<\/code>/);
    assert.match(page, /<code>127\.0\.0\.1<\/code>/);
    assert.match(page, /<li><code>mcp:tools<\/code><\/li><li><code>mcp:admin<\/code><\/li>/);
    assert.match(page, /<code>http:\/\/localhost:3001\/mcp<\/code>/);
    assert.match(consent({ account: { subject: 'bob', tenant: 'beta' } }), /act as <strong><code>bob<\/code><\/strong> in tenant/);
  });

  it('posts request_id, csrf and decision=allow|deny with two submit buttons', () => {
    const page = consent();
    const [form] = elements(page, 'form');
    assert.deepEqual({ method: form.method, action: form.action }, { method: 'post', action: '/oauth/consent' });
    assert.deepEqual(elements(page, 'input').map((i) => [i.type, i.name, i.value]), [['hidden', 'request_id', 'req-2'], ['hidden', 'csrf', 'csrf-token-2']]);
    assert.deepEqual(elements(page, 'button').map((b) => [b.type, b.name, b.value]), [['submit', 'decision', 'allow'], ['submit', 'decision', 'deny']]);
    assert.match(page, />Allow<\/button>/);
    assert.match(page, />Deny<\/button>/);
  });

  it('escapes everything it shows', () => {
    const page = consent({ client, account: { displayName: EVIL, subject: EVIL, tenant: EVIL }, csrfToken: EVIL, requestId: EVIL, action: `/x${EVIL}` });
    assertInert(page);
    for (const i of elements(page, 'input')) assert.equal(i.value, escapeHtml(EVIL));
    assert.equal(elements(page, 'form')[0].action, escapeHtml(`/x${EVIL}`));
  });
});

describe('error page', () => {
  it('is a small document with the title and the message, escaped', () => {
    const page = renderErrorPage({ title: 'Sign-in expired', message: `Start again. ${EVIL}` });
    assertDocument(page, 'Sign-in expired');
    assertInert(page);
    assert.match(page, /<h1>Sign-in expired<\/h1>\n<p>Start again\. &quot;&gt;&lt;script&gt;/);
  });
});

describe('html helpers', () => {
  it('safeHref keeps paths and http(s) URLs and drops other schemes', () => {
    assert.equal(safeHref('/oauth/oidc/start?a=1'), '/oauth/oidc/start?a=1');
    assert.equal(safeHref('https://idp.example/auth'), 'https://idp.example/auth');
    assert.equal(safeHref('//evil.example/'), '#');
    assert.equal(safeHref('JavaScript:alert(1)'), '#');
    assert.equal(safeHref('data:text/html,<script>'), '#');
  });
});
