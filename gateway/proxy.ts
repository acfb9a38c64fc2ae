/**
 * One exchange through one route: the single place that fixes the order of the stages.
 *
 *   1. request hooks        (route order: the token plugin before jwt, jwt before anything tenant-aware)
 *   2. body                 (read under the route's size cap and `bodyTimeout`, after auth so strangers
 *                            cannot make us buffer)
 *   3. session              (open the sealed session id, check its owner; after 1 because the owner
 *                            check needs the verified principal)
 *   4. request messages     (decoded and inspected only when a plugin reads messages; refusals are
 *                            answered by the gateway and never forwarded)
 *   5. upstream call        (http-proxy-3; the client's credentials are never forwarded), or a
 *                            translator when the client's MCP era is not the upstream's (gateway/era/)
 *   6. response             (head hooks in reverse order, then the body: SSE event by event, JSON
 *                            decoded only when a plugin reads messages, anything else piped untouched,
 *                            or refused where a plugin should have read it)
 *   7. onDone               (always, once)
 *
 * Each stage lives in gateway/stages/; messages are decoded, inspected and re-encoded only through
 * gateway/messages/. This file holds the per-exchange state the stages share and the ways an exchange
 * ends: a refusal, a body the gateway wrote, or `finish`.
 */
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type httpProxy from 'http-proxy-3';
import type { Logger } from 'pino';
import { PRINCIPAL, type JSONRPCMessage, type JSONRPCRequest, type Outcome } from './contract.ts';
import { coreRefusal, sendRefusal, type JsonRpcId, type Refusal } from './errors.ts';
import { GatewayExchange } from './exchange.ts';
import { idOf } from './jsonrpc.ts';
import type { ExchangeCorrelation } from './messages/correlation.ts';
import type { Correlator, InspectScope } from './messages/inspect.ts';
import { messageRules, rulesApply, type MessageRules } from './era/message-rules.ts';
import { translatorFor } from './era/dispatch.ts';
import type { Pipeline } from './pipeline.ts';
import type { CompiledRoute, UpstreamTarget } from './runtime.ts';
import type { SessionSealer } from './session-seal.ts';
import type { SessionRegistry } from './sessions.ts';
import { readRequestBody } from './stages/request-body.ts';
import { inspectRequestBody } from './stages/request-messages.ts';
import { openSession } from './stages/session.ts';
import { callUpstream, onUpstreamError, onUpstreamRequest } from './stages/upstream-call.ts';
import { onUpstreamResponse } from './stages/response.ts';
import { parkUnanswered, sessionDeleted } from './stages/resume.ts';
import type { ExchangeTrace, Tracing } from './tracing/spans.ts';

/** What the gateway reports to metrics; every method is optional so tests can pass nothing. */
export interface ExchangeObserver {
  /** See metrics.ts `ExchangeDoneEvent` for what each time means. */
  exchangeDone?(e: {
    route: string; listener: string; method: string; status: number;
    gatewayMs?: number; upstreamMs?: number; streamed?: boolean; streamMs?: number; firstEventMs?: number;
  }): void;
  message?(e: { route: string; direction: 'request' | 'response'; method: string; tool?: string }): void;
  refusal?(e: { route: string; plugin: string; code: string; tenant?: string }): void;
  upstreamError?(e: { upstream: string; kind: 'unreachable' | 'timeout' | 'reset' | 'too_large' | 'auth' }): void;
  streamOpened?(route: string): void;
  streamClosed?(route: string): void;
}

/** Services every exchange uses, owned by the running gateway. */
export interface ProxyEnv {
  proxy: httpProxy.ProxyServer;
  sealer: SessionSealer;
  sessions: SessionRegistry;
  observer: ExchangeObserver;
  log: Logger;
  /** Set only when gateway.yaml configures tracing (tracing/setup.ts). */
  tracing?: Tracing;
}

/**
 * The run a request belongs to, for http-proxy-3's events (which only hand back `req`). A symbol
 * property rather than a WeakMap: ephemeron entries for millions of short-lived requests are real
 * garbage-collector work.
 */
const RUN = Symbol('mcp-gateway.run');
type WithRun = IncomingMessage & { [RUN]?: ExchangeRun };
const runOf = (req: unknown): ExchangeRun | undefined => (req as WithRun)[RUN];

/** Wires http-proxy-3's events to the run that started each request. Call once per proxy server. */
export function attachProxyEvents(proxy: httpProxy.ProxyServer): void {
  proxy.on('proxyReq', (proxyReq, req) => {
    const run = runOf(req);
    if (run) onUpstreamRequest(run, proxyReq);
  });
  proxy.on('proxyRes', (proxyRes, req) => {
    const run = runOf(req);
    if (run) {
      run.trace?.upstreamResponse(proxyRes);
      onUpstreamResponse(run, proxyRes);
    } else proxyRes.resume();
  });
  // http-proxy-3 throws when no error listener exists; errors are handled per call, this is a backstop.
  proxy.on('error', (err, req, res) => {
    const run = runOf(req);
    if (run) onUpstreamError(run, err as NodeJS.ErrnoException);
    else if (res && 'writeHead' in res) sendRefusal(res as ServerResponse, coreRefusal('GW_ERR_UPSTREAM_UNREACHABLE', 'upstream error'), null);
  });
}

