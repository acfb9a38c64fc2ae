/**
 * A federation: one MCP endpoint in front of several upstreams (docs/federation.md).
 *
 * It is an upstream served in process, of the 2025 era: 2025 clients talk to it directly and 2026-07-28
 * clients through the to-legacy translator, like any 2025 upstream, so the route's plugins see one
 * server whatever is behind it. Parts, one file each:
 * - session.ts  — the client's one session id, holding the member sessions, and replica memory;
 * - members.ts  — reaching a member with its own credentials, opening its sessions;
 * - catalog.ts  — listings fanned out and merged; names.ts — prefixes and collisions;
 * - requests.ts — each client message routed; relay.ts / streams.ts — answers and the GET stream.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { isEventStream } from '../era/upstream-read.ts';
import { isMessage, isNotification, isRequest, type JSONRPCRequest } from '../jsonrpc.ts';
import type { InProcessUpstream, UpstreamCall, UpstreamResponse, UpstreamTarget } from '../runtime.ts';
import { wholeResponse } from '../stdio/response.ts';
import { deadline, type ListContext } from './catalog.ts';
import { MemberHealth } from './member-health.ts';
import { Member, MemberError, type MemberSession } from './members.ts';
import type { Naming } from './names.ts';
import { ACCEPTED, json, readEventId, relay, rpcError } from './relay.ts';
import { handleAnswer, handleNotification, handleRequest, type Core } from './requests.ts';
import { encodeSession, newSession, readSession, SessionStates, type FederationSession, type SessionState } from './session.ts';
import { LegacySessions, legacyToken } from './legacy.ts';
import { openClientStream, type StreamContext } from './streams.ts';
import type { FederationConfig, MemberStatus } from './types.ts';

/** `p`, or a rejection as soon as `signal` fires (with its reason, a MemberError for deadlines). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(reasonOf(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reasonOf(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function reasonOf(signal: AbortSignal): MemberError {
  return signal.reason instanceof MemberError ? signal.reason : new MemberError('the request was abandoned');
}

export interface FederationDeps {
  log: Logger;
  /** Every member's upstream target, by upstream name (built before the federation). */
  members: ReadonlyMap<string, UpstreamTarget>;
  /** Client sessions whose state one replica remembers. Default 10,000. */
  maxSessions?: number;
  /** Largest member message relayed (a JSON answer, one event). Default 64 MiB. */
  maxMessageBytes?: number;
}

export type Federation = InProcessUpstream & {
  readonly name: string;
  /** Each member's state as last seen. */
  status(): MemberStatus[];
  /** Ends every stream and pending exchange (reload, shutdown). */
  close(): void;
};

