/**
 * Stage 5: the upstream call, through http-proxy-3, with the gateway's timeouts.
 *
 * The upstream sees exactly the headers the exchange decided on: the client's minus hop-by-hop headers
 * and credentials (exchange.ts), minus anything posing as a gateway-owned header, plus the upstream's
 * own credential and signed identity. Never retried: a POST may be a tool call with side effects.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { PRINCIPAL } from '../contract.ts';
import { coreRefusal } from '../errors.ts';
import { describeNetError } from '../net-error.ts';
import type { ExchangeRun, TimeoutKind } from '../proxy.ts';
import type { InProcessUpstream, UpstreamTarget } from '../runtime.ts';
import { onUpstreamResponse } from './response.ts';

/**
 * Never let a client set these upstream: the gateway owns every `x-mcp-gateway-*` header (signed
 * identity) and whatever prefix an upstream's `identity.headerPrefix` names.
 */
const GATEWAY_HEADER_PREFIX = 'x-mcp-gateway-';

/** Why an in-process upstream's signal aborts: the exchange ended (answered, timed out, or the client left). */
const EXCHANGE_ENDED = new Error('the exchange ended');

export function callUpstream(run: ExchangeRun, translator?: InProcessUpstream): void {
  const { upstream, x } = run;
  const headers = x.upstreamHeaders;
  for (const h of Object.keys(headers)) {
    if (h.startsWith(GATEWAY_HEADER_PREFIX) || (upstream.identityPrefix && h.startsWith(upstream.identityPrefix))) delete headers[h];
  }
  // Parsed bodies must arrive uncompressed; SSE must never be compressed.
  headers['accept-encoding'] = 'identity';
  headers['x-request-id'] = x.id;
  Object.assign(headers, upstream.requestHeaders(x.get(PRINCIPAL)));
  // Traced: the upstream's traceparent names the gateway's call span (the body's `_meta` one too).
  if (run.trace) run.body = run.trace.upstreamStart(headers, run.body);
  if (run.body) {
    headers['content-length'] = String(run.body.length);
    delete headers['transfer-encoding'];
  }
  // http-proxy-3 copies req.headers; give it exactly what the upstream may see.
  (run.req as { headers: IncomingMessage['headers'] }).headers = headers;
  run.upstreamSentAt = process.hrtime.bigint();
  const t = upstream.timeouts;
  if (t.total > 0) run.after(t.total, () => onTimeout(run, 'total'));
  const legacyPost = run.legacySessionId ? run.route.config.legacyPostTimeout : 0;
  const firstByte = legacyPost > 0 ? (t.firstByte > 0 ? Math.min(t.firstByte, legacyPost) : legacyPost) : t.firstByte;
  if (firstByte > 0) run.after(firstByte, () => { if (!run.res.headersSent) onTimeout(run, 'firstByte'); });

  if (translator) return dispatchInProcess(run, translator);
  if (upstream.inProcess) return dispatchInProcess(run, upstream.inProcess);
  proxyToUpstream(run, false);
}

function proxyToUpstream(run: ExchangeRun, retry: boolean): void {
  const { upstream } = run;
  run.env.proxy.web(run.req, run.res, {
    target: upstream.origin + run.upstreamPathAndQuery,
    ignorePath: true,
    changeOrigin: true,
    xfwd: true,
    selfHandleResponse: true,
    agent: upstream.agent,
    buffer: run.body ? bodySource(run.body) : undefined,
  }, (err) => {
    const e = err as NodeJS.ErrnoException;
    // A kept-alive connection the upstream closed while idle fails the first request written to it,
    // which the upstream never read: sending it again on a new connection is what Node's documentation
    // prescribes, and is safe even for a POST (it cannot have run). Once, and only then.
    if (!retry && run.upstreamReq?.reusedSocket && STALE_SOCKET.has(e.code ?? '') && !run.upstreamAnswered && !run.res.headersSent && !run.finished && !run.timedOut) {
      run.upstreamReq = undefined;
      return proxyToUpstream(run, true);
    }
    onUpstreamError(run, e);
  });
}

/** Errors of a write on a connection the peer had already closed. */
const STALE_SOCKET = new Set(['ECONNRESET', 'EPIPE']);

