/**
 * The two shapes of a message: a 2025 client's request dressed as a 2026 one on its way up (the
 * `_meta` envelope, the mirror headers), and a 2026 answer undressed on its way down (fields a 2025
 * client has no use for removed), so neither side sees the other's era.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { HEADER, META, MODERN_VERSION } from '../versions.ts';
import { isObject, type Session } from './session.ts';

/** The params of a request with the 2026 `_meta` envelope added; the client's own `_meta` keys stay. */
export function withEnvelope(params: unknown, session: Session, level: string | undefined): Record<string, unknown> {
  const p = isObject(params) ? params : {};
  const own = isObject(p._meta) ? p._meta : {};
  // The envelope's keys win: a 2025 client has no business setting them, and the upstream trusts them.
  const meta: Record<string, unknown> = {
    ...own,
    [META.protocolVersion]: MODERN_VERSION,
    [META.clientCapabilities]: session.capabilities,
    [META.clientInfo]: session.clientInfo,
  };
  if (level !== undefined) meta[META.logLevel] = level;
  else delete meta[META.logLevel];
  return { ...p, _meta: meta };
}

/**
 * Headers of an upstream POST: the client's (credentials already swapped by the core) minus anything
 * of the 2025 transport or the 2026 mirror set, plus the mirror set computed from the body. A client
 * header posing as a mirror header never reaches the upstream: the body is the truth.
 */
export function upstreamHeaders(base: IncomingHttpHeaders, mirror: Record<string, string>): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(base)) {
    if (k === HEADER.session || k === HEADER.protocolVersion || k === HEADER.method || k === HEADER.name) continue;
    if (k.startsWith(HEADER.paramPrefix) || k === 'last-event-id' || k === 'content-length' || k === 'transfer-encoding') continue;
    out[k] = v;
  }
  out['content-type'] = 'application/json';
  out.accept = 'application/json, text/event-stream';
  Object.assign(out, mirror);
  return out;
}

/** Result fields that exist only in 2026. */
const MODERN_RESULT_FIELDS = ['resultType', 'ttlMs', 'cacheScope'] as const;

/** A 2026 result in the 2025 shape (a copy; `undefined` and non-objects pass as they are). */
export function legacyResult(result: unknown): unknown {
  if (!isObject(result)) return result;
  const out: Record<string, unknown> = { ...result };
  for (const f of MODERN_RESULT_FIELDS) delete out[f];
  const meta = withoutKeys(out._meta, [META.serverInfo, META.subscriptionId]);
  if (meta === undefined) delete out._meta;
  else out._meta = meta;
  return out;
}

/** A notification from a 2026 stream in the 2025 shape: no subscription tag. */
export function legacyNotification(message: Record<string, unknown>): Record<string, unknown> {
  if (!isObject(message.params) || !isObject(message.params._meta)) return message;
  const params: Record<string, unknown> = { ...message.params };
  const meta = withoutKeys(params._meta, [META.subscriptionId]);
  if (meta === undefined) delete params._meta;
  else params._meta = meta;
  const out: Record<string, unknown> = { ...message };
  if (Object.keys(params).length === 0) delete out.params;
  else out.params = params;
  return out;
}

/** `meta` without the keys; undefined when nothing is left (or it was not an object). */
function withoutKeys(meta: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
  if (!isObject(meta)) return undefined;
  const out = { ...meta };
  for (const k of keys) delete out[k];
  return Object.keys(out).length === 0 ? undefined : out;
}
