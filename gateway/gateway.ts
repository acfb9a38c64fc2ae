/**
 * The running gateway: listeners, the current runtime (config generation), hot reload and drain.
 *
 * Per request, before any route or plugin: framing hygiene, DNS-rebinding checks, CORS preflight and
 * the paths plugins serve (OAuth metadata); then the route's exchange (proxy.ts).
 */
import { watch, type FSWatcher } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { resolvePlugins } from '../config/compile.ts';
import { ConfigError, loadConfigFile, type Env, type LoadedConfig } from '../config/load.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { ListenerInfo, SharedServices } from './contract.ts';
import { coreRefusal, refusalMessage, sendRefusal } from './errors.ts';
import { ListenerPolicy } from './listener-policy.ts';
import { checkRequestHeaders } from './request-hygiene.ts';
import { createLogger } from './logger.ts';
import { attachProxyEvents, handleExchange, type ExchangeObserver, type ProxyEnv } from './proxy.ts';
import { buildRuntime, type Runtime, type StdioCache } from './runtime.ts';
import { SessionSealer } from './session-seal.ts';
import { SessionRegistry } from './sessions.ts';
import { GatewayMetrics } from './metrics.ts';
import { startAdminServer } from './admin.ts';
import { httpProbe, redisProbe, type ReadinessCheck } from './health.ts';
import type { StdioUpstream } from './stdio/upstream.ts';
import { bannerInfoFromConfig, formatBanner } from './banner.ts';

export interface StartOptions {
  configPath: string;
  /** Variables for `${ENV}` interpolation. Default process.env. */
  env?: Env;
  /** Where logs go; default stdout. */
  logDestination?: Writable;
  overrides?: { adminPort?: number };
  /** SIGHUP reloads, SIGTERM/SIGINT drain and exit. Default true. */
  installSignalHandlers?: boolean;
  /** Reload when the config file changes. Default true. */
  watchConfig?: boolean;
}

export interface ReloadResult {
  ok: boolean;
  error?: string;
}

export interface RunningGateway {
  listenerUrl(name?: string): string;
  adminUrl(): string;
  reload(): Promise<ReloadResult>;
  close(): Promise<void>;
  readonly log: Logger;
  readonly sessions: SessionRegistry;
  runtime(): Runtime;
}

interface LiveListener {
  config: ListenerConfig;
  server: http.Server;
  info: ListenerInfo;
  policy: ListenerPolicy;
}

