/**
 * A runtime is one generation of the gateway's configuration, built completely before it serves:
 * routes with their plugin pipelines, upstream targets, and the paths plugins serve. Hot reload builds
 * a new runtime and swaps it in; exchanges keep the runtime they started on until they end.
 */
import type http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { closePlugins, instantiateRoutes, type ResolvedRoute } from '../config/compile.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { FederationUpstreamConfig, Timeouts } from '../config/schema.ts';
import type { Awaitable, ListenerInfo, Plugin, Principal, RouteInfo, ServedResponse, SharedServices } from './contract.ts';
import { Pipeline } from './pipeline.ts';
import type { ListenerPolicy } from './listener-policy.ts';
import type { StdioUpstream } from './stdio/upstream.ts';
import type { Federation } from './federation/index.ts';
import type { ToolHeaders } from './era/tool-headers.ts';
import type { UpstreamPort } from './era/translation.ts';
import type { UpstreamEra } from './era/upstream-era.ts';
import { closeTranslators } from './era/dispatch.ts';
import { buildFederationUpstream, buildUpstream } from './upstream-targets.ts';
import type { AuthorizationService } from './oauth/server.ts';

/**
 * One exchange handed to an upstream served inside the gateway's process (stdio): what an HTTP upstream
 * would have received, without the HTTP.
 */
export interface UpstreamCall {
  method: string;
  /** Path and query as an HTTP upstream would see them (a legacy POST's carries its session). */
  pathAndQuery: string;
  /** The headers an HTTP upstream would get: the upstream's own session id unsealed, the client's
   *  credentials and hop-by-hop headers gone. */
  headers: IncomingHttpHeaders;
  body: Buffer | undefined;
  principal: Principal | undefined;
  /** Aborted when the exchange ends for any reason (the client left, a timeout, the answer is done). */
  signal: AbortSignal;
}

/** What stage 6 reads from any upstream: an `IncomingMessage`'s shape (status, headers, body stream). */
export type UpstreamResponse = Readable & { statusCode: number; headers: IncomingHttpHeaders; complete: boolean };

/** An upstream served in process: each exchange is dispatched to it directly, no socket in between. */
export interface InProcessUpstream {
  /** Rejects (or throws) only when the upstream cannot take the exchange at all (502). */
  dispatch(call: UpstreamCall): Promise<UpstreamResponse> | UpstreamResponse;
}

export interface UpstreamTarget {
  readonly name: string;
  readonly kind: 'http' | 'stdio' | 'federation';
  /** `http://host:port`; for an upstream served in process, a placeholder that is never connected to. */
  readonly origin: string;
  /** The upstream URL's path without a trailing slash (`''` for the root). */
  readonly basePath: string;
  /** Unused (and never given a socket) for upstreams served in process. */
  readonly agent: http.Agent;
  readonly timeouts: Timeouts;
  /** Lower-cased `identity.headerPrefix`: client headers with it are removed (they would be forgeries). */
  readonly identityPrefix?: string;
  /** Headers the gateway adds for this upstream: its credential, signed identity. */
  requestHeaders(principal: Principal | undefined): Record<string, string>;
  /** A stdio upstream (also its `inProcess`): processes and sessions for the admin API. */
  readonly stdio?: StdioUpstream;
  /** A federation (also its `inProcess`): its members' state for /readyz and the metrics. */
  readonly federation?: Federation;
  /** Set for upstreams served in process: stage 5 dispatches to it instead of proxying over HTTP. */
  readonly inProcess?: InProcessUpstream;
  /** Its tools' `x-mcp-header` declarations, as learned from `tools/list` answers (2026 headers). */
  readonly toolHeaders: ToolHeaders;
  /** Its MCP era, pinned or probed. */
  readonly era: UpstreamEra;
  /** How the gateway's own calls (era probe, translators) reach it. */
  readonly port: UpstreamPort;
}

export interface CompiledRoute {
  readonly info: RouteInfo;
  readonly config: ResolvedRoute['config'];
  readonly pipeline: Pipeline;
  readonly upstream: UpstreamTarget;
  /** Upstream path and query for a client URL on this route. */
  upstreamPath(url: URL): string;
  /** Client-facing path for an upstream path (legacy endpoint rewriting). */
  clientPath(upstreamPathname: string): string;
  corsHeaders(origin: string | undefined): Record<string, string>;
}