/** An upstream served in this process: the same stages before and after, no HTTP hop in between. */
function dispatchInProcess(run: ExchangeRun, inProcess: InProcessUpstream): void {
  const aborter = new AbortController();
  // A fixed reason: `abort()` without one builds a DOMException (and its stack) per exchange.
  run.cleanups.push(() => aborter.abort(EXCHANGE_ENDED));
  const call = {
    method: run.req.method ?? 'GET',
    pathAndQuery: run.upstreamPathAndQuery,
    headers: run.x.upstreamHeaders,
    body: run.body,
    principal: run.x.get(PRINCIPAL),
    signal: aborter.signal,
  };
  Promise.resolve()
    .then(() => inProcess.dispatch(call))
    .then(
      (res) => {
        if (run.finished || run.timedOut) return void res.destroy();
        run.trace?.upstreamResponse(res);
        onUpstreamResponse(run, res as unknown as IncomingMessage);
      },
      (err: unknown) => onUpstreamError(run, err instanceof Error ? err : new Error(String(err))),
    );
}

export function onUpstreamRequest(run: ExchangeRun, proxyReq: ClientRequest): void {
  run.upstreamReq = proxyReq;
  const connect = run.upstream.timeouts.connect;
  const socket = proxyReq.socket;
  if (connect > 0 && socket && (socket as { connecting?: boolean }).connecting) {
    const timer = run.after(connect, () => onTimeout(run, 'connect'));
    socket.once('connect', () => clearTimeout(timer));
  }
}

export function onTimeout(run: ExchangeRun, kind: TimeoutKind): void {
  if (run.finished) return;
  run.timedOut = kind;
  run.env.observer.upstreamError?.({ upstream: run.upstream.name, kind: 'timeout' });
  run.upstreamReq?.destroy();
  if (!run.res.headersSent) {
    run.refuse(coreRefusal('GW_ERR_UPSTREAM_TIMEOUT', timeoutMessage(kind, run.upstream)));
  } else if (run.streamed) {
    // An event stream ends cleanly between events; the client re-issues or reconnects.
    run.res.end();
  } else {
    // Any other body cut short must look cut short.
    run.res.destroy();
  }
}

export function onUpstreamError(run: ExchangeRun, err: NodeJS.ErrnoException): void {
  run.trace?.upstreamFailed(err.code === 'ECONNRESET' ? 'reset' : (err.code ?? 'error'), err.message);
  if (run.finished || run.res.headersSent) {
    // The answer was under way: break it off rather than let a truncated body look complete.
    if (!run.res.writableEnded) run.res.destroy();
    return;
  }
  if (run.timedOut) return;
  // (req.destroyed is true once its body was read: only the response tells whether the client left.)
  if (run.res.destroyed) return;
  run.env.observer.upstreamError?.({ upstream: run.upstream.name, kind: err.code === 'ECONNRESET' ? 'reset' : 'unreachable' });
  // (A dual-stack name's AggregateError has an empty message: the causes carry code and text.)
  const cause = describeNetError(err);
  run.x.log.warn({ error: cause, upstream: run.upstream.name }, 'upstream unreachable');
  run.refuse(coreRefusal('GW_ERR_UPSTREAM_UNREACHABLE',
    `the upstream "${run.upstream.name}" could not be reached (${cause.code ?? cause.message}); try again later`));
}

/**
 * The already-read request body as http-proxy-3's `buffer` option. The proxy only ever calls
 * `buffer.pipe(upstreamRequest)`, so a one-write source does the job of a Readable without one being
 * built per request.
 */
function bodySource(body: Buffer): Readable {
  return { pipe: (dest: NodeJS.WritableStream) => dest.end(body) } as unknown as Readable;
}

function timeoutMessage(kind: TimeoutKind, upstream: UpstreamTarget): string {
  const what: Record<TimeoutKind, string> = {
    connect: 'connecting to', firstByte: 'waiting for the first byte from', total: 'the whole exchange with', idle: 'silence from',
  };
  return `timed out ${what[kind]} the upstream "${upstream.name}" (timeouts.${kind}); the call may still run upstream`;
}
