/**
 * Prometheus metrics of the gateway (prom-client), served by the admin listener at `/metrics`.
 *
 * Every label set is bounded, because one unbounded label (a session id, a raw path, a tool name a
 * client made up) turns a metrics endpoint into a memory leak in the gateway and in Prometheus:
 * - routes, listeners, upstreams and plugins come from config, but are still capped (a reload loop
 *   could add names forever);
 * - HTTP methods, statuses, JSON-RPC methods and error codes are mapped onto fixed alphabets;
 * - tool names are chosen by clients (`tools/call` names anything), so they are checked against a
 *   pattern and capped per route; the overflow shows as `other`;
 * - tenants appear as a label only when `tenantLabels` is on, and are capped too.
 *
 * The class owns its own Registry (never prom-client's global one), so several gateways in one process
 * (tests, reloads) never share or double-register metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Label value used when a value is outside its alphabet or past its cap. */
export const OTHER = 'other';

/** What the process pools report about each running child, read at scrape time. */
export interface ProcessSnapshot {
  upstream: string;
  /** Pool key (e.g. the tenant). Never used as a label unless tenant labels are on; see below. */
  pool: string;
  sessions: number;
  rssBytes?: number;
}

/** One federation member's state as its federation last saw it, read at scrape time. */
export interface FederationMemberSnapshot {
  /** The federation's upstream name. */
  upstream: string;
  /** The member's upstream name. */
  member: string;
  ok: boolean;
}

export interface GatewayMetricsOptions {
  /**
   * Put tenant ids in labels (`mcpgw_rate_limited_total{tenant}`). Default false: a gateway with
   * thousands of tenants would otherwise make thousands of series per metric.
   */
  tenantLabels?: boolean;
  /** Most distinct tenants kept as label values; later ones count as `other`. Default 200. */
  maxTenants?: number;
  /** Most distinct tool names kept per route; later ones count as `other`. Default 100. */
  maxToolsPerRoute?: number;
  /** Add Node's process metrics (CPU, memory, event-loop lag, GC) with the `mcpgw_` prefix. Default true. */
  processMetrics?: boolean;
  /** Read at every scrape: the children of every stdio pool. */
  processes?: () => readonly ProcessSnapshot[];
  /** Version reported by `mcpgw_build_info`. */
  version?: string;
}

export interface ExchangeDoneEvent {
  route: string;
  listener: string;
  /** The client's HTTP method. */
  method: string;
  /** Status sent to the client; 0 when the client left before a response head was sent. */
  status: number;
  /**
   * The gateway's own time: the whole exchange minus `upstreamMs` (plugins, body parsing, relaying).
   * For an exchange refused before the upstream was called, the whole exchange. For an SSE answer, its
   * share of the time to the first event (before the call, and from the upstream's first bytes to the
   * client's); absent for a stream that never carried an event.
   */
  gatewayMs?: number;
  /** From sending the request upstream to the upstream's response head; absent when it was not called. */
  upstreamMs?: number;
  /**
   * The response was an SSE stream. Its lifetime (`streamMs`) is not a latency (minutes to days for a
   * GET stream), so it goes to its own histogram instead of drowning the latency buckets.
   */
  streamed?: boolean;
  /** SSE: from the exchange's start to its end. */
  streamMs?: number;
  /** SSE: from the exchange's start to the first event written to the client, upstream time included. */
  firstEventMs?: number;
}

export interface MessageEvent {
  route: string;
  direction: 'request' | 'response';
  /**
   * JSON-RPC method. For a JSON-RPC response, the method of the request it answers when known;
   * omit it (or pass `response`) for responses whose request the gateway did not see.
   */
  method?: string;
  /** `params.name` of a `tools/call`. */
  tool?: string;
}

/** HTTP methods kept as label values; anything else (WebDAV verbs, garbage) is `other`. */
const HTTP_METHODS = new Set(['GET', 'POST', 'DELETE', 'OPTIONS', 'HEAD', 'PUT', 'PATCH']);

/** Every JSON-RPC method of MCP revisions 2024-11-05 … 2025-11-25; anything else is `other`. */
const MCP_METHODS = new Set([
  'initialize', 'ping',
  'tools/list', 'tools/call',
  'resources/list', 'resources/templates/list', 'resources/read', 'resources/subscribe', 'resources/unsubscribe',
  'prompts/list', 'prompts/get',
  'completion/complete', 'logging/setLevel',
  'sampling/createMessage', 'elicitation/create', 'roots/list',
  'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/message',
  'notifications/resources/updated', 'notifications/resources/list_changed',
  'notifications/tools/list_changed', 'notifications/prompts/list_changed',
  'notifications/roots/list_changed', 'notifications/elicitation/complete', 'notifications/tasks/status',
]);

