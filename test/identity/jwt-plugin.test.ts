/**
 * The jwt plugin on its own (after the token plugin, as in a route): every refusal with its status,
 * code and challenge; the principal; the cache; revocation; key sources; metadata.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { PRINCIPAL, STREAM_DEADLINE, type Plugin, type Verdict } from '../../gateway/contract.ts';
import jwtPlugin, { JwtConfigSchema } from '../../plugins/jwt/index.ts';
import { loadDevSigningKey } from '../../plugins/jwt/dev-keys.ts';
import { revokedKey } from '../../plugins/jwt/revocation.ts';
import tokenPlugin, { TokenConfigSchema } from '../../plugins/token.ts';
import {
  AUDIENCE, ISSUER, hsSignedWithPublicKey, makeKey, sign, tamper, testDeps, testExchange, testRoute, unsignedToken,
  type TestKey,
} from '../fixtures/identity/tokens.ts';

const route = testRoute('http://localhost:3001', '/mcp');
let dir: string;
let rsa: TestKey;
let ed: TestKey;
const plugins: Plugin[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-jwt-'));
  rsa = await makeKey('rsa', 'rsa-1');
  ed = await makeKey('ed25519', 'ed-1');
  await writeFile(path.join(dir, 'rsa.pem'), rsa.publicPem);
});
after(async () => {
  await Promise.all(plugins.map((p) => p.close?.()));
  await rm(dir, { recursive: true, force: true });
});

async function build(options: Record<string, unknown>, deps = testDeps(dir, route)): Promise<Plugin> {
  const p = await jwtPlugin.create(JwtConfigSchema.parse(options), deps);
  plugins.push(p);
  return p;
}

const rsaOptions = (extra: Record<string, unknown> = {}) => ({
  keys: { publicKeyFile: 'rsa.pem' }, algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE, clockTolerance: 0, ...extra,
});

const tokens = await tokenPlugin.create(TokenConfigSchema.parse({ sources: ['header', 'query'] }), testDeps('/tmp', route));

/** Runs token then jwt, as a route does. */
async function run(p: Plugin, token: string) {
  const x = testExchange(route, '/mcp', { authorization: `Bearer ${token}` });
  const v = (await tokens.onRequest!(x)) ?? (await p.onRequest!(x));
  return { x, v: v as Verdict | undefined };
}

async function refused(p: Plugin, token: string, code: string, status = 401) {
  const { v } = await run(p, token);
  assert.ok(v && v.kind === 'respond', `expected ${code}, got acceptance`);
  assert.equal(v.code, code);
  assert.equal(v.status, status);
  const challenge = v.headers!['www-authenticate'];
  assert.match(challenge, /^Bearer /);
  // No authorization server configured: no metadata to point at (the MCP spec requires one in it).
  assert.ok(!challenge.includes('resource_metadata'), challenge);
  assert.match(challenge, /error="[a-z_]+"/);
  assert.match(challenge, /error_description="[^"]+"/);
  return v;
}

describe('jwt plugin: accepting', () => {
  it('sets the principal and the stream deadline from a valid token', async () => {
    const p = await build(rsaOptions({ streamGrace: '10s' }));
    const token = await sign(rsa, { scope: 'tools:read tools:call', jti: 'id-1' });
    const { x, v } = await run(p, token);
    assert.equal(v, undefined);
    const principal = x.get(PRINCIPAL)!;
    assert.equal(principal.tenant, 'acme');
    assert.equal(principal.subject, 'alice');
    assert.equal(principal.issuer, ISSUER);
    assert.deepEqual(principal.scopes, ['tools:read', 'tools:call']);
    assert.equal(principal.tokenId, 'id-1');
    assert.equal(x.get(STREAM_DEADLINE), principal.expiresAt! * 1000 + 10_000);
  });

  it('reads a nested tenant claim and scp arrays', async () => {
    const p = await build(rsaOptions({ tenantClaim: 'org.id' }));
    const { x, v } = await run(p, await sign(rsa, { tenant_id: undefined, org: { id: 'globex' }, scp: ['a', 'b'] }));
    assert.equal(v, undefined);
    assert.equal(x.get(PRINCIPAL)!.tenant, 'globex');
    assert.deepEqual(x.get(PRINCIPAL)!.scopes, ['a', 'b']);
  });

  it('verifies with an HMAC secret, and never offers it to an RSA token', async () => {
    const secret = 's'.repeat(40);
    const p = await build({ keys: { secret }, algorithms: ['HS256', 'RS256'], issuer: ISSUER, audience: AUDIENCE });
    const { v } = await run(p, await sign({ secret: new TextEncoder().encode(secret), alg: 'HS256' }));
    assert.equal(v, undefined);
    await refused(p, await sign(rsa), 'GW_ERR_TOKEN_ALGORITHM');
  });

  it('defaults the audience to the resource (public URL + route path)', async () => {
    const p = await build(rsaOptions({ audience: undefined }));
    assert.equal((await run(p, await sign(rsa, { aud: 'http://localhost:3001/mcp' }))).v, undefined);
    await refused(p, await sign(rsa, { aud: 'http://localhost:3003/mcp' }), 'GW_ERR_TOKEN_AUDIENCE');
  });
});

