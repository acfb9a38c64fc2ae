/**
 * The translator for a 2026-07-28 client in front of a 2025-era upstream.
 *
 * The client must not notice the upstream is 2025-era: every answer has the shape a 2026 server gives
 * (statuses, JSON or SSE, `resultType`, cache hints, server identity, `input_required`, listen
 * streams), and every call upstream has the shape a 2025 client makes (a session begun with
 * `initialize`, its id and version on every call, answers to server requests, a GET stream).
 *
 * Parts, one file each:
 * - sessions.ts  — upstream sessions per principal and capability set;
 * - flight.ts    — forwarding a request and reading its answer back;
 * - mrtr.ts      — server requests parked as `input_required`, resumed by the client's retry;
 * - listen.ts    — `subscriptions/listen` on the session's GET stream;
 * - translate.ts — the message rewriting itself, pure;
 * - wire.ts / client-answer.ts — the 2025 and 2026 sides of HTTP.
 */
import { coreRefusal } from '../../errors.ts';
import { isNotification, isRequest, isResponse } from '../../jsonrpc.ts';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { wholeResponse } from '../../stdio/response.ts';
import type { Translator, TranslatorDeps } from '../translation.ts';
import { accepted, json, refusal, rpcErrorResponse } from './client-answer.ts';
import { askerKey, cancel, forward, type Flight, type FlightEnv } from './flight.ts';
import { Listens } from './listen.ts';
import { ParkedFlights, retry } from './mrtr.ts';
import { SessionPool, UpstreamRefusedError } from './sessions.ts';
import { envelopeProblem } from './envelope.ts';
import { clientContextOf, discoverResult, paramsOf, type RpcId } from './translate.ts';
import { UpstreamTooLargeError } from '../upstream-read.ts';

export interface ToLegacyOptions {
  /** How long a request waiting for the client's answers (`input_required`) stays parked. Default 300000 (5 min). */
  parkedTtlMs?: number;
  /** Parked requests one principal may have; beyond it, its oldest is cancelled. Default 16. */
  maxParkedPerPrincipal?: number;
  /** Parked requests in all; beyond it, the oldest is cancelled. Default 10000. */
  maxParked?: number;
  /** Upstream sessions kept; beyond it, the least recently used is closed (DELETE). Default 1000. */
  maxSessions?: number;
  /** A session unused this long, with nothing open on it, is closed. 0: never. Default 1800000 (30 min). */
  sessionIdleMs?: number;
  /**
   * `ttlMs` on cacheable results (discover, lists, resources/read). A 2025 server gives no freshness
   * hint, so the default, 0, tells the client a result is stale at once.
   */
  cacheTtlMs?: number;
  /** Interval of the keep-alive comment on listen streams. 0: none. Default 15000. */
  keepAliveMs?: number;
  /** Largest upstream message (JSON body or SSE event). Default 64 MiB. */
  maxMessageBytes?: number;
  /** Unread bytes a listen stream may hold for a slow client before it is cut off. Default 4 MiB. */
  maxListenBufferBytes?: number;
  /** Deadline of the translator's own upstream calls (initialize, setLevel, subscribe, answers). Default 30000. */
  controlTimeoutMs?: number;
}

const MiB = 1024 * 1024;

