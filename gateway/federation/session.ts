/**
 * A federation session: what the client's one `Mcp-Session-Id` stands for.
 *
 * The id carries the client's `initialize` (version, capabilities, identity) and the member sessions
 * opened when it initialized. The core seals it to the principal and the route before the client sees
 * it, so any replica can serve any request of the session without a shared store. What a replica
 * learns later lives in its memory (`SessionState`): member sessions opened after `initialize` (a member
 * that was down then, or one whose session ended), listings, requests in flight, the log level, the
 * open GET streams. Another replica rebuilds what it needs from the id alone.
 */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { encodeWithin } from '../era/to-modern/session.ts';
import { LEGACY_VERSION, LEGACY_VERSIONS } from '../era/versions.ts';
import type { Table } from './catalog.ts';
import type { ClientContext, MemberSession } from './members.ts';

export interface FederationSession {
  /** Random; keys this session's state on each replica. */
  nonce: string;
  client: ClientContext;
  /** Member sessions sealed into the id, by member name. */
  sealed: Readonly<Record<string, MemberSession>>;
}

/**
 * Longest encoded id. The core's sealer accepts seals up to 8192 characters and sealing adds about a
 * third; a huge client identity or capability set keeps only what members act on, and member sessions
 * that no longer fit are kept in replica memory instead.
 */
const MAX_ID_LENGTH = 5000;

/** The session an `initialize` opens, before any member session. */
export function newSession(params: unknown): FederationSession {
  const p = (params && typeof params === 'object' ? params : {}) as Record<string, unknown>;
  const requested = p.protocolVersion;
  return {
    nonce: randomBytes(12).toString('base64url'),
    client: {
      protocolVersion: typeof requested === 'string' && LEGACY_VERSIONS.includes(requested) ? requested : LEGACY_VERSION,
      capabilities: isRecord(p.capabilities) ? p.capabilities : {},
      clientInfo: isRecord(p.clientInfo) ? p.clientInfo : { name: 'unknown', version: '0' },
    },
    sealed: {},
  };
}

/** The id for a session; `sealed` is trimmed (in place) of what does not fit. */
export function encodeSession(s: FederationSession): { id: string; unsealed: string[] } {
  let id = encodeWithin(s.client, () => encode(s), MAX_ID_LENGTH);
  const unsealed: string[] = [];
  const sealed = { ...s.sealed };
  for (const name of Object.keys(sealed).reverse()) {
    if (id.length <= MAX_ID_LENGTH) break;
    delete sealed[name];
    unsealed.push(name);
    s.sealed = sealed;
    id = encode(s);
  }
  return { id, unsealed };
}

/** The session an (unsealed) id stands for; undefined when it is not one of ours. */
export function readSession(id: unknown): FederationSession | undefined {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) return undefined;
  try {
    const v = JSON.parse(Buffer.from(id, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (v.f !== 1 || typeof v.n !== 'string' || typeof v.v !== 'string' || !isRecord(v.c) || !isRecord(v.i) || !isRecord(v.m)) return undefined;
    const sealed: Record<string, MemberSession> = {};
    for (const [name, m] of Object.entries(v.m)) {
      if (!Array.isArray(m) || typeof m[1] !== 'string' || typeof m[2] !== 'string') return undefined;
      sealed[name] = { id: typeof m[0] === 'string' ? m[0] : undefined, version: m[1], caps: m[2] };
    }
    return { nonce: v.n, client: { protocolVersion: v.v, capabilities: v.c, clientInfo: v.i }, sealed };
  } catch {
    return undefined;
  }
}

function encode(s: FederationSession): string {
  const m: Record<string, [string | null, string, string]> = {};
  for (const [name, ms] of Object.entries(s.sealed)) m[name] = [ms.id ?? null, ms.version, ms.caps];
  const c = s.client;
  return Buffer.from(JSON.stringify({ f: 1, n: s.nonce, v: c.protocolVersion, c: c.capabilities, i: c.clientInfo, m })).toString('base64url');
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A session's open GET stream, as other requests of the session reach it. */
export interface ClientStream {
  /** Ends the stream (the session was deleted). */
  close(): void;
  /** Sends one message to the client. */
  push(message: unknown): void;
  /** A member's listing of this kind changed: tell the client once, soon. */
  changed(method: string): void;
}

/** What one replica knows of a session beyond its id. */
export class SessionState {
  /** Member sessions opened on this replica; they win over the sealed ones (which may have ended). */
  readonly late = new Map<string, MemberSession>();
  /** Openings under way, so concurrent requests share one. */
  readonly opening = new Map<string, Promise<MemberSession>>();
  /** Listings by `<kind>\0<member>`, with when they go stale. */
  readonly listings = new Map<string, { items: Record<string, unknown>[]; staleAt: number }>();
  /** The last built name tables, by list method. */
  readonly tables = new Map<string, Table>();
  /** The client's requests in flight on this replica: request id key → member. */
  readonly inFlight = new Map<string, string>();
  readonly streams = new Set<ClientStream>();
  level: string | undefined;
  ended = false;

  /** The member session to use: opened here, else sealed (unless it ended), else none yet. */
  sessionOf(session: FederationSession, member: string): MemberSession | undefined {
    return this.late.get(member) ?? (this.#gone.has(member) ? undefined : session.sealed[member]);
  }

  /** A member said it no longer knows the session: forget it, so the next use opens another. */
  forget(member: string): void {
    this.late.delete(member);
    this.#gone.add(member);
    for (const key of this.listings.keys()) if (key.endsWith(`\0${member}`)) this.listings.delete(key);
  }

  readonly #gone = new Set<string>();
}

export class SessionStates {
  readonly #states: LRUCache<string, SessionState>;

  constructor(max: number) {
    this.#states = new LRUCache({ max });
  }

  of(session: FederationSession): SessionState {
    let state = this.#states.get(session.nonce);
    if (!state) this.#states.set(session.nonce, (state = new SessionState()));
    return state;
  }

  /** Every session this replica remembers (list changes, close). */
  all(): IterableIterator<SessionState> {
    return this.#states.values();
  }

  clear(): void {
    this.#states.clear();
  }
}
