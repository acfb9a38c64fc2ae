/**
 * The docker-compose stack, tested without Docker: the compose file and the Dockerfile are parsed and
 * checked against each other, against the gateway config they mount and against docs/operations.md;
 * the mounted config passes `--check` with the environment compose gives it; the healthcheck commands
 * run against real servers; and the gateway runs the mounted config end to end against the real
 * FalkorDB MCP server (with its API key) and the local Redis.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { pino } from 'pino';
import { startAdminServer } from '../../gateway/admin.ts';
import { GatewayMetrics } from '../../gateway/metrics.ts';
import { generateDevKeys, loadDevSigningKey } from '../../plugins/jwt/dev-keys.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { freePort, startFalkorMcp, type RunningUpstream } from '../helpers/upstreams.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

interface ComposeService {
  image?: string;
  build?: { context: string; target: string };
  ports?: string[];
  expose?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  networks?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
  command?: string[];
}
const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, ComposeService>;
  networks: Record<string, { internal?: boolean }>;
  volumes: Record<string, unknown>;
};
const gatewayYamlText = read('config/compose/gateway.yaml');
const gatewayYaml = parse(gatewayYamlText);
const docs = read('docs/operations.md');

/** Compose's own interpolation: `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`. */
function composeInterpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}/g, (m, name: string, op: string, arg: string) => {
    if (m === '$$') return '$';
    const v = env[name];
    if (v) return v;
    if (op === ':-') return arg;
    if (op === ':?') throw new Error(`compose would refuse to start: ${name}: ${arg}`);
    return '';
  });
}