/** Rate-limit plugin refusals that mean "over budget" (not misconfiguration or a Redis outage). */
const RATE_LIMIT_CODES = new Set(['GW_ERR_RATE_LIMITED', 'GW_ERR_TOO_MANY_STREAMS', 'GW_ERR_TOO_MANY_INFLIGHT']);
const RATE_LIMIT_PLUGIN = 'rate-limit';

/** Names we accept as label values at all (config names and tool names are of this shape). */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;
const ERROR_CODE = /^GW_ERR_[A-Z0-9_]{1,60}$/;
/** Upper bounds on config-derived names (routes, listeners, upstreams, plugins). */
const MAX_CONFIG_NAMES = 500;

/**
 * Remembers up to `max` distinct values of one label and maps everything else to `other`. Values once
 * admitted stay admitted, so a series never flips between its name and `other`.
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  value(raw: string | undefined): string {
    if (raw === undefined || raw === '') return '';
    if (this.#seen.has(raw)) return raw;
    if (!SAFE_NAME.test(raw) || this.#seen.size >= this.#max) return OTHER;
    this.#seen.add(raw);
    return raw;
  }
  get size(): number {
    return this.#seen.size;
  }
}

/** Latency buckets in seconds: 1 ms … 60 s, dense where proxies live (a few ms). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** SSE streams live from seconds to days; their lifetimes go to coarser buckets. */
const STREAM_BUCKETS = [1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600];

export class GatewayMetrics {
  readonly registry: Registry;
  readonly tenantLabels: boolean;

  readonly #routes = new BoundedLabel(MAX_CONFIG_NAMES);
  readonly #listeners = new BoundedLabel(MAX_CONFIG_NAMES);
  readonly #upstreams = new BoundedLabel(MAX_CONFIG_NAMES);
  readonly #plugins = new BoundedLabel(MAX_CONFIG_NAMES);
  readonly #tenants: BoundedLabel;
  readonly #toolsByRoute = new Map<string, BoundedLabel>();
  readonly #maxToolsPerRoute: number;
  #processes: (() => readonly ProcessSnapshot[]) | undefined;
  #federationMembers: (() => readonly FederationMemberSnapshot[]) | undefined;

