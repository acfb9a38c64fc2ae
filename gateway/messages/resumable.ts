/**
 * Requests whose answer may arrive on another stream of their session.
 *
 * Under 2025-era SSE polling (SEP-1699) an upstream may close a POST's event stream before it answered,
 * and the client resumes with `GET` + `Last-Event-ID`: the answer is replayed on that GET stream. The
 * exchange that saw the request is over by then, so its correlation entries are parked here, in the
 * session's scope, for a later GET stream of the same session to find (and consume, once).
 *
 * Tenant isolation: entries are keyed by the client-facing session id, which is sealed to one route and
 * one principal (session-seal.ts), and each entry also records both; a lookup that does not present the
 * same owner and route finds nothing and consumes nothing. Ids are only unique within a session, so the
 * session is part of every key.
 *
 * Bounded: at most `perSession` entries per session (the oldest give way: their answer then fails
 * closed, as it did before parking existed), `max` in all and `maxBytes` of requests (their JSON length;
 * a request may be as large as a route's maxRequestBytes, and parked ones outlive their connection),
 * each living `ttlMs` unless a GET of its session refreshes it (a client still polling). Released when
 * answered or when the session ends.
 */
import { LRUCache } from 'lru-cache';
import type { JSONRPCRequest } from '@modelcontextprotocol/server';
import type { Correlator } from './inspect.ts';

interface Parked {
  session: string;
  request: JSONRPCRequest;
  owner: Buffer;
  route: string;
  /** The request's JSON length, counted against `maxBytes`. */
  size: number;
}

export interface ResumableLimits {
  max?: number;
  maxBytes?: number;
  perSession?: number;
  ttlMs?: number;
}

/** Who may pick parked requests up: the session's sealed id, its owner hash and its route. */
export interface SessionScope {
  session: string;
  owner: Buffer;
  route: string;
}

export class ResumableRequests {
  readonly #entries: LRUCache<string, Parked>;
  /** The entry keys of each session, oldest first: for the per-session bound and the session's end. */
  readonly #bySession = new Map<string, Set<string>>();
  readonly #perSession: number;

  constructor(limits: ResumableLimits = {}) {
    this.#perSession = limits.perSession ?? 64;
    this.#entries = new LRUCache<string, Parked>({
      max: limits.max ?? 20_000,
      maxSize: limits.maxBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (p) => p.size,
      ttl: limits.ttlMs ?? 30 * 60_000,
      // A replaced value keeps its key in the session's set; anything else (evicted, expired, taken) leaves it.
      dispose: (p, k, reason) => {
        if (reason !== 'set') this.#unlink(p.session, k);
      },
    });
  }

  /** Total entries held (expired ones included until they are purged). */
  get size(): number {
    return this.#entries.size;
  }

  /** Keeps a request the client still waits for, under its id key, until an answer finds it. */
  park(scope: SessionScope, key: string, request: JSONRPCRequest): void {
    const size = Math.max(1, JSON.stringify(request).length);
    // Larger than the whole store: not kept, its answer fails closed.
    if (size > this.#entries.maxSize) return;
    const keys = this.#bySession.get(scope.session);
    if (keys) {
      for (const old of keys) {
        if (keys.size < this.#perSession) break;
        keys.delete(old);
        this.#entries.delete(old);
      }
    }
    const k = entryKey(scope.session, key);
    this.#entries.set(k, { session: scope.session, request, owner: scope.owner, route: scope.route, size });
    let set = this.#bySession.get(scope.session);
    if (!set) this.#bySession.set(scope.session, (set = new Set()));
    set.add(k);
  }

  /** Whether an id is parked in a session (its request is still pending at the upstream). */
  has(session: string, key: string): boolean {
    return this.#entries.has(entryKey(session, key));
  }

  /** The parked request an answer in this scope is for, removed; nothing for another owner or route. */
  take(scope: SessionScope, key: string): JSONRPCRequest | undefined {
    const k = entryKey(scope.session, key);
    const p = this.#entries.get(k);
    if (!p || p.route !== scope.route || !p.owner.equals(scope.owner)) return undefined;
    this.#entries.delete(k);
    return p.request;
  }

  /** A client of the session is back (a GET): its parked requests live another `ttlMs`. */
  refresh(scope: SessionScope): void {
    const keys = this.#bySession.get(scope.session);
    if (!keys) return;
    for (const k of [...keys]) {
      const p = this.#entries.get(k, { updateAgeOnGet: false });
      if (p && p.route === scope.route && p.owner.equals(scope.owner)) this.#entries.set(k, p);
    }
  }

  /** The session ended: its parked requests will never be answered. */
  drop(session: string): void {
    const keys = this.#bySession.get(session);
    if (!keys) return;
    this.#bySession.delete(session);
    for (const k of keys) this.#entries.delete(k);
  }

  /**
   * The correlator of a resumed stream: it carries no client requests, only answers, each matched
   * against what this scope parked.
   */
  correlator(scope: SessionScope): Correlator {
    return {
      has: () => false,
      add: () => 'full',
      take: (key) => this.take(scope, key),
    };
  }

  #unlink(session: string, k: string): void {
    const keys = this.#bySession.get(session);
    if (!keys) return;
    keys.delete(k);
    if (keys.size === 0) this.#bySession.delete(session);
  }
}

/** Session ids are sealed base64url text and id keys are prefixed (`n:`/`s:`): a newline cannot collide. */
function entryKey(session: string, key: string): string {
  return `${session}\n${key}`;
}
