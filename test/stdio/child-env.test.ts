/**
 * The environment a stdio child gets: the gateway's own minus credentials, which a child receives only
 * when the upstream's `env:` lists them. A fake server prints the environment it actually got.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isCredentialEnv } from '../../gateway/stdio/command.ts';
import { upstreamFor, captureLog, connect, textOf } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');

/** Set in the gateway's (this test process's) environment for the duration of the file. */
const GATEWAY_ENV: Record<string, string> = {
  // Connection strings by name, with or without credentials in them.
  REDIS_URL: 'redis://:r3dis-pass@127.0.0.1:6379/0',
  DATABASE_URL: 'postgres://db.internal:5432/app',
  MCPGW_T_ANALYTICS_DATABASE_URL: 'postgres://db.internal:5432/analytics',
  // Any name: a URL with userinfo, alone or in a list, or with a credential in its query.
  MCPGW_T_UPSTREAM: 'https://svc:s3cret@api.example.com/v1',
  MCPGW_T_TOKEN_IN_USER: 'https://ghp_abc123@github.com/org/repo.git',
  MCPGW_T_NODES: 'http://a.internal:9200/,https://elastic:changeme@b.internal:9200/',
  MCPGW_T_QUERY: 'https://api.example.com/feed?format=json&api_key=abc123',
  // Kept: no credential in them.
  MCPGW_T_PLAIN_URL: 'https://example.com/users/a@b.c?page=2',
  MCPGW_T_PLAIN: 'hello',
};

describe('stdio child environment', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-env-'));
    Object.assign(process.env, GATEWAY_ENV);
  });
  after(async () => {
    for (const k of Object.keys(GATEWAY_ENV)) delete process.env[k];
    await rm(dir, { recursive: true, force: true });
  });

  async function childEnv(stdio: Record<string, unknown>, log = captureLog().log): Promise<Record<string, string>> {
    const upstream = upstreamFor({ command: 'node', args: [FAKE], ...stdio }, { configDir: dir, log });
    try {
      const s = await connect(upstream, 'env');
      const env = JSON.parse(textOf(await s.client.callTool({ name: 'env', arguments: {} })));
      await s.client.close();
      return env;
    } finally {
      await upstream.close();
    }
  }

  test('connection strings and URLs carrying credentials are not inherited; the rest is', async () => {
    const cap = captureLog();
    const env = await childEnv({}, cap.log);
    for (const name of ['REDIS_URL', 'DATABASE_URL', 'MCPGW_T_ANALYTICS_DATABASE_URL', 'MCPGW_T_UPSTREAM', 'MCPGW_T_TOKEN_IN_USER', 'MCPGW_T_NODES', 'MCPGW_T_QUERY']) {
      assert.equal(env[name], undefined, `${name} must not reach the child`);
    }
    assert.equal(env.MCPGW_T_PLAIN_URL, GATEWAY_ENV.MCPGW_T_PLAIN_URL);
    assert.equal(env.MCPGW_T_PLAIN, 'hello');
    assert.ok(env.PATH, 'the child still gets a PATH');
    // The operator learns which names were withheld (never their values).
    const note = cap.lines().find((l) => Array.isArray(l.withheldEnv));
    assert.ok(note, 'the withheld names are logged');
    assert.ok((note.withheldEnv as string[]).includes('REDIS_URL'));
    assert.ok(!JSON.stringify(cap.lines()).includes('r3dis-pass'), 'no value is logged');
  });

  test('a variable the upstream lists in env: reaches the child', async () => {
    // What `env: { REDIS_URL: ${REDIS_URL} }` in gateway.yaml becomes after interpolation.
    const env = await childEnv({ env: { REDIS_URL: GATEWAY_ENV.REDIS_URL, UPSTREAM: GATEWAY_ENV.MCPGW_T_UPSTREAM } });
    assert.equal(env.REDIS_URL, GATEWAY_ENV.REDIS_URL);
    assert.equal(env.UPSTREAM, GATEWAY_ENV.MCPGW_T_UPSTREAM);
    assert.equal(env.DATABASE_URL, undefined);
  });

  test('the rule, by name and by value', () => {
    const withheld: Array<[string, string]> = [
      ['ANY', 'https://h/?password=x'],
      ['ANY', 'https://h/?a=1&api_key=x'],
      ['ANY', 'https://bucket.s3/obj?a=1;X-Amz-Signature=x'],
      ['ANY', 'postgres://u:p@h/db'],
      ['ANY', 'a,https://u:p@b'],
      ['REDIS_URL', 'redis://localhost'],
      ['SENTRY_DSN', 'x'],
      ['GITHUB_TOKEN', 'x'],
    ];
    const kept: Array<[string, string]> = [
      ['PGHOST', 'localhost'],
      ['ANY', 'https://example.com/a@b?page=2'],
      ['ANY', 'git@github.com:org/repo'],
      ['ANY', 'mailto:a@b.c'],
      ['NODE_OPTIONS', '--max-old-space-size=4096'],
    ];
    for (const [k, v] of withheld) assert.equal(isCredentialEnv(k, v), true, `${k}=${v} is withheld`);
    for (const [k, v] of kept) assert.equal(isCredentialEnv(k, v), false, `${k}=${v} is kept`);
  });
});
