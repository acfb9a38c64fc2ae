/**
 * `npm run token -- …` as a user runs it: keygen, create → inspect → accepted, revoke → refused,
 * rotation keeps earlier tokens valid.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import { Redis } from 'ioredis';
import { freePort } from '../helpers/upstreams.ts';

const CLI = fileURLToPath(new URL('../../gateway/cli/token.ts', import.meta.url));

const GATEWAY_YAML = `
listeners:
  - { name: header, port: 0, publicUrl: "http://localhost:3001" }
upstreams:
  everything: { url: "http://127.0.0.1:9/mcp" }
routes:
  - listener: header
    path: /mcp
    upstream: everything
    plugins:
      - { type: token, sources: [header] }
      - type: jwt
        keys: { dev: { dir: keys } }
        algorithms: [EdDSA, ES256]
        issuer: mcp-gateway-dev
        audience: mcp-gateway
`;

let dir: string;

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // REDIS_URL etc. are not passed: the config here has no redis, so revocations go to the file.
    execFile(process.execPath, [CLI, ...args], { cwd: dir, env: { PATH: process.env.PATH } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-cli-'));
  await writeFile(path.join(dir, 'gateway.yaml'), GATEWAY_YAML);
});
after(async () => { await rm(dir, { recursive: true, force: true }); });

describe('token CLI', () => {
  it('keygen writes a private key with mode 0600 and a public JWKS beside it (folder from gateway.yaml)', async () => {
    const r = await cli('keygen');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(path.join(dir, 'keys', 'private.pem'))).mode & 0o777, 0o600);
    const jwks = JSON.parse(await readFile(path.join(dir, 'keys', 'jwks.json'), 'utf8'));
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0].alg, 'EdDSA');
    assert.equal(jwks.keys[0].d, undefined);
    assert.equal((await cli('keygen', '--alg', 'RS256')).code, 2);
  });

  it('create prints only a signed JWT, which inspect says the configured gateway accepts', async () => {
    const r = await cli('create', '--tenant', 'acme', '--sub', 'alice', '--scope', 'tools:read', '--scope', 'tools:call', '--ttl', '2h');
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = decodeJwt(token);
    assert.equal(claims.tenant_id, 'acme');
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.iss, 'mcp-gateway-dev');
    assert.equal(claims.aud, 'mcp-gateway');
    assert.equal(claims.scope, 'tools:read tools:call');
    assert.equal(typeof claims.jti, 'string');
    assert.equal(claims.exp! - claims.iat!, 7200);
    const i = await cli('inspect', token);
    assert.equal(i.code, 0, i.stdout + i.stderr);
    assert.match(i.stdout, /"tenant_id": "acme"/);
    assert.match(i.stdout, /expires: .*in 120 min/);
    assert.match(i.stdout, /ACCEPTED by http:\/\/localhost:3001\/mcp .*tenant acme, subject alice/);
  });

  it('inspect explains a refusal', async () => {
    const token = (await cli('create', '--tenant', 'acme', '--sub', 'alice', '--aud', 'somewhere-else')).stdout.trim();
    const i = await cli('inspect', token, '--config', 'gateway.yaml');
    assert.equal(i.code, 1);
    assert.match(i.stdout, /REFUSED by .*GW_ERR_TOKEN_AUDIENCE/);
    assert.equal((await cli('inspect', 'garbage')).code, 1);
  });

  it('refuses a tenant the gateway would refuse', async () => {
    const r = await cli('create', '--tenant', 'Acme_Corp', '--sub', 'alice');
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--tenant must match/);
  });

  it('revoke makes inspect refuse the token', async () => {
    const token = (await cli('create', '--tenant', 'acme', '--sub', 'bob')).stdout.trim();
    const { jti } = decodeJwt(token);
    const r = await cli('revoke', jti!);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await readFile(path.join(dir, 'keys', 'revoked.txt'), 'utf8'), new RegExp(`^${jti}\\b`, 'm'));
    const i = await cli('inspect', token);
    assert.equal(i.code, 1);
    assert.match(i.stdout, /REFUSED by .*GW_ERR_TOKEN_REVOKED/);
  });

  it('a rotation (keygen again) keeps earlier tokens valid and signs new ones with the new key', async () => {
    const before = (await cli('create', '--tenant', 'acme', '--sub', 'carol')).stdout.trim();
    assert.equal((await cli('keygen', '--alg', 'ES256')).code, 0);
    const afterToken = (await cli('create', '--tenant', 'acme', '--sub', 'carol')).stdout.trim();
    const jwks = JSON.parse(await readFile(path.join(dir, 'keys', 'jwks.json'), 'utf8'));
    assert.equal(jwks.keys.length, 2);
    assert.equal(JSON.parse(Buffer.from(afterToken.split('.')[0], 'base64url').toString()).alg, 'ES256');
    assert.equal((await cli('inspect', before)).code, 0);
    assert.equal((await cli('inspect', afterToken)).code, 0);
  });

  it('revoke writes to Redis when the config has redis.url, and inspect then refuses the token', async (t) => {
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
    const prefix = `mcpgw-test-cli-${process.pid}-${Date.now()}:`;
    await writeFile(path.join(dir, 'redis.yaml'), `${GATEWAY_YAML}\nredis: { url: "redis://127.0.0.1:6379", keyPrefix: "${prefix}" }\n`);
    try {
      const token = (await cli('create', '--tenant', 'acme', '--sub', 'dave', '--config', 'redis.yaml')).stdout.trim();
      assert.equal((await cli('inspect', token, '--config', 'redis.yaml')).code, 0);
      const { jti } = decodeJwt(token);
      const r = await cli('revoke', jti!, '--config', 'redis.yaml');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await redis.sismember(`${prefix}revoked-jti`, jti!), 1);
      const i = await cli('inspect', token, '--config', 'redis.yaml');
      assert.equal(i.code, 1);
      assert.match(i.stdout, /GW_ERR_TOKEN_REVOKED/);
    } finally {
      await redis.del(`${prefix}revoked-jti`);
      redis.disconnect();
    }
  });

  it('revoke and inspect fail with a clear error, and exit, when the configured Redis is down', async () => {
    const port = await freePort(); // nothing listens there
    await writeFile(path.join(dir, 'redis-down.yaml'), `${GATEWAY_YAML}\nredis: { url: "redis://:s3cret-pw@127.0.0.1:${port}/0" }\n`);
    const token = (await cli('create', '--tenant', 'acme', '--sub', 'erin', '--config', 'redis-down.yaml')).stdout.trim();
    for (const args of [['revoke', 'some-jti'], ['inspect', token]]) {
      // The child is killed only if it hangs (the bug); a generous bound, not a timing assertion.
      const r = await new Promise<{ code: number; killed: boolean; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI, ...args, '--config', 'redis-down.yaml'], { cwd: dir, env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, _out, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, killed: err?.killed === true, stderr });
        });
      });
      assert.equal(r.killed, false, `${args[0]} hung with Redis down`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`token ${args[0]}: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/0 \\(ECONNREFUSED\\)\\. Start Redis, or fix redis\\.url in `));
      assert.ok(!r.stderr.includes('s3cret-pw'), 'the password is not shown');
    }
    assert.ok(!(await readFile(path.join(dir, 'keys', 'revoked.txt'), 'utf8').catch(() => '')).includes('some-jti'), 'nothing revoked elsewhere');
  });
});
