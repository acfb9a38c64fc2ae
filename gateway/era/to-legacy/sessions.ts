/**
 * Upstream sessions: a 2026 client has none, a 2025 server needs one, so the translator keeps them.
 *
 * One session per principal (issuer, tenant, subject: `ownerOf`) and per client capability set. Per
 * principal, because a session is where a 2025 server keeps per-client state (subscriptions, log
 * level, roots) and a session must never be shared across callers. Per capability set, because a 2025
 * server learns capabilities once, at `initialize`, and may behave differently on them (the reference
 * server registers its elicitation tool only for clients that declared elicitation); a 2026 client
 * declares them on every request, possibly differently each time.
 *
 * Sessions are made on first need (`initialize`, then `notifications/initialized`, awaited: a server
 * may finish setting up in the handler of that notification), reused, dropped when the upstream says
 * it no longer knows them, and DELETEd upstream when evicted (least recently used beyond the bound),
 * idle too long, or the translator closes.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../../contract.ts';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { ownerOf } from '../../session-seal.ts';
import type { UpstreamPort } from '../translation.ts';
import { HEADER, LEGACY_VERSION } from '../versions.ts';
import { canonicalJson, legacyClientCapabilities, legacyServerOf, levelAt, type ClientContext, type Json, type LegacyServer, type RpcId } from './translate.ts';
import { readBody } from '../upstream-read.ts';
import { drain, legacyHeaders, MessageReader } from './wire.ts';

/** The upstream answered with an HTTP error where the translator needed an answer. */
export class UpstreamRefusedError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** What sessions need from the translator. */
export interface SessionWire {
  port: UpstreamPort;
  log: Logger;
  maxMessageBytes: number;
  /** Deadline of the translator's own calls (initialize, setLevel, subscribe). */
  controlTimeoutMs: number;
}

/**
 * Whether an answer to a call on a session says the session is gone. The spec says 404; servers built
 * on the 2025 SDK's express example (the reference server among them) answer 400 "No valid session
 * ID" for an id they do not know, so a 400 whose error names the session counts too.
 */
export function sessionGone(status: number, body: string): boolean {
  if (status === 404) return true;
  return status === 400 && /session/i.test(body);
}

export class LegacySession {
  readonly key: string;
  readonly id: string | undefined;
  readonly version: string;
  readonly server: LegacyServer;
  readonly #wire: SessionWire;
  readonly #path: string;
  /** The latest caller's headers (its credentials) and principal, for calls no caller makes (DELETE). */
  #headers: IncomingHttpHeaders;
  #principal: Principal | undefined;
  #nextId = 1;
  /** Most verbose log level set upstream so far (the server filters by it; each request filters again). */
  #logRank: number | undefined;
  #levelChain: Promise<void> = Promise.resolve();
  #onEnd = new Set<() => void>();
  /** Streams (requests under way, parked, listening) using the session: it is not idle while any is. */
  holds = 0;
  lastUsed = Date.now();
  ended = false;

  constructor(key: string, init: { id: string | undefined; server: LegacyServer; path: string; headers: IncomingHttpHeaders; principal: Principal | undefined }, wire: SessionWire) {
    this.key = key;
    this.id = init.id;
    this.server = init.server;
    this.version = init.server.protocolVersion;
    this.#path = init.path;
    this.#headers = init.headers;
    this.#principal = init.principal;
    this.#wire = wire;
  }

  /** A request id unique on this session (the upstream correlates answers by id per session). */
  nextId(): number {
    return this.#nextId++;
  }

  /** Records the latest caller, whose credentials later calls without a caller use. */
  touch(headers: IncomingHttpHeaders, principal: Principal | undefined): void {
    this.#headers = headers;
    this.#principal = principal;
    this.lastUsed = Date.now();
  }

  /** Runs `fn` when the session ends (evicted, gone upstream, translator closed). */
  onEnd(fn: () => void): () => void {
    this.#onEnd.add(fn);
    return () => this.#onEnd.delete(fn);
  }