describe('jwt plugin: refusing', () => {
  let p: Plugin;
  before(async () => { p = await build(rsaOptions({ requiredScopes: ['tools:call'] })); });
  const scoped = { scope: 'tools:call' };

  it('bad signature', async () => { await refused(p, tamper(await sign(rsa, scoped)), 'GW_ERR_TOKEN_SIGNATURE'); });
  it('a key it does not trust', async () => { await refused(p, await sign(ed, scoped, { kid: 'rsa-1' }), 'GW_ERR_TOKEN_ALGORITHM'); });
  it('alg none', async () => {
    const v = await refused(p, unsignedToken(), 'GW_ERR_TOKEN_ALGORITHM');
    assert.match(v.message, /none/);
  });
  it('HS256 signed with the RSA public key, even when HS256 is allowed', async () => {
    await refused(p, hsSignedWithPublicKey(rsa), 'GW_ERR_TOKEN_ALGORITHM');
    const lax = await build(rsaOptions({ algorithms: ['RS256', 'HS256'] }));
    await refused(lax, hsSignedWithPublicKey(rsa), 'GW_ERR_TOKEN_ALGORITHM');
  });
  it('not a JWT', async () => { await refused(p, 'not-a-jwt', 'GW_ERR_TOKEN_MALFORMED'); });
  it('wrong issuer', async () => { await refused(p, await sign(rsa, { ...scoped, iss: 'https://evil.test' }), 'GW_ERR_TOKEN_ISSUER'); });
  it('wrong audience', async () => { await refused(p, await sign(rsa, { ...scoped, aud: 'http://other/mcp' }), 'GW_ERR_TOKEN_AUDIENCE'); });
  it('expired', async () => { await refused(p, await sign(rsa, scoped, { expSeconds: -60 }), 'GW_ERR_TOKEN_EXPIRED'); });
  it('not yet valid', async () => {
    await refused(p, await sign(rsa, { ...scoped, nbf: Math.floor(Date.now() / 1000) + 300 }), 'GW_ERR_TOKEN_NOT_YET_VALID');
  });
  it('no expiry', async () => { await refused(p, await sign(rsa, { ...scoped, exp: undefined }), 'GW_ERR_TOKEN_INVALID'); });
  it('no subject', async () => { await refused(p, await sign(rsa, { ...scoped, sub: undefined }), 'GW_ERR_TOKEN_INVALID'); });
  it('missing tenant claim', async () => { await refused(p, await sign(rsa, { ...scoped, tenant_id: undefined }), 'GW_ERR_TENANT_MISSING'); });
  it('tenant with forbidden characters', async () => {
    for (const tenant of ['acme_b', 'ACME', 'a/b', '../x', 'a'.repeat(65), { id: 'x' }]) {
      await refused(p, await sign(rsa, { ...scoped, tenant_id: tenant }), 'GW_ERR_TENANT_INVALID');
    }
  });
  it('missing scope: 403 with insufficient_scope and the scope needed', async () => {
    const v = await refused(p, await sign(rsa, { scope: 'tools:read' }), 'GW_ERR_INSUFFICIENT_SCOPE', 403);
    assert.match(v.headers!['www-authenticate'], /error="insufficient_scope"/);
    assert.match(v.headers!['www-authenticate'], /scope="tools:call"/);
  });
});

