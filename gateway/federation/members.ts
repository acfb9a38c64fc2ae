/**
 * One member of a federation: how the federation reaches it (its own port, or the to-modern translator
 * in front of an upstream pinned to 2026, since the federation itself speaks the 2025 era), what it
 * sends it (its own credentials, never the client's headers beyond tracing and identification), and
 * the member sessions it opens on a client's behalf.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Principal } from '../contract.ts';
import { createToModernTranslator } from '../era/to-modern/index.ts';
import type { Translator, UpstreamPort } from '../era/translation.ts';
import { inProcessPort } from '../era/upstream-port.ts';
import { messagesOf } from '../era/upstream-read.ts';
import { HEADER } from '../era/versions.ts';
import { describeNetError } from '../net-error.ts';
import type { UpstreamCall, UpstreamResponse, UpstreamTarget } from '../runtime.ts';
import { compileWildcards, type WildcardMatcher } from '../wildcard.ts';
import type { FederationMemberConfig } from './types.ts';

/** The client's `initialize`, repeated to every member it reaches. */
export interface ClientContext {
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
}

/** A member's session for one client session. */
export interface MemberSession {
  /** The member's `Mcp-Session-Id`; undefined for a member that runs without sessions. */
  id: string | undefined;
  /** The protocol version the member answered. */
  version: string;
  /** What the member offers, one letter each: t tools, p prompts, r resources, s resource subscriptions, l logging, c completions. */
  caps: string;
}

/** A member could not be asked: unreachable, timed out, refused, or answered nonsense. */
export type MemberErrorCode = 'GW_ERR_UPSTREAM_UNREACHABLE' | 'GW_ERR_UPSTREAM_TIMEOUT' | 'GW_ERR_UPSTREAM_AUTH' | 'GW_ERR_UPSTREAM_BAD_RESPONSE';

export class MemberError extends Error {
  /** True when the member said the session is unknown: open a new one. */
  readonly sessionGone: boolean;
  /** The refusal code a client gets for it. */
  readonly code: MemberErrorCode;
  constructor(message: string, opts: { sessionGone?: boolean; code?: MemberErrorCode } = {}) {
    super(message);
    this.sessionGone = opts.sessionGone ?? false;
    this.code = opts.code ?? 'GW_ERR_UPSTREAM_BAD_RESPONSE';
  }
}

const TIMEOUT = { code: 'GW_ERR_UPSTREAM_TIMEOUT' } as const;

/** Client headers a member may see: tracing and identification, nothing that could carry authority. */
const FORWARDED = ['user-agent', 'traceparent', 'tracestate', 'baggage', 'x-request-id'];
const MAX_CONTROL_ANSWER = 16 * 1024 * 1024;
let ownIds = 0;

export class Member {
  readonly name: string;
  /** What ids the client sees name it by (relay.ts): `m<place in the configuration>`. */
  readonly tag: string;
  readonly prefix: string;
  readonly target: UpstreamTarget;
  readonly #port: UpstreamPort;
  readonly #translator: Translator | undefined;
  readonly #tenants: WildcardMatcher | undefined;
  readonly #scopes: ReadonlySet<string> | undefined;

  constructor(name: string, tag: string, cfg: FederationMemberConfig, target: UpstreamTarget, log: Logger, federation: string) {
    this.name = name;
    this.tag = tag;
    this.prefix = cfg.prefix;
    this.target = target;
    this.#tenants = cfg.tenants ? compileWildcards(cfg.tenants) : undefined;
    this.#scopes = cfg.scopes ? new Set(cfg.scopes) : undefined;
    if (target.era.pinned() === '2026') {
      // The to-modern translator keeps its session in the id it mints: no state upstream, none here.
      const unused = { seal: () => { throw new Error('unused'); }, open: () => undefined };
      this.#translator = createToModernTranslator({ upstream: target.port, state: unused, log, route: `${federation}/${name}` });
      this.#port = inProcessPort(this.#translator);
    } else {
      this.#port = target.port;
    }
  }

  /** True for a member reached through the to-modern translator: its session is not the member's. */
  get translated(): boolean {
    return this.#translator !== undefined;
  }