  readonly #requests: Counter<'route' | 'listener' | 'method' | 'status'>;
  readonly #duration: Histogram<'route' | 'listener' | 'method'>;
  readonly #streamDuration: Histogram<'route' | 'listener'>;
  readonly #firstEvent: Histogram<'route' | 'listener'>;
  readonly #upstreamDuration: Histogram<'route'>;
  readonly #exchangeChildren = new Map<string, {
    requests: { inc(): void };
    stream: { observe(v: number): void };
    firstEvent: { observe(v: number): void };
    duration: { observe(v: number): void };
    upstream: { observe(v: number): void };
  }>();
  readonly #messages: Counter<'route' | 'direction' | 'method' | 'tool'>;
  readonly #refusals: Counter<'route' | 'plugin' | 'code'>;
  readonly #rateLimited: Counter<'route' | 'code' | 'tenant'>;
  readonly #upstreamErrors: Counter<'upstream' | 'kind'>;
  readonly #openStreams: Gauge<'route'>;
  readonly #reloads: Counter<'outcome'>;
  readonly #lastReloadOk: Gauge;
  readonly #lastReloadTime: Gauge;

  constructor(opts: GatewayMetricsOptions = {}) {
    this.registry = new Registry();
    this.tenantLabels = opts.tenantLabels ?? false;
    this.#tenants = new BoundedLabel(opts.maxTenants ?? 200);
    this.#maxToolsPerRoute = opts.maxToolsPerRoute ?? 100;
    this.#processes = opts.processes;
    const registers = [this.registry];

    this.#requests = new Counter({
      name: 'mcpgw_http_requests_total',
      help: 'HTTP exchanges completed, by route, listener, client method and status sent (0: client left first).',
      labelNames: ['route', 'listener', 'method', 'status'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'mcpgw_gateway_duration_seconds',
      help: "The gateway's own time per exchange: the whole exchange minus the upstream's time to response head; for SSE answers, its share of the time to the first event.",
      labelNames: ['route', 'listener', 'method'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#streamDuration = new Histogram({
      name: 'mcpgw_sse_stream_duration_seconds',
      help: 'Lifetime of exchanges answered with an SSE stream, upstream time included.',
      labelNames: ['route', 'listener'],
      buckets: STREAM_BUCKETS,
      registers,
    });
    this.#firstEvent = new Histogram({
      name: 'mcpgw_sse_first_event_seconds',
      help: 'Time from the start of an exchange answered with an SSE stream to its first event reaching the client, upstream time included.',
      labelNames: ['route', 'listener'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#upstreamDuration = new Histogram({
      name: 'mcpgw_upstream_duration_seconds',
      help: 'Time from sending a request upstream to receiving its response head.',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#messages = new Counter({
      name: 'mcpgw_jsonrpc_messages_total',
      help: 'JSON-RPC messages seen on routes that parse bodies, by direction, method and tool (tools/call only).',
      labelNames: ['route', 'direction', 'method', 'tool'],
      registers,
    });
    this.#refusals = new Counter({
      name: 'mcpgw_refusals_total',
      help: 'Exchanges or messages refused, by the plugin that refused (gateway: the core) and error code.',
      labelNames: ['route', 'plugin', 'code'],
      registers,
    });
    this.#rateLimited = new Counter({
      name: 'mcpgw_rate_limited_total',
      help: this.tenantLabels
        ? 'Requests or messages refused by the rate-limit plugin for being over budget, by route, code and tenant.'
        : 'Requests or messages refused by the rate-limit plugin for being over budget, by route and code (tenant labels are off).',
      labelNames: this.tenantLabels ? ['route', 'code', 'tenant'] : ['route', 'code'],
      registers,
    });
    this.#upstreamErrors = new Counter({
      name: 'mcpgw_upstream_errors_total',
      help: 'Upstream failures: unreachable, timeout, reset (connection cut mid-response), too_large, auth (refused the gateway\'s credential).',
      labelNames: ['upstream', 'kind'],
      registers,
    });
    this.#openStreams = new Gauge({
      name: 'mcpgw_sse_streams_open',
      help: 'SSE streams currently open to clients.',
      labelNames: ['route'],
      registers,
    });
    this.#reloads = new Counter({
      name: 'mcpgw_config_reloads_total',
      help: 'Configuration reloads, by outcome (a failed reload keeps the previous config serving).',
      labelNames: ['outcome'],
      registers,
    });
    this.#lastReloadOk = new Gauge({
      name: 'mcpgw_config_last_reload_successful',
      help: '1 when the last reload attempt succeeded (or none was tried yet), 0 when it failed.',
      registers,
    });
    this.#lastReloadTime = new Gauge({
      name: 'mcpgw_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful configuration load or reload.',
      registers,
    });
    this.#lastReloadOk.set(1);
    this.#lastReloadTime.setToCurrentTime();
    // Both outcomes exist from the start, so `increase(...{outcome="failure"}[1h])` works before the first failure.
    this.#reloads.inc({ outcome: 'success' }, 0);
    this.#reloads.inc({ outcome: 'failure' }, 0);

    new Gauge({
      name: 'mcpgw_build_info',
      help: 'Always 1; the labels say which gateway and Node version run.',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: opts.version ?? 'unknown', node: process.version }, 1);

    // Pool gauges are computed at scrape time from the pools themselves, so they can never drift from
    // the truth the way inc/dec bookkeeping can. Labelled by upstream only: pool keys may be sessions.
    const metrics = this;
    new Gauge({
      name: 'mcpgw_upstream_processes',
      help: 'Child processes running for a stdio upstream.',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const [upstream, agg] of metrics.#aggregateProcesses()) this.set({ upstream }, agg.processes);
      },
    });
    new Gauge({
      name: 'mcpgw_upstream_process_sessions',
      help: 'MCP sessions served by the child processes of a stdio upstream.',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const [upstream, agg] of metrics.#aggregateProcesses()) this.set({ upstream }, agg.sessions);
      },
    });
    new Gauge({
      name: 'mcpgw_upstream_process_rss_bytes',
      help: 'Resident memory of the child processes of a stdio upstream, summed.',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const [upstream, agg] of metrics.#aggregateProcesses()) this.set({ upstream }, agg.rssBytes);
      },
    });

    // Read from the federations at scrape time too; both labels are upstream names from config.
    new Gauge({
      name: 'mcpgw_federation_member_up',
      help: "1 when a federation's member answered its last listing or session opening, 0 when it failed.",
      labelNames: ['upstream', 'member'],
      registers,
      collect() {
        this.reset();
        let snapshot: readonly FederationMemberSnapshot[] = [];
        try {
          snapshot = metrics.#federationMembers?.() ?? [];
        } catch {
          // As for pools: one failing federation must not break the scrape.
        }
        for (const m of snapshot) this.set({ upstream: metrics.#upstreams.value(m.upstream), member: metrics.#upstreams.value(m.member) }, m.ok ? 1 : 0);
      },
    });

    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'mcpgw_' });
  }

  /** Where the pool gauges read from; the core sets it once its process pools exist. */
  setProcessSource(source: (() => readonly ProcessSnapshot[]) | undefined): void {
    this.#processes = source;
  }

  /** Where `mcpgw_federation_member_up` reads from; the core sets it once the first runtime exists. */
  setFederationSource(source: (() => readonly FederationMemberSnapshot[]) | undefined): void {
    this.#federationMembers = source;
  }

  exchangeDone(e: ExchangeDoneEvent): void {
    // Label values are bounded and normalised once per combination (there are few), not per exchange.
    const key = `${e.route}\0${e.listener}\0${e.method}\0${e.status}`;
    let c = this.#exchangeChildren.get(key);
    if (!c) {
      const route = this.#routes.value(e.route);
      const listener = this.#listeners.value(e.listener);
      const method = httpMethodLabel(e.method);
      c = {
        requests: this.#requests.labels({ route, listener, method, status: statusLabel(e.status) }),
        stream: this.#streamDuration.labels({ route, listener }),
        firstEvent: this.#firstEvent.labels({ route, listener }),
        duration: this.#duration.labels({ route, listener, method }),
        upstream: this.#upstreamDuration.labels({ route }),
      };
      if (this.#exchangeChildren.size < 10_000) this.#exchangeChildren.set(key, c);
    }
    c.requests.inc();
    if (e.streamed && e.streamMs !== undefined) c.stream.observe(e.streamMs / 1000);
    if (e.firstEventMs !== undefined) c.firstEvent.observe(e.firstEventMs / 1000);
    if (e.gatewayMs !== undefined) c.duration.observe(e.gatewayMs / 1000);
    if (e.upstreamMs !== undefined) c.upstream.observe(e.upstreamMs / 1000);
  }

  message(e: MessageEvent): void {
    const route = this.#routes.value(e.route);
    const method = e.method === undefined || e.method === 'response' ? 'response' : MCP_METHODS.has(e.method) ? e.method : OTHER;
    const tool = method === 'tools/call' ? this.#toolLabel(route, e.tool) : '';
    this.#messages.inc({ route, direction: e.direction === 'response' ? 'response' : 'request', method, tool });
  }

  /**
   * A refused exchange or message. `plugin` is the refusing plugin's name, or `gateway` for the core's
   * own refusals. Over-budget refusals of the rate-limit plugin also count in `mcpgw_rate_limited_total`
   * (derived here, so the two counters can never disagree); `tenant` is used only there.
   */
  refusal(e: { route: string; plugin: string; code: string; tenant?: string }): void {
    const route = this.#routes.value(e.route);
    const code = ERROR_CODE.test(e.code) ? e.code : OTHER;
    this.#refusals.inc({ route, plugin: this.#plugins.value(e.plugin) || 'gateway', code });
    if (e.plugin === RATE_LIMIT_PLUGIN && RATE_LIMIT_CODES.has(code)) {
      if (this.tenantLabels) this.#rateLimited.inc({ route, code, tenant: this.#tenants.value(e.tenant) });
      else this.#rateLimited.inc({ route, code });
    }
  }

  upstreamError(e: { upstream: string; kind: 'unreachable' | 'timeout' | 'reset' | 'too_large' | 'auth' }): void {
    const kind = ['unreachable', 'timeout', 'reset', 'too_large', 'auth'].includes(e.kind) ? e.kind : OTHER;
    this.#upstreamErrors.inc({ upstream: this.#upstreams.value(e.upstream), kind });
  }

  streamOpened(route: string): void {
    this.#openStreams.inc({ route: this.#routes.value(route) });
  }

  streamClosed(route: string): void {
    this.#openStreams.dec({ route: this.#routes.value(route) });
  }

  reload(outcome: 'success' | 'failure'): void {
    this.#reloads.inc({ outcome });
    this.#lastReloadOk.set(outcome === 'success' ? 1 : 0);
    if (outcome === 'success') this.#lastReloadTime.setToCurrentTime();
  }

  /** The Prometheus text exposition, and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #toolLabel(route: string, tool: string | undefined): string {
    if (!tool) return OTHER;
    let label = this.#toolsByRoute.get(route);
    if (!label) {
      label = new BoundedLabel(this.#maxToolsPerRoute);
      this.#toolsByRoute.set(route, label);
    }
    return label.value(tool);
  }

  #aggregateProcesses(): Map<string, { processes: number; sessions: number; rssBytes: number }> {
    const out = new Map<string, { processes: number; sessions: number; rssBytes: number }>();
    let snapshot: readonly ProcessSnapshot[] = [];
    try {
      snapshot = this.#processes?.() ?? [];
    } catch {
      // A failing pool must not break the whole scrape; its gauges read empty.
    }
    for (const p of snapshot) {
      const upstream = this.#upstreams.value(p.upstream);
      const agg = out.get(upstream) ?? { processes: 0, sessions: 0, rssBytes: 0 };
      agg.processes += 1;
      agg.sessions += p.sessions;
      agg.rssBytes += p.rssBytes ?? 0;
      out.set(upstream, agg);
    }
    return out;
  }
}

function httpMethodLabel(method: string): string {
  const upper = method.toUpperCase();
  return HTTP_METHODS.has(upper) ? upper : OTHER;
}

function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : '0';
}