describe('jwt plugin: cache and revocation', () => {
  it('verifies once, serves later requests from the cache, and still honours a revocation', async () => {
    const file = path.join(dir, 'revoked.txt');
    const p = await build(rsaOptions({ revocation: { file: 'revoked.txt', interval: '50ms' } }));
    const token = await sign(rsa, { jti: 'to-revoke' });
    assert.equal((await run(p, token)).v, undefined);
    // A cached verification answers synchronously: no promise.
    const x = testExchange(route, '/mcp', { authorization: `Bearer ${token}` });
    await tokens.onRequest!(x);
    const sync = p.onRequest!(x);
    assert.ok(!(sync instanceof Promise), 'a cache hit is synchronous');
    assert.equal(x.get(PRINCIPAL)!.tokenId, 'to-revoke');

    await appendFile(file, '# comment\nother\nto-revoke  # by test\n');
    const deadline = Date.now() + 5_000;
    let v: Verdict | undefined;
    while (Date.now() < deadline) {
      ({ v } = await run(p, token));
      if (v) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(v && v.kind === 'respond' && v.code === 'GW_ERR_TOKEN_REVOKED', 'revoked without restart');
  });

  it('never serves a cached token past its exp', async () => {
    const p = await build(rsaOptions());
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await sign(rsa, { exp });
    assert.equal((await run(p, token)).v, undefined);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    await refused(p, token, 'GW_ERR_TOKEN_EXPIRED');
  });

  it('honours revocations published through Redis', async (t) => {
    const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      if (process.env.REQUIRE_REDIS === '1') throw err;
      t.skip(`no Redis on 127.0.0.1:6379 (${(err as Error).message})`);
      return;
    }
    const prefix = `mcpgw-test-${process.pid}-${Date.now()}:`;
    try {
      const p = await build(rsaOptions(), { ...testDeps(dir, route), shared: { redis, redisKeyPrefix: prefix } });
      const token = await sign(rsa, { jti: 'redis-revoked' });
      assert.equal((await run(p, token)).v, undefined);
      await redis.sadd(revokedKey(prefix), 'redis-revoked');
      await redis.publish(revokedKey(prefix), 'redis-revoked');
      const deadline = Date.now() + 3_000;
      let v: Verdict | undefined;
      while (Date.now() < deadline && !v) {
        ({ v } = await run(p, token));
        if (!v) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(v && v.kind === 'respond' && v.code === 'GW_ERR_TOKEN_REVOKED');
      await p.close?.();
      // A plugin started later loads the set.
      const later = await build(rsaOptions(), { ...testDeps(dir, route), shared: { redis, redisKeyPrefix: prefix } });
      await refused(later, token, 'GW_ERR_TOKEN_REVOKED');
    } finally {
      await redis.del(revokedKey(prefix));
      redis.disconnect();
    }
  });
});

describe('jwt plugin: key sources', () => {
  it('re-reads a JWKS file when a token names a new kid', async () => {
    const file = path.join(dir, 'jwks.json');
    const k2 = await makeKey('p256', 'ec-2');
    await writeFile(file, JSON.stringify({ keys: [ed.jwk] }));
    const p = await build({ keys: { jwksFile: 'jwks.json' }, algorithms: ['EdDSA', 'ES256'], issuer: ISSUER, audience: AUDIENCE });
    assert.equal((await run(p, await sign(ed))).v, undefined);
    const rotated = await sign(k2);
    await refused(p, rotated, 'GW_ERR_TOKEN_SIGNATURE');
    await writeFile(file, JSON.stringify({ keys: [k2.jwk, ed.jwk] }));
    assert.equal((await run(p, rotated)).v, undefined);
  });

  it('creates the development issuer on first use and serves its public keys', async () => {
    const devDir = path.join(dir, 'dev');
    const p = await build({ keys: { dev: { dir: 'dev' } }, algorithms: ['EdDSA'], issuer: 'mcp-gateway-dev', audience: 'mcp-gateway' });
    assert.equal((await stat(path.join(devDir, 'private.pem'))).mode & 0o777, 0o600);
    const signing = await loadDevSigningKey(devDir);
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: signing.alg, kid: signing.kid })
      .setIssuer('mcp-gateway-dev').setAudience('mcp-gateway').setSubject('bob').setExpirationTime(now + 60).sign(signing.key);
    assert.equal((await run(p, token)).v, undefined);
    const jwks = await p.serves!['/.well-known/jwks.json']({ method: 'GET' } as never);
    assert.equal(jwks.status, 200);
    const keys = (jwks.body as { keys: Array<Record<string, unknown>> }).keys;
    assert.equal(keys[0].kid, signing.kid);
    assert.equal(keys[0].d, undefined, 'no private part');
  });

  it('refuses configurations that could not be safe', async () => {
    const bad = [
      { keys: { publicKeyFile: 'rsa.pem' }, issuer: ISSUER },                                   // no algorithms
      { keys: { publicKeyFile: 'rsa.pem' }, algorithms: ['none'], issuer: ISSUER },             // none
      { keys: {}, algorithms: ['RS256'], issuer: ISSUER },                                      // no key source
      { keys: { publicKeyFile: 'rsa.pem', secret: 'x'.repeat(40) }, algorithms: ['RS256'], issuer: ISSUER },
      { keys: { publicKeyFile: 'rsa.pem' }, algorithms: ['RS256'], issuer: ISSUER, tenantPattern: '[a-z]+' },
      { keys: { publicKeyFile: 'rsa.pem' }, algorithms: ['RS256'], issuer: ISSUER, audiences: ['x'] },
    ];
    for (const options of bad) assert.equal(JwtConfigSchema.safeParse(options).success, false, JSON.stringify(options));
    await assert.rejects(build({ keys: { publicKeyFile: 'rsa.pem' }, algorithms: ['EdDSA'], issuer: ISSUER }), /none of the allowed algorithms/);
    await assert.rejects(build({ keys: { secret: 'short' }, algorithms: ['HS256'], issuer: ISSUER }), /at least 32 bytes/);
  });
});

