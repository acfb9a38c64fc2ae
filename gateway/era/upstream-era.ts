/**
 * Each upstream's era, learned once and cached: pinned in gateway.yaml (`era: "2025"` / `"2026"`), or
 * probed with `server/discover` (`auto`, the default), the way the 2026-07-28 versioning rules tell a
 * client to find out: a modern server answers a discover result (or a modern JSON-RPC error such as
 * -32022 naming its versions); anything else (400 without a modern error, 404, 405) is a 2025-era
 * server. A probe that cannot reach the upstream decides nothing: the request goes through untranslated
 * and the next one probes again. A verdict holds for the configuration's life (a reload probes anew).
 *
 * Probes are sent only for 2026 clients, who cannot be served without knowing. 2025 clients are
 * translated for a 2026 upstream only when gateway.yaml pins `era: "2026"`: a probed server that
 * lists only 2026 may still serve 2025 clients natively (SDK v2 servers do), with features (SSE
 * resumption, server requests on its own terms) that translation would take away.
 */
import type { Principal } from '../contract.ts';
import type { UpstreamCall, UpstreamResponse } from '../runtime.ts';
import { eventData, isEventStream, readBody } from './upstream-read.ts';
import type { UpstreamPort } from './translation.ts';
import { eraOfVersion, HEADER, META, MODERN_VERSION, type Era } from './versions.ts';

/** Largest probe answer read (a discover result is small). */
const MAX_PROBE_ANSWER = 1_000_000;
/** Longest wait for a probe's answer. */
const PROBE_TIMEOUT_MS = 10_000;
/** Modern errors a 2026 server answers a discover it cannot serve with (unsupported version, header). */
const MODERN_ERRORS = new Set([-32020, -32021, -32022]);

export class UpstreamEra {
  readonly #pinned: Era | undefined;
  #verdict: Era | undefined;
  #probing: Promise<Era | undefined> | undefined;

  constructor(pinned: 'auto' | Era) {
    this.#pinned = pinned === 'auto' ? undefined : pinned;
  }

  /** The era gateway.yaml pins, if any. */
  pinned(): Era | undefined {
    return this.#pinned;
  }

  /** The era when known without waiting (pinned, or probed). */
  known(): Era | undefined {
    return this.#pinned ?? this.#verdict;
  }

  /** The era, probing when needed (one probe at a time per upstream). */
  async learn(port: UpstreamPort, path: string, credentials: Record<string, string>, principal: Principal | undefined): Promise<Era | undefined> {
    const known = this.known();
    if (known) return known;
    this.#probing ??= probe(port, path, credentials, principal).then((era) => {
      this.#probing = undefined;
      if (era) this.#verdict = era;
      return era;
    });
    return this.#probing;
  }
}

async function probe(port: UpstreamPort, path: string, credentials: Record<string, string>, principal: Principal | undefined): Promise<Era | undefined> {
  const body = Buffer.from(JSON.stringify({
    jsonrpc: '2.0', id: 'mcp-gateway-era-probe', method: 'server/discover',
    params: { _meta: { [META.protocolVersion]: MODERN_VERSION, [META.clientCapabilities]: {}, [META.clientInfo]: { name: 'mcp-gateway', version: '1' } } },
  }));
  const call: UpstreamCall = {
    method: 'POST',
    pathAndQuery: path,
    headers: {
      ...credentials,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      [HEADER.protocolVersion]: MODERN_VERSION,
      [HEADER.method]: 'server/discover',
    },
    body,
    principal,
    signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
  };
  let message: Record<string, unknown> | undefined;
  let status: number;
  try {
    const res = await port.send(call);
    status = res.statusCode;
    message = await lastMessage(res);
  } catch {
    return undefined;
  }
  const result = message?.result as { supportedVersions?: unknown } | undefined;
  if (status === 200 && Array.isArray(result?.supportedVersions)) {
    return result.supportedVersions.some((v) => eraOfVersion(v) === '2026') ? '2026' : '2025';
  }
  const error = message?.error as { code?: unknown; data?: { supported?: unknown } } | undefined;
  if (typeof error?.code === 'number' && MODERN_ERRORS.has(error.code)) {
    const supported = error.data?.supported;
    return Array.isArray(supported) && !supported.some((v) => eraOfVersion(v) === '2026') ? '2025' : '2026';
  }
  // A 5xx says nothing about the era: decide later.
  return status >= 500 ? undefined : '2025';
}

/** The answer in a JSON body, or the last message of an event stream; undefined when not JSON. */
async function lastMessage(res: UpstreamResponse): Promise<Record<string, unknown> | undefined> {
  let text: string | undefined;
  if (isEventStream(res)) for await (const data of eventData(res, MAX_PROBE_ANSWER)) text = data;
  else text = (await readBody(res, MAX_PROBE_ANSWER)).toString('utf8');
  try {
    const v: unknown = text === undefined ? undefined : JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
