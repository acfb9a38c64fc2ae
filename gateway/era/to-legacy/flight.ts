/**
 * A client request forwarded to the upstream, and the upstream's answer read back as a 2026 answer.
 *
 * A `Flight` is one upstream request: the session it went out on, the id the translator gave it (ids
 * are per session, and one session carries many requests of a principal, so the client's id cannot be
 * reused), and the stream its answer comes on. An `Asker` is the client exchange the flight answers
 * right now: the original request, or, after an `input_required`, the client's retry of it, which has
 * its own id and progress token. `pump` reads the flight's stream for its asker:
 *
 * - its response → the asker's final answer, in 2026 shape;
 * - progress for the flight's token → the asker's progress token (dropped when it asked for none);
 * - log messages → only at or above the asker's `io.modelcontextprotocol/logLevel`, none without it;
 * - a server request (elicitation, sampling, roots) → the flight is parked and the asker answered
 *   `input_required` (mrtr.ts); the retry resumes this same stream;
 * - anything else (list changes and the like, which belong to listen streams) → dropped.
 *
 * A client that closes its stream cancels the request (2026's only cancellation on HTTP): the
 * translator tells the upstream with `notifications/cancelled`, as a 2025 client would.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Principal } from '../../contract.ts';
import { coreRefusal } from '../../errors.ts';
import { idKey, isNotification, isRequest, isResponse } from '../../jsonrpc.ts';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { ownerOf } from '../../session-seal.ts';
import { wholeResponse } from '../../stdio/response.ts';
import { MRTR_METHODS } from '../versions.ts';
import { ClientAnswer } from './client-answer.ts';
import { sessionGone, type LegacySession, type SessionPool } from './sessions.ts';
import type { ToolHeaders } from '../tool-headers.ts';
import { legacyParams, logRank, modernError, modernResult, paramsOf, type ClientContext, type Json, type RpcId } from './translate.ts';
import { isEventStream, readBody } from '../upstream-read.ts';
import { MessageReader, NOT_READY } from './wire.ts';

export interface Flight {
  readonly session: LegacySession;
  readonly upstreamId: number;
  readonly reader: MessageReader;
  readonly abort: AbortController;
  readonly method: string;
  /** `params.name` or `params.uri`: a retry must name the same thing. */
  readonly name: string | undefined;
  /** The token the upstream was given, when the client asked for progress. */
  readonly progressToken: number | undefined;
  readonly streamed: boolean;
  done: boolean;
}

/** The client exchange a flight answers now. */
export interface Asker {
  id: RpcId;
  progressToken: RpcId | undefined;
  logRank: number | undefined;
  principal: Principal | undefined;
  signal: AbortSignal;
}

/** A server request waiting for the client's answer, under the key it has in `inputRequests`. */
export interface InputRequest {
  key: string;
  serverId: RpcId;
  method: string;
  params: unknown;
}

export interface FlightEnv {
  pool: SessionPool;
  /** Where the `x-mcp-header` declarations of listed tools are kept (the route's upstream's). */
  tools?: ToolHeaders;
  log: Logger;
  ttlMs: number;
  maxMessageBytes: number;
  /** Parks a flight whose upstream asks for input; returns the sealed `requestState`. */
  park(flight: Flight, requests: InputRequest[], principal: Principal | undefined): string;
  /** Flights being read for a client, by `askerKey`: what a client's `notifications/cancelled` can name. */
  active: Map<string, Flight>;
}

/** A client request's key among all callers' (ids are only unique per client). */
export function askerKey(principal: Principal | undefined, id: RpcId): string {
  return `${ownerOf(principal).toString('hex')}:${idKey(id)}`;
}

/** What can be asked of a client by `input_required`; anything else it is never asked. */
const INPUT_METHODS: ReadonlySet<string> = new Set(['elicitation/create', 'sampling/createMessage', 'roots/list']);

/** Where `params.name` or `params.uri` names what a request is about. */
export function nameOf(params: Json): string | undefined {
  const n = params.name ?? params.uri;
  return typeof n === 'string' ? n : undefined;
}

/**
 * Forwards a request on the caller's session, on a new one if the upstream no longer knows it (once:
 * a second "gone" is the upstream's answer, passed on). Resolves with the client's answer once its
 * head is decided; the rest streams.
 */