export async function startGateway(opts: StartOptions): Promise<RunningGateway> {
  const env = opts.env ?? process.env;
  let loaded = await loadConfigFile(opts.configPath, env);
  let resolved = await resolvePlugins(loaded);
  const log = createLogger({ level: loaded.config.log.level, pretty: loaded.config.log.pretty, destination: opts.logDestination });

  const shared: SharedServices = { redisKeyPrefix: loaded.config.redis?.keyPrefix ?? 'mcpgw:' };
  if (loaded.config.redis?.url) {
    // No offline queue: while Redis is down, commands fail at once (plugins fall back or refuse)
    // instead of piling up behind a reconnect.
    const { Redis } = await import('ioredis'); // only when configured: Redis is optional
    shared.redis = new Redis(loaded.config.redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    shared.redis.on('error', (err) => log.warn({ err: { message: err.message } }, 'redis error'));
    await waitForRedis(shared.redis, 5_000, log);
  }

  let sealer: SessionSealer | undefined;
  try {
    sealer = SessionSealer.fromConfig(loaded.config.sessions.key, loaded.config.sessions.previousKeys);
  } catch (err) {
    throw new ConfigError(loaded.source, [`sessions.key: ${(err as Error).message}`]);
  }
  if (!sealer) {
    sealer = SessionSealer.random();
    log.warn('sessions.key is not set: session ids are sealed with a random key made at start; they do not survive a restart and replicas cannot share them');
  }

  const metrics = new GatewayMetrics({ tenantLabels: loaded.config.metrics.tenantLabels });
  const observer: ExchangeObserver = metrics;
  const sessions = new SessionRegistry();
  const proxy = createProxyServer({});
  attachProxyEvents(proxy);
  const proxyEnv: ProxyEnv = { proxy, sealer, sessions, observer, log };
  const stdio: StdioCache = new Map();
  const listeners = new Map<string, LiveListener>();
  let draining = false;
  // Undefined only while starting: listeners are bound before the runtime exists (plugins need their ports).
  let runtime: Runtime | undefined;

  const onRequest = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
    const live = listeners.get(name);
    if (!live) return sendRefusal(res, coreRefusal('GW_ERR_NO_ROUTE', 'this listener is being removed'), null);
    if (draining) {
      res.setHeader('connection', 'close');
      return sendRefusal(res, coreRefusal('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance'), null, { 'retry-after': '1' });
    }
    if (!runtime) {
      return sendRefusal(res, coreRefusal('GW_ERR_STARTING', 'the gateway is starting; retry in a moment'), null, { 'retry-after': '1' });
    }
    void entry(live, runtime, req, res, proxyEnv, log);
  };

  async function openListener(cfg: ListenerConfig): Promise<LiveListener> {
    const server = http.createServer({
      // A slow tool call or a long SSE stream must never be cut by Node's defaults.
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 65_000,
    }, onRequest(cfg.name));
    server.timeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.port, cfg.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Requests Node cannot even parse never reach a route; they still get an answer with a code.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return void socket.destroy();
      const r = err.code === 'HPE_HEADER_OVERFLOW'
        ? coreRefusal('GW_ERR_HEADERS_TOO_LARGE', 'the request headers are larger than the gateway accepts')
        : coreRefusal('GW_ERR_BAD_FRAMING', `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`);
      const body = JSON.stringify(refusalMessage(r, null));
      const reason = r.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
      socket.end(`HTTP/1.1 ${r.status} ${reason}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    const port = (server.address() as AddressInfo).port;
    const policy = new ListenerPolicy(cfg, port);
    return { config: cfg, server, policy, info: { name: cfg.name, host: cfg.host, port, publicUrl: policy.publicUrl } };
  }

  async function openChangedListeners(next: LoadedConfig): Promise<Map<string, LiveListener>> {
    const opened = new Map<string, LiveListener>();
    try {
      for (const cfg of next.config.listeners) {
        const live = listeners.get(cfg.name);
        if (live && JSON.stringify(cfg) === JSON.stringify(live.config)) continue;
        opened.set(cfg.name, await openListener(cfg));
      }
    } catch (err) {
      for (const l of opened.values()) closeServer(l.server);
      throw err;
    }
    return opened;
  }
  function commitListeners(next: LoadedConfig, opened: Map<string, LiveListener>): void {
    const wanted = new Set(next.config.listeners.map((l) => l.name));
    for (const [name, live] of [...listeners]) {
      if (!wanted.has(name) || opened.has(name)) {
        listeners.delete(name);
        closeServer(live.server);
        log.info({ listener: name }, wanted.has(name) ? 'listener changed: reopening it with the new settings' : 'listener removed');
      }
    }
    for (const [name, l] of opened) listeners.set(name, l);
  }
  async function syncListeners(next: LoadedConfig): Promise<void> {
    commitListeners(next, await openChangedListeners(next));
  }

  const build = (next: LoadedConfig, nextResolved: typeof resolved, opened: Map<string, LiveListener> = new Map()) =>
    buildRuntime(next, nextResolved, {
      listeners: new Map([...listeners, ...opened].map(([n, l]) => [n, l.info])),
      policies: new Map([...listeners, ...opened].map(([n, l]) => [n, l.policy])),
      log,
      shared,
      stdio,
      // A session a stdio upstream ended (idle, DELETE, its process's end) is no longer listed.
      onStdioSessionEnded: (upstream, id) => sessions.forgetUpstream(upstream, id),
    });

  const readiness = (): ReadinessCheck[] => {
    const checks: ReadinessCheck[] = [];
    if (!runtime) return checks;
    for (const u of runtime.upstreams.values()) {
      const stdioUpstream = u.stdio;
      if (stdioUpstream) checks.push({ name: `upstream:${u.name}`, check: async () => stdioUpstream.probe() });
      else checks.push({ name: `upstream:${u.name}`, check: httpProbe(u.origin + (u.basePath || '/'), 2000) });
    }
    if (shared.redis) checks.push({ name: 'redis', check: redisProbe(shared.redis) });
    return checks;
  };

  // The admin listener comes up first, so that it answers (not ready yet) as soon as anything does.
  const adminCfg = loaded.config.admin;
  const admin = adminCfg.enabled
    ? await startAdminServer({
        host: adminCfg.host,
        port: opts.overrides?.adminPort ?? adminCfg.port,
        token: adminCfg.token,
        metrics,
        log: log.child({ component: 'admin' }),
        sources: {
          sessions: () => sessions.list((upstream, upstreamSessionId) => stdio.get(upstream)?.upstream.processOf(upstreamSessionId)),
          // A stdio upstream's session is ended in process; an HTTP upstream's with a DELETE.
          endSession: (id) => sessions.end(id, (upstream, upstreamSessionId) => {
            const entry = stdio.get(upstream);
            if (!entry) return false;
            entry.upstream.endSession(upstreamSessionId);
            return true;
          }),
          processes: () => (runtime ? [...runtime.upstreams.values()].flatMap((u) => u.stdio?.processes() ?? []) : []),
          readiness,
          // While draining, /readyz says no, so load balancers stop sending before the listeners close.
          configLoaded: () => runtime !== undefined && !draining,
        },
      }).catch((err: unknown) => {
        // e.g. the admin port is taken: nothing else has started yet but the Redis connection.
        shared.redis?.disconnect();
        proxy.close();
        throw err;
      })
    : undefined;

  let reloading: Promise<ReloadResult> | undefined;
  let again: Promise<ReloadResult> | undefined;
  let closed = false;
  let changedWhileStarting = false;
  // Watched from before the listeners open, so no change made once the port answers can be missed.
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  if (opts.watchConfig ?? true) {
    try {
      // Watch the folder, not the file: editors save by writing a new file and renaming it over the
      // old one, and a watch on the old inode would never fire again.
      const base = path.basename(loaded.source);
      watcher = watch(path.dirname(loaded.source), (_e, f) => {
        if (f !== null && f !== base) return;
        clearTimeout(debounce);
        // A change made while the gateway is still starting is applied once it has started.
        debounce = setTimeout(() => (runtime ? void reload() : (changedWhileStarting = true)), 300);
      });
      watcher.unref();
    } catch (err) {
      log.warn({ error: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP');
    }
  }

  try {
    await syncListeners(applyOverrides(loaded, opts));
    runtime = await build(loaded, resolved);
    for (const [name, entry] of runtime.startedStdio) stdio.set(name, entry);
  } catch (err) {
    // Release everything a failed start opened, so the caller (a test, a supervisor) is not held up.
    for (const l of listeners.values()) {
      l.server.close();
      l.server.closeAllConnections();
    }
    await Promise.all([...stdio.values()].map((e) => e.upstream.close()));
    await admin?.close();
    watcher?.close();
    clearTimeout(debounce);
    shared.redis?.disconnect();
    proxy.close();
    throw err;
  }
  metrics.setProcessSource(() => [...runtime!.upstreams.values()].flatMap((u) => u.stdio?.processes() ?? []));

  log.info(formatBanner(bannerInfoFromConfig(loaded.config, {
    configPath: loaded.source,
    listenerUrls: Object.fromEntries([...listeners].map(([n, l]) => [n, l.info.publicUrl])),
    adminUrl: admin?.url,
  })).join('\n'));

  async function reload(): Promise<ReloadResult> {
    if (closed) return { ok: false, error: 'the gateway is shutting down' };
    // A change that arrives during a reload is applied by exactly one more reload after it.
    if (reloading) {
      again ??= reloading.then(() => { again = undefined; return reload(); });
      return again;
    }
    reloading = (async () => {
      let opened = new Map<string, LiveListener>();
      try {
        const next = await loadConfigFile(opts.configPath, env);
        const nextResolved = await resolvePlugins(next);
        opened = await openChangedListeners(applyOverrides(next, opts));
        const nextRuntime = await build(next, nextResolved, opened);
        commitListeners(applyOverrides(next, opts), opened);
        const previous = runtime!;
        runtime = nextRuntime;
        loaded = next;
        resolved = nextResolved;
        metrics.reload('success');
        log.info({ config: next.source }, 'configuration reloaded');
        // Stdio upstreams the new runtime replaced or no longer uses are closed once the old runtime is done.
        const retiredStdio = adoptStdio(stdio, nextRuntime);
        // Exchanges already running finish on the pipeline they started on.
        void previous.retire(24 * 3600_000).then(async () => {
          await previous.close(log);
          await Promise.all(retiredStdio.map((u) => u.close()));
        });
        return { ok: true };
      } catch (err) {
        for (const l of opened.values()) { if (listeners.get(l.config.name) !== l) closeServer(l.server); }
        metrics.reload('failure');
        const message = (err as Error).message;
        log.error({ error: message }, 'configuration reload failed; the previous configuration keeps serving');
        return { ok: false, error: message };
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  }

  if (changedWhileStarting) void reload();

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    if (closing) return closing;
    closing = (async () => {
      draining = true;
      closed = true;
      clearTimeout(debounce);
      watcher?.close();
      const grace = loaded.config.shutdownGrace;
      log.info({ graceMs: grace, inFlight: runtime!.active }, 'draining: no new connections; waiting for in-flight exchanges');
      for (const l of listeners.values()) l.server.close();
      // Open streams never end by themselves: end them cleanly now so clients reconnect elsewhere.
      sessions.closeStreams();
      await runtime!.retire(grace);
      for (const l of listeners.values()) l.server.closeAllConnections();
      await runtime!.close(log);
      await Promise.all([...stdio.values()].map((e) => e.upstream.close()));
      await admin?.close();
      proxy.close();
      shared.redis?.disconnect();
      log.info('gateway stopped');
      log.flush?.();
    })();
    return closing;
  }

  if (opts.installSignalHandlers ?? true) {
    process.on('SIGHUP', () => void reload());
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      void close().then(() => process.exit(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  }

  return {
    listenerUrl(name) {
      const live = name ? listeners.get(name) : listeners.values().next().value;
      if (!live) throw new Error(`no listener named ${name}`);
      return `http://127.0.0.1:${live.info.port}`;
    },
    adminUrl() {
      if (!admin) throw new Error('the admin listener is disabled');
      return admin.url;
    },
    reload,
    close,
    log,
    sessions,
    runtime: () => runtime!,
  };
}

