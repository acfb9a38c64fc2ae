/**
 * The admin listener: its own HTTP server (default 127.0.0.1:9090), apart from the MCP listeners so
 * that it can be bound to a private interface and never exposed with them.
 *
 *   GET    /metrics              Prometheus text                      open
 *   GET    /healthz              the process is alive                 open
 *   GET    /readyz               200/503 with every check's reason    open
 *   GET    /admin/sessions       open MCP sessions (?tenant=, ?route=) Bearer admin token
 *   DELETE /admin/sessions/{id}  end one session                      Bearer admin token
 *   GET    /admin/processes      stdio upstream children              Bearer admin token
 *
 * /metrics and the probes carry no tenant data and must work for load balancers and Prometheus without
 * a secret; /admin/* lists tenants and subjects, so it needs the admin token, and with no token
 * configured it is off (GW_ERR_ADMIN_DISABLED) rather than open.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { runReadiness, type ReadinessCheck, type ReadinessReport } from './health.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface SessionInfo {
  /** The client-facing session id (what `DELETE /admin/sessions/{id}` takes). */
  id: string;
  tenant?: string;
  subject?: string;
  route: string;
  transport: 'streamable-http' | 'sse' | 'unknown';
  /** Epoch milliseconds. */
  openedAt: number;
  /** Epoch milliseconds of the last request or event. */
  lastActivityAt: number;
  /** Upstream name. */
  upstream: string;
  /** The stdio child serving it, for stdio upstreams. */
  process?: { pool: string; pid: number };
}

export interface ProcessInfo {
  upstream: string;
  /** The pool key the child serves (e.g. the tenant). */
  pool: string;
  pid: number;
  sessions: number;
  rssBytes?: number;
  uptimeMs: number;
  restarts: number;
}

/** What the admin listener reads from the running gateway; every call reflects the current config. */
export interface AdminSources {
  sessions(): readonly SessionInfo[];
  /** Ends the session (closes the client's stream, deletes the upstream session); false if unknown. */
  endSession(id: string): Promise<boolean>;
  processes(): readonly ProcessInfo[];
  readiness(): readonly ReadinessCheck[];
  /** False before the first config is loaded and while shutting down (so load balancers drain us). */
  configLoaded(): boolean;
}

export interface AdminServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Bearer token for /admin/*; empty disables /admin/*. */
  token: string;
  metrics: GatewayMetrics;
  sources: AdminSources;
  log: Logger;
  /** Each readiness check is cut off after this long. Default 2000 ms. */
  readinessTimeoutMs?: number;
}

export interface AdminServer {
  /** e.g. `http://127.0.0.1:9090`. */
  url: string;
  close(): Promise<void>;
}

/** Stable error codes of the admin listener. */
export const ADMIN_ERRORS = {
  disabled: 'GW_ERR_ADMIN_DISABLED',
  unauthorized: 'GW_ERR_ADMIN_UNAUTHORIZED',
  notFound: 'GW_ERR_NOT_FOUND',
  methodNotAllowed: 'GW_ERR_METHOD_NOT_ALLOWED',
  sessionNotFound: 'GW_ERR_SESSION_NOT_FOUND',
  failed: 'GW_ERR_ADMIN_FAILED',
} as const;

