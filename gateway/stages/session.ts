/**
 * Stage 3 and its counterpart in stage 6: MCP session ids, sealed.
 *
 * The client never sees an upstream's session id (or a legacy endpoint's path and query): it gets a
 * sealed value bound to the route and to the principal that opened it, so any replica can serve it and
 * nobody else can use it. Unknown, ended, tampered and someone else's ids get one and the same answer.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { PRINCIPAL, PROTOCOL } from '../contract.ts';
import { protocolFromHeaders } from '../era/detect.ts';
import { coreRefusal, type Refusal } from '../errors.ts';
import type { ExchangeRun } from '../proxy.ts';
import { ownerOf, SEAL_KIND } from '../session-seal.ts';
import type { UpstreamSessionEnd } from '../sessions.ts';

export const SESSION_HEADER = 'mcp-session-id';
/** The query parameter carrying a sealed legacy endpoint (path and query of the upstream's endpoint). */
export const LEGACY_SESSION_PARAM = 'sessionId';

export function openSession(run: ExchangeRun): Refusal | undefined {
  const { x, env, req } = run;
  run.owner = ownerOf(x.get(PRINCIPAL));
  const binding = run.route.info.name;
  run.upstreamPathAndQuery = run.route.upstreamPath(x.url);

  // The parsed query, never its raw text: `?session%49d=…` is `sessionId` too, and must not reach the
  // upstream unsealed and unchecked.
  const legacyParam = x.url.search === '' ? null : x.url.searchParams.get(LEGACY_SESSION_PARAM);
  if (legacyParam !== null && req.method === 'POST') {
    const opened = env.sealer.open(SEAL_KIND.legacyEndpoint, legacyParam, run.owner, binding);
    if (!opened || !opened.ownerMatches) return sessionNotFound();
    x.transport = 'sse';
    x.sessionId = legacyParam;
    run.legacySessionId = legacyParam;
    run.upstreamPathAndQuery = opened.payload;
    env.sessions.touched(legacyParam);
    return undefined;
  }
  const protocol = protocolFromHeaders(req.headers);
  if (protocol.version !== undefined) x.set(PROTOCOL, protocol);
  const headerValue = req.headers[SESSION_HEADER];
  if (protocol.era === '2026') {
    // 2026-07-28 has no sessions: a stale id (or a resumption point) is ignored, as the spec asks of
    // servers, and never reaches the upstream unsealed.
    delete x.upstreamHeaders[SESSION_HEADER];
    delete x.upstreamHeaders['last-event-id'];
    if (req.method === 'POST') x.transport = 'streamable-http';
  } else if (typeof headerValue === 'string') {
    const opened = env.sealer.open(SEAL_KIND.streamableSession, headerValue, run.owner, binding);
    if (!opened || !opened.ownerMatches) return sessionNotFound();
    x.transport = 'streamable-http';
    x.sessionId = headerValue;
    x.upstreamHeaders[SESSION_HEADER] = opened.payload;
    env.sessions.touched(headerValue);
  } else if (req.method === 'POST') {
    x.transport = 'streamable-http';
  }
  return undefined;
}

function sessionNotFound(): Refusal {
  return coreRefusal('GW_ERR_SESSION_NOT_FOUND', 'Session not found: start a new session (initialize again)');
}

/** Replaces the upstream's session id in a response head with a sealed one, bound to the caller. */
export function sealResponseSession(run: ExchangeRun, headers: OutgoingHttpHeaders): void {
  const upstreamId = headers[SESSION_HEADER];
  if (typeof upstreamId !== 'string') return;
  const { x, env } = run;
  const sealed = x.sessionId && x.upstreamHeaders[SESSION_HEADER] === upstreamId
    ? x.sessionId
    : env.sealer.seal(SEAL_KIND.streamableSession, upstreamId, run.owner!, run.route.info.name);
  headers[SESSION_HEADER] = sealed;
  if (sealed !== x.sessionId) {
    x.sessionId = sealed;
    registerSession(run, sealed, 'streamable-http', upstreamEnd(run, upstreamId), upstreamId);
  }
}

/** Tells the registry (admin API, drain) about a session this exchange opened. */
export function registerSession(run: ExchangeRun, id: string, transport: 'streamable-http' | 'sse', end?: UpstreamSessionEnd, upstreamId?: string): void {
  const p = run.x.get(PRINCIPAL);
  run.env.sessions.opened(id, {
    id, tenant: p?.tenant, subject: p?.subject, route: run.route.info.name,
    upstream: run.upstream.name, transport,
  }, end, upstreamId);
}

/**
 * How to end the session at the upstream later (admin API). Only what that needs is kept: a closure
 * over the exchange would keep its request, socket and body alive for as long as the session lives.
 * Credentials are made when used, since signed identity headers expire.
 */
function upstreamEnd(run: ExchangeRun, upstreamId: string): UpstreamSessionEnd {
  const headers: Record<string, string> = { [SESSION_HEADER]: upstreamId };
  const version = run.req.headers['mcp-protocol-version'];
  if (typeof version === 'string') headers['mcp-protocol-version'] = version;
  const { upstream } = run;
  const principal = run.x.get(PRINCIPAL);
  return {
    url: upstream.origin + run.route.upstreamPath(new URL(run.route.info.path, 'http://x')),
    headers,
    credentials: () => upstream.requestHeaders(principal),
  };
}
