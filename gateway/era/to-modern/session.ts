/**
 * A 2025-era session in front of a stateless 2026 upstream.
 *
 * The upstream keeps nothing between requests, so everything the translator must repeat on each of
 * them (the negotiated version, the client's capabilities and clientInfo) travels in the session id
 * itself: base64url JSON plus a random nonce. The core seals the id before the client sees it (AES-GCM,
 * bound to the principal and route) and hands it back unsealed, so the payload is private and cannot be
 * forged, and any replica can serve the session with no shared store.
 *
 * What a session changes as it goes (log level, resource subscriptions, its GET stream, the ids of its
 * requests in flight) cannot live in an id the client already holds; it is kept per replica, bounded,
 * keyed by the nonce (`SessionMemory`). A replica that never saw the session simply starts from the
 * defaults: no level, no subscriptions.
 */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { LEGACY_VERSION, LEGACY_VERSIONS } from '../versions.ts';

export interface Session {
  /** The 2025 revision answered to the client's `initialize`. */
  version: string;
  /** The client's `initialize` capabilities, sent upstream on every request. */
  capabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
  /** Random, so two sessions of one client never share in-memory state. */
  nonce: string;
}

/**
 * Longest encoded id. The core's sealer refuses seals above 8192 characters, and sealing grows the
 * id by about a third again; a client with huge capabilities or clientInfo keeps only what matters.
 */
const MAX_ID_LENGTH = 5000;

/** The session an `initialize` request opens: its negotiated version and its id. */
export function openSession(params: unknown): { session: Session; id: string } {
  const p = isObject(params) ? params : {};
  const requested = p.protocolVersion;
  const version = typeof requested === 'string' && LEGACY_VERSIONS.includes(requested) ? requested : LEGACY_VERSION;
  const session: Session = {
    version,
    capabilities: isObject(p.capabilities) ? p.capabilities : {},
    clientInfo: isObject(p.clientInfo) ? p.clientInfo : { name: 'unknown', version: '0' },
    nonce: randomBytes(12).toString('base64url'),
  };
  return { session, id: encodeWithin(session, () => encode(session), MAX_ID_LENGTH) };
}

/**
 * `encode()`, after trimming the client's `initialize` in place until the result fits in `max`
 * characters: first its identity beyond name, version and title (icons, descriptions are for display;
 * upstream logs need little), then every capability but those a server asks the client for.
 */
export function encodeWithin(client: { clientInfo: Record<string, unknown>; capabilities: Record<string, unknown> }, encode: () => string, max: number): string {
  let id = encode();
  if (id.length > max) {
    const { name, version, title } = client.clientInfo;
    client.clientInfo = { name, version, ...(title !== undefined ? { title } : {}) };
    id = encode();
  }
  if (id.length > max) {
    const { roots, sampling, elicitation } = client.capabilities;
    client.capabilities = JSON.parse(JSON.stringify({ roots, sampling, elicitation })) as Record<string, unknown>;
    id = encode();
  }
  return id;
}

/** The session an (unsealed) id stands for; undefined when it is not one of ours. */
export function readSession(id: unknown): Session | undefined {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) return undefined;
  try {
    const v = JSON.parse(Buffer.from(id, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (!isObject(v) || typeof v.v !== 'string' || typeof v.n !== 'string' || !isObject(v.c) || !isObject(v.i)) return undefined;
    return { version: v.v, capabilities: v.c, clientInfo: v.i, nonce: v.n };
  } catch {
    return undefined;
  }
}

function encode(s: Session): string {
  return Buffer.from(JSON.stringify({ v: s.version, c: s.capabilities, i: s.clientInfo, n: s.nonce })).toString('base64url');
}

/** A session's GET stream, as far as other requests of the session need to reach it. */
export interface ListenHandle {
  /** The resource subscriptions changed: listen upstream again with the new filter; resolves once acknowledged. */
  refresh(): Promise<void>;
  close(): void;
}

interface Memory {
  level?: string;
  uris: Set<string>;
  listen?: ListenHandle;
}

/** Most subscribed URIs per session: a client cannot grow the listen filter without bound. */
const MAX_URIS = 1000;

/** What a session changed as it went, per replica and bounded; plus the sessions ended here. */
export class SessionMemory {
  readonly #live: LRUCache<string, Memory>;
  /**
   * Sessions ended by DELETE on this replica. The id stays decodable (it is stateless), so without
   * this a client could go on using a session it ended; 2025 servers answer 404 to an ended session.
   */
  readonly #ended: LRUCache<string, true>;

  constructor(max = 10_000) {
    this.#live = new LRUCache({ max, dispose: (m) => m.listen?.close() });
    this.#ended = new LRUCache({ max });
  }

  ended(nonce: string): boolean {
    return this.#ended.has(nonce);
  }

  /** Forgets the session and remembers that it ended. */
  end(nonce: string): void {
    this.#ended.set(nonce, true);
    this.#live.delete(nonce); // disposes: closes its GET stream
  }

  level(nonce: string): string | undefined {
    return this.#live.get(nonce)?.level;
  }

  setLevel(nonce: string, level: string): void {
    this.#of(nonce).level = level;
  }

  uris(nonce: string): string[] {
    return [...(this.#live.get(nonce)?.uris ?? [])];
  }

  /** Returns whether the set changed. */
  subscribe(nonce: string, uri: string, on: boolean): boolean {
    const m = this.#of(nonce);
    if (on === m.uris.has(uri)) return false;
    if (on && m.uris.size >= MAX_URIS) return false;
    if (on) m.uris.add(uri);
    else m.uris.delete(uri);
    return true;
  }

  listen(nonce: string): ListenHandle | undefined {
    return this.#live.get(nonce)?.listen;
  }

  /** Records the session's GET stream; false when one is already open (one per session, as 2025 servers). */
  setListen(nonce: string, handle: ListenHandle): boolean {
    const m = this.#of(nonce);
    if (m.listen) return false;
    m.listen = handle;
    return true;
  }

  clearListen(nonce: string, handle: ListenHandle): void {
    const m = this.#live.get(nonce);
    if (m?.listen === handle) m.listen = undefined;
  }

  /** Closes every GET stream and forgets everything (translator closed). */
  clear(): void {
    this.#live.clear();
  }

  #of(nonce: string): Memory {
    let m = this.#live.get(nonce);
    if (!m) {
      m = { uris: new Set() };
      this.#live.set(nonce, m);
    }
    return m;
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
