/**
 * At start, one warning per HTTP upstream that cannot be reached, with the cause:
 *
 *   upstream "falkordb" is not reachable at http://falkordb-mcp:3000/mcp: ECONNREFUSED; requests to it
 *   will fail with 502 until it answers
 *
 * Before this, an upstream that was down at start showed up only as one warning per request, and only
 * once clients came. The check runs after the listeners are open and nobody awaits it: a dead or slow
 * upstream must never delay the start (or the banner). It opens a TCP connection and closes it, nothing
 * more: no HTTP request lands in the upstream's log or opens anything there. Whether the upstream takes
 * the gateway's credential is `/readyz`'s question (health.ts) and each request's (upstream-auth.ts).
 */
import { connect } from 'node:net';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.ts';
import { describeNetError, type NetErrorDescription } from './net-error.ts';

type Outcome = { ok: true } | { ok: false; cause: NetErrorDescription; timedOut?: boolean };

/** Opens a TCP connection to the URL's host and port, and closes it at once. */
export function tcpReachable(url: URL, timeoutMs: number): Promise<Outcome> {
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (o: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ ok: false, timedOut: true, cause: { code: 'ETIMEDOUT', message: `no connection within ${timeoutMs}ms` } }), timeoutMs);
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (err) => done({ ok: false, cause: describeNetError(err) }));
  });
}

/**
 * Checks every HTTP upstream at once and logs a warning for each one that is not reachable. Resolves
 * when all are done; never rejects.
 */
export async function warnUnreachableUpstreams(config: Pick<GatewayConfig, 'upstreams'>, log: Logger, timeoutMs = 5_000): Promise<void> {
  await Promise.all(Object.entries(config.upstreams).map(async ([name, upstream]) => {
    if (!('url' in upstream)) return;
    const url = new URL(upstream.url);
    // Never log userinfo or a query (either may hold a credential).
    const shown = `${url.protocol}//${url.host}${url.pathname}`;
    try {
      const outcome = await tcpReachable(url, timeoutMs);
      if (outcome.ok) return;
      const why = outcome.timedOut ? `no answer within ${timeoutMs / 1000}s` : (outcome.cause.code ?? outcome.cause.message);
      log.warn(
        { upstream: name, url: shown, error: outcome.cause },
        `upstream "${name}" is not reachable at ${shown}: ${why}; requests to it will fail with ${outcome.timedOut ? '502 or 504' : '502'} until it answers`,
      );
    } catch (err) {
      log.warn({ upstream: name, url: shown, error: describeNetError(err) }, `upstream "${name}" could not be checked at start`);
    }
  }));
}
