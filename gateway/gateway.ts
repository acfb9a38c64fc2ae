/**
 * The running gateway: the current runtime (config generation), hot reload and drain. Listeners are
 * in listeners.ts; what each request goes through before its route, in entry.ts.
 */
import path from 'node:path';
import type { Writable } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { Logger } from 'pino';
import { pluginModuleFiles, resolvePlugins } from '../config/compile.ts';
import { loadConfigFile, type Env, type LoadedConfig } from '../config/load.ts';
import { entry } from './entry.ts';
import { coreRefusal, sendRefusal } from './errors.ts';
import { sameFiles, watchFiles, type FileWatch } from './file-watch.ts';
import { Listeners, type ListenerPlan } from './listeners.ts';
import { createLogger } from './logger.ts';
import { attachProxyEvents, type ExchangeObserver, type ProxyEnv } from './proxy.ts';
import { buildRuntime, type Runtime, type StdioCache } from './runtime.ts';
import { adoptStdio, connectSharedServices, endFederationSession, sessionSealer } from './services.ts';
import { SessionRegistry } from './sessions.ts';
import { GatewayMetrics } from './metrics.ts';
import { startAdminServer } from './admin.ts';
import { runtimeReadinessChecks, type ReadinessCheck } from './health.ts';
import { warnUnreachableUpstreams } from './startup-check.ts';
import { bannerInfoFromConfig, formatBanner } from './banner.ts';
import { startTracing } from './tracing/setup.ts';

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

