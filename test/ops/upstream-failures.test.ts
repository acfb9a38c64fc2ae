/**
 * Upstream failures an operator must see: an upstream refusing the gateway's own credential (what the
 * client gets, what /readyz says, what the log says, and when a 401/403 is the client's business and
 * passes through), and an upstream that is down when the gateway starts.
 *
 * The keyed upstream behaves like the FalkorDB MCP server with `MCP_API_KEY`: every request without
 * `Authorization: Bearer <key>` gets 401 `{"error":"Unauthorized"}` (no challenge), OPTIONS with the key
 * gets 405. server-everything answers OPTIONS with 204 whatever it is sent (test/ops/health.test.ts).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { describeNetError } from '../../gateway/net-error.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/upstreams.ts';

const KEY = 'right-key';

/** Answers by path: /keyed (needs KEY), /challenge (401 with a challenge), /forbidden (403 to all). */
function upstreamHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => { body += c; });
  req.on('end', () => {
    const path = req.url ?? '/';
    if (path.startsWith('/challenge')) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="upstream-users"' });
      return void res.end('{"error":"sign in to the upstream"}');
    }
    if (path.startsWith('/forbidden')) {
      res.writeHead(403, { 'content-type': 'application/json' });
      return void res.end('{"error":"Forbidden"}');
    }
    if (req.headers.authorization !== `Bearer ${KEY}`) {
      res.writeHead(401, { 'content-type': 'application/json' });
      return void res.end('{"error":"Unauthorized"}');
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { 'content-type': 'application/json' });
      return void res.end('{"error":"Method Not Allowed"}');
    }
    const id = (JSON.parse(body) as { id?: unknown }).id ?? null;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
  });
}

let upstream: http.Server;
let origin: string;
let tg: TestGateway;

before(async () => {
  upstream = http.createServer(upstreamHandler);
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  tg = await startTestGateway(`
listeners:
  - { name: main, port: 0 }
upstreams:
  right: { url: "${origin}/keyed", era: "2025", headers: { Authorization: "Bearer ${KEY}" } }
  wrong: { url: "${origin}/keyed", era: "2025", headers: { Authorization: "Bearer not-the-key" } }
  keyless: { url: "${origin}/keyed", era: "2025" }
  challenge: { url: "${origin}/challenge", era: "2025" }
  forbidden: { url: "${origin}/forbidden", era: "2025", headers: { X-Api-Key: "whatever" } }
  forbidden-user: { url: "${origin}/forbidden", era: "2025", headers: { X-Api-Key: "whatever" }, identity: { secret: "${'s'.repeat(32)}" } }
routes:
  - { listener: main, path: /right, upstream: right }
  - { listener: main, path: /wrong, upstream: wrong }
  - { listener: main, path: /keyless, upstream: keyless }
  - { listener: main, path: /challenge, upstream: challenge }
  - { listener: main, path: /forbidden, upstream: forbidden }
  - { listener: main, path: /forbidden-user, upstream: forbidden-user }
`);
});

