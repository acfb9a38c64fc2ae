/**
 * The schema of gateway.yaml. Every object is strict: an unknown key is an error that names its path.
 * Every field's default is written here, next to the field; docs/config.md is the reader's version.
 *
 * Plugin options are validated separately, by each plugin's own schema (config/compile.ts), because the
 * set of plugins is open (plugin authors add theirs from a module path).
 */
import { z } from 'zod';
import { bool, bytes, duration, int } from './units.ts';
import { upstreamSchema } from './upstream-kind.ts';
import { FederationUpstreamSchema, type FederationUpstreamConfig } from './federation.ts';
import { TracingSchema } from './tracing.ts';
import { AuthorizationConfigSchema } from '../gateway/oauth/config.ts';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'use letters, digits, "_", "." and "-"');

/** Shell-style host patterns: `localhost`, `*.example.com`, `127.0.0.1`; `*` alone allows any. */
const hostPattern = z.string().min(1);

export const ListenerSchema = z.strictObject({
  /** Referenced by routes. */
  name,
  /** Interface to bind. Default `127.0.0.1`; use `0.0.0.0` (or `::`) to accept remote clients. */
  host: z.string().default('127.0.0.1'),
  /** TCP port; `0` picks a free one (tests). */
  port: int().pipe(z.number().min(0).max(65535)),
  /**
   * The origin clients use to reach this listener (behind a load balancer it differs from host:port).
   * Used in OAuth metadata and legacy SSE endpoint URIs. Default `http://<host or localhost>:<port>`.
   */
  publicUrl: z.url().optional(),
  /**
   * DNS-rebinding protection: allowed values of the `Host` header (port ignored). Default: the host of
   * `publicUrl` plus `localhost`, `127.0.0.1` and `[::1]`. `["*"]` turns the check off.
   */
  allowedHosts: z.array(hostPattern).optional(),
  /**
   * Allowed `Origin` values for browser clients, e.g. `http://localhost:6274` (MCP Inspector);
   * `*` wildcards allowed (`http://localhost:*`). Requests without `Origin` (non-browser clients) are
   * always allowed. Default: the origin of `publicUrl` and `http://localhost:*`, `http://127.0.0.1:*`.
   * CORS preflights from these origins are answered without authentication.
   */
  allowedOrigins: z.array(z.string()).optional(),
  /**
   * Serve HTTPS (HTTP/1.1 over TLS) instead of plain HTTP: PEM files, relative to this file. `cert`
   * holds the full chain, leaf first. The files are watched: a renewed certificate is served to new
   * connections without a restart (a bad one is logged and the previous one kept). Default: plain HTTP.
   */
  tls: z
    .strictObject({
      cert: z.string().min(1),
      key: z.string().min(1),
      /** For an encrypted key; usually `${TLS_KEY_PASSPHRASE}`. */
      passphrase: z.string().optional(),
    })
    .optional(),
});

export const TimeoutsSchema = z.strictObject({
  /** Time to establish the TCP connection to the upstream. Default 10s. */
  connect: duration().default(10_000),
  /**
   * Time from sending the request to receiving the response head. Default 0 (no limit): a slow tool
   * call is the upstream's business, not the gateway's.
   */
  firstByte: duration().default(0),
  /** Longest silence on a response body (heartbeats the gateway sends do not count). Default 0 (none). */
  idle: duration().default(0),
  /** Longest total exchange. Default 0 (none): SSE streams may live for days. */
  total: duration().default(0),
});

const timeoutsDefault = { connect: 10_000, firstByte: 0, idle: 0, total: 0 };

export const HttpUpstreamSchema = z.strictObject({
  /** Base URL of the MCP server, e.g. `http://127.0.0.1:8080` or `http://falkordb-mcp:3000/mcp`. */
  url: z.url(),
  /**
   * Headers added to every upstream request: the upstream's own credential lives here, e.g.
   * `Authorization: Bearer ${FALKORDB_MCP_API_KEY}`. The client's credentials are never forwarded.
   */
  headers: z.record(z.string(), z.string()).default({}),
  timeouts: TimeoutsSchema.default(timeoutsDefault),
  /**
   * The upstream's MCP era: `"2025"` (initialize, sessions), `"2026"` (2026-07-28, stateless) or
   * `auto` (probe it with `server/discover` and cache the answer for 5 minutes). When a client's era
   * differs, the gateway translates (docs/eras.md). Default: `auto`.
   */
  era: z.enum(['auto', '2025', '2026']).default('auto'),
  /** HMAC-signed identity headers (tenant, subject, timestamp, signature); see docs/upstream-identity.md. */
  identity: z
    .strictObject({
      /** Shared secret, at least 32 characters; usually `${GATEWAY_IDENTITY_SECRET}`. */
      secret: z.string().min(32, 'use at least 32 characters'),
      /** Header name prefix. Default `x-mcp-gateway-`. */
      headerPrefix: z.string().default('x-mcp-gateway-'),
    })
    .optional(),
});