export type ServedHandler = (req: IncomingMessage) => Awaitable<ServedResponse>;

/** Stdio upstreams outlive a reload when their config did not change, so their sessions survive. */
export type StdioCache = Map<string, StdioEntry>;
export interface StdioEntry {
  key: string;
  upstream: StdioUpstream;
}

export class Runtime {
  readonly loaded: LoadedConfig;
  readonly routesByListener: Map<string, CompiledRoute[]>;
  readonly served: Map<string, Map<string, ServedHandler>>;
  readonly upstreams: Map<string, UpstreamTarget>;
  readonly plugins: Plugin[];
  /**
   * Stdio upstreams this runtime started (new upstream, or changed config). The gateway adopts them
   * into its cache only if this runtime is swapped in, and closes them if it is not.
   */
  readonly startedStdio: Map<string, StdioEntry>;
  /** The gateway's own authorization server (`authorization:`), answered before route matching. */
  readonly authorization?: AuthorizationService;
  #active = 0;
  #retired = false;
  #onIdle: (() => void) | undefined;

  constructor(init: {
    loaded: LoadedConfig;
    routes: CompiledRoute[];
    served: Map<string, Map<string, ServedHandler>>;
    upstreams: Map<string, UpstreamTarget>;
    plugins: Plugin[];
    startedStdio: Map<string, StdioEntry>;
    authorization?: AuthorizationService;
  }) {
    this.loaded = init.loaded;
    this.authorization = init.authorization;
    this.startedStdio = init.startedStdio;
    this.served = init.served;
    this.upstreams = init.upstreams;
    this.plugins = init.plugins;
    this.routesByListener = new Map();
    for (const r of init.routes) {
      const list = this.routesByListener.get(r.info.listener.name) ?? [];
      list.push(r);
      this.routesByListener.set(r.info.listener.name, list);
    }
    // Longest prefix first, so /mcp/admin wins over /mcp.
    for (const list of this.routesByListener.values()) list.sort((a, b) => b.info.path.length - a.info.path.length);
  }

  match(listener: string, pathname: string): CompiledRoute | undefined {
    for (const r of this.routesByListener.get(listener) ?? []) {
      const p = r.info.path;
      if (p === '/' || pathname === p || pathname.startsWith(`${p}/`)) return r;
    }
    return undefined;
  }

  /** Counts an exchange; the runtime is closed only when its last exchange ended after retirement. */
  enter(): () => void {
    this.#active++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.#active === 0 && this.#retired) this.#onIdle?.();
    };
  }

  get active(): number {
    return this.#active;
  }

  /** Stops taking new exchanges; resolves when the in-flight ones have ended (or after `graceMs`). */
  retire(graceMs: number): Promise<void> {
    this.#retired = true;
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      timer.unref();
      this.#onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Reopens the files plugins write (log rotation); a plugin that fails is logged, the others still run. */
  async reopenFiles(log: Logger): Promise<void> {
    await Promise.all(this.plugins.map(async (p) => {
      try {
        await p.reopen?.();
      } catch (err) {
        log.error({ err, plugin: p.name }, 'plugin failed to reopen its files');
      }
    }));
  }

  /**
   * Closes plugins, federations and upstream agents (stdio upstreams are closed by their owner, see
   * StdioCache). Federations belong to their runtime alone, so they end with it.
   */
  async close(log: Logger): Promise<void> {
    await closePlugins(this.plugins, log);
    await this.authorization?.close().catch((err: Error) => log.error({ err }, 'authorization server failed to close'));
    for (const list of this.routesByListener.values()) for (const r of list) closeTranslators(r);
    closeUpstreams(this.upstreams.values(), log);
  }
}

