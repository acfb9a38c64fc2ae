/**
 * `npm run token -- inspect` on a token the gateway's own authorization server issued: it judges it the
 * way the running gateway does, from gateway.yaml alone (signing keys, issuer, the route that trusts the
 * server), so it says which route accepts it; and after the client revokes it at /oauth/revoke, it says
 * revoked, as the gateway does. /oauth/revoke answers only once the revocation is recorded where such
 * another process reads it; and inspect never creates the server's key folder.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import pino from 'pino';
import type { ClientInfo, ClientRegistry } from '../../gateway/oauth/contracts.ts';
import type { Grants } from '../../gateway/oauth/grants.ts';
import { loadSigningKeys } from '../../gateway/oauth/signing.ts';
import { TokenEndpoint } from '../../gateway/oauth/token-endpoint.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { signIn, startAuthGateway } from './as-helpers.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
const TOKEN_CLI = path.resolve(import.meta.dirname, '../../gateway/cli/token.ts');

let tg: TestGateway;
let base: string;
let config: string;

before(async () => {
  tg = await startAuthGateway();
  base = tg.url('main');
  // The gateway under test listens on port 0; the operator's gateway.yaml names its real port, and the
  // issuer and the route's resource identifier are derived from it. Same file with the port filled in.
  const yaml = await readFile(path.join(tg.dir, 'gateway.yaml'), 'utf8');
  config = path.join(tg.dir, 'gateway.cli.yaml');
  await writeFile(config, yaml.replace('port: 0', `port: ${new URL(base).port}`));
});
after(async () => { await tg?.close(); });

async function inspect(token: string, configFile = config): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [TOKEN_CLI, 'inspect', token, '--config', configFile], { cwd: tg.dir });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A token issued the ordinary way: a registered client, alice signs in, the code redeemed. */
async function issue(): Promise<{ accessToken: string; clientId: string }> {
  const reg = await fetch(`${base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'cli test', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
  });
  const { client_id: clientId } = (await reg.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL('/oauth/authorize', base);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, resource: `${base}/mcp`, scope: 'mcp:tools', state: 's',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  })) url.searchParams.set(k, v);
  const code = (await signIn(url)).searchParams.get('code')!;
  const res = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: `${base}/mcp` }),
  });
  assert.equal(res.status, 200);
  return { accessToken: ((await res.json()) as { access_token: string }).access_token, clientId };
}

describe('token inspect of a token from the gateway\'s authorization server', () => {
  it('says which route accepts it, and that it is revoked once its client revokes it', async () => {
    const { accessToken, clientId } = await issue();
    const before = await inspect(accessToken);
    assert.equal(before.code, 0, before.out);
    assert.match(before.out, new RegExp(`ACCEPTED by ${base.replace(/[.]/g, '\\.')}/mcp \\(route main/mcp\\): tenant acme, subject alice, scopes \\[mcp:tools\\]`));

    const revoked = await fetch(`${base}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: accessToken, client_id: clientId }),
    });
    assert.equal(revoked.status, 200);
    const after = await inspect(accessToken);
    assert.equal(after.code, 1, after.out);
    assert.match(after.out, /REFUSED by .*\/mcp \(route main\/mcp\): GW_ERR_TOKEN_REVOKED/);
    assert.doesNotMatch(after.out, /ACCEPTED/);
  });

  it('does not create the key folder of a gateway that has not made its keys yet', async () => {
    const { accessToken } = await issue();
    const yaml = await readFile(config, 'utf8');
    const fresh = path.join(tg.dir, 'gateway.fresh.yaml');
    await writeFile(fresh, yaml.replace('authorization:\n', 'authorization:\n  signingKeys: { dir: keys-not-made-yet }\n'));
    const result = await inspect(accessToken, fresh);
    assert.equal(result.code, 1, result.out);
    assert.match(result.out, /keys-not-made-yet has no jwks\.json/);
    assert.equal(existsSync(path.join(tg.dir, 'keys-not-made-yet')), false, 'inspect invented no keys');
  });
});

describe('/oauth/revoke of an access token', () => {
  it('answers only after the revocation is recorded for other processes', async () => {
    const keys = await loadSigningKeys({ alg: 'EdDSA' }, await mkdtemp(path.join(tmpdir(), 'mcpgw-revoke-')));
    const { key, kid, alg } = keys.current();
    const token = await new SignJWT({ client_id: 'app' }).setProtectedHeader({ alg, kid })
      .setIssuer('https://as.test').setJti('jti-1').setExpirationTime('1h').sign(key);
    // Recording takes a while (Redis, a file): the answer must wait for it, not race it.
    let recorded = false;
    const endpoint = new TokenEndpoint({
      clients: { resolve: async () => ({ clientId: 'app', tokenEndpointAuthMethod: 'none' }) as ClientInfo } as unknown as ClientRegistry,
      grants: { revokeRefreshToken: async () => false } as unknown as Grants,
      keys, issuers: ['https://as.test'], registration: false, log: pino({ level: 'silent' }),
      revokeAccessToken: (jti) => new Promise((resolve) => setTimeout(() => { recorded = jti === 'jti-1'; resolve(); }, 50)),
    });
    let recordedWhenAnswered: boolean | undefined;
    const server = http.createServer((req, res) => {
      res.on('finish', () => { recordedWhenAnswered = recorded; });
      void endpoint.revoke(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/revoke`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, client_id: 'app' }),
      });
      assert.equal(res.status, 200);
      assert.equal(recordedWhenAnswered, true);
    } finally {
      server.close();
    }
  });
});