export const StdioUpstreamSchema = z.strictObject({
  /**
   * The upstream's MCP era: `"2025"` (initialize, sessions), `"2026"` (2026-07-28, stateless) or
   * `auto` (probe it with `server/discover` and cache the answer for 5 minutes). When a client's era
   * differs, the gateway translates (docs/eras.md). Default: `"2025"` (a probe would start a process; set `auto` or `"2026"` for a 2026-era server).
   */
  era: z.enum(['auto', '2025', '2026']).default('2025'),
  stdio: z.strictObject({
    /** Program to start, e.g. `mcp-server-memory` or `node`. Looked up on PATH (node_modules/.bin first). */
    command: z.string().min(1),
    /** Arguments; may use `{tenant}`, `{sub}`, `{session}` templates. */
    args: z.array(z.string()).default([]),
    /**
     * Environment added to the gateway's own, which children get minus credentials (secret-like names,
     * connection strings such as `DATABASE_URL`/`REDIS_URL`, URLs with userinfo or credential query
     * parameters: docs/stdio-upstreams.md); list one here to pass it (`REDIS_URL: ${REDIS_URL}`).
     * Values may use templates; a value naming a relative path is NOT resolved, use `path:` prefixed
     * values or absolute paths. Relative paths in `cwd` resolve against the config file's folder.
     */
    env: z.record(z.string(), z.string()).default({}),
    /**
     * Environment values that are file paths: resolved against the config file's folder and passed as
     * absolute paths, after templating. E.g. `MEMORY_FILE_PATH: data/memory-{tenant}.jsonl`.
     */
    pathEnv: z.record(z.string(), z.string()).default({}),
    /** Working directory of the child; default the config file's folder. */
    cwd: z.string().optional(),
    /**
     * `shared`: MCP sessions with the same `poolKey` share one process (the gateway multiplexes them).
     * `per-session`: one process per MCP session. Default `shared`.
     */
    mode: z.enum(['shared', 'per-session']).default('shared'),
    /** Which sessions share a process in `shared` mode. Default `{tenant}`. */
    poolKey: z.string().default('{tenant}'),
    /** Stop a process after this long without any session. Default 5m; 0 keeps it forever. */
    idleTimeout: duration().default(300_000),
    /** Most processes of this upstream at once. Default 100. */
    maxProcesses: int().pipe(z.number().min(1)).default(100),
    /** Most processes of this upstream per tenant. Default 10. */
    maxProcessesPerTenant: int().pipe(z.number().min(1)).default(10),
    /** Time a child gets between SIGTERM and SIGKILL on shutdown. Default 5s. */
    shutdownGrace: duration().default(5_000),
    /**
     * Longest time to start a process: spawn plus the answer to its `initialize`. Default 30s; must be
     * above 0 (a server that never finishes initializing would otherwise hold its sessions forever).
     * Servers run through `npx` may download their package first: raise it for those.
     */
    startTimeout: duration().pipe(z.number().min(1, 'use a duration above 0')).default(30_000),
    /**
     * Longest wait for the child's answer to one request, counted from when it is written to the
     * process (a process still starting is bounded by `startTimeout`, not this). Default 0 (none).
     */
    requestTimeout: duration().default(0),
  }),
});

/**
 * `url`, `stdio` or `federation` (config/federation.ts), chosen by the key written, so errors name the
 * right branch (upstream-kind.ts).
 */
export const UpstreamSchema = upstreamSchema({
  url: { schema: HttpUpstreamSchema, what: 'an HTTP MCP server', who: 'HTTP upstreams, with "url",' },
  stdio: { schema: StdioUpstreamSchema, what: 'a command', who: 'stdio upstreams' },
  federation: { schema: FederationUpstreamSchema, what: 'several upstreams behind one endpoint', who: 'federations' },
});

export const PluginRefSchema = z.looseObject({
  /**
   * A built-in plugin type (`token`, `jwt`, `rate-limit`, `graph-rewrite`, `tool-policy`, `audit`) or
   * a module path (`./plugins/my-plugin.ts`, relative to this file) whose default export is a
   * PluginDefinition.
   */
  type: z.string().min(1),
});

