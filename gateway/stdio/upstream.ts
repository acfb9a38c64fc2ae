/**
 * A stdio upstream served in the gateway's process: the core dispatches each exchange here (stage 5)
 * and reads the answer as it reads an HTTP upstream's (stage 6). No socket, no second HTTP parse, no
 * secret: the principal arrives verified with the call.
 *
 * It speaks both MCP transports on one path, as an HTTP MCP server would:
 * - Streamable HTTP: POST without session = a lone `initialize`, which opens a session (`mcp-session-id`
 *   in the answer); POST/GET/DELETE with the session header;
 * - legacy HTTP+SSE: GET without session opens a session whose stream names `/mcp?sessionId=…` (the
 *   core rewrites and seals it); POSTs carrying that `sessionId` are answered on the stream.
 *
 * A session is bound to the tenant and subject that opened it and served by the process its rendered
 * pool key picks (pool.ts); the multiplexer in front of the process keeps the sessions apart.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import type { StdioUpstreamConfig } from '../../config/schema.ts';
import { coreRefusal, type JsonRpcId, type Refusal } from '../errors.ts';
import { idOf, isMessage, isRequest } from '../jsonrpc.ts';
import { decodeJson } from '../messages/json-codec.ts';
import type { InProcessUpstream, UpstreamCall } from '../runtime.ts';
import { prepareCommand, resolveCommand, type PreparedCommand } from './command.ts';
import { stdioRefusal, StdioUpstreamError } from './errors.ts';
import { ProcessPool, type ProcessInfo } from './pool.ts';
import { refusalResponse, wholeResponse, type StdioResponse } from './response.ts';
import { templateValues } from './templates.ts';
import { VirtualSession } from './virtual-session.ts';

export type { ProcessInfo } from './pool.ts';

/** One open session, for the admin API. */
export interface StdioSessionInfo {
  id: string;
  tenant: string;
  sub: string;
  poolKey: string;
  pid: number | undefined;
  legacy: boolean;
  openedAt: number;
  lastActivity: number;
  /** Bytes written for this session's client that it has not read yet (bounded: see virtual-session.ts). */
  queuedBytes: number;
}

export interface StdioUpstreamDeps {
  log: Logger;
  configDir: string;
  /** Called with its id whenever a session has ended (DELETE, idle, admin, close …): the gateway stops listing it. */
  onSessionEnded?(sessionId: string): void;
}

export class StdioUpstream implements InProcessUpstream {
  readonly name: string;
  #cfg: StdioUpstreamConfig;
  #log: Logger;
  #command: PreparedCommand;
  #configDir: string;
  #pool: ProcessPool;
  #sessions = new Map<string, VirtualSession>();
  #onSessionEnded: ((id: string) => void) | undefined;
  #closing: Promise<void> | undefined;

  /** Throws StdioConfigError when the command cannot be found or a template is invalid. */
  constructor(name: string, cfg: StdioUpstreamConfig, deps: StdioUpstreamDeps) {
    this.name = name;
    this.#cfg = cfg;
    this.#log = deps.log;
    this.#configDir = deps.configDir;
    this.#command = prepareCommand(name, cfg, deps.configDir);
    this.#pool = new ProcessPool(name, cfg, deps.log, this.#command);
    this.#onSessionEnded = deps.onSessionEnded;
    this.#log.info(
      { command: this.#command.command.file, mode: cfg.mode, withheldEnv: this.#command.withheldEnv },
      'stdio upstream ready (withheldEnv: credentials in the gateway\'s environment its children do not get; list one in env: to pass it)',
    );
  }

