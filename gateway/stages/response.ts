/**
 * Stage 6: the upstream's answer. Head hooks first (reverse order), then the body by its kind:
 *
 * - `text/event-stream`: relayed event by event (sse-relay.ts);
 * - JSON, where a plugin reads messages or the gateway has answers to add: buffered under
 *   `maxResponseBytes`, decoded, inspected, re-encoded only if changed;
 * - anything else on a route whose plugins read messages: refused, because passing a body no plugin
 *   could inspect would skip their filtering (an upstream answering `text/plain` must not be a way
 *   around tool-policy or graph-rewrite). Error statuses keep their status with the gateway's body;
 * - anything else: piped untouched.
 *
 * Once the head is sent an answer can only be finished or broken off: an upstream that dies mid-body
 * makes the client's response die too, never end as if complete.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { coreRefusal, type Refusal } from '../errors.ts';
import { HOP_BY_HOP } from '../exchange.ts';
import { inspect } from '../messages/inspect.ts';
import { decode, encode } from '../messages/offload.ts';
import type { ExchangeRun } from '../proxy.ts';
import { upstreamAuthRefusal } from '../upstream-auth.ts';
import { sealResponseSession } from './session.ts';
import { relaySse } from './sse-relay.ts';

export function onUpstreamResponse(run: ExchangeRun, proxyRes: IncomingMessage): void {
  run.upstreamAnswered = true;
  respond(run, proxyRes).catch((err: unknown) => {
    // A hook that set an invalid header value, say: writeHead throws before anything is sent.
    run.x.log.error({ err }, 'response handling failed');
    proxyRes.destroy();
    run.refuse(coreRefusal('GW_ERR_PLUGIN_FAILED', `the gateway failed while handling the upstream's answer (exchange ${run.x.id})`));
  });
}

async function respond(run: ExchangeRun, proxyRes: IncomingMessage): Promise<void> {
  run.outcome.upstreamMs = Number(process.hrtime.bigint() - run.upstreamSentAt) / 1e6;
  if (run.finished || run.timedOut) {
    proxyRes.destroy();
    return;
  }
  // An upstream refusing the gateway's own credential is the operator's problem, not the client's.
  const authRefused = upstreamAuthRefusal(run.upstream, proxyRes, run.x.log);
  if (authRefused) {
    proxyRes.resume();
    run.env.observer.upstreamError?.({ upstream: run.upstream.name, kind: 'auth' });
    return run.refuse(authRefused);
  }
  const headers = responseHeaders(proxyRes);
  sealResponseSession(run, headers);
  const head = { status: proxyRes.statusCode ?? 502, headers };
  if (run.pipeline.hasResponseHooks) {
    // (A throwing hook is already a GW_ERR_PLUGIN_FAILED refusal from the pipeline.)
    const refused = await run.pipeline.response(head, run.x);
    if (refused) {
      proxyRes.destroy();
      return run.refuse(refused);
    }
  }
  Object.assign(head.headers, run.corsHeaders());
  const type = String(head.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('text/event-stream')) return relaySse(run, proxyRes, head.status, head.headers);
  // A DELETE ends a session: its answer carries no JSON-RPC message (an SDK v2 server sends 200 with
  // an empty chunked body and no Content-Type), so there is nothing to inspect.
  const mustRead = run.req.method !== 'DELETE' && (run.pipeline.inspectsResponses || run.localAnswers.length > 0);
  if (!mustRead) return pipeThrough(run, proxyRes, head.status, head.headers);
  if (type.includes('json')) return relayJson(run, proxyRes, head.status, head.headers);
  if (bodyless(proxyRes, head.status)) {
    proxyRes.resume();
    if (run.localAnswers.length > 0) {
      // Only notifications went upstream; the answers the gateway made still need a body.
      return run.writeBody(200, { ...head.headers, 'content-type': 'application/json' }, JSON.stringify(run.localAnswers));
    }
    return run.writeBody(head.status, head.headers, '');
  }
  proxyRes.destroy();
  run.env.observer.upstreamError?.({ upstream: run.upstream.name, kind: 'unreachable' });
  const why = `the upstream "${run.upstream.name}" answered with content type "${type || 'none'}", which this route's plugins cannot inspect; only JSON and event streams are passed`;
  run.x.log.warn({ upstream: run.upstream.name, status: head.status, contentType: type }, 'refused an upstream body no plugin could inspect');
  // An error status stays what it is (a client re-initializes on 404); only its body is replaced.
  return run.refuse(coreRefusal('GW_ERR_UPSTREAM_UNINSPECTABLE', why, head.status >= 400 ? { status: head.status } : undefined));
}

/** No body to read: 204/304, a 202 acknowledgement, or a declared length of 0. */
function bodyless(proxyRes: IncomingMessage, status: number): boolean {
  return status === 204 || status === 304 || status === 202 || proxyRes.headers['content-length'] === '0';
}

