/**
 * The translator for a 2025-era client in front of a 2026-07-28 upstream.
 *
 * The client gets everything a 2025 server gives it: an `initialize` handshake (answered from
 * `server/discover`), a session, `ping`, `logging/setLevel`, resource subscriptions, a GET stream of
 * change notifications (opened upstream as `subscriptions/listen`), and server-to-client requests
 * (the upstream's multi round-trip requests, asked on its event stream). The upstream gets what a
 * 2026 client sends: every request enveloped with the client's version, capabilities and identity,
 * its mirror headers, and no session. See forward.ts, input.ts and listen.ts for each part.
 *
 * The session lives in its id (session.ts): any replica serves any request of it, except the answers
 * to server-to-client requests, which must reach the replica holding the stream that asked. The core
 * seals that id, so this translator has nothing of its own to seal (`deps.state` goes unused): the
 * upstream's `requestState` is relayed as received, and it never leaves the gateway.
 */
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { isNotification, isRequest, isResponse } from '../../jsonrpc.ts';
import type { Translator, TranslatorDeps } from '../translation.ts';
import { HEADER } from '../versions.ts';
import { emptyAnswer, jsonAnswer, rpcFailure, rpcResult, type Answer } from './answer.ts';
import { Discovery, initializeResult } from './discover.ts';
import { forward, InFlight, type ForwardContext } from './forward.ts';
import { InputBridge } from './input.ts';
import { openListen } from './listen.ts';
import { isObject, openSession, readSession, SessionMemory, type Session } from './session.ts';
import { ModernUpstream } from './upstream.ts';
import { withEnvelope } from './wire.ts';

export interface ToModernOptions {
  /** How long a client has to answer the upstream's requests for input, per round. Default 5 minutes. */
  inputTimeoutMs?: number;
  /** How long a `server/discover` result is reused (initialize, GET streams). Default 10 s; 0 = never. */
  discoverTtlMs?: number;
  /** Sessions whose level, subscriptions and GET stream are remembered on this replica. Default 10,000. */
  maxSessions?: number;
  /** Largest upstream message read whole (a JSON body, one event). Default 64 MiB. */
  maxMessageBytes?: number;
  /** Most `input_required` answers to one request. Default 8. */
  maxInputRounds?: number;
  /** Most input requests awaiting a client's answer at once. Default 10,000. */
  maxPendingInputs?: number;
}

const LOG_LEVELS = new Set(['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']);

