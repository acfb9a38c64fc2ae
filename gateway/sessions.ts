/**
 * What this replica knows of MCP sessions: for the admin API (list, end) and for the legacy transport,
 * whose answers to a POST travel on another response (the GET stream), possibly one the gateway must
 * write a refusal into.
 *
 * Nothing here is needed to *serve* a session: session ids are sealed (session-seal.ts), so any replica
 * can serve any Streamable HTTP session. The registry is bounded and forgets idle sessions.
 */
import type { ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Transport } from './contract.ts';

export interface SessionInfo {
  id: string;
  tenant?: string;
  subject?: string;
  route: string;
  upstream: string;
  transport: Transport;
  /** Epoch milliseconds. */
  openedAt: number;
  lastActivityAt: number;
  /** Open client responses (SSE streams) on this replica. */
  openStreams: number;
  /** The stdio process serving it, for stdio upstreams. */
  process?: { pool: string; pid: number };
}

interface SessionRecord {
  info: Omit<SessionInfo, 'openStreams' | 'openedAt' | 'lastActivityAt' | 'process'>;
  /** The upstream's own id (never shown): links the session to a stdio bridge's process. */
  upstreamSessionId?: string;
  openedAt: number;
  lastActivityAt: number;
  streams: Set<ServerResponse>;
  /** Ends the session at the upstream (DELETE for Streamable HTTP); set by the proxy. */
  endUpstream?: () => Promise<void>;
}

/** Requests a legacy-SSE client sent, by id, so responses on its stream know what they answer. */
export class PendingRequests {
  readonly #map = new Map<string, JSONRPCRequest>();
  readonly #max: number;
  constructor(max = 1000) {
    this.#max = max;
  }
  add(key: string, req: JSONRPCRequest): void {
    if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value!);
    this.#map.set(key, req);
  }
  take(key: string): JSONRPCRequest | undefined {
    const r = this.#map.get(key);
    if (r) this.#map.delete(key);
    return r;
  }
}

/** An open legacy SSE stream the gateway can write messages into. */
export interface LegacyStream {
  pending: PendingRequests;
  /** Writes one JSON-RPC message as an SSE `message` event. */
  send(json: string): void;
}

export class SessionRegistry {
  readonly #sessions = new LRUCache<string, SessionRecord>({ max: 50_000, ttl: 24 * 3600_000, updateAgeOnGet: true });
  readonly #legacy = new Map<string, LegacyStream>();

  opened(id: string, info: SessionRecord['info'], endUpstream?: () => Promise<void>, upstreamSessionId?: string): void {
    const now = Date.now();
    const existing = this.#sessions.get(id);
    if (existing) {
      existing.lastActivityAt = now;
      return;
    }
    this.#sessions.set(id, { info, upstreamSessionId, openedAt: now, lastActivityAt: now, streams: new Set(), endUpstream });
  }

  touched(id: string): void {
    const r = this.#sessions.get(id);
    if (r) r.lastActivityAt = Date.now();
  }

  /** Remembers an open client stream of a session so the admin API can close it. */
  attachStream(id: string, res: ServerResponse): void {
    this.#sessions.get(id)?.streams.add(res);
  }

  detachStream(id: string, res: ServerResponse): void {
    this.#sessions.get(id)?.streams.delete(res);
  }

  forget(id: string): void {
    this.#sessions.delete(id);
  }

  registerLegacy(id: string, stream: LegacyStream): void {
    this.#legacy.set(id, stream);
  }

  unregisterLegacy(id: string): void {
    this.#legacy.delete(id);
  }

  legacy(id: string): LegacyStream | undefined {
    return this.#legacy.get(id);
  }

  /** @param processOf finds the stdio process serving an upstream session, when there is one. */
  list(processOf?: (upstream: string, upstreamSessionId: string) => SessionInfo['process']): SessionInfo[] {
    return [...this.#sessions.entries()].map(([, r]) => ({
      ...r.info,
      openedAt: r.openedAt,
      lastActivityAt: r.lastActivityAt,
      openStreams: r.streams.size,
      process: r.upstreamSessionId ? processOf?.(r.info.upstream, r.upstreamSessionId) : undefined,
    }));
  }

  /** Ends every open client stream cleanly (drain): clients reconnect, sessions live on upstream. */
  closeStreams(): void {
    for (const [, r] of this.#sessions.entries()) for (const res of r.streams) res.end();
  }

  /** Ends a session: its open client streams close and the upstream session is deleted. */
  async end(id: string): Promise<boolean> {
    const r = this.#sessions.get(id);
    if (!r) return false;
    this.#sessions.delete(id);
    for (const res of r.streams) res.end();
    await r.endUpstream?.().catch(() => undefined);
    return true;
  }
}