/** Variables compose requires (`${VAR:?…}`) anywhere in the file. */
const requiredComposeVars = [...new Set([...read('docker-compose.yml').matchAll(/\$\{([A-Z_][A-Z0-9_]*):\?/g)].map((m) => m[1]))].sort();

/** The `.env` example in docs/operations.md (the first ```dotenv block). */
function docsDotenv(): Record<string, string> {
  const block = /```dotenv\n([\s\S]*?)```/.exec(docs);
  assert.ok(block, 'docs/operations.md has a ```dotenv block with the .env to write');
  const out: Record<string, string> = {};
  for (const line of block[1].split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** A .env as an operator would write it (random values for what the docs generate with openssl). */
const dotenv: Record<string, string> = {
  FALKORDB_PASSWORD: randomBytes(24).toString('hex'),
  FALKORDB_MCP_API_KEY: randomBytes(24).toString('hex'),
  REDIS_PASSWORD: randomBytes(24).toString('hex'),
  GATEWAY_SESSION_KEY: randomBytes(32).toString('base64'),
  GATEWAY_ADMIN_TOKEN: randomBytes(24).toString('hex'),
};

/** The gateway container's environment, as compose would compute it from `dotenv`. */
function gatewayEnv(env: Record<string, string> = dotenv): Record<string, string> {
  return Object.fromEntries(Object.entries(compose.services.gateway.environment ?? {}).map(([k, v]) => [k, composeInterpolate(String(v), env)]));
}

/** Dockerfile instructions by stage: continuation lines joined, comments dropped. */
function dockerfileStages(): Map<string, Array<{ op: string; args: string }>> {
  const lines = read('Dockerfile').split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const stages = new Map<string, Array<{ op: string; args: string }>>();
  let current: Array<{ op: string; args: string }> = [];
  stages.set('(preamble)', current);
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'FROM') {
      const name = /\bAS\s+(\S+)/i.exec(m[2])?.[1] ?? `(stage ${stages.size})`;
      current = [{ op: 'FROM', args: m[2] }];
      stages.set(name, current);
    } else {
      current.push({ op: m[1], args: m[2].trim() });
    }
  }
  return stages;
}

describe('docker-compose.yml', () => {
  const s = compose.services;

  it('has the four services of the stack', () => {
    assert.deepEqual(Object.keys(s).sort(), ['falkordb', 'falkordb-mcp', 'gateway', 'redis']);
  });

  it('keeps FalkorDB, its MCP server and Redis on the internal network only, unpublished', () => {
    assert.equal(compose.networks.internal.internal, true);
    for (const name of ['falkordb', 'falkordb-mcp', 'redis']) {
      assert.deepEqual(s[name].networks, ['internal'], name);
      assert.equal(s[name].ports, undefined, `${name} must not publish ports`);
    }
  });

  it('runs FalkorDB from falkordb/falkordb with a persistent volume', () => {
    assert.match(s.falkordb.image!, /^falkordb\/falkordb(:|$)/);
    const vol = s.falkordb.volumes!.find((v) => v.endsWith(':/var/lib/falkordb/data'));
    assert.ok(vol, 'the data folder is a volume');
    assert.ok(vol.split(':')[0] in compose.volumes, 'a named volume, declared at the top level');
    assert.match(s.falkordb.environment!.REDIS_ARGS, /--requirepass \$\{FALKORDB_PASSWORD/);
  });

  it('runs @falkordb/mcpserver on Streamable HTTP with MCP_API_KEY, where the gateway config points', () => {
    const mcp = s['falkordb-mcp'];
    assert.equal(mcp.build!.target, 'falkordb-mcp');
    assert.ok(dockerfileStages().has('falkordb-mcp'), 'the Dockerfile has that stage');
    const env = mcp.environment!;
    assert.equal(env.MCP_TRANSPORT, 'http');
    assert.match(env.MCP_API_KEY, /^\$\{FALKORDB_MCP_API_KEY:\?/);
    assert.equal(env.FALKORDB_HOST, 'falkordb');
    assert.equal(env.NODE_ENV, 'production');
    const upstream = new URL(gatewayYaml.upstreams.falkordb.url);
    assert.equal(upstream.hostname, 'falkordb-mcp');
    assert.equal(upstream.port, env.MCP_PORT);
    assert.deepEqual(mcp.expose, [env.MCP_PORT]);
    // The same key on both sides: the gateway injects what the server requires.
    assert.equal(gatewayYaml.upstreams.falkordb.headers.Authorization, 'Bearer ${FALKORDB_MCP_API_KEY}');
    assert.match(s.gateway.environment!.FALKORDB_MCP_API_KEY, /^\$\{FALKORDB_MCP_API_KEY:\?/);
  });

  it('gives the gateway Redis, and publishes exactly the configured listener ports plus the admin port, all on loopback (plain HTTP)', () => {
    const gw = s.gateway;
    assert.equal(gw.build!.target, 'runtime');
    const listenerPorts = gatewayYaml.listeners.map((l: { port: number }) => String(l.port)).sort();
    assert.deepEqual(listenerPorts, ['3001', '3003']);
    const published = gw.ports!.map((p) => p.split(':'));
    // A plain-HTTP listener is published on loopback only: bearer tokens must not cross a network in
    // clear. Only a listener with `tls:` may be published on every interface; the admin port never is.
    const tlsPorts = gatewayYaml.listeners.filter((l: { tls?: unknown }) => l.tls !== undefined).map((l: { port: number }) => String(l.port));
    for (const p of published) {
      const [address, host, container] = p.length === 3 ? p : ['0.0.0.0', ...p];
      assert.equal(host, container);
      if (!tlsPorts.includes(container)) assert.equal(address, '127.0.0.1', `port ${container} serves plain HTTP: publish it on 127.0.0.1`);
    }
    assert.deepEqual(published.map((p) => p.at(-1)).sort(), [...listenerPorts, '9090'].sort());
    assert.deepEqual(published.find((p) => p.at(-1) === '9090'), ['127.0.0.1', '9090', '9090']);
    assert.match(docs, /^## TLS$/m, 'docs/operations.md has the TLS section the compose file points to');
    assert.equal(gatewayYaml.admin.port, '${GATEWAY_ADMIN_PORT:-9090}');
    assert.deepEqual(gw.networks!.sort(), ['edge', 'internal']);
    assert.equal(gw.depends_on!.redis.condition, 'service_healthy');
    assert.equal(gw.depends_on!['falkordb-mcp'].condition, 'service_healthy');
    assert.match(gw.environment!.REDIS_URL, /^redis:\/\/:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379\//);
    assert.deepEqual(s.redis.command!.slice(0, 3), ['redis-server', '--appendonly', 'yes']);
  });

  it('mounts the config folder where the image looks for gateway.yaml, read-only', () => {
    const mount = s.gateway.volumes!.find((v) => v.startsWith('./config/compose:'));
    assert.equal(mount, './config/compose:/etc/mcp-gateway:ro');
    const runtime = dockerfileStages().get('runtime')!;
    const cmd = JSON.parse(runtime.find((i) => i.op === 'CMD')!.args) as string[];
    assert.deepEqual(cmd, ['--config', '/etc/mcp-gateway/gateway.yaml']);
    assert.ok(existsSync(path.join(ROOT, 'config/compose/gateway.yaml')));
    // The development keys live on a volume the non-root user owns.
    assert.ok(s.gateway.volumes!.includes('gateway-keys:/var/lib/mcp-gateway'));
    assert.ok(runtime.some((i) => i.op === 'RUN' && i.args.includes('chown node:node /var/lib/mcp-gateway')));
    const jwt = gatewayYaml.routes[0].plugins.find((p: { type: string }) => p.type === 'jwt');
    assert.equal(jwt.keys.dev.dir, '${GATEWAY_KEYS_DIR:-/var/lib/mcp-gateway/keys}');
  });

  it('gives the gateway container every variable its config needs (or the config has a default)', () => {
    const provided = new Set(Object.keys(s.gateway.environment!));
    for (const m of gatewayYamlText.matchAll(/\$\{([A-Z_][A-Z0-9_]*)(:-[^}]*)?\}/g)) {
      assert.ok(provided.has(m[1]) || m[2] !== undefined, `gateway.yaml uses \${${m[1]}} but compose does not set it and it has no default`);
    }
  });

  it('stops the gateway more slowly than its own drain deadline', () => {
    const grace = Number(/^(\d+)s$/.exec(s.gateway.stop_grace_period!)![1]);
    const drain = Number(/^(\d+)s$/.exec(gatewayYaml.shutdownGrace)![1]);
    assert.ok(grace > drain, `stop_grace_period ${grace}s must exceed shutdownGrace ${drain}s`);
  });

  it('agrees with docs/operations.md: the .env it shows defines every required variable, nothing else', () => {
    const shown = docsDotenv();
    assert.deepEqual(Object.keys(shown).filter((k) => requiredComposeVars.includes(k)).sort(), requiredComposeVars);
    const optional = new Set([...read('docker-compose.yml').matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));
    for (const k of Object.keys(shown)) assert.ok(optional.has(k), `docs/operations.md sets ${k}, which docker-compose.yml never reads`);
    for (const service of Object.keys(compose.services)) assert.ok(docs.includes(`\`${service}\``), `docs/operations.md names service ${service}`);
    for (const port of ['3001', '3003', '9090']) assert.ok(docs.includes(port), `docs/operations.md mentions port ${port}`);
    assert.ok(docs.includes('docker compose up -d --build'));
  });

  it('agrees with the README when it documents compose', (t) => {
    const readme = existsSync(path.join(ROOT, 'README.md')) ? read('README.md') : '';
    if (!/docker compose/i.test(readme)) {
      t.skip('README.md does not document compose yet');
      return;
    }
    assert.match(readme, /docs\/operations\.md/, 'the README points operators at docs/operations.md');
    for (const port of readme.match(/\b(?:30\d\d|9090)\b/g) ?? []) {
      assert.ok(['3001', '3003', '9090'].includes(port), `README mentions port ${port}, which the stack does not publish`);
    }
  });
});

describe('Dockerfile', () => {
  const stages = dockerfileStages();

  it('installs with npm ci in a build stage and runs on node:24-slim as a non-root user', () => {
    const text = read('Dockerfile');
    assert.match(text, /^ARG NODE_IMAGE=node:24-slim$/m);
    assert.ok(stages.get('deps')!.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)));
    const runtime = stages.get('runtime')!;
    assert.equal(runtime[0].args, '${NODE_IMAGE} AS runtime');
    assert.deepEqual(runtime.filter((i) => i.op === 'USER').map((i) => i.args), ['node']);
    assert.deepEqual(stages.get('falkordb-mcp')!.filter((i) => i.op === 'USER').map((i) => i.args), ['node']);
    // The runtime stage is last, so a plain `docker build .` builds the gateway.
    assert.equal([...stages.keys()].at(-1), 'runtime');
    assert.ok(!runtime.some((i) => i.op === 'RUN' && /npm (ci|install)/.test(i.args)), 'no install in the runtime stage');
  });

  it('copies only paths that exist, and the falkordb-mcp entry point is where the lockfile puts it', () => {
    for (const i of stages.get('runtime')!.filter((x) => x.op === 'COPY' && x.args.startsWith('--from=build'))) {
      const src = i.args.split(/\s+/)[1].replace(/^\/app\//, '');
      if (src === 'node_modules') continue;
      assert.ok(existsSync(path.join(ROOT, src)), `COPY ${src}`);
    }
    const cmd = JSON.parse(stages.get('falkordb-mcp')!.find((i) => i.op === 'CMD')!.args) as string[];
    assert.ok(existsSync(path.join(ROOT, cmd[1])), `${cmd[1]} exists in node_modules`);
    const lock = JSON.parse(read('package-lock.json'));
    assert.ok(lock.packages['node_modules/@falkordb/mcpserver'], '@falkordb/mcpserver is locked');
  });

  it('has a .dockerignore that keeps secrets and node_modules out but the build inputs in', () => {
    const ignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', '.env', '.dev-keys', '.git']) assert.ok(ignore.includes(p), `${p} ignored`);
    for (const p of ['gateway', 'config', 'plugins', 'test', 'package-lock.json', 'tsconfig.json']) assert.ok(!ignore.includes(p), `${p} is needed by the build stage`);
  });

  describe('HEALTHCHECK', () => {
    const hc = stages.get('runtime')!.find((i) => i.op === 'HEALTHCHECK')!;
    const argv = JSON.parse(hc.args.slice(hc.args.indexOf('CMD') + 3).trim()) as string[];
    let loaded = true;
    let ready = true;
    let admin: Awaited<ReturnType<typeof startAdminServer>>;
    before(async () => {
      admin = await startAdminServer({
        host: '127.0.0.1', port: 0, token: '', metrics: new GatewayMetrics({ processMetrics: false }), log: pino({ level: 'silent' }),
        sources: { sessions: () => [], endSession: async () => false, processes: () => [], readiness: () => [{ name: 'x', check: async () => ({ ok: ready }) }], configLoaded: () => loaded },
      });
    });
    after(() => admin.close());
    const probe = async (port: string) => {
      try {
        await run(process.execPath, argv.slice(1), { env: { ...process.env, GATEWAY_ADMIN_PORT: port }, timeout: 10_000 });
        return 0;
      } catch (err) {
        return (err as { code?: number }).code ?? -1;
      }
    };

    it('uses node, not curl, and reads the admin port from GATEWAY_ADMIN_PORT', () => {
      assert.equal(argv[0], 'node');
      assert.doesNotMatch(hc.args, /curl|wget/);
      assert.match(argv.join(' '), /GATEWAY_ADMIN_PORT/);
      assert.match(argv.join(' '), /\/readyz/);
    });

    it('passes when /readyz is 200 and fails when it is 503 or nothing listens', async () => {
      const port = new URL(admin.url).port;
      assert.equal(await probe(port), 0);
      ready = false;
      assert.equal(await probe(port), 1);
      ready = true;
      loaded = false;
      assert.equal(await probe(port), 1);
      loaded = true;
      assert.equal(await probe(String(await freePort())), 1);
    });
  });
});

describe('falkordb-mcp healthcheck', () => {
  let mcp: RunningUpstream;
  before(async () => {
    mcp = await startFalkorMcp({ apiKey: 'hc-key' });
  });
  after(() => mcp.close());

  it('passes against the real server (which answers 401 without the key), fails when nothing listens', async () => {
    const argv = compose.services['falkordb-mcp'].healthcheck!.test;
    assert.equal(argv[0], 'CMD');
    const script = argv[3];
    assert.match(script, /127\.0\.0\.1:3000/);
    const at = async (port: number) => {
      try {
        await run(process.execPath, ['-e', script.replace('127.0.0.1:3000', `127.0.0.1:${port}`)], { timeout: 10_000 });
        return 0;
      } catch (err) {
        return (err as { code?: number }).code ?? -1;
      }
    };
    assert.equal(await at(mcp.port), 0);
    assert.equal(mcp.child.exitCode, null, 'the probe did not hurt the server');
    assert.equal(await at(await freePort()), 1);
  });
});

describe('config/compose/gateway.yaml', () => {
  const check = (env: Record<string, string>) =>
    run(process.execPath, ['gateway/main.ts', '--check', '--config', 'config/compose/gateway.yaml'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      timeout: 60_000,
    });

  it('passes --check with the environment compose gives the gateway container', async () => {
    const { stdout } = await check(gatewayEnv());
    assert.match(stdout, /OK \(2 listeners, 2 routes, 1 upstreams, 10 plugins\)/);
  });

  it('fails --check, naming the variable, when .env lacks a secret', async () => {
    const env = gatewayEnv();
    delete env.GATEWAY_SESSION_KEY;
    await assert.rejects(check(env), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /sessions\.key: environment variable GATEWAY_SESSION_KEY is not set/);
      return true;
    });
  });

  it('would make compose refuse to start without each required variable', () => {
    for (const name of requiredComposeVars) {
      const partial = { ...dotenv };
      delete partial[name as keyof typeof partial];
      assert.throws(() => {
        for (const svc of Object.values(compose.services)) {
          for (const v of Object.values(svc.environment ?? {})) composeInterpolate(String(v), partial);
          for (const v of svc.command ?? []) composeInterpolate(v, partial);
        }
      }, new RegExp(name));
    }
  });

  it('turns on auth, redis-backed rate limits, graph rewriting and audit on every route', () => {
    for (const route of gatewayYaml.routes) {
      const types = route.plugins.map((p: { type: string }) => p.type);
      assert.deepEqual(types, ['audit', 'token', 'jwt', 'rate-limit', 'graph-rewrite'], route.name);
      const rl = route.plugins.find((p: { type: string }) => p.type === 'rate-limit');
      assert.equal(rl.store, 'redis');
      assert.equal(route.upstream, 'falkordb');
    }
    const tokenOn = (listener: string) => gatewayYaml.routes.find((r: { listener: string }) => r.listener === listener).plugins[1].sources;
    assert.deepEqual(tokenOn('header'), ['header']);
    assert.deepEqual(tokenOn('query'), ['query', 'header']);
    assert.equal(gatewayYaml.redis.url, '${REDIS_URL}');
    assert.equal(gatewayYaml.sessions.key, '${GATEWAY_SESSION_KEY}');
  });
});

describe('the compose config, run by the real gateway against the real FalkorDB MCP server', () => {
  let mcp: RunningUpstream;
  let tg: TestGateway | undefined;
  let redis: Redis | undefined;
  let keysDir: string;
  const prefix = `mcpgw-ops-test-${process.pid}-${Date.now()}:`;
  let token: string;
  let skipReason: string | undefined;

  before(async () => {
    redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      await redis.connect();
    } catch {
      redis.disconnect();
      redis = undefined;
      if (process.env.REQUIRE_REDIS === '1') throw new Error('REQUIRE_REDIS=1 but no Redis answers on 127.0.0.1:6379');
      skipReason = 'no Redis answers on 127.0.0.1:6379 (the compose config uses the Redis store)';
      return;
    }
    keysDir = await mkdtemp(path.join(tmpdir(), 'mcpgw-ops-keys-'));
    await generateDevKeys(keysDir, 'EdDSA');
    mcp = await startFalkorMcp({ apiKey: dotenv.FALKORDB_MCP_API_KEY });
    // The mounted file, with only what Docker provides replaced: service names become local
    // addresses, the fixed ports become free ones.
    const yaml = gatewayYamlText
      .replace('http://falkordb-mcp:3000/mcp', `${mcp.url}/mcp`)
      .replace(/port: 3001\b/, 'port: 0')
      .replace(/port: 3003\b/, 'port: 0')
      // Audit lines into the captured log (instead of this process's stdout), to check them for secrets.
      .replaceAll('destination: stdout', 'destination: log');
    assert.notEqual(yaml, gatewayYamlText);
    tg = await startTestGateway(yaml, {
      env: {
        ...gatewayEnv(),
        REDIS_URL: 'redis://127.0.0.1:6379',
        REDIS_KEY_PREFIX: prefix,
        GATEWAY_KEYS_DIR: keysDir,
      },
    });
    const key = await loadDevSigningKey(keysDir);
    token = await new SignJWT({ tenant_id: 'acme', scope: 'mcp' })
      .setProtectedHeader({ alg: key.alg, kid: key.kid })
      .setIssuer('mcp-gateway-dev')
      .setAudience('mcp-gateway')
      .setSubject('alice')
      .setJti(`ops-${Date.now()}`)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(key.key);
  });

  after(async () => {
    await tg?.close();
    await mcp?.close();
    if (redis) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    if (keysDir) await rm(keysDir, { recursive: true, force: true });
  });

  it('serves both listeners with the upstream key injected, and reports it all on the admin listener', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const gw = tg!;
    // 3001: Authorization header.
    const viaHeader = await connectClient(`${gw.url('header')}/mcp`, { bearer: token });
    // 3003: token in the URL.
    const viaQuery = await connectClient(`${gw.url('query')}/mcp?token=${token}`);
    try {
      const tools = await viaHeader.listTools();
      assert.ok(tools.tools.some((x) => x.name === 'query_graph'), 'the upstream accepted the injected API key');
      const listed = await viaQuery.callTool({ name: 'list_graphs', arguments: {} });
      assert.ok(Array.isArray(listed.content));

      // No token: refused before the upstream.
      const anon = await fetch(`${gw.url('header')}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      assert.equal(anon.status, 401);

      const ready = await fetch(`${gw.adminUrl()}/readyz`);
      const readyBody = (await ready.json()) as { checks: Array<{ name: string }> };
      assert.equal(ready.status, 200, JSON.stringify(readyBody));
      assert.deepEqual(readyBody.checks.map((c: { name: string }) => c.name).sort(), ['config', 'redis', 'upstream:falkordb']);

      const metrics = await (await fetch(`${gw.adminUrl()}/metrics`)).text();
      assert.match(metrics, /mcpgw_http_requests_total\{route="graph-header",listener="header",method="POST",status="200"\} \d+/);
      assert.match(metrics, /mcpgw_http_requests_total\{route="graph-query",listener="query",method="POST",status="200"\} \d+/);
      assert.match(metrics, /mcpgw_refusals_total\{route="graph-header",plugin="token",code="GW_ERR_TOKEN_MISSING"\} 1/);
      assert.match(metrics, /mcpgw_jsonrpc_messages_total\{route="graph-header",direction="request",method="tools\/list",tool=""\} 1/);
      assert.match(metrics, /mcpgw_jsonrpc_messages_total\{route="graph-query",direction="request",method="tools\/call",tool="list_graphs"\} 1/);
      assert.match(metrics, /mcpgw_upstream_duration_seconds_count\{route="graph-header"\} [1-9]/);
      assert.doesNotMatch(metrics, /acme|alice/, 'no tenant or subject in metric labels');

      const sessions = await fetch(`${gw.adminUrl()}/admin/sessions?tenant=acme`, { headers: { authorization: `Bearer ${dotenv.GATEWAY_ADMIN_TOKEN}` } });
      assert.equal(sessions.status, 200);
      const listedSessions = (await sessions.json()) as { count: number; sessions: Array<{ subject: string; route: string }> };
      assert.ok(listedSessions.count >= 2, JSON.stringify(listedSessions));
      assert.deepEqual([...new Set(listedSessions.sessions.map((x) => x.route))].sort(), ['graph-header', 'graph-query']);
    } finally {
      await viaHeader.close();
      await viaQuery.close();
    }
    const logText = gw.logText();
    assert.ok(gw.logs().some((l) => l.audit === true && l.kind === 'exchange' && l.route === 'graph-query' && l.tenant === 'acme'), 'audit lines are written');
    assert.ok(!logText.includes(token), 'the client token reached the log');
    assert.ok(!logText.includes(dotenv.FALKORDB_MCP_API_KEY), 'the upstream key reached the log');
    assert.ok(!logText.includes(dotenv.GATEWAY_ADMIN_TOKEN), 'the admin token reached the log');
  });
});