  /** Whether this caller's federation includes the member (its tenant and scopes, as configured). */
  visibleTo(p: Principal | undefined): boolean {
    if (this.#tenants && (!p || !this.#tenants(p.tenant))) return false;
    if (this.#scopes && (!p || !p.scopes.some((s) => this.#scopes!.has(s)))) return false;
    return true;
  }

  /** One HTTP exchange with the member; rejects with a MemberError when it cannot be had at all. */
  async send(call: UpstreamCall, method: 'POST' | 'GET' | 'DELETE', body: Buffer | undefined, session: MemberSession | undefined, signal: AbortSignal, lastEventId?: string): Promise<UpstreamResponse> {
    const headers: IncomingHttpHeaders = {};
    for (const h of FORWARDED) if (call.headers[h] !== undefined) headers[h] = call.headers[h];
    Object.assign(headers, this.target.requestHeaders(call.principal));
    headers['accept-encoding'] = 'identity';
    if (method === 'POST') {
      headers['content-type'] = 'application/json';
      headers.accept = 'application/json, text/event-stream';
    } else if (method === 'GET') {
      headers.accept = 'text/event-stream';
      if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    }
    if (session) {
      headers[HEADER.protocolVersion] = session.version;
      if (session.id !== undefined) headers[HEADER.session] = session.id;
    }
    // The member's own `timeouts` hold here as they would behind a route of its own.
    const t = this.target.timeouts;
    const timers = new AbortController();
    const total = t.total > 0 ? setTimeout(() => timers.abort(new MemberError(`timed out after ${t.total} ms (timeouts.total)`, TIMEOUT)), t.total) : undefined;
    const firstByte = t.firstByte > 0 ? setTimeout(() => timers.abort(new MemberError(`timed out after ${t.firstByte} ms waiting for its answer (timeouts.firstByte)`, TIMEOUT)), t.firstByte) : undefined;
    const limited = total || firstByte ? AbortSignal.any([signal, timers.signal]) : signal;
    if (total) limited.addEventListener('abort', () => clearTimeout(total), { once: true });
    try {
      const res = await this.#port.send({
        method, pathAndQuery: this.target.basePath || '/', headers, body, principal: call.principal, signal: limited,
      });
      clearTimeout(firstByte);
      if (total) res.once('close', () => clearTimeout(total));
      return res;
    } catch (err) {
      clearTimeout(firstByte);
      clearTimeout(total);
      if (timers.signal.aborted && !signal.aborted) throw timers.signal.reason as MemberError;
      if (signal.aborted) throw signal.reason instanceof MemberError ? signal.reason : new MemberError('the request was abandoned');
      const cause = describeNetError(err);
      throw new MemberError(`could not be reached (${cause.code ?? cause.message})`, { code: 'GW_ERR_UPSTREAM_UNREACHABLE' });
    }
  }

  /**
   * A request of the federation's own (initialize, a listing, setLevel), its answer read whole.
   * Resolves to the JSON-RPC response; rejects with a MemberError for anything else.
   */
  async ask(call: UpstreamCall, session: MemberSession | undefined, method: string, params: unknown, signal: AbortSignal): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string }; sessionId?: string }> {
    const id = `gw-${++ownIds}`;
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
    const res = await this.send(call, 'POST', body, session, signal);
    const header = res.headers[HEADER.session];
    const sessionId = typeof header === 'string' ? header : undefined;
    if (res.statusCode === 404 && session?.id !== undefined) {
      res.resume();
      throw new MemberError('no longer knows the session', { sessionGone: true });
    }
    try {
      for await (const m of messagesOf(res, MAX_CONTROL_ANSWER)) {
        const r = m as { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
        if (r.id !== id) continue;
        if (r.error) return { error: { code: Number(r.error.code) || -32603, message: String(r.error.message ?? 'error') }, sessionId };
        if (r.result && typeof r.result === 'object') return { result: r.result as Record<string, unknown>, sessionId };
      }
    } catch (err) {
      if (err instanceof MemberError) throw err;
      if (signal.aborted && signal.reason instanceof MemberError) throw signal.reason;
      throw new MemberError(signal.aborted ? 'the request was abandoned' : `broke off its answer (${(err as Error).message})`);
    } finally {
      res.destroy();
    }
    if (res.statusCode === 400 && session?.id !== undefined) throw new MemberError('no longer knows the session', { sessionGone: true });
    const auth = res.statusCode === 401 || res.statusCode === 403;
    throw new MemberError(auth ? `refused the gateway's credential (HTTP ${res.statusCode})` : res.statusCode >= 400 ? `answered HTTP ${res.statusCode}` : `did not answer ${method}`,
      { code: auth ? 'GW_ERR_UPSTREAM_AUTH' : 'GW_ERR_UPSTREAM_BAD_RESPONSE' });
  }

  /** Opens a session as the client would have: `initialize`, then `notifications/initialized` (awaited). */
  async open(call: UpstreamCall, client: ClientContext, signal: AbortSignal): Promise<MemberSession> {
    const answer = await this.ask(call, undefined, 'initialize', client, signal);
    if (!answer.result) throw new MemberError(`refused initialize: ${answer.error?.message ?? 'no result'}`);
    const r = answer.result;
    const session: MemberSession = {
      id: answer.sessionId,
      version: typeof r.protocolVersion === 'string' ? r.protocolVersion : client.protocolVersion,
      caps: capsLetters(r.capabilities),
    };
    const note = Buffer.from('{"jsonrpc":"2.0","method":"notifications/initialized"}');
    const res = await this.send(call, 'POST', note, session, signal);
    res.resume();
    return session;
  }

  /** Sends a message that needs no answer (a notification, or the client's answer to the member). */
  async tell(call: UpstreamCall, session: MemberSession, message: unknown, signal: AbortSignal): Promise<number> {
    const res = await this.send(call, 'POST', Buffer.from(JSON.stringify(message)), session, signal);
    res.resume();
    return res.statusCode;
  }

  close(): void {
    this.#translator?.close();
  }
}

/** The capability letters of an `initialize` result's `capabilities`. */
export function capsLetters(capabilities: unknown): string {
  const c = (capabilities && typeof capabilities === 'object' ? capabilities : {}) as Record<string, { subscribe?: unknown } | undefined>;
  let s = '';
  if (c.tools) s += 't';
  if (c.prompts) s += 'p';
  if (c.resources) s += 'r';
  if (c.resources?.subscribe) s += 's';
  if (c.logging) s += 'l';
  if (c.completions) s += 'c';
  return s;
}
