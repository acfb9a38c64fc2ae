/**
 * Identity headers the gateway signs for an upstream (HMAC-SHA256), so the upstream can trust which
 * tenant and subject a request comes from without ever seeing the client's token (no passthrough), and
 * refuse replays older than a window. The upstream side (`verifyIdentityHeaders`) is documented in
 * docs/upstream-identity.md and has no dependency besides node:crypto, so an upstream author can copy it.
 *
 * Headers (prefix default `x-mcp-gateway-`):
 *   <prefix>tenant     the tenant id (matches the gateway's tenant alphabet)
 *   <prefix>subject    the subject, percent-encoded (encodeURIComponent), as `sub` may hold any character
 *   <prefix>timestamp  milliseconds since the epoch when the gateway signed
 *   <prefix>signature  `v1=` + base64url(HMAC-SHA256(secret, "v1\n<timestamp>\n<tenant>\n<subject>"))
 * The signed string uses the decoded subject and puts it last, so no value can forge a field boundary.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Principal } from './contract.ts';

export const DEFAULT_IDENTITY_HEADER_PREFIX = 'x-mcp-gateway-';
/** Default replay window: a signature older (or further in the future) than this is refused. */
export const DEFAULT_IDENTITY_MAX_AGE_MS = 60_000;

function signature(secret: string, timestamp: string, tenant: string, subject: string): string {
  return 'v1=' + createHmac('sha256', secret).update(`v1\n${timestamp}\n${tenant}\n${subject}`).digest('base64url');
}

/** The headers to add to an upstream request made on behalf of `principal`. */
export function signIdentityHeaders(
  principal: Pick<Principal, 'tenant' | 'subject'>,
  opts: { secret: string; headerPrefix?: string },
  nowMs: number = Date.now(),
): Record<string, string> {
  const prefix = (opts.headerPrefix ?? DEFAULT_IDENTITY_HEADER_PREFIX).toLowerCase();
  const timestamp = String(Math.floor(nowMs));
  return {
    [`${prefix}tenant`]: principal.tenant,
    [`${prefix}subject`]: encodeURIComponent(principal.subject),
    [`${prefix}timestamp`]: timestamp,
    [`${prefix}signature`]: signature(opts.secret, timestamp, principal.tenant, principal.subject),
  };
}

export type IdentityVerification =
  | { ok: true; tenant: string; subject: string; timestampMs: number }
  | { ok: false; reason: 'missing' | 'malformed' | 'expired' | 'bad-signature' };

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const value = (headers as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(value) ? undefined : value; // a repeated identity header is never trusted
}

/**
 * For upstream authors: checks the headers of an incoming request. `headers` is Node's
 * `req.headers` (lower-case names) or a Fetch `Headers`.
 */
export function verifyIdentityHeaders(
  headers: HeaderBag,
  secret: string,
  opts: { maxAgeMs?: number; headerPrefix?: string; nowMs?: number } = {},
): IdentityVerification {
  const prefix = (opts.headerPrefix ?? DEFAULT_IDENTITY_HEADER_PREFIX).toLowerCase();
  const tenant = header(headers, `${prefix}tenant`);
  const encodedSubject = header(headers, `${prefix}subject`);
  const timestamp = header(headers, `${prefix}timestamp`);
  const sig = header(headers, `${prefix}signature`);
  if (tenant === undefined || encodedSubject === undefined || timestamp === undefined || sig === undefined) return { ok: false, reason: 'missing' };
  if (!/^\d{1,16}$/.test(timestamp)) return { ok: false, reason: 'malformed' };
  let subject: string;
  try {
    subject = decodeURIComponent(encodedSubject);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  // Signature before age: an attacker learns nothing about the window from a forged request.
  const expected = Buffer.from(signature(secret, timestamp, tenant, subject));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad-signature' };
  const timestampMs = Number(timestamp);
  const age = (opts.nowMs ?? Date.now()) - timestampMs;
  if (Math.abs(age) > (opts.maxAgeMs ?? DEFAULT_IDENTITY_MAX_AGE_MS)) return { ok: false, reason: 'expired' };
  return { ok: true, tenant, subject, timestampMs };
}