export function createToLegacyTranslator(deps: TranslatorDeps, options: ToLegacyOptions = {}): Translator {
  const log = deps.log.child({ translator: 'to-legacy', route: deps.route });
  const maxMessageBytes = options.maxMessageBytes ?? 64 * MiB;
  const pool = new SessionPool(
    { port: deps.upstream, log, maxMessageBytes, controlTimeoutMs: options.controlTimeoutMs ?? 30_000 },
    { maxSessions: options.maxSessions ?? 1000, idleMs: options.sessionIdleMs ?? 1_800_000 },
  );
  const parked = new ParkedFlights({
    ttlMs: options.parkedTtlMs ?? 300_000,
    maxPerPrincipal: options.maxParkedPerPrincipal ?? 16,
    max: options.maxParked ?? 10_000,
  }, deps.state);
  const env: FlightEnv = {
    pool, log, maxMessageBytes,
    tools: deps.tools,
    ttlMs: options.cacheTtlMs ?? 0,
    park: (flight, requests, principal) => parked.park(flight, requests, principal),
    active: new Map<string, Flight>(),
  };
  parked.onCancel((flight, reason) => cancel(env, flight, reason));
  const listens = new Listens({
    pool, log, maxMessageBytes,
    keepAliveMs: options.keepAliveMs ?? 15_000,
    maxBufferedBytes: options.maxListenBufferBytes ?? 4 * MiB,
  });
  let closed = false;

  async function request(call: UpstreamCall, message: { id: RpcId; method: string; params?: unknown }): Promise<UpstreamResponse> {
    const params = paramsOf(message);
    // Here the gateway is the 2026 server the client talks to, so it refuses what a 2026 server must.
    const invalid = envelopeProblem(call, message, deps.tools);
    if (invalid) return rpcErrorResponse(invalid.status, message.id, invalid.code, invalid.message, invalid.data);
    const client = clientContextOf(params);
    switch (message.method) {
      case 'server/discover': {
        const session = await pool.acquire(call, client);
        return json(200, { jsonrpc: '2.0', id: message.id, result: discoverResult(session.server, env.ttlMs) });
      }
      case 'subscriptions/listen':
        return listens.listen(call, message, client);
      default:
        if (params.requestState !== undefined) return retry(env, parked, call, message, client);
        return forward(env, call, message, client);
    }
  }

  /**
   * A client notification. On 2026 HTTP, cancellation is closing the stream, but a client may still
   * send `notifications/cancelled`: it names the client's id, which the upstream never saw, so it
   * cancels the flight that id maps to. Others go to the caller's session, if there is one.
   */
  function notification(call: UpstreamCall, message: { method: string; params?: unknown }): UpstreamResponse {
    const params = paramsOf(message);
    if (message.method === 'notifications/cancelled') {
      const id = params.requestId;
      const flight = typeof id === 'string' || typeof id === 'number' ? env.active.get(askerKey(call.principal, id)) : undefined;
      if (flight) cancel(env, flight, typeof params.reason === 'string' ? params.reason : 'cancelled by the client');
      return accepted();
    }
    pool.peek(call, clientContextOf(params))?.post({ jsonrpc: '2.0', method: message.method, ...(message.params === undefined ? {} : { params: message.params }) }, call.headers)
      .catch((err: Error) => log.debug({ err: err.message }, 'forwarding a client notification failed'));
    return accepted();
  }

  async function dispatch(call: UpstreamCall): Promise<UpstreamResponse> {
    if (closed) return refusal(coreRefusal('GW_ERR_SHUTTING_DOWN', 'the translator is closed'), null);
    // A 2026 server has no GET stream and no sessions to DELETE.
    if (call.method !== 'POST') return wholeResponse(405, '', { allow: 'POST' });
    let message: unknown;
    try {
      message = JSON.parse((call.body ?? Buffer.alloc(0)).toString('utf8'));
    } catch {
      return rpcErrorResponse(400, null, -32700, 'Parse error');
    }
    if (isRequest(message)) {
      try {
        return await request(call, message as { id: RpcId; method: string; params?: unknown });
      } catch (err) {
        if (err instanceof UpstreamRefusedError || err instanceof UpstreamTooLargeError) {
          log.warn({ err: err.message }, 'the upstream could not serve a translated request');
          return refusal(coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', err.message), (message as { id: RpcId }).id);
        }
        throw err;
      }
    }
    if (isNotification(message)) return notification(call, message as { method: string; params?: unknown });
    // 2026 removed batches, and a 2026 client answers nothing (server requests became input_required).
    const why = Array.isArray(message) ? 'batches are not part of MCP 2026-07-28'
      : isResponse(message) ? 'a 2026-07-28 client sends no responses' : 'not a JSON-RPC request or notification';
    return rpcErrorResponse(400, null, -32600, `Invalid Request: ${why}`);
  }

  return {
    dispatch,
    close(): void {
      if (closed) return;
      closed = true;
      // Listen streams get their closing result and parked requests are cancelled while their
      // sessions still exist; then the sessions are DELETEd.
      listens.close();
      parked.close();
      for (const flight of [...env.active.values()]) cancel(env, flight, 'the gateway is closing');
      pool.close();
    },
  };
}