export async function forward(env: FlightEnv, call: UpstreamCall, message: { id: RpcId; method: string; params?: unknown }, client: ClientContext): Promise<UpstreamResponse> {
  for (let attempt = 0; ; attempt++) {
    const session = await env.pool.acquire(call, client);
    const started = await start(env, session, call.headers, message, client, attempt > 0);
    if (started === 'gone') {
      env.pool.drop(session);
      continue;
    }
    if (!('reader' in started)) return started;
    const answer = new ClientAnswer(started.streamed);
    const asker: Asker = { id: message.id, progressToken: client.progressToken, logRank: client.logRank, principal: call.principal, signal: call.signal };
    void pump(env, started, asker, answer);
    return answer.response;
  }
}

async function start(env: FlightEnv, session: LegacySession, headers: IncomingHttpHeaders, message: { id: RpcId; method: string; params?: unknown }, client: ClientContext, lastTry: boolean): Promise<Flight | UpstreamResponse | 'gone'> {
  if (client.logRank !== undefined) {
    await session.ensureLogLevel(client.logRank, headers).catch((err: Error) => {
      // Log messages are best effort; the request itself must not fail over them.
      env.log.debug({ err: err.message }, 'logging/setLevel upstream failed');
    });
  }
  const upstreamId = session.nextId();
  const params = paramsOf(message);
  const progressToken = client.progressToken !== undefined ? upstreamId : undefined;
  const body: Json = { jsonrpc: '2.0', id: upstreamId, method: message.method };
  const legacy = legacyParams(params, progressToken);
  if (legacy !== undefined) body.params = legacy;
  const abort = new AbortController();
  const res = await session.send('post', body, abort.signal, headers);
  if (res.statusCode !== 200) {
    const text = (await readBody(res, env.maxMessageBytes)).toString('utf8');
    if (!lastTry && sessionGone(res.statusCode, text)) return 'gone';
    return passOn(res, text, upstreamId, message);
  }
  session.holds++;
  return {
    session, upstreamId, abort, progressToken,
    reader: new MessageReader(res, env.maxMessageBytes),
    method: message.method,
    name: nameOf(params),
    streamed: isEventStream(res),
    done: false,
  };
}

/** An HTTP error of the upstream, passed on with the client's id in place of the translator's. */
function passOn(res: UpstreamResponse, text: string, upstreamId: number, message: { id: RpcId; method: string }): UpstreamResponse {
  let body = text;
  try {
    const m = JSON.parse(text) as Json;
    if (m && typeof m === 'object' && 'error' in m) {
      body = JSON.stringify({ jsonrpc: '2.0', id: m.id === upstreamId || m.id == null ? message.id : m.id, error: modernError(message.method, m.error) });
    }
  } catch {
    // Not JSON: passed on as it is.
  }
  const type = res.headers['content-type'];
  return wholeResponse(res.statusCode, body, type ? { 'content-type': type } : {});
}