export async function startGateway(opts: StartOptions): Promise<RunningGateway> {
  const env = opts.env ?? process.env;
  let loaded = await loadConfigFile(opts.configPath, env);
  let resolved = await resolvePlugins(loaded);
  const log = createLogger({ level: loaded.config.log.level, pretty: loaded.config.log.pretty, destination: opts.logDestination });

  const shared = await connectSharedServices(loaded, log);
  const sealer = sessionSealer(loaded, log);

  const metrics = new GatewayMetrics({ tenantLabels: loaded.config.metrics.tenantLabels });
  const observer: ExchangeObserver = metrics;
  const sessions = new SessionRegistry();
  const proxy = createProxyServer({});
  attachProxyEvents(proxy);
  // Read at start only: a reload does not start, stop or reconfigure tracing (docs/operations.md).
  const tracing = await startTracing(loaded.config.tracing, log);
  const proxyEnv: ProxyEnv = { proxy, sealer, sessions, observer, log, tracing };
  const stdio: StdioCache = new Map();
  let draining = false;
  // Undefined only while starting: listeners are bound before the runtime exists (plugins need their ports).
  let runtime: Runtime | undefined;
  const listeners = new Listeners({
    log,
    watchCertificates: opts.watchConfig ?? true,
    onRequest(live, req, res) {
      if (!live) return sendRefusal(res, coreRefusal('GW_ERR_NO_ROUTE', 'this listener is being removed'), null);
      if (draining) {
        res.setHeader('connection', 'close');
        return sendRefusal(res, coreRefusal('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance'), null, { 'retry-after': '1' });
      }
      if (!runtime) {
        return sendRefusal(res, coreRefusal('GW_ERR_STARTING', 'the gateway is starting; retry in a moment'), null, { 'retry-after': '1' });
      }
      void entry(live, runtime, req, res, proxyEnv, log);
    },
  });

  const build = (next: LoadedConfig, nextResolved: typeof resolved, plan: ListenerPlan) =>
    buildRuntime(next, nextResolved, {
      listeners: plan.infos,
      policies: plan.policies,
      log,
      shared,
      stdio,
      // A session a stdio upstream ended (idle, DELETE, its process's end) is no longer listed.
      onStdioSessionEnded: (upstream, id) => sessions.forgetUpstream(upstream, id),
    });

  const readiness = (): ReadinessCheck[] => (runtime ? runtimeReadinessChecks(runtime, shared.redis) : []);

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
          // A stdio upstream's or a federation's session is ended in process; an HTTP upstream's with a DELETE.
          endSession: (id) => sessions.end(id, (upstream, upstreamSessionId) => {
            const entry = stdio.get(upstream);
            const target = runtime?.upstreams.get(upstream);
            if (!entry) return target !== undefined && endFederationSession(target, upstreamSessionId);
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
  // gateway.yaml and the plugin modules it loads from a path: saving any of them reloads.
  let watching: FileWatch | undefined;
  const watchConfigFiles = (files: string[]): void => {
    if (!(opts.watchConfig ?? true) || closed || (watching && sameFiles(watching.files, files))) return;
    watching?.close();
    // A change made while the gateway is still starting is applied once it has started.
    watching = watchFiles(files, () => (runtime ? void reload() : (changedWhileStarting = true)), {
      onError: (folder, err) => log.warn({ folder, error: err.message }, 'cannot watch the config file; reload with SIGHUP'),
    });
  };
  // Watched from before the listeners open, so no change made once the port answers can be missed.
  watchConfigFiles(configFiles(loaded));

  try {
    // Bound and committed first: until the runtime exists, requests are answered "starting".
    const plan = await listeners.prepare(applyOverrides(loaded, opts));
    listeners.commit(plan);
    runtime = await build(loaded, resolved, plan);
    for (const [name, entry] of runtime.startedStdio) stdio.set(name, entry);
  } catch (err) {
    // Release everything a failed start opened, so the caller (a test, a supervisor) is not held up.
    listeners.stopAccepting();
    listeners.closeAllConnections();
    await Promise.all([...stdio.values()].map((e) => e.upstream.close()));
    await admin?.close();
    watching?.close();
    shared.redis?.disconnect();
    proxy.close();
    await tracing?.shutdown();
    throw err;
  }
  metrics.setProcessSource(() => [...runtime!.upstreams.values()].flatMap((u) => u.stdio?.processes() ?? []));
  metrics.setFederationSource(() => [...runtime!.upstreams.values()].flatMap((u) =>
    u.federation?.status().map((m) => ({ upstream: u.name, member: m.member, ok: m.ok })) ?? []));

  log.info(formatBanner(bannerInfoFromConfig(loaded.config, {
    configPath: loaded.source,
    listenerUrls: Object.fromEntries(listeners.all().map((l) => [l.info.name, l.info.publicUrl])),
    adminUrl: admin?.url,
  })).join('\n'));
  // Not awaited: an upstream that is down gets its warning without holding up the start.
  void warnUnreachableUpstreams(loaded.config, log);

  async function reload(): Promise<ReloadResult> {
    if (closed) return { ok: false, error: 'the gateway is shutting down' };
    // A change that arrives during a reload is applied by exactly one more reload after it.
    if (reloading) {
      again ??= reloading.then(() => { again = undefined; return reload(); });
      return again;
    }
    reloading = (async () => {
      let plan: ListenerPlan | undefined;
      let next: LoadedConfig | undefined;
      // Log rotation (`mv audit.log audit.log.1; kill -HUP`): files are reopened by name first, so new
      // lines go to a new file even when the new config fails to load.
      await runtime!.reopenFiles(log);
      try {
        next = await loadConfigFile(opts.configPath, env);
        const nextResolved = await resolvePlugins(next);
        plan = await listeners.prepare(applyOverrides(next, opts));
        const nextRuntime = await build(next, nextResolved, plan);
        if (closed) {
          // close() ran while this was built: nothing of it may outlive the gateway.
          listeners.abort(plan);
          await nextRuntime.close(log);
          await Promise.all([...nextRuntime.startedStdio.values()].map((e) => e.upstream.close()));
          return { ok: false, error: 'the gateway is shutting down' };
        }
        listeners.commit(plan);
        const previous = runtime!;
        runtime = nextRuntime;
        loaded = next;
        resolved = nextResolved;
        metrics.reload('success');
        log.info({ config: next.source }, 'configuration reloaded');
        watchConfigFiles(configFiles(next));
        // Stdio upstreams the new runtime replaced or no longer uses are closed once the old runtime is done.
        const retiredStdio = adoptStdio(stdio, nextRuntime);
        // Exchanges already running finish on the pipeline they started on.
        void previous.retire(24 * 3600_000).then(async () => {
          await previous.close(log);
          await Promise.all(retiredStdio.map((u) => u.close()));
        });
        return { ok: true };
      } catch (err) {
        // A no-op for what a commit already took over.
        if (plan) listeners.abort(plan);
        metrics.reload('failure');
        const message = (err as Error).message;
        log.error({ error: message }, 'configuration reload failed; the previous configuration keeps serving');
        // A plugin module the new file names may not exist yet: writing it then retries the reload.
        if (next) watchConfigFiles([...new Set([...configFiles(loaded), ...configFiles(next)])].sort());
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
      watching?.close();
      const grace = loaded.config.shutdownGrace;
      log.info({ graceMs: grace, inFlight: runtime!.active }, 'draining: no new connections; waiting for in-flight exchanges');
      listeners.stopAccepting();
      // Open streams never end by themselves: end them cleanly now so clients reconnect elsewhere.
      sessions.closeStreams();
      await runtime!.retire(grace);
      listeners.closeAllConnections();
      await runtime!.close(log);
      await Promise.all([...stdio.values()].map((e) => e.upstream.close()));
      await admin?.close();
      proxy.close();
      shared.redis?.disconnect();
      // Last: every exchange has ended, so its spans are in the batch this exports.
      await tracing?.shutdown();
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
      const live = listeners.get(name);
      if (!live) throw new Error(`no listener named ${name}`);
      return `${live.config.tls ? 'https' : 'http'}://127.0.0.1:${live.info.port}`;
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

/** Test and CLI overrides applied to a loaded config (the admin port). */
function applyOverrides(loaded: LoadedConfig, opts: StartOptions): LoadedConfig {
  if (opts.overrides?.adminPort === undefined) return loaded;
  return { ...loaded, config: { ...loaded.config, admin: { ...loaded.config.admin, port: opts.overrides.adminPort } } };
}

/** The files whose change reloads the config: the file itself and plugin modules it loads by path. */
function configFiles(loaded: LoadedConfig): string[] {
  return [loaded.source, ...pluginModuleFiles(loaded)].map((f) => path.resolve(f)).sort();
}
