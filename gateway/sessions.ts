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
import type { Transport } from './contract.ts';
import type { InflightHold, PendingRequests } from './messages/correlation.ts';
import { ResumableRequests } from './messages/resumable.ts';

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
  /** The upstream's own id (never shown): links the session to a stdio upstream's process. */
  upstreamSessionId?: string;
  openedAt: number;
  lastActivityAt: number;
  streams: Set<ServerResponse>;
  /** How to end the session at the upstream (DELETE for Streamable HTTP); set by the proxy. */
  endUpstream?: UpstreamSessionEnd;
}

/** How to end a session at its upstream: a DELETE to `url` (Streamable HTTP). */
export interface UpstreamSessionEnd {
  url: string;
  headers: Record<string, string>;
  /** The upstream's credential and signed identity, made at the time of the call. */
  credentials(): Record<string, string>;
}

/** An open legacy SSE stream the gateway can write messages into. */
export interface LegacyStream {
  /** Requests of this session awaiting their answer on the stream (every POST of the session). */
  pending: PendingRequests;
  /** Writes one JSON-RPC message as an SSE `message` event. */
  send(json: string): void;
}

/** Ids in flight per Streamable HTTP session, across that session's concurrent exchanges. */
interface InflightIds {
  ids: Set<string>;
  holders: number;
}

export class SessionRegistry {
  readonly #sessions = new LRUCache<string, SessionRecord>({
    max: 50_000,
    ttl: 24 * 3600_000,
    updateAgeOnGet: true,
    dispose: (r, id) => {
      const key = r.upstreamSessionId === undefined ? undefined : upstreamKey(r.info.upstream, r.upstreamSessionId);
      if (key !== undefined && this.#byUpstream.get(key) === id) this.#byUpstream.delete(key);
      this.resumable.drop(id);
    },
  });
  /** Requests whose POST stream ended unanswered, for a resumed GET stream to find (SEP-1699). */
  readonly resumable = new ResumableRequests();
  /** upstream + upstream session id → client-facing id, for upstreams that report their sessions' end. */
  readonly #byUpstream = new Map<string, string>();
  readonly #legacy = new Map<string, LegacyStream>();
  readonly #inflight = new Map<string, InflightIds>();

  opened(id: string, info: SessionRecord['info'], endUpstream?: UpstreamSessionEnd, upstreamSessionId?: string): void {
    const now = Date.now();
    const existing = this.#sessions.get(id);
    if (existing) {
      existing.lastActivityAt = now;
      return;
    }
    this.#sessions.set(id, { info, upstreamSessionId, openedAt: now, lastActivityAt: now, streams: new Set(), endUpstream });
    if (upstreamSessionId !== undefined) this.#byUpstream.set(upstreamKey(info.upstream, upstreamSessionId), id);
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
    this.resumable.drop(id);
  }

  /** The upstream ended one of its sessions (a stdio upstream's idle timeout, say): stop listing it. */
  forgetUpstream(upstream: string, upstreamSessionId: string): void {
    const id = this.#byUpstream.get(upstreamKey(upstream, upstreamSessionId));
    if (id !== undefined) this.#sessions.delete(id);
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

  /**
   * The request ids a Streamable HTTP session has in flight on this replica, shared by its concurrent
   * exchanges so that none reuses an id another is still waiting on. Call the returned release once.
   */
  holdInflight(id: string): InflightHold {
    let entry = this.#inflight.get(id);
    if (!entry) this.#inflight.set(id, (entry = { ids: new Set(), holders: 0 }));
    entry.holders++;
    const held = entry;
    return {
      ids: held.ids,
      parked: (key) => this.resumable.has(id, key),
      release: () => {
        if (--held.holders === 0) this.#inflight.delete(id);
      },
    };
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

  /**
   * Ends a session: its open client streams close and the upstream session is deleted.
   * @param endInProcess ends it at an upstream served in this process; false when the upstream is not one.
   */
  async end(id: string, endInProcess?: (upstream: string, upstreamSessionId: string) => boolean): Promise<boolean> {
    const r = this.#sessions.get(id);
    this.resumable.drop(id);
    if (!r) return false;
    this.#sessions.delete(id);
    for (const res of r.streams) res.end();
    if (r.upstreamSessionId !== undefined && endInProcess?.(r.info.upstream, r.upstreamSessionId)) return true;
    const end = r.endUpstream;
    if (end) {
      await fetch(end.url, { method: 'DELETE', headers: { ...end.headers, ...end.credentials() }, signal: AbortSignal.timeout(5000) })
        .then((res) => res.body?.cancel())
        .catch(() => undefined);
    }
    return true;
  }
}

function upstreamKey(upstream: string, upstreamSessionId: string): string {
  return `${upstream}\n${upstreamSessionId}`;
}
