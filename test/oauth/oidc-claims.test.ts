/**
 * The OIDC provider's claims → Account rules, and the `oidc:` configuration's validation, without a
 * provider: every way a tenant is decided and every refusal.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accountFrom, subjectPrefix } from '../../gateway/oauth/accounts/oidc-claims.ts';
import { OidcConfigSchema, type OidcConfigInput } from '../../gateway/oauth/accounts/oidc-config.ts';

const base = { issuer: 'https://accounts.google.com', clientId: 'gateway', clientSecret: 's' };
const cfg = (extra: Partial<OidcConfigInput>) => OidcConfigSchema.parse({ ...base, tenant: { fixed: 'acme' }, ...extra });
const google = (claims: Record<string, unknown>) => ({ sub: '1084', email: 'bob@acme.com', email_verified: true, ...claims });

describe('OIDC claims → account', () => {
  it('prefixes subjects with the issuer, so they never meet a users-file name or another provider', () => {
    assert.equal(subjectPrefix('https://accounts.google.com'), 'accounts.google.com|');
    assert.equal(subjectPrefix('https://kc.example.com/realms/acme/'), 'kc.example.com/realms/acme|');
    const account = accountFrom(google({}), cfg({}));
    assert.equal(account.subject, 'accounts.google.com|1084');
    // `|` is outside the users file's USERNAME_PATTERN: no users-file name has this shape.
    assert.equal(account.source, 'oidc:accounts.google.com');
  });

  it("maps Google's hd through `values`, refusing domains not listed", () => {
    const c = cfg({ tenant: { claim: 'hd', values: { 'acme.com': 'acme' } } });
    assert.equal(accountFrom(google({ hd: 'acme.com' }), c).tenant, 'acme');
    assert.throws(() => accountFrom(google({ hd: 'evil.com' }), c), { error: 'access_denied', message: /"hd".*not one the gateway maps/ });
    assert.throws(() => accountFrom(google({}), c), { error: 'access_denied', message: /no "hd"/ });
    // A claim value must not reach the map's prototype.
    assert.throws(() => accountFrom(google({ hd: '__proto__' }), c), { error: 'access_denied' });
  });

  it('reads a list claim when it yields exactly one tenant', () => {
    const c = cfg({ tenant: { claim: 'organizations' } });
    assert.equal(accountFrom(google({ organizations: ['acme', 'Not A Tenant'] }), c).tenant, 'acme');
    assert.throws(() => accountFrom(google({ organizations: ['acme', 'globex'] }), c), { message: /more than one tenant/ });
    assert.equal(accountFrom(google({ organizations: 42 }), c).tenant, '42');
  });

  it('maps verified e-mail addresses and domains with `emails`, the address first', () => {
    const c = cfg({ tenant: { emails: { '@acme.com': 'acme', 'Bob@Acme.com': 'bob-lab' } } });
    assert.equal(accountFrom(google({}), c).tenant, 'bob-lab');
    assert.equal(accountFrom(google({ email: 'Carol@ACME.com' }), c).tenant, 'acme');
    assert.throws(() => accountFrom(google({ email_verified: false }), c), { message: /verified "email"/ });
    assert.throws(() => accountFrom(google({ email: 'eve@other.com' }), c), { message: /No tenant is configured for eve@other.com/ });
  });

  it('lets only allowed domains in, with a verified address', () => {
    const c = cfg({ allowedDomains: ['@ACME.com'] });
    assert.equal(accountFrom(google({}), c).tenant, 'acme');
    assert.throws(() => accountFrom(google({ email: 'eve@sub.acme.com' }), c), { message: /sub\.acme\.com may not sign in/ });
    assert.throws(() => accountFrom(google({ email_verified: 'false' }), c), { message: /verified "email"/ });
  });

  it('grants fixed scopes plus valid ones from a claim', () => {
    const c = cfg({ grantScopes: ['mcp:read'], scopesClaim: 'realm_access.roles' });
    const account = accountFrom(google({ realm_access: { roles: ['mcp:tools', 'has space', 'mcp:read', 7] } }), c);
    assert.deepEqual(account.scopes, ['mcp:read', 'mcp:tools']);
    assert.deepEqual(accountFrom(google({ realm_access: { roles: 'a b' } }), c).scopes, ['mcp:read', 'a', 'b']);
  });

  it('refuses a subject from an unverified email, and a missing subject claim', () => {
    assert.throws(() => accountFrom(google({ email_verified: false }), cfg({ subjectClaim: 'email' })), { message: /not say it is verified/ });
    assert.throws(() => accountFrom(google({}), cfg({ subjectClaim: 'oid' })), { message: /no "oid"/ });
  });
});

describe('OIDC configuration', () => {
  const issues = (input: unknown) => {
    const r = OidcConfigSchema.safeParse(input);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('fills the defaults', () => {
    const c = cfg({});
    assert.deepEqual(c.scopes, ['openid', 'email', 'profile']);
    assert.equal(c.subjectClaim, 'sub');
    assert.equal(c.tenantPattern, '^[a-z0-9-]{1,64}$');
    assert.equal(c.stateTtl, 600_000);
    assert.equal(c.userinfo, false);
  });

  it('needs exactly one way to decide the tenant, and tenants that match the pattern', () => {
    assert.match(issues({ ...base, tenant: {} }).join(), /exactly one of claim, fixed or emails/);
    assert.match(issues({ ...base, tenant: { claim: 'hd', fixed: 'acme' } }).join(), /exactly one/);
    assert.match(issues({ ...base }).join(), /^tenant:/);
    assert.match(issues({ ...base, tenant: { claim: 'hd', values: { 'acme.com': 'Acme Inc' } } }).join(), /tenant\.values\.acme\.com: a tenant matches/);
    assert.match(issues({ ...base, tenant: { fixed: 'a_b' } }).join(), /tenant\.fixed/);
  });

  it('refuses plain http except on loopback, protocol parameters in authorizationParams, scopes without openid', () => {
    assert.match(issues({ ...base, issuer: 'http://idp.example.com', tenant: { fixed: 'acme' } }).join(), /^issuer: use https/);
    assert.deepEqual(issues({ ...base, issuer: 'http://localhost:8080/realms/x', tenant: { fixed: 'acme' } }), []);
    assert.match(issues({ ...base, tenant: { fixed: 'acme' }, authorizationParams: { redirect_uri: 'https://evil' } }).join(), /authorizationParams/);
    assert.match(issues({ ...base, tenant: { fixed: 'acme' }, scopes: ['email'] }).join(), /must include openid/);
    assert.match(issues({ ...base, tenant: { fixed: 'acme' }, unknown: 1 }).join(), /nrecognized/);
  });
});

describe('docs/oauth-oidc.md', () => {
  it("every YAML example's authorization.oidc is a valid configuration", async () => {
    const { readFile } = await import('node:fs/promises');
    const { parse } = await import('yaml');
    const text = await readFile(new URL('../../docs/oauth-oidc.md', import.meta.url), 'utf8');
    const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]) as { authorization: { oidc: unknown } });
    assert.ok(blocks.length >= 5);
    for (const block of blocks) {
      const r = OidcConfigSchema.safeParse(block.authorization.oidc);
      assert.ok(r.success, `${JSON.stringify(block.authorization.oidc)}: ${r.error?.message}`);
    }
  });
});
