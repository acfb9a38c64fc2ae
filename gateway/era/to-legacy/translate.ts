/**
 * Message rewriting between a 2026-07-28 client and a 2025-era upstream, as pure functions: what a
 * request loses on its way up, what a result gains on its way down. Nothing here does I/O.
 *
 * Up: a 2026 request carries its version, capabilities, client identity and log level in
 * `params._meta` (`io.modelcontextprotocol/*`); a 2025 server learned those once, at `initialize`, so
 * they are dropped from every forwarded request (a 2025 server would ignore them, but it would also
 * echo them into logs and tool handlers that were never meant to see them). `progressToken` stays,
 * replaced by one the translator minted (tokens must be unique per upstream session, and one session
 * serves many requests of a principal). The MRTR retry fields (`inputResponses`, `requestState`) are
 * the translator's business, never the upstream's.
 *
 * Down: every 2026 result carries `resultType`, names the server in `_meta`, and the cacheable ones
 * carry `ttlMs`/`cacheScope`. A 2025 server says nothing about freshness, so the translator cannot
 * promise any: `ttlMs` is configured (default 0, "stale at once") and `cacheScope` is always
 * `private`, since the upstream session (and so what it lists) is per principal.
 */
import { LEGACY_VERSIONS, META, MODERN_VERSION } from '../versions.ts';

export type Json = Record<string, unknown>;
export type RpcId = string | number;

/** Results the 2026 caching rules (server/utilities/caching) require hints on. */
export const CACHEABLE_METHODS: ReadonlySet<string> = new Set([
  'tools/list', 'prompts/list', 'resources/list', 'resources/templates/list', 'resources/read',
]);

/** Syslog severities as MCP orders them, least severe first. */
const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Position of a level in severity order; undefined for anything that is not a level. */
export function logRank(level: unknown): number | undefined {
  const i = LOG_LEVELS.indexOf(level as LogLevel);
  return i === -1 ? undefined : i;
}