export function createFederation(name: string, cfg: FederationConfig, deps: FederationDeps): Federation {
  const log = deps.log.child({ federation: name });
  const members = Object.entries(cfg.members).map(([m, mc], i) => {
    const target = deps.members.get(m);
    if (!target) throw new Error(`federation "${name}": its member "${m}" is not a configured upstream`);
    return new Member(m, `m${i}`, mc, target, log, name);
  });
  const byName = new Map(members.map((m) => [m.name, m]));
  const byTag = new Map(members.map((m) => [m.tag, m]));
  const naming: Naming = { mode: cfg.prefix, separator: cfg.separator, prefixes: new Map(members.map((m) => [m.name, m.prefix])) };
  const states = new SessionStates(deps.maxSessions ?? 10_000);
  /** Session ids already decoded: a client repeats its id on every request. */
  const decoded = new LRUCache<string, FederationSession>({ max: deps.maxSessions ?? 10_000 });
  const closing = new AbortController();
  const maxMessageBytes = deps.maxMessageBytes ?? 64 * 1024 * 1024;

  // A member failing or recovering changes what callers are shown: clients holding a stream re-list.
  const health = new MemberHealth(members.map((m) => m.name), log, () => {
    for (const state of states.all()) {
      for (const s of state.streams) for (const m of ['tools', 'prompts', 'resources']) s.changed(`notifications/${m}/list_changed`);
    }
  });
  const report = (member: Member, failure: string | undefined) => health.report(member.name, failure);

  /**
   * Opens (once, however many ask at the same time) a member session this replica lacks. The opening
   * has its own deadline, not its first asker's: a client leaving must not fail the others waiting on
   * it, and each of them stops waiting when its own signal fires.
   */
  function sessionFor(call: UpstreamCall, fs: FederationSession, state: SessionState) {
    return (member: Member, waiter: AbortSignal): Promise<MemberSession> => {
      const known = state.sessionOf(fs, member.name);
      if (known) return Promise.resolve(known);
      let opening = state.opening.get(member.name);
      if (!opening) {
        const signal = deadline(closing.signal, cfg.listTimeoutMs);
        opening = member.open(call, fs.client, signal).then(async (s) => {
          state.late.set(member.name, s);
          if (state.level && s.caps.includes('l')) await member.ask(call, s, 'logging/setLevel', { level: state.level }, signal).catch(() => undefined);
          report(member, undefined);
          return s;
        }, (err: unknown) => {
          if (!closing.signal.aborted) report(member, err instanceof MemberError ? err.message : String(err));
          throw err;
        }).finally(() => state.opening.delete(member.name));
        state.opening.set(member.name, opening);
      }
      return untilAborted(opening, waiter);
    };
  }

  const core: Core = {
    cfg, naming, log, byName, byTag, maxMessageBytes, report,
    visible: (call) => members.filter((m) => m.visibleTo(call.principal)),
    listContext: (call, fs, state): ListContext => ({
      naming, listTimeoutMs: cfg.listTimeoutMs, listTtlMs: cfg.listTtlMs, report, sessionFor: sessionFor(call, fs, state),
    }),
  };

  /** The session a request names: an answer instead when it names none (400) or none of ours (404). */
  function sessionOf(call: UpstreamCall): { fs: FederationSession; state: SessionState } | UpstreamResponse {
    const id = call.headers['mcp-session-id'];
    if (typeof id !== 'string' || id === '') return rpcError(null, -32000, 'Bad Request: Mcp-Session-Id header is required (initialize first, then send the id it returned)', 'GW_ERR_INVALID_REQUEST', 400);
    let fs = decoded.get(id);
    if (!fs) {
      fs = readSession(id);
      if (fs) decoded.set(id, fs);
    }
    const state = fs ? states.of(fs) : undefined;
    if (!fs || !state || state.ended) return rpcError(null, -32001, 'Session not found', 'GW_ERR_SESSION_NOT_FOUND', 404);
    return { fs, state };
  }

  /** A new client session: every visible member's session opened at once, each within `listTimeout`. */
  async function openSession(call: UpstreamCall, params: unknown): Promise<{ fs: FederationSession; state: SessionState; id: string; result: Record<string, unknown> }> {
    const fs = newSession(params);
    const state = states.of(fs);
    const signal = deadline(call.signal, cfg.listTimeoutMs);
    const visible = core.visible(call);
    // A member that fails now is opened on first use instead.
    const opened = await Promise.all(visible.map((m) => sessionFor(call, fs, state)(m, signal).catch(() => undefined)));
    const sealed: Record<string, MemberSession> = {};
    visible.forEach((m, i) => { if (opened[i] && !m.translated) sealed[m.name] = opened[i]; });
    fs.sealed = sealed;
    const { id } = encodeSession(fs);
    // What is sealed now travels in the id; what did not fit stays in this replica's memory.
    for (const name of Object.keys(fs.sealed)) state.late.delete(name);
    const caps = opened.map((s) => s?.caps ?? '').join('');
    const info = cfg.serverInfo ?? {};
    const result = {
      protocolVersion: fs.client.protocolVersion,
      capabilities: {
        tools: { listChanged: true },
        prompts: { listChanged: true },
        resources: { listChanged: true, ...(caps.includes('s') ? { subscribe: true } : {}) },
        logging: {},
        ...(caps.includes('c') ? { completions: {} } : {}),
      },
      serverInfo: { name: info.name ?? name, version: info.version ?? '1.0.0', ...(info.title ? { title: info.title } : {}) },
      ...(cfg.instructions ? { instructions: cfg.instructions } : {}),
    };
    return { fs, state, id, result };
  }

  async function initialize(call: UpstreamCall, msg: JSONRPCRequest): Promise<UpstreamResponse> {
    const { id, result } = await openSession(call, msg.params);
    return json(200, { jsonrpc: '2.0', id: msg.id, result }, { 'mcp-session-id': id });
  }

  /** Ends a session at every member that has one (best effort, within `signal`), and on this replica. */
  async function endSession(call: UpstreamCall, fs: FederationSession, state: SessionState, signal: AbortSignal): Promise<void> {
    state.ended = true;
    for (const s of state.streams) s.close();
    await Promise.all(core.visible(call).map(async (m) => {
      const session = state.sessionOf(fs, m.name);
      if (session?.id === undefined && !m.translated) return;
      const res = await m.send(call, 'DELETE', undefined, session, signal).catch(() => undefined);
      res?.resume();
    }));
  }

  const streamContext = (call: UpstreamCall, fs: FederationSession, state: SessionState): StreamContext => ({
    call, state, members: core.visible(call), sessionFor: sessionFor(call, fs, state),
    debounceMs: cfg.listChangedDebounceMs, maxMessageBytes, closing: closing.signal,
  });

  const legacy = new LegacySessions({
    core, openSession, streamContext, closing: closing.signal, maxMessageBytes,
    end: (call, fs, state) => endSession(call, fs, state, deadline(closing.signal, cfg.listTimeoutMs)),
  });

  async function post(call: UpstreamCall): Promise<UpstreamResponse> {
    let message: unknown;
    try {
      message = JSON.parse(call.body?.toString('utf8') ?? '');
    } catch {
      return rpcError(null, -32700, 'Parse error: the request body is not JSON', 'GW_ERR_PARSE', 400);
    }
    const batch = Array.isArray(message) ? message : [message];
    if (batch.length === 0 || !batch.every(isMessage)) return rpcError(null, -32600, 'Invalid Request: not a JSON-RPC 2.0 message', 'GW_ERR_INVALID_REQUEST', 400);
    // A legacy client's POST names its stream's session in the query (batches were allowed then).
    const legacySession = legacyToken(call);
    if (legacySession !== undefined) return legacy.post(call, legacySession, batch);
    const requests = batch.filter(isRequest);
    if (Array.isArray(message) && requests.length > 0) {
      return rpcError(null, -32600, 'Invalid Request: a federated server takes requests one per POST (batches were removed in MCP 2025-06-18)', 'GW_ERR_INVALID_REQUEST', 400);
    }
    if (requests[0]?.method === 'initialize') return initialize(call, requests[0]);
    const opened = sessionOf(call);
    if (!('fs' in opened)) return opened;
    const on = { core, call, fs: opened.fs, state: opened.state };
    if (requests[0]) return handleRequest(on, requests[0]);
    for (const m of batch) {
      if (isNotification(m)) await handleNotification(on, m);
      else await handleAnswer(on, m as { id?: unknown });
    }
    return ACCEPTED();
  }

  function get(call: UpstreamCall): UpstreamResponse | Promise<UpstreamResponse> {
    // A GET without a session is how a legacy HTTP+SSE (2024-11-05) client begins.
    if (typeof call.headers['mcp-session-id'] !== 'string') return legacy.open(call);
    const opened = sessionOf(call);
    if (!('fs' in opened)) return opened;
    const last = call.headers['last-event-id'];
    if (typeof last === 'string') return resume(call, opened.fs, opened.state, last);
    return openClientStream(streamContext(call, opened.fs, opened.state));
  }

  /** A GET with `Last-Event-ID`: the rest of a member's stream, from the member that holds it. */
  async function resume(call: UpstreamCall, fs: FederationSession, state: SessionState, last: string): Promise<UpstreamResponse> {
    const at = readEventId(last);
    const member = at ? byTag.get(at.tag) : undefined;
    const session = member?.visibleTo(call.principal) ? state.sessionOf(fs, member.name) : undefined;
    if (!at || !member || !session) return rpcError(null, -32000, 'Bad Request: Last-Event-ID names no stream of this session; open the stream afresh without it', 'GW_ERR_INVALID_REQUEST', 400);
    let res: UpstreamResponse;
    try {
      res = await member.send(call, 'GET', undefined, session, call.signal, at.id);
    } catch (err) {
      const failure = err instanceof MemberError ? err : new MemberError(String(err), { code: 'GW_ERR_UPSTREAM_UNREACHABLE' });
      return rpcError(null, -32000, `the stream cannot be resumed: its server ${failure.message}`, failure.code, 502);
    }
    if (res.statusCode !== 200 || !isEventStream(res)) {
      res.resume();
      return rpcError(null, -32000, `the stream cannot be resumed: its server answered HTTP ${res.statusCode}; open the stream afresh`, 'GW_ERR_UPSTREAM_BAD_RESPONSE', res.statusCode >= 400 ? res.statusCode : 502);
    }
    return relay(res, member.tag, maxMessageBytes, () => {});
  }

  /** Ends the session at every member that has one, and here. */
  async function remove(call: UpstreamCall): Promise<UpstreamResponse> {
    const opened = sessionOf(call);
    if (!('fs' in opened)) return opened;
    await endSession(call, opened.fs, opened.state, deadline(call.signal, cfg.listTimeoutMs));
    return wholeResponse(200, '');
  }

  return {
    name,
    async dispatch(call: UpstreamCall): Promise<UpstreamResponse> {
      if (closing.signal.aborted) return rpcError(null, -32000, 'the gateway is shutting down; try again shortly', 'GW_ERR_SHUTTING_DOWN', 503);
      // Exchanges in flight at close end with their own signal (the core aborts it); only the GET
      // streams, which would outlive any drain, follow `closing` too (streams.ts).
      if (call.method === 'POST') return post(call);
      if (call.method === 'GET') return get(call);
      if (call.method === 'DELETE') return remove(call);
      return json(405, { jsonrpc: '2.0', id: null, error: { code: -32000, message: `Method not allowed: ${call.method} (an MCP endpoint takes GET, POST and DELETE)`, data: { code: 'GW_ERR_INVALID_REQUEST' } } }, { allow: 'GET, POST, DELETE' });
    },
    status: () => health.list(),
    close() {
      closing.abort();
      health.close();
      legacy.close();
      for (const m of members) m.close();
      states.clear();
      decoded.clear();
    },
  };
}