  /** A call on this session. `headers` are the caller's; undefined: the latest caller's. */
  send(kind: 'post' | 'get' | 'delete', body: Json | undefined, signal: AbortSignal, headers?: IncomingHttpHeaders): Promise<UpstreamResponse> {
    const call: UpstreamCall = {
      method: kind === 'post' ? 'POST' : kind === 'get' ? 'GET' : 'DELETE',
      pathAndQuery: this.#path,
      headers: legacyHeaders(headers ?? this.#headers, this, kind),
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      principal: this.#principal,
      signal,
    };
    return this.#wire.port.send(call);
  }

  /** Sends a notification or a response to a server request; the upstream's 202 is not waited on beyond its head. */
  async post(message: Json, headers?: IncomingHttpHeaders): Promise<number> {
    const res = await this.send('post', message, AbortSignal.timeout(this.#wire.controlTimeoutMs), headers);
    drain(res);
    return res.statusCode;
  }

  /** A request of the translator's own; its result, or a thrown error. */
  async request(method: string, params: Json, headers?: IncomingHttpHeaders): Promise<unknown> {
    const id = this.nextId();
    const res = await this.send('post', { jsonrpc: '2.0', id, method, params }, AbortSignal.timeout(this.#wire.controlTimeoutMs), headers);
    return answerOf(res, id, method, this.#wire.maxMessageBytes);
  }

  /**
   * Makes the upstream send log messages at `rank` or above. Only ever lowers the level: requests of
   * one session run concurrently with different levels, and each filters its own stream again.
   */
  ensureLogLevel(rank: number, headers: IncomingHttpHeaders): Promise<void> {
    if (this.server.capabilities.logging === undefined) return Promise.resolve();
    const run = async () => {
      if (this.#logRank !== undefined && this.#logRank <= rank) return;
      await this.request('logging/setLevel', { level: levelAt(rank) }, headers);
      this.#logRank = rank;
    };
    this.#levelChain = this.#levelChain.then(run, run);
    return this.#levelChain;
  }

  /** Ends the session; with `remove`, DELETEs it upstream too (not when the upstream already forgot it). */
  end(remove: boolean): void {
    if (this.ended) return;
    this.ended = true;
    for (const fn of [...this.#onEnd]) fn();
    this.#onEnd.clear();
    if (!remove || this.id === undefined) return;
    this.send('delete', undefined, AbortSignal.timeout(this.#wire.controlTimeoutMs)).then(drain, (err: Error) => {
      this.#wire.log.debug({ err: err.message }, 'DELETE of an upstream session failed');
    });
  }
}

/** Reads an answer to request `id`: its result, or an error for anything else. */
export async function answerOf(res: UpstreamResponse, id: RpcId, method: string, max: number): Promise<unknown> {
  if (res.statusCode < 200 || res.statusCode >= 300) {
    const text = (await readBody(res, 65_536).catch(() => Buffer.alloc(0))).toString('utf8');
    throw new UpstreamRefusedError(res.statusCode, `the upstream answered ${method} with HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  const reader = new MessageReader(res, max);
  try {
    for (;;) {
      const m = (await reader.next()) as { id?: unknown; result?: unknown; error?: { message?: unknown } } | undefined;
      if (m === undefined) throw new UpstreamRefusedError(502, `the upstream ended its answer to ${method} without one`);
      if (m.id !== id) continue;
      if (m.error) throw new UpstreamRefusedError(502, `the upstream refused ${method}: ${String(m.error.message)}`);
      return m.result;
    }
  } finally {
    // Whatever follows on the stream is of no use; reading it to its end (a 2025 server ends a POST's
    // stream with its answer) keeps the connection reusable.
    reader.discardRest();
  }
}

function keyOf(call: UpstreamCall, client: ClientContext): string {
  return `${ownerOf(call.principal).toString('hex')}\0${canonicalJson(client.capabilities)}`;
}

export interface PoolOptions {
  maxSessions: number;
  idleMs: number;
}

export class SessionPool {
  readonly #wire: SessionWire;
  readonly #idleMs: number;
  readonly #sessions: LRUCache<string, LegacySession>;
  /** Handshakes under way: concurrent first requests of one key share one. */
  readonly #starting = new Map<string, Promise<LegacySession>>();
  readonly #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(wire: SessionWire, opts: PoolOptions) {
    this.#wire = wire;
    this.#idleMs = opts.idleMs;
    this.#sessions = new LRUCache<string, LegacySession>({
      max: opts.maxSessions,
      dispose: (session) => session.end(true),
    });
    if (opts.idleMs > 0) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.min(opts.idleMs, 60_000));
      this.#sweeper.unref();
    }
  }

  /** The session for this caller and capability set, made if there is none. */
  async acquire(call: UpstreamCall, client: ClientContext): Promise<LegacySession> {
    const key = keyOf(call, client);
    const existing = this.#sessions.get(key);
    if (existing && !existing.ended) {
      existing.touch(call.headers, call.principal);
      return existing;
    }
    let starting = this.#starting.get(key);
    if (!starting) {
      starting = this.#initialize(key, call, client).finally(() => this.#starting.delete(key));
      this.#starting.set(key, starting);
    }
    return starting;
  }

  /** The session for this caller and capability set, if there is one; none is made. */
  peek(call: UpstreamCall, client: ClientContext): LegacySession | undefined {
    const session = this.#sessions.peek(keyOf(call, client));
    return session && !session.ended ? session : undefined;
  }

  /** The upstream no longer knows `session`: forget it (no DELETE) so the next acquire makes a new one. */
  drop(session: LegacySession): void {
    session.end(false);
    if (this.#sessions.peek(session.key) === session) this.#sessions.delete(session.key);
  }

  close(): void {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sessions.clear();
  }

  async #initialize(key: string, call: UpstreamCall, client: ClientContext): Promise<LegacySession> {
    const id = 0;
    const body = {
      jsonrpc: '2.0', id, method: 'initialize',
      params: {
        protocolVersion: LEGACY_VERSION,
        capabilities: legacyClientCapabilities(client.capabilities),
        // 2025 requires a clientInfo; a 2026 client only SHOULD send one.
        clientInfo: client.clientInfo ?? { name: 'mcp-gateway', version: '0' },
      },
    };
    const res = await this.#wire.port.send({
      method: 'POST',
      pathAndQuery: call.pathAndQuery,
      headers: legacyHeaders(call.headers, undefined, 'post'),
      body: Buffer.from(JSON.stringify(body)),
      principal: call.principal,
      signal: AbortSignal.timeout(this.#wire.controlTimeoutMs),
    });
    const sessionId = res.headers[HEADER.session];
    const result = await answerOf(res, id, 'initialize', this.#wire.maxMessageBytes);
    const session = new LegacySession(key, {
      id: typeof sessionId === 'string' ? sessionId : undefined,
      server: legacyServerOf(result),
      path: call.pathAndQuery,
      headers: call.headers,
      principal: call.principal,
    }, this.#wire);
    const status = await session.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (status >= 300) {
      session.end(true);
      throw new UpstreamRefusedError(status, `the upstream answered notifications/initialized with HTTP ${status}`);
    }
    this.#wire.log.debug({ session: session.id, version: session.version }, 'upstream session initialized');
    if (this.#closed) {
      // The pool closed during the handshake: the session is not kept, so it is not left upstream either.
      session.end(true);
      throw new UpstreamRefusedError(503, 'the translator closed');
    }
    this.#sessions.set(key, session);
    return session;
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#idleMs;
    for (const [key, session] of this.#sessions.entries()) {
      if (session.holds === 0 && session.lastUsed < cutoff) this.#sessions.delete(key);
    }
  }
}