export async function buildRuntime(
  loaded: LoadedConfig,
  resolved: ResolvedRoute[],
  ctx: {
    listeners: ReadonlyMap<string, ListenerInfo>;
    policies: ReadonlyMap<string, ListenerPolicy>;
    log: Logger;
    shared: SharedServices;
    stdio: StdioCache;
    /** A stdio upstream ended one of its sessions (the gateway stops listing it). */
    onStdioSessionEnded?(upstream: string, sessionId: string): void;
  },
): Promise<Runtime> {
  const upstreams = new Map<string, UpstreamTarget>();
  const startedStdio = new Map<string, StdioEntry>();
  let built: Awaited<ReturnType<typeof instantiateRoutes>>;
  let authorization: AuthorizationService | undefined;
  try {
    const federations: Array<[string, FederationUpstreamConfig]> = [];
    for (const [name, cfg] of Object.entries(loaded.config.upstreams)) {
      if ('federation' in cfg) federations.push([name, cfg]);
      else upstreams.set(name, await buildUpstream(name, cfg, loaded.dir, { ...ctx, startedStdio }));
    }
    // After every other upstream: a federation is handed its members' targets.
    for (const [name, cfg] of federations) upstreams.set(name, await buildFederationUpstream(name, cfg, upstreams, ctx.log));
    // Before the plugins: a `jwt` plugin that trusts it needs its keys and registers its resource.
    // Loaded only when configured: it brings password hashing, an OIDC client and the sign-in pages.
    authorization = loaded.config.authorization
      ? await (await import('./oauth/server.ts')).createAuthorizationServer(loaded, { listeners: ctx.listeners, shared: ctx.shared, log: ctx.log })
      : undefined;
    const shared = authorization ? { ...ctx.shared, authorizationServer: authorization.trust } : ctx.shared;
    built = await instantiateRoutes(resolved, { listeners: ctx.listeners, log: ctx.log, dir: loaded.dir, shared, source: loaded.source });
  } catch (err) {
    // Nothing of a runtime that never served may outlive it.
    await authorization?.close().catch(() => {});
    await Promise.all([...startedStdio.values()].map((e) => e.upstream.close()));
    closeUpstreams(upstreams.values(), ctx.log);
    throw err;
  }
  const routes: CompiledRoute[] = [];
  const served = new Map<string, Map<string, ServedHandler>>();
  for (const { route, info, plugins } of built) {
    const upstream = upstreams.get(route.config.upstream)!;
    const policy = ctx.policies.get(info.listener.name)!;
    routes.push(compileRoute(route, info, plugins, upstream, policy));
    const paths = served.get(info.listener.name) ?? new Map<string, ServedHandler>();
    for (const p of plugins) {
      for (const [path, handler] of Object.entries(p.serves ?? {})) {
        // The first route to serve a path on a listener wins (e.g. the bare RFC 9728 document).
        if (!paths.has(path)) paths.set(path, handler);
      }
    }
    served.set(info.listener.name, paths);
  }
  if (authorization && authorization.resources() === 0) {
    ctx.log.warn('authorization: no route trusts the authorization server, so it can issue no token; add `authorizationServer: gateway` to the routes\' jwt plugins');
  }
  return new Runtime({ loaded, routes, served, upstreams, plugins: built.flatMap((b) => b.plugins), startedStdio, authorization });
}

/** Federations first (they use their members' agents), then every agent. */
function closeUpstreams(upstreams: Iterable<UpstreamTarget>, log: Logger): void {
  const all = [...upstreams];
  for (const u of all) {
    try {
      u.federation?.close();
    } catch (err) {
      log.error({ err, upstream: u.name }, 'federation failed to close');
    }
  }
  for (const u of all) u.agent.destroy();
}

function compileRoute(route: ResolvedRoute, info: RouteInfo, plugins: Plugin[], upstream: UpstreamTarget, policy: ListenerPolicy): CompiledRoute {
  const prefix = info.path === '/' ? '' : info.path;
  return {
    info,
    config: route.config,
    pipeline: new Pipeline(plugins),
    upstream,
    upstreamPath(url: URL): string {
      const rest = url.pathname.slice(prefix.length);
      return (upstream.basePath + rest || '/') + url.search;
    },
    clientPath(upstreamPathname: string): string {
      const base = upstream.basePath;
      if (base === '') return prefix + upstreamPathname;
      if (upstreamPathname === base || upstreamPathname.startsWith(`${base}/`)) return prefix + upstreamPathname.slice(base.length) || '/';
      // Outside the upstream's base path: any path under the route works, because the real upstream
      // path travels sealed in the query (see proxy.ts rewriteEndpoint).
      return `${prefix}/message`;
    },
    corsHeaders: (origin) => policy.corsHeaders(origin),
  };
}