async function waitForRedis(redis: Redis, timeoutMs: number, log: Logger): Promise<void> {
  if (redis.status === 'ready') return;
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (!ready) log.warn({ timeoutMs }, 'redis is not reachable yet: starting anyway; plugins that use it fall back as configured and /readyz reports it');
}

/** Test and CLI overrides applied to a loaded config (the admin port). */
function applyOverrides(loaded: LoadedConfig, opts: StartOptions): LoadedConfig {
  if (opts.overrides?.adminPort === undefined) return loaded;
  return { ...loaded, config: { ...loaded.config, admin: { ...loaded.config.admin, port: opts.overrides.adminPort } } };
}

function closeServer(server: http.Server): void {
  server.close();
  setTimeout(() => server.closeAllConnections(), 10_000).unref();
}

/** Puts a new runtime's stdio upstreams into the cache; returns those it no longer uses. */
function adoptStdio(cache: StdioCache, runtime: Runtime): StdioUpstream[] {
  const retired: StdioUpstream[] = [];
  for (const [name, entry] of runtime.startedStdio) {
    const old = cache.get(name);
    if (old) retired.push(old.upstream);
    cache.set(name, entry);
  }
  for (const [name, entry] of cache) {
    if (![...runtime.upstreams.values()].some((u) => u.stdio === entry.upstream)) {
      cache.delete(name);
      retired.push(entry.upstream);
    }
  }
  return retired;
}

