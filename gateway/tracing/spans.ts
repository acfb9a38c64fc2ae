/**
 * The spans of one exchange. Created only when tracing is configured (setup.ts builds `Tracing`); with
 * tracing off `ExchangeRun.trace` is undefined and every hook point is a single `?.` on it.
 *
 *   <mcp.method.name> [<tool|prompt>]   SERVER, the whole exchange (or `<HTTP method> <route path>`)
 *     request hooks                     INTERNAL, stage 1 (when the route has request hooks)
 *     request messages                  INTERNAL, stage 4 message hooks on a JSON body
 *     <HTTP method> <upstream>          CLIENT, from the call to the end of the upstream's body
 *     response hooks                    INTERNAL, stage 6 head hooks
 *     response messages                 INTERNAL, message hooks on a JSON answer (not per SSE event)
 *
 * The exchange span is opened once the body has been read, not when the exchange starts: a request
 * without a `traceparent` header may carry one in `params._meta`, and a span's parent cannot change
 * after it is created. Stages that end before that are kept as timings and emitted once it exists, with
 * their real start and end times.
 *
 * Nothing here imports OpenTelemetry at run time: the API module comes from setup.ts, loaded lazily.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import type { W3CTraceContextPropagator } from '@opentelemetry/core';
import { Key, PRINCIPAL } from '../contract.ts';
import type { Refusal } from '../errors.ts';
import type { ExchangeRun } from '../proxy.ts';
import { readMcpRequest, replaceMetaTraceparent, type McpRequestInfo } from './mcp-request.ts';
import { A } from './attributes.ts';

type Api = typeof import('@opentelemetry/api');

/** The exchange's trace, for code that only has the Exchange (pipeline, inspect loop). */
export const EXCHANGE_TRACE = new Key<ExchangeTrace>('mcp-gateway.trace');

/** The running tracer: one per gateway, built by setup.ts. */
export class Tracing {
  readonly api: Api;
  readonly tracer: Tracer;
  readonly propagator: W3CTraceContextPropagator;
  readonly #shutdown: () => Promise<void>;

  constructor(init: { api: Api; tracer: Tracer; propagator: W3CTraceContextPropagator; shutdown: () => Promise<void> }) {
    this.api = init.api;
    this.tracer = init.tracer;
    this.propagator = init.propagator;
    this.#shutdown = init.shutdown;
  }

  begin(run: ExchangeRun): ExchangeTrace {
    const trace = new ExchangeTrace(this, run);
    run.x.set(EXCHANGE_TRACE, trace);
    return trace;
  }

  /** Exports what is buffered and stops the exporter (gateway close). */
  shutdown(): Promise<void> {
    return this.#shutdown();
  }

  /** The context a W3C carrier names, or undefined when it names none (absent or malformed). */
  extract(traceparent: string | undefined, tracestate: string | undefined): Context | undefined {
    if (traceparent === undefined) return undefined;
    const { api } = this;
    const ctx = this.propagator.extract(api.ROOT_CONTEXT, { traceparent, tracestate }, api.defaultTextMapGetter);
    return api.trace.getSpanContext(ctx) ? ctx : undefined;
  }
}

interface PendingStage { name: string; start: number; end: number; refusal?: Refusal }

export class ExchangeTrace {
  readonly #t: Tracing;
  readonly #run: ExchangeRun;
  readonly #start = performance.now();
  /** The client's trace headers, kept before stage 5 hands `req.headers` to the proxy. */
  readonly #traceparent: string | undefined;
  readonly #tracestate: string | undefined;
  #span: Span | undefined;
  #ctx: Context | undefined;
  #pending: PendingStage[] | undefined;
  #info: McpRequestInfo | undefined;
  #upstream: Span | undefined;

  constructor(t: Tracing, run: ExchangeRun) {
    this.#t = t;
    this.#run = run;
    const h = run.req.headers;
    this.#traceparent = single(h.traceparent);
    this.#tracestate = single(h.tracestate);
  }