/** Reads the flight's stream for `asker` until its answer, an `input_required`, or its end. */
export async function pump(env: FlightEnv, flight: Flight, asker: Asker, answer: ClientAnswer): Promise<void> {
  const onAbort = () => {
    if (!answer.finished) cancel(env, flight, 'the client closed its stream');
  };
  asker.signal.addEventListener('abort', onAbort, { once: true });
  if (asker.signal.aborted) onAbort();
  const key = askerKey(asker.principal, asker.id);
  env.active.set(key, flight);
  try {
    for (;;) {
      await answer.room();
      const m = await flight.reader.next();
      if (flight.done) return answer.fail(coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', `${flight.method} was cancelled`), asker.id);
      if (m === undefined) {
        answer.fail(coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream ended its answer to ${flight.method} without one`), asker.id);
        return finish(flight);
      }
      if (isResponse(m)) {
        const r = m as { id?: unknown; result?: unknown; error?: unknown };
        if (r.id !== flight.upstreamId) continue;
        if (r.error === undefined && flight.method === 'tools/list') env.tools?.learn(r.result);
        answer.final(r.error !== undefined
          ? { jsonrpc: '2.0', id: asker.id, error: modernError(flight.method, r.error) }
          : { jsonrpc: '2.0', id: asker.id, result: modernResult(flight.method, r.result, hints(env, flight.session)) });
        return finish(flight);
      }
      if (isRequest(m)) {
        const requests = await gather(env, flight, m);
        if (requests.length === 0) continue;
        const requestState = env.park(flight, requests, asker.principal);
        answer.final({ jsonrpc: '2.0', id: asker.id, result: inputRequired(env, flight, requests, requestState) });
        return;
      }
      if (isNotification(m)) {
        const note = forAsker(flight, asker, m as { method: string; params?: unknown });
        if (note) answer.event(note);
      }
    }
  } catch (err) {
    // Cancelled (the reader was closed under it), or the upstream broke off: either way the client's
    // answer ends here, as a refusal if nothing was sent yet, else as a cut-off stream.
    answer.fail(coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream's answer to ${flight.method} broke off`), asker.id);
    if (flight.done) return;
    env.log.debug({ err: (err as Error).message, method: flight.method }, 'upstream answer broke off');
    cancel(env, flight, 'the answer broke off');
  } finally {
    asker.signal.removeEventListener('abort', onAbort);
    if (env.active.get(key) === flight) env.active.delete(key);
  }
}

export function hints(env: FlightEnv, session: LegacySession) {
  return { serverInfo: session.server.serverInfo, ttlMs: env.ttlMs };
}

export function inputRequired(env: FlightEnv, flight: Flight, requests: readonly InputRequest[], requestState: string): Json {
  const inputRequests: Json = {};
  for (const r of requests) inputRequests[r.key] = r.params === undefined ? { method: r.method } : { method: r.method, params: r.params };
  const result = modernResult('', { resultType: 'input_required', inputRequests, requestState }, hints(env, flight.session));
  return result;
}

/**
 * The server requests that came together with `first`, as input requests. Requests a 2026 client
 * cannot be asked (anything but elicitation, sampling and roots, or asked during a method that cannot
 * answer `input_required`) are answered upstream as a client without that feature would answer them.
 */
async function gather(env: FlightEnv, flight: Flight, first: unknown): Promise<InputRequest[]> {
  const out: InputRequest[] = [];
  let m: unknown = first;
  for (;;) {
    const req = m as { id: RpcId; method: string; params?: unknown };
    if (req.method === 'ping') {
      void flight.session.post({ jsonrpc: '2.0', id: req.id, result: {} }).catch(() => {});
    } else if (!INPUT_METHODS.has(req.method) || !MRTR_METHODS.has(flight.method)) {
      void flight.session.post({ jsonrpc: '2.0', id: req.id, error: { code: -32601, message: 'Method not found' } }).catch(() => {});
    } else {
      out.push({ key: `input-${String(req.id)}`, serverId: req.id, method: req.method, params: req.params });
    }
    m = await flight.reader.nextReady();
    if (m === NOT_READY || m === undefined) return out;
    if (!isRequest(m)) {
      flight.reader.unshift(m);
      return out;
    }
  }
}

/** A notification of the flight's stream as the asker gets it, or undefined when it is not theirs. */
function forAsker(flight: Flight, asker: Asker, note: { method: string; params?: unknown }): Json | undefined {
  const params = paramsOf(note);
  if (note.method === 'notifications/progress') {
    if (asker.progressToken === undefined || params.progressToken !== flight.progressToken) return undefined;
    return { jsonrpc: '2.0', method: note.method, params: { ...params, progressToken: asker.progressToken } };
  }
  if (note.method === 'notifications/message') {
    const rank = logRank(params.level);
    if (asker.logRank === undefined || rank === undefined || rank < asker.logRank) return undefined;
    return { jsonrpc: '2.0', method: note.method, params };
  }
  return undefined;
}

/** The flight got its answer: the rest of the stream is read and dropped. */
function finish(flight: Flight): void {
  if (flight.done) return;
  flight.done = true;
  flight.session.holds--;
  flight.reader.discardRest();
}

/** Abandons a flight: the upstream is told (a 2025 server does not take a closed stream as cancellation). */
export function cancel(env: FlightEnv, flight: Flight, reason: string): void {
  if (flight.done) return;
  flight.done = true;
  flight.session.holds--;
  flight.abort.abort();
  flight.reader.close();
  if (flight.session.ended) return;
  flight.session.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: flight.upstreamId, reason } }).catch((err: Error) => {
    env.log.debug({ err: err.message }, 'notifications/cancelled upstream failed');
  });
}