/** Listener-level checks, plugin-served paths, then the route's exchange. */
async function entry(live: LiveListener, runtime: Runtime, req: IncomingMessage, res: ServerResponse, env: ProxyEnv, log: Logger): Promise<void> {
  // Before anything reads a header: a request whose headers can be read two ways is refused.
  const duplicate = checkRequestHeaders(req);
  if (duplicate) return sendRefusal(res, duplicate, null);
  const method = req.method ?? 'GET';
  // http-proxy-3 turns a chunked DELETE/OPTIONS into `content-length: 0` and forwards the body as a
  // second request on the upstream connection: refuse the framing outright.
  if ((method === 'DELETE' || method === 'OPTIONS') && req.headers['transfer-encoding'] !== undefined) {
    res.setHeader('connection', 'close');
    return sendRefusal(res, coreRefusal('GW_ERR_BAD_FRAMING', `${method} with Transfer-Encoding is not accepted; send Content-Length instead`), null);
  }
  const hostProblem = live.policy.checkHost(req);
  if (hostProblem) return sendRefusal(res, coreRefusal('GW_ERR_HOST_NOT_ALLOWED', hostProblem), null);
  const origin = req.headers.origin;
  if (origin !== undefined && !live.policy.originAllowed(origin)) {
    return sendRefusal(res, coreRefusal('GW_ERR_ORIGIN_NOT_ALLOWED', `Origin "${origin}" is not allowed on this listener (listeners[].allowedOrigins)`), null);
  }
  if (method === 'OPTIONS') {
    // CORS preflight: answered here, before authentication, because browsers send no credentials.
    res.writeHead(204, origin ? live.policy.preflightHeaders(req) : { allow: 'GET, POST, DELETE, OPTIONS' });
    return void res.end();
  }
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://gateway.invalid');
  } catch {
    return sendRefusal(res, coreRefusal('GW_ERR_INVALID_REQUEST', 'the request target is not a valid URL'), null);
  }
  const served = runtime.served.get(live.info.name)?.get(url.pathname);
  if (served && (method === 'GET' || method === 'HEAD')) {
    try {
      const answer = await served(req);
      const body = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, {
        'content-type': typeof answer.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
        'content-length': Buffer.byteLength(body),
        ...live.policy.corsHeaders(origin),
        ...answer.headers,
      });
      return void res.end(method === 'HEAD' ? undefined : body);
    } catch (err) {
      log.error({ err, path: url.pathname }, 'a plugin-served path failed');
      return sendRefusal(res, coreRefusal('GW_ERR_PLUGIN_FAILED', 'this document could not be produced; see the gateway log'), null);
    }
  }
  const route = runtime.match(live.info.name, url.pathname);
  if (!route) {
    return sendRefusal(res, coreRefusal('GW_ERR_NO_ROUTE', `no route for ${url.pathname} on this listener`), null, live.policy.corsHeaders(origin));
  }
  const leave = runtime.enter();
  res.once('close', leave);
  await handleExchange(route, req, res, url, env);
}