export function handleExchange(route: CompiledRoute, req: IncomingMessage, res: ServerResponse, url: URL, env: ProxyEnv): Promise<void> {
  const run = new ExchangeRun(route, req, res, url, env);
  (req as WithRun)[RUN] = run;
  return run.run();
}

export type TimeoutKind = 'connect' | 'firstByte' | 'total' | 'idle';

/** One exchange's state, shared by the stages. */
export class ExchangeRun {
  readonly route: CompiledRoute;
  readonly pipeline: Pipeline;
  readonly upstream: UpstreamTarget;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly env: ProxyEnv;
  readonly x: GatewayExchange;
  /** This exchange's spans; undefined unless tracing is configured (tracing/spans.ts). */
  readonly trace: ExchangeTrace | undefined;

  /** The request body as received, then as re-encoded after the message hooks (POST only). */
  body: Buffer | undefined;
  /** The id of a request alone in its body, for error answers. */
  requestId: JsonRpcId = null;
  /** Where this exchange's requests wait for their answers (set in stage 4 when anything reads them). */
  correlator: Correlator | undefined;
  /** Released when the exchange ends: the ids it still held in its session. */
  correlation: ExchangeCorrelation | undefined;
  /** Answers the gateway made itself for refused elements of a batch; sent with the upstream's. */
  localAnswers: JSONRPCMessage[] = [];
  /** Legacy POST: the client-facing session id (the sealed endpoint). */
  legacySessionId: string | undefined;
  /** Upstream path and query, decided in stage 3 (a legacy POST's comes from its sealed endpoint). */
  upstreamPathAndQuery = '';
  /** Hash of the principal that owns this exchange's session. */
  owner: Buffer | undefined;

  outcome: Outcome = { status: 0, bytesIn: 0, bytesOut: 0, durationMs: 0, messageRefusals: [] };
  upstreamSentAt = 0n;
  /** Run once when the exchange ends: timers to clear, deadlines to cancel. */
  cleanups: Array<() => void> = [];
  upstreamReq: ClientRequest | undefined;
  /** The upstream's response head arrived (a failure after it is never retried). */
  upstreamAnswered = false;
  finished = false;
  streamed = false;
  /**
   * An SSE answer reached its normal end (sse-relay.ts): its upstream ended it, every request of its
   * POST was answered, or it is a GET stream (no last message: the client closing it is how it ends).
   * A client that hangs up then did not leave early.
   */
  streamComplete = false;
  /** Streams: when the first event reached the client, and the gateway's own share of that time. */
  firstEvent: { atMs: number; gatewayMs: number } | undefined;
  timedOut: TimeoutKind | undefined;
  /** The core's own message rules (request states, tool header declarations), built on first use. */
  #rules: MessageRules | undefined;

