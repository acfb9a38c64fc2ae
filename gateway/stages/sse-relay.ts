/**
 * Stage 6 for event streams: relayed as they come, never buffered beyond one event.
 *
 * Two modes, chosen per stream:
 * - bytes: nobody reads the messages, so each chunk is forwarded as it arrives; the framer only tracks
 *   whether the stream is between events, so that heartbeat comments never split one;
 * - events: a plugin reads messages (or the stream may be a legacy one whose first event names the POST
 *   endpoint), so complete events are decoded, inspected and re-encoded in order, one at a time, with
 *   the upstream paused meanwhile. A pending event over `maxResponseBytes` ends the stream, answering
 *   the exchange's unanswered requests with an error.
 *
 * Backpressure both ways: a client that reads slowly pauses the upstream.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { STREAM_DEADLINE } from '../contract.ts';
import { coreRefusal, refusalMessage } from '../errors.ts';
import { idKey } from '../jsonrpc.ts';
import { inspect, type InspectScope } from '../messages/inspect.ts';
import { decode, encode } from '../messages/offload.ts';
import { HEARTBEAT, messageEvent, parseEvent, replaceEventData, SseFramer } from '../messages/sse-codec.ts';
import type { ExchangeRun } from '../proxy.ts';
import { legacyCorrelator, rewriteEndpoint, type LegacyEndpoint } from './legacy-sse.ts';
import { parkUnanswered, resumedCorrelator } from './resume.ts';
import { onTimeout } from './upstream-call.ts';

export function relaySse(run: ExchangeRun, proxyRes: IncomingMessage, status: number, headers: OutgoingHttpHeaders): void {
  const { res, route, x, env } = run;
  delete headers['content-length'];
  delete headers['content-encoding'];
  headers['x-accel-buffering'] = 'no';
  if (!headers['cache-control']) headers['cache-control'] = 'no-cache, no-transform';
  res.writeHead(status, headers);
  res.flushHeaders();
  res.socket?.setNoDelay(true);
  run.outcome.status = status;
  run.streamed = true;
  env.observer.streamOpened?.(route.info.name);
  const sessionId = x.sessionId;
  if (sessionId && run.req.method === 'GET') env.sessions.attachStream(sessionId, res);
  // A GET stream has no last message: the client closing it is how it ends (see Outcome.error).
  if (run.req.method === 'GET') run.streamComplete = true;
  // A POST's stream is complete once each of its requests has its answer written, even if the client
  // hangs up before the upstream ends it (known only where messages are read and correlated).
  const awaiting = run.req.method === 'POST' ? run.correlation?.own : undefined;
  const answersDue = (awaiting?.size ?? 0) > 0;

  const inspecting = run.pipeline.inspectsResponses;
  // A session's GET stream may carry answers replayed for a POST whose stream ended early (SEP-1699).
  const resumed = inspecting && sessionId ? resumedCorrelator(run) : undefined;
  // A GET without a session may be a legacy stream, whose first event names the POST endpoint.
  let awaitingEndpoint = run.req.method === 'GET' && !sessionId;
  let legacy: LegacyEndpoint | undefined;
  const framed = inspecting || awaitingEndpoint;
  const framer = new SseFramer(framed ? { maxEventLength: route.config.maxResponseBytes } : { track: true });
  let busy = 0;
  let closing = false;
  let firstChunkAt = 0n;

  const write = (data: string | Buffer) => {
    if (data.length === 0 || res.writableEnded) return;
    if (run.firstEvent === undefined) {
      // The gateway's own share of the time to the first event: before the call, and since the
      // upstream's first bytes (answers the gateway wrote itself have no upstream part).
      const now = process.hrtime.bigint();
      run.firstEvent = {
        atMs: Number(now - x.startedAt) / 1e6,
        gatewayMs: Number((run.upstreamSentAt - x.startedAt) + (now - (firstChunkAt || now))) / 1e6,
      };
    }
    run.outcome.bytesOut += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    heartbeat?.refresh();
    if (!res.write(data)) {
      busy++;
      proxyRes.pause();
      res.once('drain', resume);
    }
  };
  const resume = () => {
    if (--busy === 0 && !closing) proxyRes.resume();
  };
  /** Ends the client's stream on purpose (deadline, overflow); an upstream reset destroys it instead. */
  const close = () => {
    closing = true;
    proxyRes.destroy();
    if (!res.writableEnded) res.end();
  };

  const hb = route.config.heartbeat;
  const heartbeat = hb > 0 ? setInterval(() => {
    if (framer.betweenEvents && busy === 0 && !res.writableEnded) {
      res.write(HEARTBEAT);
      run.outcome.bytesOut += HEARTBEAT.length;
    }
  }, hb) : undefined;
  heartbeat?.unref();
  if (heartbeat) run.cleanups.push(() => clearInterval(heartbeat));
  const idleMs = run.upstream.timeouts.idle;
  const idle = idleMs > 0 ? run.after(idleMs, () => onTimeout(run, 'idle')) : undefined;
  const deadline = x.get(STREAM_DEADLINE);
  if (deadline !== undefined) {
    run.cleanups.push(runAt(deadline, () => {
      x.log.info('stream closed: the credential that opened it has expired');
      close();
    }));
  }
  // Answers the gateway made for refused elements of a batch go first.
  for (const a of run.localAnswers) write(messageEvent(JSON.stringify(a)));

  let scope: InspectScope | undefined;
  const handleEvent = async (block: string): Promise<string> => {
    const fields = parseEvent(block);
    if (awaitingEndpoint && fields.event === 'endpoint' && fields.data !== undefined) {
      awaitingEndpoint = false;
      legacy = rewriteEndpoint(run, fields.data);
      return replaceEventData(block, legacy.uri);
    }
    if (fields.data === undefined || fields.data === '') return block; // comments, priming events
    awaitingEndpoint = false;
    if (!inspecting || (fields.event !== undefined && fields.event !== 'message')) return block;
    const decoded = await decode(fields.data);
    if (!decoded.ok) {
      // A message event no plugin can read is not delivered: it could carry anything.
      x.log.warn({ reason: decoded.reason }, 'dropped an upstream SSE message that is not JSON-RPC');
      return '';
    }
    // One scope for the stream: a legacy stream's table is registered with its endpoint event, before
    // any message event arrives, and stays the same for the stream's life.
    scope ??= run.inspectScope('response', legacy ? legacyCorrelator(run, legacy.sessionId) : run.correlator ?? resumed);
    const inspected = await inspect(decoded.values, 'response', 'sse', scope);
    if (!inspected.changed) return block;
    if (inspected.out.length === 0) return '';
    return replaceEventData(block, await encode(inspected.out, decoded.batch, fields.data.length));
  };

  let chain: Promise<void> = Promise.resolve();
  proxyRes.on('data', (chunk: Buffer) => {
    if (firstChunkAt === 0n) firstChunkAt = process.hrtime.bigint();
    idle?.refresh();
    if (!framed) {
      framer.push(chunk);
      return write(chunk);
    }
    const events = framer.push(chunk);
    if (framer.overflowed) return overflow();
    if (events.length === 0) return;
    busy++;
    proxyRes.pause();
    chain = chain.then(async () => {
      for (const e of events) write(await handleEvent(e));
      if (answersDue && awaiting!.size === 0) run.streamComplete = true;
    }).catch((err: unknown) => {
      x.log.error({ err }, 'SSE event handling failed; closing the stream');
      run.res.destroy();
    }).finally(resume);
  });

  /** An event larger than the route accepts: the requests it may answer get an error instead. */
  const overflow = () => {
    env.observer.upstreamError?.({ upstream: run.upstream.name, kind: 'too_large' });
    x.log.warn({ limit: route.config.maxResponseBytes }, 'an upstream SSE event exceeded maxResponseBytes; ending the stream');
    const r = coreRefusal('GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE', `an event from the upstream is larger than this route's maxResponseBytes (${route.config.maxResponseBytes})`);
    closing = true;
    proxyRes.destroy();
    void chain.then(() => {
      // Answered here, with the error: not parked for a resumed stream, which would answer them twice.
      const correlation = run.correlation;
      for (const request of [...(correlation?.own.requests() ?? [])]) {
        correlation!.take(idKey(request.id));
        write(messageEvent(JSON.stringify(refusalMessage(r, request.id))));
      }
      if (!res.writableEnded) res.end();
    });
  };

  proxyRes.once('end', () => {
    void chain.then(() => {
      if (framed) write(framer.flush());
      // Before the client sees the end: a client that resumes at once must find what is still due.
      parkUnanswered(run);
      res.end();
      run.streamComplete = true;
    });
  });
  // An upstream that dies mid-stream: the client sees a broken stream, not a finished one.
  proxyRes.once('close', () => {
    if (proxyRes.complete || closing || res.destroyed) return;
    run.streamComplete = false;
    run.outcome.error ??= new Error('the upstream broke the stream off before its end');
    void chain.then(() => {
      parkUnanswered(run);
      res.destroy();
    });
  });
  res.once('close', () => {
    proxyRes.destroy();
    if (sessionId) env.sessions.detachStream(sessionId, res);
    if (legacy) legacy.close();
    env.observer.streamClosed?.(route.info.name);
  });
}

/** Node timers overflow past ~24.8 days (a 30-day token's expiry): re-arm until the moment comes. */
function runAt(epochMs: number, fn: () => void): () => void {
  const MAX = 2 ** 31 - 1;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = epochMs - Date.now();
    timer = left > MAX ? setTimeout(arm, MAX) : setTimeout(fn, Math.max(0, left));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