function pipeThrough(run: ExchangeRun, proxyRes: IncomingMessage, status: number, headers: OutgoingHttpHeaders): void {
  run.res.writeHead(status, headers);
  run.outcome.status = status;
  proxyRes.on('data', (c: Buffer) => { run.outcome.bytesOut += c.length; });
  // An upstream that dies mid-body: the client must see a broken response, not a complete one.
  proxyRes.once('close', () => { if (!proxyRes.complete) run.res.destroy(); });
  proxyRes.pipe(run.res);
}

function relayJson(run: ExchangeRun, proxyRes: IncomingMessage, status: number, headers: OutgoingHttpHeaders): void {
  const limit = run.route.config.maxResponseBytes;
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  const fail = (r: Refusal) => {
    failed = true;
    proxyRes.destroy();
    run.refuse(r);
  };
  proxyRes.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= limit) return void chunks.push(c);
    if (failed) return;
    run.env.observer.upstreamError?.({ upstream: run.upstream.name, kind: 'too_large' });
    fail(coreRefusal('GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE', `the upstream's response is larger than this route's maxResponseBytes (${limit})`));
  });
  proxyRes.once('close', () => {
    if (!proxyRes.complete && !failed && !run.finished) {
      fail(coreRefusal('GW_ERR_UPSTREAM_UNREACHABLE', 'the upstream closed the connection before its answer was complete'));
    }
  });
  proxyRes.once('end', () => {
    if (failed || run.finished) return;
    finishJson(run, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), status, headers).catch((err: unknown) => {
      run.x.log.error({ err }, 'response handling failed');
      run.refuse(coreRefusal('GW_ERR_PLUGIN_FAILED', `the gateway failed while handling the response (exchange ${run.x.id})`));
    });
  });
}

async function finishJson(run: ExchangeRun, body: Buffer, status: number, headers: OutgoingHttpHeaders): Promise<void> {
  delete headers['content-length'];
  delete headers['content-encoding'];
  let values: unknown[] = [];
  let batch = false;
  if (body.length > 0) {
    const decoded = await decode(body);
    // Plugins must see every message; an unreadable body could carry anything.
    if (!decoded.ok) return run.refuse(coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream answered with JSON the gateway cannot read (${decoded.detail})`));
    values = decoded.values;
    batch = decoded.batch;
  }
  const inspected = await inspect(values, 'response', batch ? 'batch' : 'json', run.inspectScope('response'));
  if (!inspected.changed && run.localAnswers.length === 0) {
    // Nothing was replaced or dropped: the upstream's own bytes go out, no re-serialization.
    return run.writeBody(status, headers, body);
  }
  const out = [...inspected.out, ...run.localAnswers];
  if (out.length === 0) return run.writeBody(status === 200 ? 202 : status, headers, '');
  run.writeBody(status, headers, await encode(out, batch || out.length > 1, body.length));
}

/** The upstream's response headers minus hop-by-hop ones. */
function responseHeaders(proxyRes: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connection = proxyRes.headers.connection;
  const named = connection ? new Set(connection.toLowerCase().split(',').map((h) => h.trim())) : undefined;
  for (const k in proxyRes.headers) {
    const v = proxyRes.headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || named?.has(k)) continue;
    out[k] = v;
  }
  return out;
}