  constructor(route: CompiledRoute, req: IncomingMessage, res: ServerResponse, url: URL, env: ProxyEnv) {
    this.route = route;
    this.pipeline = route.pipeline;
    this.upstream = route.upstream;
    this.req = req;
    this.res = res;
    this.env = env;
    const id = typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].length <= 128
      ? req.headers['x-request-id']
      : randomUUID();
    this.x = new GatewayExchange({ id, route: route.info, req, url, log: env.log });
    this.trace = env.tracing?.begin(this);
    res.once('close', () => this.finish());
  }

  async run(): Promise<void> {
    try {
      // 1. Request hooks. (Each stage is skipped outright when it has nothing to do: an await per
      //    stage per request is measurable on a plugin-free route.)
      if (this.pipeline.hasRequestHooks) {
        const refused = await this.pipeline.request(this.x);
        if (refused) return this.refuse(refused);
      }
      // 2. Body: read, not parsed, so that any refusal from here on can carry the request's id.
      if (hasBody(this.req)) {
        const refused = await readRequestBody(this);
        if (refused) return this.refuse(refused);
      }
      // The body may name the trace's parent (`params._meta.traceparent`): the span opens now.
      this.trace?.open();
      // 3. Session: open the sealed id, check the owner.
      const sessionRefusal = openSession(this);
      if (sessionRefusal) return this.refuse(sessionRefusal);
      // 4. Request messages.
      if (this.body && this.req.method === 'POST') {
        const answered = await inspectRequestBody(this);
        if (answered) return;
      }
      // 5. Upstream call, or its translation when the client's era is not the upstream's; 6 starts
      //    when the response head arrives (stages/response.ts).
      const translator = translatorFor(this);
      callUpstream(this, translator instanceof Promise ? await translator : translator);
    } catch (err) {
      this.x.log.error({ err }, 'exchange failed');
      this.refuse(coreRefusal('GW_ERR_PLUGIN_FAILED', `the gateway failed while handling this request (exchange ${this.x.id})`));
    }
  }

  /** The inspect loop's view of this exchange, for one direction. */
  inspectScope(direction: 'request' | 'response', correlator = this.correlator): InspectScope {
    return {
      pipeline: this.pipeline,
      x: this.x,
      correlator,
      hooks: direction === 'request' ? this.pipeline.inspectsRequests : this.pipeline.inspectsResponses,
      rules: rulesApply(this) ? (this.#rules ??= messageRules(this)) : undefined,
      observe: this.env.observer.message ? (d, m, request) => this.observe(d, m, request) : undefined,
      noteRefusal: (m, r) => this.noteMessageRefusal(m, r),
    };
  }

  observe(direction: 'request' | 'response', m: JSONRPCMessage, request?: JSONRPCRequest): void {
    const method = (m as { method?: string }).method ?? request?.method ?? 'response';
    const params = ((m as { params?: { name?: unknown } }).params ?? request?.params) as { name?: unknown } | undefined;
    const tool = method === 'tools/call' && typeof params?.name === 'string' ? params.name : undefined;
    this.env.observer.message?.({ route: this.route.info.name, direction, method, tool });
  }

  noteMessageRefusal(m: unknown, r: Refusal): void {
    const method = (m as { method?: unknown } | undefined)?.method;
    this.outcome.messageRefusals.push({ id: idOf(m), method: typeof method === 'string' ? method : undefined, code: r.code, plugin: r.plugin, message: r.message });
    this.env.observer.refusal?.({ route: this.route.info.name, plugin: r.plugin ?? 'gateway', code: r.code, tenant: this.x.get(PRINCIPAL)?.tenant });
  }

  /** A timer cleared when the exchange ends. */
  after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(fn, ms);
    this.cleanups.push(() => clearTimeout(timer));
    return timer;
  }

  corsHeaders(): Record<string, string> {
    return this.route.corsHeaders(this.req.headers.origin);
  }

  /** Writes a whole response the gateway composed (status, headers, body) at once. */
  writeBody(status: number, headers: OutgoingHttpHeaders, body: string | Buffer): void {
    if (this.res.headersSent || this.res.destroyed) return;
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    this.res.writeHead(status, { ...headers, ...this.corsHeaders(), 'content-length': buf.length });
    this.outcome.status = status;
    this.outcome.bytesOut += buf.length;
    this.res.end(buf);
  }

  /**
   * Ends the exchange with a refusal. Once a response has started it cannot be replaced, only broken
   * off: the client must not mistake a cut answer for a complete one.
   */
  refuse(r: Refusal): void {
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    this.outcome.refusal = { code: r.code, plugin: r.plugin, message: r.message };
    this.outcome.status = r.status;
    this.env.observer.refusal?.({ route: this.route.info.name, plugin: r.plugin ?? 'gateway', code: r.code, tenant: this.x.get(PRINCIPAL)?.tenant });
    sendRefusal(this.res, r, this.requestId ?? loneIdOf(this.body), this.corsHeaders());
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const c of this.cleanups) c();
    // Answers still due may come on a resumed stream of the session (the client left, say).
    parkUnanswered(this);
    this.correlation?.release();
    // An unfinished upstream request dies with the exchange (the client went away, a timeout fired).
    // A finished one must not be touched: destroying it would close its keep-alive socket.
    if (this.upstreamReq && !this.res.writableFinished) this.upstreamReq.destroy();
    const o = this.outcome;
    if (!this.res.writableFinished && o.status !== 0 && !o.error && !this.streamComplete) {
      o.error = new Error('the client went away before the response was complete');
    }
    if (o.status === 0 && this.res.headersSent) o.status = this.res.statusCode;
    sessionDeleted(this);
    o.durationMs = Number(process.hrtime.bigint() - this.x.startedAt) / 1e6;
    this.pipeline.done(this.x, o);
    this.trace?.end();
    const base = { route: this.route.info.name, listener: this.route.info.listener.name, method: this.x.method, status: o.status, upstreamMs: o.upstreamMs };
    this.env.observer.exchangeDone?.(this.streamed
      // A stream's lifetime is not a latency: its gateway time is its share of the time to the first event.
      ? { ...base, streamed: true, streamMs: o.durationMs, firstEventMs: this.firstEvent?.atMs, gatewayMs: this.firstEvent?.gatewayMs }
      : { ...base, gatewayMs: o.durationMs - (o.upstreamMs ?? 0) });
  }
}

function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/** The id of a lone request in a body that was not otherwise decoded, for error answers. */
function loneIdOf(body: Buffer | undefined): JsonRpcId {
  if (!body || body.length === 0 || body.length > 1_000_000) return null;
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    return Array.isArray(v) ? null : idOf(v);
  } catch {
    return null;
  }
}
