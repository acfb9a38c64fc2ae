/**
 * The stdio bridge: a stdio upstream exposed to the gateway core as a Streamable HTTP server on
 * 127.0.0.1 (port 0), so the core proxies to it exactly as to any HTTP upstream (one proxy code path,
 * one plugin pipeline).
 *
 * The core adds three headers to every request it proxies here: the per-bridge secret (other local
 * users cannot talk to the bridge directly), and the verified principal's tenant and subject (it removes
 * any the client sent). A session is bound to the tenant and subject that opened it.
 *
 * Each MCP session gets its own SDK StreamableHTTPServerTransport (status codes, SSE, session header
 * and 202s are the SDK's); sessions are served by a MultiplexedProcess chosen by the rendered pool key
 * (`mode: shared`) or made for the session alone (`mode: per-session`).
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { StdioUpstreamConfig } from '../../config/schema.ts';
import { coreRefusal, sendRefusal } from '../errors.ts';
import { idOf, isRequest, parseBody } from '../jsonrpc.ts';
import { prepareCommand, type PreparedCommand } from './command.ts';
import { stdioRefusal, StdioUpstreamError } from './errors.ts';
import { MultiplexedProcess, type ProcessState } from './multiplexed-process.ts';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { BridgeSession } from './session.ts';
import { templateValues, type TemplateValues } from './templates.ts';

/** Header carrying the per-bridge secret. */
export const BRIDGE_SECRET_HEADER = 'x-mcp-gateway-bridge-key';
/** Headers the core sets from the verified principal (empty or absent when the route has no auth). */
export const TENANT_HEADER = 'x-mcp-gateway-tenant';
export const SUB_HEADER = 'x-mcp-gateway-sub';

/**
 * Largest request body the bridge accepts. The core enforces each route's `maxRequestBytes` before the
 * bridge sees a request; this cap only bounds memory and must stay above any sensible route limit.
 */
export const MAX_BRIDGE_BODY_BYTES = 64 * 1024 * 1024;

/** One pool entry, as GET /admin/processes shows it (a superset of the admin API's ProcessInfo). */
export interface ProcessInfo {
  upstream: string;
  /** The rendered pool key (`acme`, `acme/alice`); in per-session mode followed by `#<session>`. */
  pool: string;
  tenant: string;
  mode: 'shared' | 'per-session';
  /** `running`; `starting` (spawning or in restart backoff); `crashed` (restarts on next use); `idle`. */
  state: ProcessState;
  /** 0 while no process runs (not started yet, crashed, stopping): see `state`. */
  pid: number;
  sessions: number;
  /** Requests sent to the process and not answered yet. */
  inFlight: number;
  /** Resident memory in bytes (Linux), undefined elsewhere. */
  rssBytes: number | undefined;
  /** Since the current process started; 0 when none runs. */
  uptimeMs: number;
  restarts: number;
  /** The child's stdout is not being read because a session's client is not reading (flow control). */
  outputPaused: boolean;
  /** Bytes of requests written to the child's stdin that it has not read yet. */
  stdinBufferedBytes: number;
  /** Bytes read from the current child's stdout. */
  stdoutBytes: number;
}

export interface StdioBridge {
  /** e.g. http://127.0.0.1:41234/mcp — the core proxies the route's requests here. */
  readonly target: string;
  /** Headers the core adds to every request to the bridge (the per-bridge secret). */
  readonly headers: Readonly<Record<string, string>>;
  /** For GET /admin/processes. */
  processes(): ProcessInfo[];
  /** Open MCP sessions (for GET /admin/sessions: which process serves a session). */
  sessions(): BridgeSessionInfo[];
  /** SIGTERM children, SIGKILL after shutdownGrace, close the server. */
  close(): Promise<void>;
}

export interface BridgeSessionInfo {
  id: string;
  tenant: string;
  sub: string;
  poolKey: string;
  pid: number | undefined;
  openedAt: number;
  lastActivity: number;
  /** Bytes of messages waiting for this session's client to read (bounded: see session.ts). */
  queuedBytes: number;
}

export async function startStdioBridge(
  name: string,
  cfg: StdioUpstreamConfig,
  deps: { log: Logger; configDir: string },
): Promise<StdioBridge> {
  const bridge = new Bridge(name, cfg, deps.log.child({ upstream: name }), prepareCommand(name, cfg, deps.configDir));
  await bridge.listen();
  return bridge;
}