export const RouteSchema = z.strictObject({
  /** Name used in logs and metrics. Default `<listener><path>`. */
  name: name.optional(),
  /** Listener name. */
  listener: z.string(),
  /**
   * Client-facing path prefix, e.g. `/mcp`. A request matches when its path equals the prefix or
   * continues it after a `/`. The rest of the path is appended to the upstream URL's path.
   */
  path: z.string().regex(/^\/[^?#]*$/, 'a path starting with "/"'),
  /** Upstream name. */
  upstream: z.string(),
  /** Ordered plugin pipeline: request hooks run top to bottom, response hooks bottom to top. */
  plugins: z.array(PluginRefSchema).default([]),
  /** Largest request body accepted; larger is refused with 413 GW_ERR_BODY_TOO_LARGE. Default 4mb. */
  maxRequestBytes: bytes().default(4_000_000),
  /**
   * Largest JSON response body, or single SSE event, the gateway buffers to run message hooks on: a
   * larger JSON answer is 502 GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE; a larger event ends its stream with
   * that error for the requests still awaiting an answer. Routes without message hooks buffer nothing.
   * Default 16mb.
   */
  maxResponseBytes: bytes().default(16_000_000),
  /** SSE comment heartbeat (`: ping`) after this long without an event. Default 15s; 0 disables. */
  heartbeat: duration().default(15_000),
  /**
   * How long a legacy-SSE POST waits for the upstream's `202` before 504 (servers answer nothing for an
   * unknown session). Default 30s.
   */
  legacyPostTimeout: duration().default(30_000),
  /**
   * Longest time to receive a request body, from the request's headers to its last byte; a client
   * trickling its body slower than that is answered 408 GW_ERR_REQUEST_TIMEOUT. It never limits
   * answers or SSE streams (those have `timeouts`). Default 30s; 0 disables (not recommended: one
   * client could then hold a connection and a buffer forever).
   */
  bodyTimeout: duration().default(30_000),
});

export const GatewayConfigSchema = z.strictObject({
  listeners: z.array(ListenerSchema).min(1),
  upstreams: z.record(name, UpstreamSchema),
  routes: z.array(RouteSchema).min(1),
  /** Shared state for several replicas (rate limits, revocations). Optional. */
  redis: z
    .strictObject({
      /** e.g. `redis://127.0.0.1:6379`. Empty string = not configured. */
      url: z.string(),
      /** Prefix for every key the gateway writes. Default `mcpgw:`. */
      keyPrefix: z.string().default('mcpgw:'),
    })
    .optional(),
  sessions: z
    .strictObject({
      /**
       * Base64 of 32 random bytes (`openssl rand -base64 32`) used to seal session ids. Replicas must
       * share it. Default: a random key made at start (sessions then die with the process).
       */
      key: z.string().optional(),
      /**
       * Keys that still open (but no longer seal) session ids, for rotation: put the old key here and a
       * new one in `key`; remove it once old sessions have ended. Default none.
       */
      previousKeys: z.array(z.string()).default([]),
    })
    .default({ previousKeys: [] }),
  log: z
    .strictObject({
      /** pino level. Default `info`. */
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** Human-readable logs. Default: when stdout is a terminal. */
      pretty: bool().optional(),
    })
    .default({ level: 'info' }),
  /** Admin listener for /metrics, /healthz, /readyz and /admin/*. Default 127.0.0.1:9090. */
  admin: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: int().pipe(z.number().min(0).max(65535)).default(9090),
      /** Bearer token required by /admin/* (not by /healthz, /readyz, /metrics). Empty disables /admin/*. */
      token: z.string().default(''),
      enabled: bool().default(true),
    })
    .default({ host: '127.0.0.1', port: 9090, token: '', enabled: true }),
  metrics: z
    .strictObject({
      /**
       * Label rate-limit refusals by tenant (`mcpgw_rate_limited_total{tenant}`). Default false: with
       * thousands of tenants every such metric would grow thousands of series. At most 200 tenants are
       * labelled; later ones count as `other`.
       */
      tenantLabels: bool().default(false),
    })
    .default({ tenantLabels: false }),
  /** OpenTelemetry traces over OTLP/HTTP (config/tracing.ts). Default: off. */
  tracing: TracingSchema.optional(),
  /** The gateway's own OAuth 2.1 authorization server (gateway/oauth/config.ts). Default: off. */
  authorization: AuthorizationConfigSchema.optional(),
  /** Longest time SIGTERM waits for in-flight exchanges before closing them. Default 10s. */
  shutdownGrace: duration().default(10_000),
});

export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;
export type GatewayConfig = z.output<typeof GatewayConfigSchema>;
export type ListenerConfig = z.output<typeof ListenerSchema>;
export type RouteConfig = z.output<typeof RouteSchema>;
export type HttpUpstreamConfig = z.output<typeof HttpUpstreamSchema>;
export type StdioUpstreamConfig = z.output<typeof StdioUpstreamSchema>['stdio'];
export type UpstreamConfig = z.output<typeof UpstreamSchema>;
export type { FederationUpstreamConfig };
export type Timeouts = z.output<typeof TimeoutsSchema>;
