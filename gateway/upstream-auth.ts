/**
 * An HTTP upstream that answers 401/403: is it refusing the gateway (a wrong or missing credential in
 * `upstreams.<name>.headers`, an operator's problem no client can fix), or talking to the end user?
 *
 * Passed through, the gateway's own credential failure looked like the client's: an MCP client given a
 * 401 starts OAuth discovery or asks its user for a token, and nothing in the gateway's log said which
 * upstream refused what. The decision:
 *
 * - 401 when the gateway sends the upstream something to authenticate with (configured headers, or
 *   signed identity): that is what was refused. The client's own credentials never reach an upstream
 *   (no token passthrough), so the client cannot be the one refused.
 * - 401 when the gateway sends nothing: without a `WWW-Authenticate` challenge (which RFC 9110 requires
 *   on a 401) it is an upstream that wants a key the gateway was not given, e.g. the FalkorDB MCP server
 *   with `MCP_API_KEY` set. With a challenge, the upstream is addressing whoever calls, who may answer it
 *   with headers the gateway forwards: passed through unchanged.
 * - 403 only when the gateway sends a credential and no signed identity: such an upstream cannot tell
 *   users apart, so its refusal is about the gateway's key. With identity, a 403 may be a per-user
 *   decision and passes through.
 *
 * Such failures become `502 GW_ERR_UPSTREAM_AUTH` for the client and a warning in the log, at most one
 * a minute per upstream (with how many were left out), so a flood of requests does not flood the log.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { coreRefusal, type Refusal } from './errors.ts';
import type { UpstreamTarget } from './runtime.ts';

export type GatewayAuthFailure = 'refused' | 'missing';

export interface UpstreamAuthView {
  /** The gateway adds configured headers (`upstreams.<name>.headers`) to what it sends. */
  sendsCredential: boolean;
  /** The gateway adds signed identity headers (`upstreams.<name>.identity`). */
  signsIdentity: boolean;
}

export function gatewayAuthFailure(status: number, hasChallenge: boolean, u: UpstreamAuthView): GatewayAuthFailure | undefined {
  if (status === 401) {
    if (u.sendsCredential || u.signsIdentity) return 'refused';
    return hasChallenge ? undefined : 'missing';
  }
  if (status === 403 && u.sendsCredential && !u.signsIdentity) return 'refused';
  return undefined;
}

/** What happened, naming the upstream (for logs and readiness, followed by what to change). */
export function describeAuthFailure(upstream: string, failure: GatewayAuthFailure, status: number): string {
  return failure === 'refused'
    ? `the upstream "${upstream}" refused the gateway's credential (HTTP ${status})`
    : `the upstream "${upstream}" requires a credential (HTTP ${status}) and the gateway sends none`;
}

/** What the operator should change. */
export function authRemedy(upstream: string, failure: GatewayAuthFailure): string {
  return failure === 'refused' ? `check upstreams.${upstream}.headers` : `set upstreams.${upstream}.headers`;
}

export function authViewOf(upstream: UpstreamTarget): UpstreamAuthView {
  return {
    // An HTTP upstream's headers without a principal are exactly its configured ones.
    sendsCredential: Object.keys(upstream.requestHeaders(undefined)).length > 0,
    signsIdentity: upstream.identityPrefix !== undefined,
  };
}

const WARN_EVERY_MS = 60_000;
/** Per upstream target (a reload builds new ones, and their warnings start afresh). */
const warned = new WeakMap<UpstreamTarget, { at: number; suppressed: number }>();

/**
 * The refusal for an upstream answer that refused the gateway's credential, or undefined when the
 * answer is the client's to see. Logs the warning (rate-limited).
 */
export function upstreamAuthRefusal(
  upstream: UpstreamTarget,
  answer: { statusCode?: number; headers: IncomingHttpHeaders },
  log: Logger,
): Refusal | undefined {
  const status = answer.statusCode ?? 0;
  if (upstream.kind !== 'http' || (status !== 401 && status !== 403)) return undefined;
  const failure = gatewayAuthFailure(status, answer.headers['www-authenticate'] !== undefined, authViewOf(upstream));
  if (!failure) return undefined;
  const what = describeAuthFailure(upstream.name, failure, status);
  const now = Date.now();
  const last = warned.get(upstream);
  if (!last || now - last.at >= WARN_EVERY_MS) {
    log.warn({ upstream: upstream.name, status, suppressed: last?.suppressed ?? 0 }, `${what}; ${authRemedy(upstream.name, failure)}`);
    warned.set(upstream, { at: now, suppressed: 0 });
  } else {
    last.suppressed++;
  }
  // The client learns it is not their token; the configuration detail is the operator's (in the log).
  return coreRefusal('GW_ERR_UPSTREAM_AUTH', `${what}: the gateway is misconfigured, not your token; try again once its operator has fixed it`);
}