  dispatch(call: UpstreamCall): StdioResponse | Promise<StdioResponse> {
    if (this.#closing) return refusalResponse(stdioRefusal('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down'), null);
    const tenant = call.principal?.tenant ?? '';
    const sub = call.principal?.subject ?? '';
    const header = headerValue(call.headers, 'mcp-session-id');
    // Streamable HTTP names its session in a header; the legacy transport in the POST's query.
    const legacyId = header === '' && call.method === 'POST' ? legacySessionParam(call.pathAndQuery) : undefined;
    const id = header || legacyId;
    if (id) {
      const session = this.#sessions.get(id);
      if (!session || session.legacy !== (legacyId !== undefined)) {
        return refusalResponse(coreRefusal('GW_ERR_SESSION_NOT_FOUND', 'Session not found'), null);
      }
      // Defence in depth: the core binds sessions to principals too, but a process is never served to
      // another tenant, whatever reaches it.
      if (session.tenant !== tenant || session.sub !== sub) {
        return refusalResponse(stdioRefusal('GW_ERR_SESSION_PRINCIPAL_MISMATCH', 'this session belongs to another principal'), null);
      }
      return this.#inSession(session, call);
    }
    if (call.method === 'GET' && accepts(call.headers, 'text/event-stream')) return this.#openLegacy(tenant, sub, call.signal);
    if (call.method !== 'POST') return refusalResponse(coreRefusal('GW_ERR_INVALID_REQUEST', 'Bad Request: Mcp-Session-Id header is required'), null);
    const parsed = readMessages(call, true);
    if (!Array.isArray(parsed)) return parsed;
    const first = parsed[0];
    if (parsed.length !== 1 || !isRequest(first) || first.method !== 'initialize') {
      return refusalResponse(coreRefusal('GW_ERR_INVALID_REQUEST', 'Bad Request: Mcp-Session-Id header is required'), idOf(first));
    }
    const session = this.#open(tenant, sub, false);
    if (!(session instanceof VirtualSession)) return refusalResponse(session, first.id);
    return session.initialize(first, call.signal);
  }

  /** For GET /admin/processes. */
  processes(): ProcessInfo[] {
    return this.#pool.processes();
  }

  /** Open sessions (for tests and diagnostics). */
  sessions(): StdioSessionInfo[] {
    return [...this.#sessions.values()].map((s) => ({
      id: s.id,
      tenant: s.tenant,
      sub: s.sub,
      poolKey: s.process.key,
      pid: s.process.pid,
      legacy: s.legacy,
      openedAt: s.openedAt,
      lastActivity: s.lastActivity,
      queuedBytes: s.queuedBytes,
    }));
  }

  /** The process serving a session (GET /admin/sessions), when one runs. */
  processOf(sessionId: string): { pool: string; pid: number } | undefined {
    const s = this.#sessions.get(sessionId);
    const pid = s?.process.pid;
    return s && pid ? { pool: s.process.key, pid } : undefined;
  }

  /** Ends a session the gateway was asked to end (DELETE /admin/sessions/{id}). */
  endSession(sessionId: string): boolean {
    const s = this.#sessions.get(sessionId);
    if (!s) return false;
    s.close('ended by the admin API');
    return true;
  }

  /** Readiness: the command still resolves the way it did at start, and the upstream is not closing. */
  probe(): { ok: boolean; reason?: string; detail?: string } {
    if (this.#closing) return { ok: false, reason: 'the upstream is shutting down' };
    try {
      return { ok: true, detail: resolveCommand(this.#cfg.command, this.#configDir, 'readiness').file };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }

  /** Ends every session and stops every process (SIGTERM, SIGKILL after shutdownGrace). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const s of [...this.#sessions.values()]) s.close('the upstream is closing');
      await this.#pool.close();
      this.#log.info('stdio upstream closed');
    })();
    return this.#closing;
  }

  #inSession(session: VirtualSession, call: UpstreamCall): StdioResponse {
    switch (call.method) {
      case 'POST': {
        const messages = readMessages(call, !session.legacy);
        if (!Array.isArray(messages)) return messages;
        if (session.legacy) return session.legacyPost(messages);
        const init = messages.find((m) => isRequest(m) && m.method === 'initialize');
        if (init) return refusalResponse(coreRefusal('GW_ERR_INVALID_REQUEST', 'Invalid Request: Server already initialized'), idOf(init));
        return session.post(messages, call.signal);
      }
      case 'GET':
        if (session.legacy) break;
        if (!accepts(call.headers, 'text/event-stream')) {
          return refusalResponse(stdioRefusal('GW_ERR_NOT_ACCEPTABLE', 'Not Acceptable: Client must accept text/event-stream'), null);
        }
        return session.openStandalone(call.signal);
      case 'DELETE':
        if (session.legacy) break;
        session.close('DELETE by the client');
        return wholeResponse(200, '');
    }
    return refusalResponse({ ...stdioRefusal('GW_ERR_METHOD_NOT_ALLOWED', 'Method not allowed.'), headers: { allow: 'GET, POST, DELETE' } }, null);
  }

  #openLegacy(tenant: string, sub: string, signal: AbortSignal): StdioResponse {
    const session = this.#open(tenant, sub, true);
    if (!(session instanceof VirtualSession)) return refusalResponse(session, null);
    return session.openLegacyStream(signal);
  }

  /** A new session in the process its pool key picks, or why there is none (limit, unsafe values). */
  #open(tenant: string, sub: string, legacy: boolean): VirtualSession | Refusal {
    const id = randomUUID();
    try {
      const process = this.#pool.processFor(templateValues({ tenant, sub, session: id }), id);
      const session = new VirtualSession({
        id, tenant, sub, process, legacy,
        log: this.#log,
        idleTimeoutMs: this.#cfg.idleTimeout,
        onClosed: (s) => this.#closed(s),
      });
      this.#sessions.set(id, session);
      return session;
    } catch (err) {
      if (!(err instanceof StdioUpstreamError)) throw err;
      if (err.code === 'GW_ERR_PROCESS_LIMIT') this.#log.warn({ tenant, reason: err.message }, 'process limit reached');
      return stdioRefusal(err.code, err.message);
    }
  }

  #closed(session: VirtualSession): void {
    this.#sessions.delete(session.id);
    this.#pool.released(session.process);
    this.#onSessionEnded?.(session.id);
  }
}

/**
 * A POST body's messages, or the refusal the SDK's transports would give: 406/415 for the wrong
 * media types (Streamable HTTP checks Accept too), 400 for a body that is not JSON-RPC.
 */
function readMessages(call: UpstreamCall, streamable: boolean): JSONRPCMessage[] | StdioResponse {
  if (streamable) {
    const accept = headerValue(call.headers, 'accept');
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      return refusalResponse(stdioRefusal('GW_ERR_NOT_ACCEPTABLE', 'Not Acceptable: Client must accept both application/json and text/event-stream'), null);
    }
  }
  const type = headerValue(call.headers, 'content-type').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    return refusalResponse(stdioRefusal('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type: Content-Type must be application/json'), null);
  }
  const decoded = decodeJson(call.body ?? '');
  if (!decoded.ok) return refusalResponse(coreRefusal('GW_ERR_PARSE', `Parse error: ${decoded.detail}`), null);
  for (const m of decoded.values) {
    if (!isMessage(m)) return refusalResponse(coreRefusal('GW_ERR_PARSE', 'Parse error: Invalid JSON-RPC message'), idOf(m) as JsonRpcId);
  }
  return decoded.values as JSONRPCMessage[];
}

function headerValue(headers: IncomingHttpHeaders, name: string): string {
  const v = headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

function accepts(headers: IncomingHttpHeaders, type: string): boolean {
  return headerValue(headers, 'accept').includes(type);
}

/** `sessionId` from a legacy POST's query (the path and query the core unsealed for us). */
function legacySessionParam(pathAndQuery: string): string | undefined {
  const q = pathAndQuery.indexOf('?');
  if (q === -1) return undefined;
  return new URLSearchParams(pathAndQuery.slice(q + 1)).get('sessionId') ?? undefined;
}