class AdminError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const log = opts.log.child({ component: 'admin' });
  const readinessTimeoutMs = opts.readinessTimeoutMs ?? 2000;
  // Compare digests, not the tokens: equal lengths for timingSafeEqual, and no length leak.
  const tokenDigest = opts.token ? sha256(opts.token) : undefined;
  const started = Date.now();
  // Probes hammered in parallel (several load balancers, a retry storm) share one run of the checks.
  let inflightReadiness: Promise<ReadinessReport> | undefined;

  const readiness = (): Promise<ReadinessReport> => {
    if (!inflightReadiness) {
      // Cleared in a later tick, never synchronously: a run that finishes at once must not stay cached.
      inflightReadiness = checkReadiness().finally(() => {
        inflightReadiness = undefined;
      });
    }
    return inflightReadiness;
  };

  const checkReadiness = async (): Promise<ReadinessReport> => {
    if (!opts.sources.configLoaded()) {
      return { ready: false, checks: [{ name: 'config', ok: false, reason: 'no configuration loaded (starting or shutting down)', ms: 0 }] };
    }
    const report = await runReadiness(opts.sources.readiness(), readinessTimeoutMs);
    return { ready: report.ready, checks: [{ name: 'config', ok: true, ms: 0 }, ...report.checks] };
  };

  const authorize = (req: IncomingMessage) => {
    if (!tokenDigest) {
      throw new AdminError(403, ADMIN_ERRORS.disabled, 'the admin API is disabled: set admin.token in gateway.yaml to enable it');
    }
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m || !timingSafeEqual(sha256(m[1]), tokenDigest)) {
      log.warn({ remote: req.socket.remoteAddress, path: pathOf(req) }, 'admin request refused: missing or wrong admin token');
      throw new AdminError(401, ADMIN_ERRORS.unauthorized, 'send Authorization: Bearer <admin token>', {
        'www-authenticate': 'Bearer realm="mcp-gateway-admin"',
      });
    }
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method ?? 'GET';
    const path = url.pathname;

    if (path === '/metrics') {
      allow(method, ['GET', 'HEAD']);
      const { contentType, body } = await opts.metrics.render();
      return send(res, method, 200, body, contentType);
    }
    if (path === '/healthz') {
      allow(method, ['GET', 'HEAD']);
      return sendJson(res, method, 200, { status: 'alive', uptimeSeconds: Math.round((Date.now() - started) / 1000) });
    }
    if (path === '/readyz') {
      allow(method, ['GET', 'HEAD']);
      const report = await readiness();
      return sendJson(res, method, report.ready ? 200 : 503, { status: report.ready ? 'ready' : 'not_ready', checks: report.checks });
    }
    if (path === '/admin' || path.startsWith('/admin/')) {
      authorize(req);
      if (path === '/admin/sessions') {
        allow(method, ['GET', 'HEAD']);
        const tenant = url.searchParams.get('tenant');
        const route = url.searchParams.get('route');
        const sessions = opts.sources
          .sessions()
          .filter((s) => (tenant === null || s.tenant === tenant) && (route === null || s.route === route))
          .map(renderSession);
        return sendJson(res, method, 200, { count: sessions.length, sessions });
      }
      const sessionPath = /^\/admin\/sessions\/([^/]+)$/.exec(path);
      if (sessionPath) {
        allow(method, ['DELETE']);
        const id = safeDecode(sessionPath[1]);
        if (id === undefined || !(await opts.sources.endSession(id))) {
          throw new AdminError(404, ADMIN_ERRORS.sessionNotFound, 'no open session has this id');
        }
        // The id is a session handle, not a credential; still, log a short prefix only.
        log.info({ session: `${id.slice(0, 8)}…` }, 'session ended by the admin API');
        return sendJson(res, method, 200, { ended: true, id });
      }
      if (path === '/admin/processes') {
        allow(method, ['GET', 'HEAD']);
        const processes = opts.sources.processes().map((p) => ({ ...p }));
        return sendJson(res, method, 200, { count: processes.length, processes });
      }
    }
    throw new AdminError(404, ADMIN_ERRORS.notFound, `nothing is served at ${path}`);
  }

  const server = createServer((req, res) => {
    // The admin API takes no request bodies; drain whatever arrives so the socket can be reused.
    req.resume();
    handle(req, res).catch((err: unknown) => {
      if (err instanceof AdminError) return sendError(res, err.status, err.code, err.message, err.headers);
      log.error({ err, path: pathOf(req) }, 'admin request failed');
      sendError(res, 500, ADMIN_ERRORS.failed, 'the admin request failed; see the gateway log');
    });
  });
  // Slow or idle clients must not pin admin sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'admin listener error'));
  const { port } = server.address() as AddressInfo;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;

  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) {
    throw new AdminError(405, ADMIN_ERRORS.methodNotAllowed, `use ${methods.join(' or ')}`, { allow: methods.join(', ') });
  }
}

function renderSession(s: SessionInfo) {
  return {
    ...s,
    openedAt: new Date(s.openedAt).toISOString(),
    lastActivityAt: new Date(s.lastActivityAt).toISOString(),
    idleMs: Math.max(0, Date.now() - s.lastActivityAt),
  };
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The path without the query: query strings are never logged (they may carry tokens). */
function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0];
}

function send(res: ServerResponse, method: string, status: number, body: string, contentType: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  const bytes = Buffer.from(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': bytes.length, 'cache-control': 'no-store', ...headers });
  res.end(method === 'HEAD' ? undefined : bytes);
}

function sendJson(res: ServerResponse, method: string, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, method, status, JSON.stringify(value), 'application/json; charset=utf-8', headers);
}

function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, 'GET', status, { error: { code, message } }, headers);
}