after(async () => {
  await tg?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

async function post(path: string, id: unknown = 1) {
  const res = await fetch(`${tg.url('main')}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) as { id?: unknown; error?: { message: string; data?: { code?: string } } } };
}

async function readiness() {
  const res = await fetch(`${tg.adminUrl()}/readyz`);
  const body = (await res.json()) as { checks: Array<{ name: string; ok: boolean; reason?: string; detail?: string }> };
  return { status: res.status, check: (name: string) => body.checks.find((c) => c.name === `upstream:${name}`)! };
}

describe('an upstream refusing the gateway', () => {
  it('works with the right key (the setup is sound)', async () => {
    const r = await post('/right', 1);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, 1);
  });

  it('a wrong key: 502 GW_ERR_UPSTREAM_AUTH with the request id, not the upstream\'s 401', async () => {
    const r = await post('/wrong', 'req-9');
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.id, 'req-9');
    assert.equal(r.json.error?.data?.code, 'GW_ERR_UPSTREAM_AUTH');
    assert.match(r.json.error!.message, /"wrong" refused the gateway's credential \(HTTP 401\)/);
    assert.equal(r.headers.get('www-authenticate'), null, 'no challenge: the client has nothing to answer');
    assert.ok(!r.text.includes('not-the-key'));
  });

  it('no key configured for an upstream that wants one (401 without a challenge): 502 GW_ERR_UPSTREAM_AUTH', async () => {
    const r = await post('/keyless', 2);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.data?.code, 'GW_ERR_UPSTREAM_AUTH');
    assert.match(r.json.error!.message, /"keyless" requires a credential/);
  });

  it('a 403 to the gateway\'s key is the gateway\'s; with signed identity it may be the user\'s and passes', async () => {
    const gw = await post('/forbidden', 3);
    assert.equal(gw.status, 502, gw.text);
    assert.equal(gw.json.error?.data?.code, 'GW_ERR_UPSTREAM_AUTH');
    const user = await post('/forbidden-user', 4);
    assert.equal(user.status, 403);
    assert.equal(user.text, '{"error":"Forbidden"}');
  });

  it('a 401 with a challenge from an upstream the gateway sends nothing to passes through unchanged', async () => {
    const r = await post('/challenge', 5);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="upstream-users"');
    assert.equal(r.text, '{"error":"sign in to the upstream"}');
  });

  it('logs which upstream refused the gateway, once for a burst of requests, never the key', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await post('/wrong', 100 + i)).status, 502);
    const lines = tg.logs().filter((l) => l.upstream === 'wrong' && /refused the gateway's credential/.test(String(l.msg)));
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0].level, 40, 'warn');
    assert.match(String(lines[0].msg), /check upstreams\.wrong\.headers/);
    assert.ok(!tg.logText().includes('not-the-key'));
  });

  it('/readyz: not ready, naming the upstream whose credential was refused; keyless and right as they are', async () => {
    const r = await readiness();
    assert.equal(r.status, 503);
    assert.equal(r.check('right').ok, true, r.check('right').reason);
    assert.match(r.check('right').detail!, /answered HTTP 405/);
    assert.equal(r.check('wrong').ok, false);
    assert.match(r.check('wrong').reason!, /"wrong" refused the gateway's credential \(HTTP 401\).*upstreams\.wrong\.headers/);
    assert.ok(!r.check('wrong').reason!.includes('not-the-key'));
    assert.equal(r.check('keyless').ok, false);
    assert.match(r.check('keyless').reason!, /requires a credential .* sends none/);
    assert.equal(r.check('challenge').ok, true, 'a challenge for the end user is not the gateway\'s failure');
    assert.equal(r.check('forbidden').ok, false);
    assert.equal(r.check('forbidden-user').ok, true, 'a probe cannot carry signed identity: its 403 proves nothing');
  });
});

describe('an upstream down at start', () => {
  it('gets one warning with the cause, after the start; requests log the error code and message', async () => {
    const port = await freePort();
    const gw = await startTestGateway(`
listeners:
  - { name: main, port: 0 }
upstreams:
  falkordb: { url: "http://user:secret@127.0.0.1:${port}/mcp?key=k3y", era: "2025" }
routes:
  - { listener: main, path: /mcp, upstream: falkordb }
`);
    try {
      // startTestGateway resolved: the check did not hold the start up. Its line comes when it is done.
      const warning = () => gw.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('upstream "falkordb" is not reachable'));
      for (const giveUp = Date.now() + 20_000; warning().length === 0 && Date.now() < giveUp;) await new Promise((r) => setTimeout(r, 50));
      assert.equal(warning().length, 1, gw.logText());
      assert.equal(warning()[0].msg,
        `upstream "falkordb" is not reachable at http://127.0.0.1:${port}/mcp: ECONNREFUSED; requests to it will fail with 502 until it answers`);
      assert.ok(!gw.logText().includes('secret') && !gw.logText().includes('k3y'), 'no credential from the URL in the log');

      const res = await fetch(`${gw.url('main')}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
      assert.equal(res.status, 502);
      await res.body?.cancel();
      const line = gw.logs().find((l) => l.msg === 'upstream unreachable') as { error?: { code?: string; message?: string } } | undefined;
      assert.equal(line?.error?.code, 'ECONNREFUSED', gw.logText());
      assert.match(line!.error!.message!, /ECONNREFUSED/);
    } finally {
      await gw.close();
    }
  });

  it('describes the AggregateError of a dual-stack connection (empty message) by its causes', async () => {
    const port = await freePort();
    // Both loopback addresses for one name, as `localhost` resolves on most systems.
    const lookup = ((_h: string, _o: unknown, cb: (e: null, a: Array<{ address: string; family: number }>) => void) =>
      cb(null, [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }])) as never;
    const err = await new Promise<Error>((resolve) => {
      // (autoSelectFamily is a net.connect option http.request passes on; its typings omit it.)
      const req = http.request({ host: 'dual.test', port, lookup, agent: false, ...{ autoSelectFamily: true } });
      req.on('error', resolve);
      req.end();
    });
    const described = describeNetError(err);
    assert.equal(described.code, 'ECONNREFUSED');
    assert.match(described.message, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
  });
});
