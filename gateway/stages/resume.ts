/**
 * Stage 6 across streams: answers that come back on a resumed stream (2025-era SSE polling, SEP-1699).
 *
 * An upstream may close a POST's event stream before answering (polling), or the client may go away;
 * either way the client resumes with `GET` (+ `Last-Event-ID`) on its session and the upstream replays
 * the answer there. Plugins that read answers need the request each answers (graph-rewrite filters a
 * listing by it, strips prefixes by it), so the POST's unanswered requests, as rewritten, are parked in
 * the session's scope (messages/resumable.ts) and the session's GET streams match answers against them.
 *
 * Only where it matters: a route whose plugins read no answers correlates nothing and parks nothing,
 * and a POST whose answers all came parks nothing either.
 */
import type { Correlator } from '../messages/inspect.ts';
import type { SessionScope } from '../messages/resumable.ts';
import type { ExchangeRun } from '../proxy.ts';

/** The scope parked requests of this exchange's session belong to; undefined without a 2025 session. */
function scopeOf(run: ExchangeRun): SessionScope | undefined {
  const session = run.x.sessionId;
  // A legacy (HTTP+SSE) session has one stream for every answer and its own table (legacy-sse.ts).
  if (session === undefined || run.legacySessionId !== undefined || run.owner === undefined) return undefined;
  return { session, owner: run.owner, route: run.route.info.name };
}

/**
 * A POST's event stream is over (ended by the upstream, broken off, or left by the client) with
 * requests unanswered: park them for a resumed stream. Idempotent; called before the client's stream
 * ends, so a client that resumes at once already finds them.
 */
export function parkUnanswered(run: ExchangeRun): void {
  const correlation = run.correlation;
  if (!correlation || correlation.own.size === 0 || !run.streamed || run.req.method !== 'POST') return;
  const scope = scopeOf(run);
  if (!scope) return;
  const resumable = run.env.sessions.resumable;
  correlation.parkUnanswered((key, request) => resumable.park(scope, key, request));
}

/**
 * Where a GET stream of a session finds the requests its answers are for: only this session's, this
 * principal's, on this route. Opening the stream means the client is still waiting: the parked
 * requests live on. Undefined when nothing reads answers on this route or there is no session.
 */
export function resumedCorrelator(run: ExchangeRun): Correlator | undefined {
  if (run.req.method !== 'GET' || !run.pipeline.inspectsResponses) return undefined;
  const scope = scopeOf(run);
  if (!scope) return undefined;
  const resumable = run.env.sessions.resumable;
  resumable.refresh(scope);
  return resumable.correlator(scope);
}

/**
 * A client ended its session (DELETE answered 2xx): the registry forgets it (the admin API no longer
 * lists it), and with it what it parked, which will never be answered.
 */
export function sessionDeleted(run: ExchangeRun): void {
  const session = run.x.sessionId;
  if (run.req.method === 'DELETE' && session !== undefined && run.outcome.status >= 200 && run.outcome.status < 300) {
    run.env.sessions.forget(session);
  }
}