class Bridge implements StdioBridge {
  target = '';
  readonly headers: Readonly<Record<string, string>>;
  #name: string;
  #cfg: StdioUpstreamConfig;
  #log: Logger;
  #command: PreparedCommand;
  #secret: Buffer;
  #server: Server;
  #sessions = new Map<string, BridgeSession>();
  #pools = new Map<string, MultiplexedProcess>();
  #idleTimers = new Map<MultiplexedProcess, NodeJS.Timeout>();
  #stopping = new Set<Promise<void>>();
  #closing = false;

  constructor(name: string, cfg: StdioUpstreamConfig, log: Logger, command: PreparedCommand) {
    this.#name = name;
    this.#cfg = cfg;
    this.#log = log;
    this.#command = command;
    const secret = randomBytes(32).toString('base64url');
    this.#secret = Buffer.from(secret);
    this.headers = Object.freeze({ [BRIDGE_SECRET_HEADER]: secret });
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#log.error({ err }, 'bridge request failed');
        if (!res.headersSent) sendRefusal(res, coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', 'the stdio bridge failed'), null);
        else res.destroy();
      });
    });
    // The core keeps connections to the bridge alive; a short server-side keep-alive races its reuse.
    this.#server.keepAliveTimeout = 65_000;
    // SSE streams and slow tool calls are not cut here; the core owns client-facing timeouts.
    this.#server.requestTimeout = 0;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const { port } = this.#server.address() as AddressInfo;
    this.target = `http://127.0.0.1:${port}/mcp`;
    this.#log.info(
      { target: this.target, command: this.#command.command.file, mode: this.#cfg.mode, withheldEnv: this.#command.withheldEnv },
      'stdio bridge listening (withheldEnv: credentials in the gateway\'s environment its children do not get; list one in env: to pass it)',
    );
  }

  processes(): ProcessInfo[] {
    const now = Date.now();
    return [...this.#pools.values()].map((p) => ({
      upstream: this.#name,
      pool: p.key,
      tenant: p.tenant,
      mode: this.#cfg.mode,
      state: p.state,
      pid: p.pid ?? 0,
      sessions: p.sessionCount,
      inFlight: p.inFlight,
      rssBytes: p.rssBytes(),
      uptimeMs: p.startedAt === undefined ? 0 : now - p.startedAt,
      restarts: p.restarts,
      outputPaused: p.outputPaused,
      stdinBufferedBytes: p.stdinBufferedBytes,
      stdoutBytes: p.stdoutBytes,
    }));
  }

  sessions(): BridgeSessionInfo[] {
    return [...this.#sessions.values()].map((s) => ({
      id: s.id,
      tenant: s.tenant,
      sub: s.sub,
      poolKey: s.process.key,
      pid: s.process.pid,
      openedAt: s.openedAt,
      lastActivity: s.lastActivity,
      queuedBytes: s.queuedBytes,
    }));
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await Promise.all([...this.#sessions.values()].map((s) => s.close('the bridge is closing')));
    for (const t of this.#idleTimers.values()) clearTimeout(t);
    this.#idleTimers.clear();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all([...pools.map((p) => p.stop()), ...this.#stopping]);
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    this.#log.info('stdio bridge closed');
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#authorized(req)) {
      sendRefusal(res, stdioRefusal('GW_ERR_BRIDGE_FORBIDDEN', 'this endpoint only serves the gateway'), null);
      return;
    }
    if (this.#closing) {
      sendRefusal(res, stdioRefusal('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down'), null);
      return;
    }
    const tenant = headerValue(req, TENANT_HEADER);
    const sub = headerValue(req, SUB_HEADER);
    // Streamable HTTP names its session in a header; the legacy transport in the POST's query.
    const sessionId = headerValue(req, 'mcp-session-id') ||
      (req.method === 'POST' && req.url?.includes('sessionId=') ? new URL(req.url, 'http://bridge').searchParams.get('sessionId') ?? '' : '');

    if (sessionId) {
      const session = this.#sessions.get(sessionId);
      if (!session) {
        sendRefusal(res, coreRefusal('GW_ERR_SESSION_NOT_FOUND', 'Session not found'), null);
        return;
      }
      // Defence in depth: the core binds sessions to principals too, but the bridge never serves one
      // tenant's process to another, whatever reaches it.
      if (session.tenant !== tenant || session.sub !== sub) {
        sendRefusal(res, stdioRefusal('GW_ERR_SESSION_PRINCIPAL_MISMATCH', 'this session belongs to another principal'), null);
        return;
      }
      await session.handle(req, res);
      return;
    }

    if (req.method === 'GET' && String(req.headers.accept ?? '').includes('text/event-stream')) {
      // A GET stream without a session is a legacy HTTP+SSE client opening its session.
      await this.#openLegacySession(res, tenant, sub);
      return;
    }
    if (req.method !== 'POST') {
      sendRefusal(res, coreRefusal('GW_ERR_INVALID_REQUEST', 'Bad Request: Mcp-Session-Id header is required'), null);
      return;
    }
    const body = await readBody(req, MAX_BRIDGE_BODY_BYTES);
    if (body === undefined) {
      sendRefusal(res, coreRefusal('GW_ERR_BODY_TOO_LARGE', 'request body too large'), null);
      return;
    }
    const parsed = parseBody(body);
    if (!parsed.ok) {
      sendRefusal(res, coreRefusal('GW_ERR_PARSE', `Parse error: ${parsed.detail}`), null);
      return;
    }
    const first = parsed.messages[0];
    if (parsed.batch || !isRequest(first) || first.method !== 'initialize') {
      sendRefusal(res, coreRefusal('GW_ERR_INVALID_REQUEST', 'Bad Request: Mcp-Session-Id header is required'), idOf(first));
      return;
    }

    const id = randomUUID();
    let session: BridgeSession;
    try {
      const values = templateValues({ tenant, sub, session: id });
      const process = this.#processFor(values, id);
      session = new BridgeSession({
        id,
        tenant,
        sub,
        process,
        log: this.#log,
        idleTimeoutMs: this.#cfg.idleTimeout,
        maxBodyBytes: MAX_BRIDGE_BODY_BYTES,
        onClosed: (s) => this.#sessionClosed(s),
      });
    } catch (err) {
      if (!(err instanceof StdioUpstreamError)) throw err;
      if (err.code === 'GW_ERR_PROCESS_LIMIT') this.#log.warn({ tenant, reason: err.message }, 'process limit reached');
      sendRefusal(res, stdioRefusal(err.code, err.message), idOf(first));
      return;
    }
    this.#sessions.set(id, session);
    this.#cancelIdle(session.process);
    await session.handle(req, res, parsed.messages[0]);
    // The transport refused the initialize itself (406, 415 …): no session came into being.
    if (!session.established) await session.close('initialize refused by the transport');
  }

  /**
   * Legacy HTTP+SSE: the GET stream carries the `endpoint` event (`/mcp?sessionId=…`; the gateway
   * rewrites it for the client) and every server message; the client's POSTs come back to `/mcp` with
   * that `sessionId`. The process is shared with Streamable HTTP sessions of the same pool key.
   */
  async #openLegacySession(res: ServerResponse, tenant: string, sub: string): Promise<void> {
    const transport = new SSEServerTransport('/mcp', res);
    const id = transport.sessionId;
    let session: BridgeSession;
    try {
      const values = templateValues({ tenant, sub, session: id });
      session = new BridgeSession({
        id,
        tenant,
        sub,
        process: this.#processFor(values, id),
        log: this.#log,
        idleTimeoutMs: this.#cfg.idleTimeout,
        maxBodyBytes: MAX_BRIDGE_BODY_BYTES,
        onClosed: (s) => this.#sessionClosed(s),
        legacy: transport,
      });
    } catch (err) {
      if (!(err instanceof StdioUpstreamError)) throw err;
      if (err.code === 'GW_ERR_PROCESS_LIMIT') this.#log.warn({ tenant, reason: err.message }, 'process limit reached');
      sendRefusal(res, stdioRefusal(err.code, err.message), null);
      return;
    }
    this.#sessions.set(id, session);
    this.#cancelIdle(session.process);
    await session.openLegacyStream(res);
  }

  #authorized(req: IncomingMessage): boolean {
    const given = req.headers[BRIDGE_SECRET_HEADER];
    if (typeof given !== 'string') return false;
    const buf = Buffer.from(given);
    return buf.length === this.#secret.length && timingSafeEqual(buf, this.#secret);
  }

  /** The process serving a new session: an existing one for its pool key, or a new one within limits. */
  #processFor(values: TemplateValues, sessionId: string): MultiplexedProcess {
    const rendered = this.#command.renderPoolKey(values);
    const key = this.#cfg.mode === 'per-session' ? `${rendered}#${sessionId}` : rendered;
    const existing = this.#pools.get(key);
    if (existing && existing.state !== 'stopping' && existing.state !== 'stopped') return existing;

    // An idle process (no session, waiting for its idle timeout) gives its slot to a new pool key.
    if (this.#pools.size >= this.#cfg.maxProcesses) this.#evictIdle(() => true);
    if (this.#pools.size >= this.#cfg.maxProcesses) {
      throw new StdioUpstreamError(
        'GW_ERR_PROCESS_LIMIT',
        `upstream "${this.#name}" already runs its maximum of ${this.#cfg.maxProcesses} processes; try again later`,
      );
    }
    if (this.#countTenant(values.tenant) >= this.#cfg.maxProcessesPerTenant) this.#evictIdle((p) => p.tenant === values.tenant);
    if (this.#countTenant(values.tenant) >= this.#cfg.maxProcessesPerTenant) {
      throw new StdioUpstreamError(
        'GW_ERR_PROCESS_LIMIT',
        `upstream "${this.#name}" already runs the maximum of ${this.#cfg.maxProcessesPerTenant} processes for this tenant; close a session or try again later`,
      );
    }
    const process = new MultiplexedProcess({
      key,
      tenant: values.tenant,
      spec: this.#command.render(values),
      log: this.#log.child({ pool: key }),
      shutdownGraceMs: this.#cfg.shutdownGrace,
      startTimeoutMs: this.#cfg.startTimeout,
      requestTimeoutMs: this.#cfg.requestTimeout,
    });
    this.#pools.set(key, process);
    return process;
  }

  #sessionClosed(session: BridgeSession): void {
    this.#sessions.delete(session.id);
    const p = session.process;
    if (p.sessionCount > 0 || this.#closing) return;
    // A per-session process can never get another session: stop it now.
    if (this.#cfg.mode === 'per-session') return this.#retire(p);
    if (this.#cfg.idleTimeout <= 0) return;
    this.#cancelIdle(p);
    const timer = setTimeout(() => {
      this.#idleTimers.delete(p);
      if (p.sessionCount === 0) {
        this.#log.info({ pool: p.key }, 'upstream process idle; stopping');
        this.#retire(p);
      }
    }, this.#cfg.idleTimeout);
    this.#idleTimers.set(p, timer);
  }

  #countTenant(tenant: string): number {
    let n = 0;
    for (const p of this.#pools.values()) if (p.tenant === tenant) n++;
    return n;
  }

  /** Retires the longest-idle process matching `which`, if any. */
  #evictIdle(which: (p: MultiplexedProcess) => boolean): void {
    for (const p of this.#idleTimers.keys()) {
      if (p.sessionCount > 0 || !which(p)) continue;
      this.#cancelIdle(p);
      this.#log.info({ pool: p.key }, 'stopping an idle process to make room');
      this.#retire(p);
      return;
    }
  }

  #cancelIdle(p: MultiplexedProcess): void {
    const t = this.#idleTimers.get(p);
    if (t) clearTimeout(t);
    this.#idleTimers.delete(p);
  }

  /** Removes a process from the pool (freeing its slot at once) and stops it in the background. */
  #retire(p: MultiplexedProcess): void {
    if (this.#pools.get(p.key) === p) this.#pools.delete(p.key);
    const stopping = p.stop().catch((err: unknown) => this.#log.error({ err, pool: p.key }, 'stopping a process failed'));
    this.#stopping.add(stopping);
    void stopping.finally(() => this.#stopping.delete(stopping));
  }
}

function headerValue(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** Reads a whole body, or undefined when it exceeds `cap` bytes. */
async function readBody(req: IncomingMessage, cap: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
