/**
 * `initialize` answered from `server/discover`: the upstream's capabilities, identity and
 * instructions, in an InitializeResult of the 2025 revision the client asked for.
 *
 * Discover results are cached briefly, so a burst of clients connecting (or every GET stream asking
 * what the upstream can notify about) costs one upstream request. A result the upstream marks
 * `private` may differ per caller (the upstream sees each principal's signed identity), so it is
 * cached per principal; a `public` one is shared.
 */
import { LRUCache } from 'lru-cache';
import type { Principal } from '../../contract.ts';
import { META } from '../versions.ts';
import type { Caller, ModernUpstream } from './upstream.ts';
import { isObject, type Session } from './session.ts';

export type Discovered =
  | { ok: true; result: Record<string, unknown> }
  /** The upstream answered with a JSON-RPC error (kept for the client) or not at all as JSON-RPC. */
  | { ok: false; status: number; error: Record<string, unknown> | undefined };

const PUBLIC = '\0public';

export class Discovery {
  readonly #upstream: ModernUpstream;
  readonly #cache: LRUCache<string, Record<string, unknown>> | undefined;

  /** @param ttlMs how long a result is reused; 0 disables the cache. */
  constructor(upstream: ModernUpstream, ttlMs: number) {
    this.#upstream = upstream;
    this.#cache = ttlMs > 0 ? new LRUCache({ max: 1000, ttl: ttlMs }) : undefined;
  }

  async get(caller: Caller, params: Record<string, unknown>, signal: AbortSignal): Promise<Discovered> {
    const own = ownerKey(caller.principal);
    const cached = this.#cache?.get(PUBLIC) ?? this.#cache?.get(own);
    if (cached) return { ok: true, result: cached };
    const { status, message } = await this.#upstream.settle(caller, 'server/discover', params, signal);
    if (message && isObject(message.result)) {
      const result = message.result;
      this.#cache?.set(result.cacheScope === 'public' ? PUBLIC : own, result);
      return { ok: true, result };
    }
    return { ok: false, status, error: message && isObject(message.error) ? message.error : undefined };
  }

  /** Drops what is cached (the upstream's capabilities may have changed). */
  forget(): void {
    this.#cache?.clear();
  }
}

function ownerKey(p: Principal | undefined): string {
  return p ? `${p.issuer}\0${p.tenant}\0${p.subject}` : '';
}

/**
 * The InitializeResult for a discover result. Capabilities pass as the upstream declared them, minus
 * `extensions` (a 2026 field a 2025 client cannot negotiate through this translator). `logging` is
 * kept: the translator answers `logging/setLevel` itself and carries the level on every request.
 */
export function initializeResult(discovered: Record<string, unknown>, session: Session, fallbackName: string): Record<string, unknown> {
  const capabilities = isObject(discovered.capabilities) ? { ...discovered.capabilities } : {};
  delete capabilities.extensions;
  const meta = isObject(discovered._meta) ? discovered._meta : {};
  const info = meta[META.serverInfo];
  const serverInfo = isObject(info) && typeof info.name === 'string' ? info : { name: fallbackName, version: '0.0.0' };
  const out: Record<string, unknown> = { protocolVersion: session.version, capabilities, serverInfo };
  if (typeof discovered.instructions === 'string') out.instructions = discovered.instructions;
  return out;
}

/** The listen filter a session's GET stream asks for: what the upstream can notify, and its URIs. */
export function listenFilter(discovered: Record<string, unknown>, uris: readonly string[]): Record<string, unknown> {
  const caps = isObject(discovered.capabilities) ? discovered.capabilities : {};
  const listChanged = (k: string) => isObject(caps[k]) && (caps[k] as Record<string, unknown>).listChanged === true;
  const filter: Record<string, unknown> = {};
  if (listChanged('tools')) filter.toolsListChanged = true;
  if (listChanged('prompts')) filter.promptsListChanged = true;
  if (listChanged('resources')) filter.resourcesListChanged = true;
  if (uris.length > 0) filter.resourceSubscriptions = [...uris];
  return filter;
}
