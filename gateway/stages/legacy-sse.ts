/**
 * The legacy HTTP+SSE transport (2024-11-05): a GET stream whose first event names the URI the client
 * must POST to, and whose later events answer those POSTs.
 *
 * The endpoint event is rewritten to point back at this gateway, under this route, with the upstream's
 * path and query sealed in (the client never learns them, and only its principal can use them) and,
 * for URL-token clients, their token. The stream is registered so that POSTs of the session, which may
 * arrive on any connection, can correlate their requests with the answers on it and have the gateway's
 * own refusals written into it.
 */
import { URL_TOKEN } from '../contract.ts';
import { PendingRequests } from '../messages/correlation.ts';
import { messageEvent } from '../messages/sse-codec.ts';
import type { ExchangeRun } from '../proxy.ts';
import { SEAL_KIND } from '../session-seal.ts';
import { LEGACY_SESSION_PARAM, registerSession } from './session.ts';

/**
 * Most requests of one legacy session awaiting their answer. Past it new requests are refused, never
 * evicted: forgetting one would let its answer through unattributed.
 */
const MAX_PENDING_PER_SESSION = 10_000;

export interface LegacyEndpoint {
  /** The URI the client is told to POST to. */
  uri: string;
  /** The client-facing session id (the sealed endpoint). */
  sessionId: string;
  /** Forgets the session on this replica once its stream has closed. */
  close(): void;
}

export function rewriteEndpoint(run: ExchangeRun, data: string): LegacyEndpoint {
  const { env, x, route, res } = run;
  const upstreamUrl = new URL(data.trim(), run.upstream.origin + run.upstreamPathAndQuery);
  const sealed = env.sealer.seal(SEAL_KIND.legacyEndpoint, upstreamUrl.pathname + upstreamUrl.search, run.owner!, route.info.name);
  const query = new URLSearchParams({ [LEGACY_SESSION_PARAM]: sealed });
  const token = x.get(URL_TOKEN);
  if (token) query.set(token.param, token.value);
  x.transport = 'sse';
  x.sessionId = sealed;
  registerSession(run, sealed, 'sse');
  env.sessions.attachStream(sealed, res);
  env.sessions.registerLegacy(sealed, {
    pending: new PendingRequests(MAX_PENDING_PER_SESSION),
    send: (json) => {
      if (!res.writableEnded) res.write(messageEvent(json));
    },
  });
  return {
    uri: `${route.clientPath(upstreamUrl.pathname)}?${query.toString()}`,
    sessionId: sealed,
    close: () => {
      env.sessions.unregisterLegacy(sealed);
      env.sessions.detachStream(sealed, res);
      // The upstream's session ends with its stream: nothing is left to list or end.
      env.sessions.forget(sealed);
    },
  };
}

/** The table where the session's POSTs left their requests (undefined once the stream is gone). */
export function legacyCorrelator(run: ExchangeRun, sessionId: string): PendingRequests | undefined {
  return run.env.sessions.legacy(sessionId)?.pending;
}
