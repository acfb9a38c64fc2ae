/**
 * Two gateway replicas (two `node gateway/main.ts` processes) with the same gateway.yaml in front of ONE
 * @modelcontextprotocol/server-everything, sharing only what docs/operations.md says they share: Redis
 * (rate-limit budgets, the revocation list), the session key and the token key (HS256 secret).
 *
 * One client's requests move between the replicas the way a load balancer would move them.
 * Needs Redis on 127.0.0.1:6379: skipped with the reason when none answers, unless REQUIRE_REDIS=1.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { freePort, startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { NODE_BIN, sleep, startChildGateway, stopAllChildGateways, type ChildGateway } from './support/child-gateway.ts';
import { gatewayCode, openGetStream, openSession, post, sessionHeaders, type RawAnswer } from './support/raw-mcp.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function redisAnswers(): Promise<boolean> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

const redisUp = await redisAnswers();
if (!redisUp && process.env.REQUIRE_REDIS === '1') throw new Error(`REQUIRE_REDIS=1 but no Redis answers at ${REDIS_URL}`);
const skip = redisUp ? false : `no Redis answers at ${REDIS_URL} (set REQUIRE_REDIS=1 to make this a failure)`;

// One run's keys, so parallel runs never share budgets or revocations; deleted in after().
const keyPrefix = `mcpgw-test-replicas-${randomUUID()}:`;
const jwtSecret = randomBytes(32).toString('hex');
const secretKey = new TextEncoder().encode(jwtSecret);
const ISSUER = 'ops-test-issuer';
const AUDIENCE = 'mcp-gateway';
const CALL_BUDGET = 10;

async function token(tenant: string, sub: string, jti: string = randomUUID()): Promise<string> {
  return new SignJWT({ tenant_id: tenant })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setJti(jti)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(secretKey);
}

function replicaConfig(port: number, upstreamUrl: string, sessionKey: string): string {
  return `
listeners: [{ name: main, port: ${port} }]
upstreams:
  everything: { url: ${upstreamUrl}/mcp }
routes:
  - name: mcp
    listener: main
    path: /mcp
    upstream: everything
    plugins:
      - { type: token }
      - type: jwt
        keys: { secret: "\${JWT_SECRET}" }
        algorithms: [HS256]
        issuer: ${ISSUER}
        audience: ${AUDIENCE}
      - type: rate-limit
        key: tenant
        store: redis
        onStoreError: closed
        limits: [{ name: calls, points: ${CALL_BUDGET}, duration: 60s, match: { method: tools/call } }]
redis: { url: ${REDIS_URL}, keyPrefix: "${keyPrefix}" }
sessions: { key: "${sessionKey}" }
admin: { enabled: false }
log: { level: info, pretty: false }
`;
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const echo = (id: number, message: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });
const resultText = (a: RawAnswer, id: number) => JSON.stringify(a.messages.find((m) => m.id === id)?.result ?? null);

describe('two gateway replicas sharing Redis, the session key and the token key', { skip }, () => {
  let everything: RunningUpstream;
  let a: ChildGateway;
  let b: ChildGateway;
  let urlA: string;
  let urlB: string;
  let configA: string;

  before(async () => {
    everything = await startEverything('streamableHttp');
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-replicas-'));
    const sessionKey = randomBytes(32).toString('base64');
    const [portA, portB] = [await freePort(), await freePort()];
    // Same config but for the port: two hosts behind one load balancer.
    configA = path.join(dir, 'replica-a.yaml');
    const configB = path.join(dir, 'replica-b.yaml');
    await writeFile(configA, replicaConfig(portA, everything.url, sessionKey));
    await writeFile(configB, replicaConfig(portB, everything.url, sessionKey));
    const env = { JWT_SECRET: jwtSecret };
    [a, b] = await Promise.all([startChildGateway(configA, { port: portA, env }), startChildGateway(configB, { port: portB, env })]);
    urlA = `http://127.0.0.1:${portA}/mcp`;
    urlB = `http://127.0.0.1:${portB}/mcp`;
  });

  after(async () => {
    await stopAllChildGateways();
    await everything?.close();
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  });

  test('an SDK client initialized on A keeps its session when its requests land on B, and back', async () => {
    const t = await token('acme', 'alice');
    const transport = new StreamableHTTPClientTransport(new URL(urlA), { requestInit: { headers: bearer(t) } });
    const client = new Client({ name: 'replica-test', version: '1' });
    await client.connect(transport);
    try {
      const first = await client.callTool({ name: 'echo', arguments: { message: 'on A' } });
      assert.deepEqual(first.content, [{ type: 'text', text: 'Echo: on A' }]);
      const sid = transport.sessionId!;
      assert.ok(sid);

      // The load balancer now sends this client to B.
      const onB = await post(urlB, echo(20, 'on B'), sessionHeaders(sid, bearer(t)));
      assert.equal(onB.status, 200);
      assert.match(resultText(onB, 20), /Echo: on B/);
      const listed = await post(urlB, { jsonrpc: '2.0', id: 21, method: 'tools/list' }, sessionHeaders(sid, bearer(t)));
      assert.equal(listed.status, 200);
      assert.match(resultText(listed, 21), /"echo"/);
      const stream = await openGetStream(urlB, sessionHeaders(sid, bearer(t)));
      stream.close();
      // 409 would mean B reached the same upstream session whose GET stream the SDK client holds on A:
      // also proof that B opened the sealed id to the right upstream session.
      assert.ok(stream.status === 200 || stream.status === 409, `GET on B: ${stream.status}`);
      await stream.ended;

      // And back to A, through the SDK client, same session.
      const back = await client.callTool({ name: 'echo', arguments: { message: 'back on A' } });
      assert.deepEqual(back.content, [{ type: 'text', text: 'Echo: back on A' }]);
      assert.equal(transport.sessionId, sid);
    } finally {
      await client.close();
    }
  });

  test(`the rate-limit budget is shared: ${CALL_BUDGET}/min, 6 calls on A + 6 on B → exactly ${CALL_BUDGET} pass`, async () => {
    const t = await token('budget', 'bob');
    const sid = await openSession(urlA, bearer(t));
    const outcomes: Array<{ replica: string; status: number; code?: string; ok: boolean }> = [];
    for (const [replica, url] of [['A', urlA], ['B', urlB]] as const) {
      for (let i = 0; i < 6; i++) {
        const id = 100 + outcomes.length;
        const r = await post(url, echo(id, `${replica}${i}`), sessionHeaders(sid, bearer(t)));
        outcomes.push({ replica, status: r.status, code: gatewayCode(r), ok: r.status === 200 && /Echo:/.test(resultText(r, id)) });
      }
    }
    const passed = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    assert.equal(passed.length, CALL_BUDGET, JSON.stringify(outcomes));
    assert.deepEqual(refused.map((o) => [o.replica, o.status, o.code]), [['B', 429, 'GW_ERR_RATE_LIMITED'], ['B', 429, 'GW_ERR_RATE_LIMITED']]);
    // A's first 6 and B's first 4: B knew what A had spent.
    assert.equal(passed.filter((o) => o.replica === 'B').length, 4);
  });

  test('a revocation written with `npm run token -- revoke` is honoured by both replicas without restart', async () => {
    const jti = randomUUID();
    const t = await token('globex', 'carol', jti);
    const sid = await openSession(urlA, bearer(t));
    // Both replicas have verified (and cached) this token before it is revoked.
    for (const [url, id] of [[urlA, 30], [urlB, 31]] as const) {
      const r = await post(url, { jsonrpc: '2.0', id, method: 'tools/list' }, sessionHeaders(sid, bearer(t)));
      assert.equal(r.status, 200);
    }

    const { stderr } = await promisify(execFile)('npm', ['run', '-s', 'token', '--', 'revoke', jti, '--config', configA], {
      cwd: repoRoot,
      env: { ...process.env, JWT_SECRET: jwtSecret, PATH: `${path.dirname(NODE_BIN)}:${process.env.PATH}` },
      timeout: 20_000,
    });
    assert.match(stderr, new RegExp(`Revoked ${jti} \\(Redis set ${keyPrefix}revoked-jti\\)`));

    for (const [name, url] of [['A', urlA], ['B', urlB]] as const) {
      let last: RawAnswer | undefined;
      const until = Date.now() + 3000;
      do {
        last = await post(url, { jsonrpc: '2.0', id: 32, method: 'tools/list' }, sessionHeaders(sid, bearer(t)));
        if (last.status === 401) break;
        await sleep(50);
      } while (Date.now() < until);
      assert.equal(last.status, 401, `replica ${name} still accepts the revoked token`);
      assert.equal(gatewayCode(last), 'GW_ERR_TOKEN_REVOKED', `replica ${name}`);
    }
    // Another token of the same user is unaffected.
    const fresh = await token('globex', 'carol');
    assert.equal((await post(urlB, { jsonrpc: '2.0', id: 33, method: 'tools/list' }, sessionHeaders(sid, bearer(fresh)))).status, 200);
  });

  test('a session id from A presented on B with another principal\'s token is refused 404 GW_ERR_SESSION_NOT_FOUND', async () => {
    const owner = await token('initech', 'dave');
    const sid = await openSession(urlA, bearer(owner));
    const intruders = [await token('umbrella', 'dave'), await token('initech', 'mallory')];
    for (const intruder of intruders) {
      const r = await post(urlB, { jsonrpc: '2.0', id: 40, method: 'tools/list' }, sessionHeaders(sid, bearer(intruder)));
      assert.equal(r.status, 404);
      assert.equal(gatewayCode(r), 'GW_ERR_SESSION_NOT_FOUND');
      assert.equal(r.messages[0]?.id, 40);
    }
    // The owner still gets through on B.
    assert.equal((await post(urlB, { jsonrpc: '2.0', id: 41, method: 'tools/list' }, sessionHeaders(sid, bearer(owner)))).status, 200);
  });
});