  /** Opens the exchange span (after stage 2; at the latest when the exchange ends). Idempotent. */
  open(): void {
    if (this.#span) return;
    const { api, tracer } = this.#t;
    const run = this.#run;
    const info = (this.#info = readMcpRequest(run.x.method, run.req.headers, run.body));
    // The header is the nearer parent: an instrumented client's HTTP span is a child of its MCP span,
    // whose context is what `_meta` carries.
    const parent = this.#t.extract(this.#traceparent, this.#tracestate)
      ?? this.#t.extract(info.metaTraceparent, info.metaTracestate)
      ?? api.ROOT_CONTEXT;
    const route = run.route.info;
    const attributes: Attributes = {
      [A.httpMethod]: run.x.method,
      [A.httpRoute]: route.path,
      [A.urlPath]: run.x.url.pathname,
      [A.networkProtocol]: 'http',
      [A.route]: route.name,
      [A.listener]: route.listener.name,
      [A.upstream]: run.upstream.name,
      [A.exchangeId]: run.x.id,
    };
    const client = run.req.socket?.remoteAddress;
    if (client) attributes[A.clientAddress] = client;
    if (info.method) attributes[A.mcpMethod] = info.method;
    if (info.tool) attributes[A.toolName] = info.tool;
    if (info.prompt) attributes[A.promptName] = info.prompt;
    if (info.resourceUri) attributes[A.resourceUri] = info.resourceUri;
    if (info.requestId) attributes[A.requestId] = info.requestId;
    if (info.protocolVersion) attributes[A.protocolVersion] = info.protocolVersion;
    // MCP semantic conventions: `{mcp.method.name} {target}`, the target a tool or prompt name (never
    // a resource URI: unbounded). Anything else is named as HTTP names server spans.
    const name = info.method ? (info.tool ?? info.prompt ? `${info.method} ${info.tool ?? info.prompt}` : info.method) : `${run.x.method} ${route.path}`;
    this.#span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, startTime: this.#start, attributes }, parent);
    this.#ctx = api.trace.setSpan(parent, this.#span);
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending) for (const p of pending) this.#emit(p);
  }

  /** A stage that began at `start` (performance.now()) has ended now. */
  stage(name: string, start: number, refusal?: Refusal): void {
    const p: PendingStage = { name, start, end: performance.now(), refusal };
    if (this.#span) this.#emit(p);
    else (this.#pending ??= []).push(p);
  }

  /** Times an async stage (pipeline hooks) and passes its refusal, if any, through. */
  timed(name: string, run: () => Promise<Refusal | undefined>): Promise<Refusal | undefined> {
    const start = performance.now();
    return run().then((refusal) => {
      this.stage(name, start, refusal);
      return refusal;
    });
  }

  /**
   * Stage 5 is about to call the upstream: its CLIENT span starts, and the upstream's `traceparent`
   * (header, and `_meta` where the client put one there) names it. Returns the body to send.
   */
  upstreamStart(headers: IncomingHttpHeaders, body: Buffer | undefined): Buffer | undefined {
    this.open();
    const { api, tracer, propagator } = this.#t;
    const run = this.#run;
    const method = run.req.method ?? 'GET';
    const upstream = run.upstream;
    const attributes: Attributes = { [A.httpMethod]: method, [A.upstream]: upstream.name, [A.upstreamKind]: upstream.kind };
    if (upstream.kind === 'http') {
      const origin = new URL(upstream.origin);
      attributes[A.serverAddress] = origin.hostname;
      attributes[A.serverPort] = Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80);
      // Path only: an upstream's query may carry a credential or a session.
      attributes[A.urlFull] = upstream.origin + run.upstreamPathAndQuery.split('?', 1)[0];
    }
    const span = (this.#upstream = tracer.startSpan(`${method} ${upstream.name}`, { kind: api.SpanKind.CLIENT, attributes }, this.#ctx));
    const carrier: Record<string, string> = {};
    propagator.inject(api.trace.setSpan(this.#ctx!, span), carrier, api.defaultTextMapSetter);
    if (carrier.traceparent === undefined) return body;
    headers.traceparent = carrier.traceparent;
    if (carrier.tracestate !== undefined) headers.tracestate = carrier.tracestate;
    const previous = this.#info?.metaTraceparent;
    return (previous && body && replaceMetaTraceparent(body, previous, carrier.traceparent)) || body;
  }

  /** The upstream's response head arrived; its span ends with the body. */
  upstreamResponse(res: { statusCode?: number; once(event: 'close', fn: () => void): unknown }): void {
    const span = this.#upstream;
    if (!span) return;
    const status = res.statusCode ?? 0;
    span.setAttribute(A.httpStatus, status);
    span.addEvent('response head');
    if (status >= 400) {
      span.setAttribute(A.errorType, String(status));
      span.setStatus({ code: this.#t.api.SpanStatusCode.ERROR });
    }
    res.once('close', () => this.#endUpstream());
  }

  /** The upstream could not be reached, reset the connection or timed out. */
  upstreamFailed(kind: string, message?: string): void {
    const span = this.#upstream;
    if (!span || !span.isRecording()) return;
    span.setAttribute(A.errorType, kind);
    span.setStatus({ code: this.#t.api.SpanStatusCode.ERROR, message });
    this.#endUpstream();
  }

  /** The exchange ended (ExchangeRun.finish): the outcome goes on the span, and every span ends. */
  end(): void {
    this.open();
    const run = this.#run;
    const o = run.outcome;
    const span = this.#span!;
    if (run.timedOut) this.upstreamFailed('timeout', `timeouts.${run.timedOut}`);
    this.#endUpstream();
    if (o.status) span.setAttribute(A.httpStatus, o.status);
    const tenant = run.x.get(PRINCIPAL)?.tenant;
    if (tenant) span.setAttribute(A.tenant, tenant);
    if (run.x.sessionId) span.setAttribute(A.sessionId, run.x.sessionId);
    if (o.refusal) {
      span.setAttribute(A.refusalCode, o.refusal.code);
      span.setAttribute(A.refusalPlugin, o.refusal.plugin ?? 'gateway');
    }
    if (o.messageRefusals.length > 0) span.setAttribute(A.messageRefusals, o.messageRefusals.map((r) => r.code));
    if (o.upstreamMs !== undefined) span.setAttribute(A.upstreamMs, o.upstreamMs);
    span.setAttribute(A.bytesOut, o.bytesOut);
    // HTTP server spans: only 5xx is the server's error; 4xx is the client's.
    if (o.status >= 500 || o.status === 0 || o.error) {
      span.setAttribute(A.errorType, o.refusal?.code ?? (o.status === 0 ? 'client_closed' : String(o.status)));
      span.setStatus({ code: this.#t.api.SpanStatusCode.ERROR, message: o.error?.message });
    }
    span.end();
  }

  #endUpstream(): void {
    const span = this.#upstream;
    this.#upstream = undefined;
    span?.end();
  }

  #emit(p: PendingStage): void {
    const { api, tracer } = this.#t;
    const span = tracer.startSpan(p.name, { kind: api.SpanKind.INTERNAL, startTime: p.start }, this.#ctx);
    if (p.refusal) {
      span.setAttribute(A.refusalCode, p.refusal.code);
      if (p.refusal.plugin) span.setAttribute(A.refusalPlugin, p.refusal.plugin);
      if (p.refusal.status >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR, message: p.refusal.message });
    }
    span.end(p.end);
  }
}

function single(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