export function createToModernTranslator(deps: TranslatorDeps, options: ToModernOptions = {}): Translator {
  const closing = new AbortController();
  const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const upstream = new ModernUpstream(deps.upstream, maxMessageBytes);
  const discovery = new Discovery(upstream, options.discoverTtlMs ?? 10_000);
  const memory = new SessionMemory(options.maxSessions ?? 10_000);
  const inputs = new InputBridge({ timeoutMs: options.inputTimeoutMs ?? 300_000, maxPending: options.maxPendingInputs ?? 10_000 });
  const log = deps.log.child({ translator: 'to-modern', route: deps.route });
  const ctx: ForwardContext = {
    upstream,
    memory,
    inputs,
    inFlight: new InFlight(),
    log,
    closing: closing.signal,
    maxMessageBytes,
    maxInputRounds: options.maxInputRounds ?? 8,
  };

  /** The session a request names: an answer instead when it names none (400) or none of ours (404). */
  function sessionOf(call: UpstreamCall): Session | Answer {
    const id = call.headers[HEADER.session];
    if (typeof id !== 'string' || id === '') return jsonAnswer(400, rpcFailure(null, -32000, 'Bad Request: Mcp-Session-Id header is required'));
    const session = readSession(id);
    if (!session || memory.ended(session.nonce)) return jsonAnswer(404, rpcFailure(null, -32001, 'Session not found'));
    return session;
  }

  async function initialize(call: UpstreamCall, m: { id: string | number; params?: unknown }): Promise<UpstreamResponse> {
    const { session, id } = openSession(m.params);
    const signal = AbortSignal.any([call.signal, closing.signal]);
    const found = await discovery.get(call, withEnvelope({}, session, undefined), signal);
    if (!found.ok) {
      const error = found.error ?? { code: -32603, message: `the upstream did not answer server/discover (HTTP ${found.status})` };
      return jsonAnswer(200, { jsonrpc: '2.0', id: m.id, error });
    }
    return jsonAnswer(200, rpcResult(m.id, initializeResult(found.result, session, deps.route)), { [HEADER.session]: id });
  }

  /** Requests a 2025 server answers itself, and everything else forwarded. */
  async function request(call: UpstreamCall, session: Session, m: { id: string | number; method: string; params?: unknown }): Promise<UpstreamResponse> {
    const params = isObject(m.params) ? m.params : {};
    switch (m.method) {
      case 'ping':
        // 2026 has no ping; the gateway is the peer the client can reach.
        return jsonAnswer(200, rpcResult(m.id, {}));
      case 'logging/setLevel': {
        if (typeof params.level !== 'string' || !LOG_LEVELS.has(params.level)) return jsonAnswer(200, rpcFailure(m.id, -32602, 'Invalid params: unknown log level'));
        memory.setLevel(session.nonce, params.level);
        return jsonAnswer(200, rpcResult(m.id, {}));
      }
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        if (typeof params.uri !== 'string') return jsonAnswer(200, rpcFailure(m.id, -32602, 'Invalid params: uri is required'));
        // Answered once an open GET stream listens with the new filter: from the answer on, updates flow.
        if (memory.subscribe(session.nonce, params.uri, m.method === 'resources/subscribe')) await memory.listen(session.nonce)?.refresh();
        return jsonAnswer(200, rpcResult(m.id, {}));
      }
      default:
        return forward(ctx, call, session, { id: m.id, method: m.method, params: m.params });
    }
  }

  /** A notification or a response from the client; false when it is a response nobody awaits. */
  function fromClient(session: Session, m: unknown): boolean {
    if (isNotification(m)) {
      // 2026 cancels by closing the request's stream: stop the run, which aborts its upstream request.
      const requestId = (m.params as { requestId?: unknown } | undefined)?.requestId;
      if (m.method === 'notifications/cancelled' && (typeof requestId === 'string' || typeof requestId === 'number')) {
        ctx.inFlight.cancel(session.nonce, requestId);
      }
      // Others (initialized, roots/list_changed…) have no 2026 counterpart.
      return true;
    }
    return isResponse(m) && inputs.accept(session, m as Record<string, unknown>);
  }

  async function post(call: UpstreamCall): Promise<UpstreamResponse> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(call.body?.toString('utf8') ?? '');
    } catch {
      return jsonAnswer(400, rpcFailure(null, -32700, 'Parse error'));
    }
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    if (messages.length === 0 || !messages.every((x) => isObject(x) && x.jsonrpc === '2.0')) {
      return jsonAnswer(400, rpcFailure(null, -32600, 'Invalid Request'));
    }
    const first = messages[0] as Record<string, unknown>;
    if (messages.length === 1 && isRequest(first) && first.method === 'initialize') return initialize(call, first);
    const session = sessionOf(call);
    if ('statusCode' in session) return session;
    if (messages.length === 1 && isRequest(first)) return request(call, session, first);
    if (messages.some((x) => isRequest(x))) {
      // Only 2025-03-26 allowed batches; 2026 has none, and each request needs its own upstream call.
      return jsonAnswer(400, rpcFailure(null, -32600, 'Invalid Request: batches carrying requests are not supported on this route'));
    }
    let unmatched = false;
    for (const x of messages) if (!fromClient(session, x)) unmatched = true;
    if (unmatched) return jsonAnswer(400, rpcFailure(null, -32600, 'Invalid Request: no request of this session awaits that response'));
    return emptyAnswer(202);
  }

  return {
    async dispatch(call: UpstreamCall): Promise<UpstreamResponse> {
      if (closing.signal.aborted) return jsonAnswer(503, rpcFailure(null, -32000, 'the gateway is shutting down'));
      if (call.method === 'POST') return post(call);
      if (call.method !== 'GET' && call.method !== 'DELETE') return emptyAnswer(405, { allow: 'GET, POST, DELETE' });
      const session = sessionOf(call);
      if ('statusCode' in session) return session;
      if (call.method === 'DELETE') {
        memory.end(session.nonce);
        return emptyAnswer(200);
      }
      return openListen({ upstream, discovery, memory, log, closing: closing.signal, maxMessageBytes }, call, session);
    },
    close(): void {
      closing.abort(new Error('the translator closed'));
      memory.clear();
    },
  };
}