describe('jwt plugin: protected resource metadata', () => {
  it('serves RFC 9728 metadata at the path-inserted and the bare address, advertising the header only', async () => {
    const p = await build(rsaOptions({ authorizationServers: ['https://issuer.test'], requiredScopes: ['tools:call'] }));
    const paths = Object.keys(p.serves!);
    assert.ok(paths.includes('/.well-known/oauth-protected-resource/mcp'));
    assert.ok(paths.includes('/.well-known/oauth-protected-resource'));
    const res = await p.serves!['/.well-known/oauth-protected-resource/mcp']({ method: 'GET', headers: {} } as never);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      resource: 'http://localhost:3001/mcp',
      authorization_servers: ['https://issuer.test'],
      scopes_supported: ['tools:call'],
      bearer_methods_supported: ['header'],
    });
    assert.equal((await p.serves!['/.well-known/oauth-protected-resource']({ method: 'POST', headers: {} } as never)).status, 405);
    const { v } = await run(p, 'not-a-jwt');
    assert.ok(v && v.kind === 'respond');
    assert.ok(v.headers!['www-authenticate'].includes('resource_metadata="http://localhost:3001/.well-known/oauth-protected-resource/mcp"'));
  });

  it('without authorization servers: no metadata (404 saying how to get a token), challenges say it too', async () => {
    const p = await build(rsaOptions());
    assert.ok(!Object.keys(p.serves!).includes('/.well-known/oauth-protected-resource'), 'the bare address stays free');
    const res = await p.serves!['/.well-known/oauth-protected-resource/mcp']({ method: 'GET', headers: {} } as never);
    assert.equal(res.status, 404);
    assert.match(JSON.stringify(res.body), /identity provider/);
    const v = await refused(p, 'not-a-jwt', 'GW_ERR_TOKEN_MALFORMED');
    assert.match(v.headers!['www-authenticate'], /error_description="[^"]*identity provider that issues for this gateway/);
    assert.match(v.message, /identity provider/);
  });
});

