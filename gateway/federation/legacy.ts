/**
 * Legacy HTTP+SSE clients (2024-11-05) on a federation: one stream per session, whose first event
 * names where to POST; every POST is answered `202` and every answer travels on the stream.
 *
 * The core seals the endpoint (with the owner, like a session id) before the client sees it and hands
 * it back unsealed on each POST, so only the stream's owner can post to it. The transport ties a
 * session to the replica holding its stream, so the session lives here, in memory, and ends with the
 * stream: its member sessions are then deleted.
 */
import { randomBytes } from 'node:crypto';
import { isNotification, isRequest, type JSONRPCMessage } from '../jsonrpc.ts';
import { messagesOf } from '../era/upstream-read.ts';
import type { UpstreamCall, UpstreamResponse } from '../runtime.ts';
import { ACCEPTED, rpcError } from './relay.ts';
import { handleAnswer, handleNotification, handleRequest, type Core } from './requests.ts';
import type { FederationSession, SessionState } from './session.ts';
import { ClientSink, type StreamContext } from './streams.ts';

/** Where a legacy client is told to POST (the core rewrites it under the client's route). */
const ENDPOINT = '/mcp/message';
const PARAM = 'sessionId';

interface Opened {
  fs: FederationSession;
  state: SessionState;
}

export interface LegacyContext {
  core: Core;
  openSession(call: UpstreamCall, params: unknown): Promise<Opened & { result: Record<string, unknown> }>;
  streamContext(call: UpstreamCall, fs: FederationSession, state: SessionState): StreamContext;
  end(call: UpstreamCall, fs: FederationSession, state: SessionState): Promise<void>;
  closing: AbortSignal;
  maxMessageBytes: number;
}

interface LegacySession {
  sink: ClientSink;
  opened?: Opened;
}

/** The legacy session a POST names, from the endpoint's query; undefined for any other POST. */
export function legacyToken(call: UpstreamCall): string | undefined {
  if (call.headers['mcp-session-id'] !== undefined) return undefined;
  const q = call.pathAndQuery.indexOf('?');
  return q < 0 ? undefined : new URLSearchParams(call.pathAndQuery.slice(q + 1)).get(PARAM) ?? undefined;
}

export class LegacySessions {
  readonly #ctx: LegacyContext;
  readonly #sessions = new Map<string, LegacySession>();

  constructor(ctx: LegacyContext) {
    this.#ctx = ctx;
  }

  /** A GET without a session: the stream, its endpoint event first. */
  open(call: UpstreamCall): UpstreamResponse {
    const token = randomBytes(18).toString('base64url');
    const sink = new ClientSink([call.signal, this.#ctx.closing], this.#ctx.core.cfg.listChangedDebounceMs);
    const session: LegacySession = { sink };
    this.#sessions.set(token, session);
    sink.onGone(() => {
      this.#sessions.delete(token);
      if (session.opened) void this.#ctx.end(call, session.opened.fs, session.opened.state).catch(() => undefined);
    });
    sink.send(`event: endpoint\ndata: ${ENDPOINT}?${PARAM}=${token}\n\n`);
    return sink.out;
  }

  /** A POST to a session's endpoint: accepted at once (after `initialize`), answered on the stream. */
  async post(call: UpstreamCall, token: string, messages: readonly JSONRPCMessage[]): Promise<UpstreamResponse> {
    const session = this.#sessions.get(token);
    if (!session) return rpcError(null, -32001, 'Session not found: open a new stream', 'GW_ERR_SESSION_NOT_FOUND', 404);
    const { sink } = session;
    for (const m of messages) {
      if (isRequest(m) && m.method === 'initialize') {
        if (session.opened) {
          sink.push({ jsonrpc: '2.0', id: m.id, error: { code: -32600, message: 'Invalid Request: this session is already initialized' } });
          continue;
        }
        // Awaited, so the requests the client sends next find the session.
        const opened = await this.#ctx.openSession(call, m.params);
        session.opened = { fs: opened.fs, state: opened.state };
        sink.push({ jsonrpc: '2.0', id: m.id, result: opened.result });
        sink.follow(this.#ctx.streamContext(call, opened.fs, opened.state));
        continue;
      }
      if (!session.opened) {
        if (isRequest(m)) sink.push({ jsonrpc: '2.0', id: m.id, error: { code: -32600, message: 'Invalid Request: initialize first' } });
        continue;
      }
      const on = { core: this.#ctx.core, call, ...session.opened };
      // The POST ends with its 202; the request it carried runs as long as the stream does.
      if (isRequest(m)) void this.#answer(sink, handleRequest({ ...on, call: { ...call, signal: sink.signal } }, m));
      else if (isNotification(m)) await handleNotification(on, m);
      else await handleAnswer(on, m as { id?: unknown });
    }
    return ACCEPTED();
  }

  /** Copies an answer's messages onto the stream as they come. */
  async #answer(sink: ClientSink, answer: Promise<UpstreamResponse>): Promise<void> {
    try {
      const res = await answer;
      for await (const m of messagesOf(res, this.#ctx.maxMessageBytes)) {
        sink.push(m);
        await sink.room();
      }
    } catch (err) {
      this.#ctx.core.log.warn({ err: (err as Error).message }, 'a federation answer for a legacy stream broke off');
    }
  }

  close(): void {
    for (const s of this.#sessions.values()) s.sink.close();
    this.#sessions.clear();
  }
}