export function levelAt(rank: number): LogLevel {
  return LOG_LEVELS[rank];
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function paramsOf(message: unknown): Json {
  const p = (message as { params?: unknown }).params;
  return isObject(p) ? p : {};
}

/** What a 2026 request says about its client, read from `params._meta`. */
export interface ClientContext {
  version: unknown;
  capabilities: Json;
  clientInfo: Json | undefined;
  /** Severity rank of `io.modelcontextprotocol/logLevel`; undefined: no log messages for this request. */
  logRank: number | undefined;
  progressToken: RpcId | undefined;
}

export function clientContextOf(params: Json): ClientContext {
  const meta = isObject(params._meta) ? params._meta : {};
  const token = meta.progressToken;
  return {
    version: meta[META.protocolVersion],
    capabilities: isObject(meta[META.clientCapabilities]) ? meta[META.clientCapabilities] as Json : {},
    clientInfo: isObject(meta[META.clientInfo]) ? meta[META.clientInfo] as Json : undefined,
    logRank: logRank(meta[META.logLevel]),
    progressToken: typeof token === 'string' || typeof token === 'number' ? token : undefined,
  };
}

/**
 * A stable text for a capability set (keys sorted at every depth), so two requests declaring the same
 * capabilities in a different key order share one upstream session.
 */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * A 2026 client's capabilities as a 2025 `initialize` declares them. `extensions` is a 2026 field a
 * 2025 server has no use for; the rest (roots, sampling, elicitation, experimental) means the same.
 */
export function legacyClientCapabilities(caps: Json): Json {
  const { extensions: _extensions, ...rest } = caps;
  return rest;
}

/**
 * A 2025 server's capabilities as a 2026 client reads them. 2025-11-25 `tasks` became an extension
 * with other semantics in 2026, which this translator does not speak, so it is not advertised.
 */
export function modernServerCapabilities(caps: unknown): Json {
  if (!isObject(caps)) return {};
  const { tasks: _tasks, ...rest } = caps;
  return rest;
}

/** The params of a 2026 request as a 2025 server gets them. */
export function legacyParams(params: Json, upstreamProgressToken: RpcId | undefined): Json | undefined {
  const { _meta, inputResponses: _ir, requestState: _rs, ...rest } = params;
  const meta: Json = {};
  if (isObject(_meta)) {
    for (const [k, v] of Object.entries(_meta)) {
      if (k.startsWith('io.modelcontextprotocol/') || k === 'progressToken') continue;
      meta[k] = v;
    }
  }
  if (upstreamProgressToken !== undefined) meta.progressToken = upstreamProgressToken;
  const out: Json = Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest;
  return Object.keys(out).length > 0 ? out : undefined;
}

export interface ResultHints {
  serverInfo: unknown;
  ttlMs: number;
}

/** `_meta` with the server's identity added (an existing key of the upstream's wins). */
function withServerInfo(meta: unknown, serverInfo: unknown): Json | undefined {
  if (serverInfo === undefined) return isObject(meta) ? meta : undefined;
  return { [META.serverInfo]: serverInfo, ...(isObject(meta) ? meta : {}) };
}

/** A 2025 result as a 2026 server would answer `method`. */
export function modernResult(method: string, result: unknown, hints: ResultHints): Json {
  const r: Json = isObject(result) ? { ...result } : {};
  r.resultType ??= 'complete';
  if (CACHEABLE_METHODS.has(method)) {
    r.ttlMs ??= hints.ttlMs;
    r.cacheScope ??= 'private';
  }
  const meta = withServerInfo(r._meta, hints.serverInfo);
  if (meta) r._meta = meta;
  return r;
}

/**
 * A 2025 error as 2026 spells it. 2026 renumbered "resource not found" from -32002 to -32602 (Invalid
 * Params), so a 2026 client tells it apart from an implementation-defined -32002.
 */
export function modernError(method: string, error: unknown): Json {
  const e: Json = isObject(error) ? { ...error } : { code: -32603, message: 'Internal error' };
  if (method === 'resources/read' && e.code === -32002) e.code = -32602;
  return e;
}

/**
 * The HTTP status a 2026 server gives an error answered before its response stream began (the SDK v2
 * calls this its error ladder): a method the server does not have is 404, so a 2026 client can tell
 * "no such method" from "no MCP endpoint here". Every other error is an in-band 200.
 */
export function statusOfError(error: Json): number {
  return error.code === -32601 ? 404 : 200;
}

/** The upstream's initialize answer, as much of it as the translator keeps. */
export interface LegacyServer {
  protocolVersion: string;
  capabilities: Json;
  serverInfo: unknown;
  instructions: string | undefined;
}

export function legacyServerOf(result: unknown): LegacyServer {
  const r = isObject(result) ? result : {};
  const version = typeof r.protocolVersion === 'string' ? r.protocolVersion : '';
  return {
    // A version the gateway does not know is still the one the server chose; it is sent back as is.
    protocolVersion: version || LEGACY_VERSIONS[0],
    capabilities: isObject(r.capabilities) ? r.capabilities : {},
    serverInfo: r.serverInfo,
    instructions: typeof r.instructions === 'string' ? r.instructions : undefined,
  };
}

/** `server/discover`, answered from the upstream's initialize result. */
export function discoverResult(server: LegacyServer, ttlMs: number): Json {
  const r: Json = {
    resultType: 'complete',
    supportedVersions: [MODERN_VERSION],
    capabilities: modernServerCapabilities(server.capabilities),
  };
  if (server.instructions !== undefined) r.instructions = server.instructions;
  const meta = withServerInfo(undefined, server.serverInfo);
  if (meta) r._meta = meta;
  r.ttlMs = ttlMs;
  r.cacheScope = 'private';
  return r;
}

/** The 2026 subscription filter, and what of it a 2025 server's capabilities can honour. */
export interface SubscriptionFilter {
  toolsListChanged?: boolean;
  promptsListChanged?: boolean;
  resourcesListChanged?: boolean;
  resourceSubscriptions?: string[];
}

export function parseFilter(params: Json): SubscriptionFilter | undefined {
  const n = params.notifications;
  if (!isObject(n)) return undefined;
  const f: SubscriptionFilter = {};
  for (const k of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) {
    if (n[k] !== undefined && typeof n[k] !== 'boolean') return undefined;
    if (n[k] === true) f[k] = true;
  }
  if (n.resourceSubscriptions !== undefined) {
    const uris = n.resourceSubscriptions;
    if (!Array.isArray(uris) || !uris.every((u) => typeof u === 'string')) return undefined;
    if (uris.length > 0) f.resourceSubscriptions = [...new Set(uris as string[])];
  }
  return f;
}

/** The part of `filter` the server can deliver: list changes it advertises, subscriptions if it has them. */
export function honoredFilter(filter: SubscriptionFilter, caps: Json): SubscriptionFilter {
  const cap = (k: string) => (isObject(caps[k]) ? caps[k] as Json : undefined);
  const out: SubscriptionFilter = {};
  if (filter.toolsListChanged && cap('tools')?.listChanged === true) out.toolsListChanged = true;
  if (filter.promptsListChanged && cap('prompts')?.listChanged === true) out.promptsListChanged = true;
  if (filter.resourcesListChanged && cap('resources')?.listChanged === true) out.resourcesListChanged = true;
  if (filter.resourceSubscriptions && cap('resources')?.subscribe === true) out.resourceSubscriptions = filter.resourceSubscriptions;
  return out;
}

/** Whether a notification from the upstream's GET stream is one the filter opted in to. */
export function filterAccepts(filter: SubscriptionFilter, message: { method: string; params?: unknown }): boolean {
  switch (message.method) {
    case 'notifications/tools/list_changed': return filter.toolsListChanged === true;
    case 'notifications/prompts/list_changed': return filter.promptsListChanged === true;
    case 'notifications/resources/list_changed': return filter.resourcesListChanged === true;
    case 'notifications/resources/updated': {
      const uri = paramsOf(message).uri;
      return typeof uri === 'string' && filter.resourceSubscriptions?.includes(uri) === true;
    }
    default: return false;
  }
}

/** A notification tagged with the subscription it is delivered on. */
export function tagged(method: string, params: unknown, subscriptionId: RpcId): Json {
  const p = isObject(params) ? params : {};
  return { jsonrpc: '2.0', method, params: { ...p, _meta: { ...(isObject(p._meta) ? p._meta : {}), [META.subscriptionId]: subscriptionId } } };
}
