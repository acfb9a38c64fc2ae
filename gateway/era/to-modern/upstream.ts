/**
 * The 2026 upstream as the translator talks to it: every request as its own POST with the mirror
 * headers the body calls for, the tools' `x-mcp-header` declarations learned from `tools/list`, and a
 * small client for the translator's own requests (discover, tools/list) whose answer it reads whole.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../../contract.ts';
import type { UpstreamResponse } from '../../runtime.ts';
import { mirrorHeadersOf } from '../mirror-headers.ts';
import { ToolHeaders } from '../tool-headers.ts';
import type { UpstreamPort } from '../translation.ts';
import { MODERN_VERSION } from '../versions.ts';
import { isEventStream } from '../upstream-read.ts';
import { eventMessages, parseMessage, readText, responseId } from './read.ts';
import { isObject, type Session } from './session.ts';
import { upstreamHeaders, withEnvelope } from './wire.ts';

/** Where and as whom a request goes: taken from the client's exchange. */
export interface Caller {
  headers: IncomingHttpHeaders;
  pathAndQuery: string;
  principal: Principal | undefined;
}

export interface OutgoingRequest {
  id: string | number;
  method: string;
  /** Already enveloped (withEnvelope). */
  params: Record<string, unknown>;
}

/** The translator's own request answered: the HTTP status and the JSON-RPC response, if one came. */
export interface Settled {
  status: number;
  message: Record<string, unknown> | undefined;
}

/** Most `tools/list` pages read to learn declarations: an upstream paging forever is not followed. */
const MAX_TOOL_PAGES = 50;

export class ModernUpstream {
  readonly tools = new ToolHeaders();
  readonly #port: UpstreamPort;
  readonly #maxMessageBytes: number;
  /** One `tools/list` crawl at a time: concurrent calls of unseen tools wait on the same one. */
  #learning: Promise<void> | undefined;
  /**
   * Names still unknown after a crawl, for a while: calls of a tool the upstream does not have must
   * not each cost a whole `tools/list` (a client could otherwise multiply the upstream's load).
   */
  readonly #unlisted = new LRUCache<string, true>({ max: 1000, ttl: 30_000 });

  constructor(port: UpstreamPort, maxMessageBytes: number) {
    this.#port = port;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** POSTs one request; the answer is the upstream's, unread. */
  send(caller: Caller, request: OutgoingRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    const declarations = request.method === 'tools/call' && typeof request.params.name === 'string'
      ? this.tools.of(request.params.name) ?? undefined
      : undefined;
    const mirror = mirrorHeadersOf(request, declarations, MODERN_VERSION);
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: request.id, method: request.method, params: request.params }));
    return this.#port.send({
      method: 'POST',
      pathAndQuery: caller.pathAndQuery,
      headers: upstreamHeaders(caller.headers, mirror),
      body,
      principal: caller.principal,
      signal,
    });
  }

  /** Sends a request of the translator's own and reads its answer whole (JSON or event stream). */
  async settle(caller: Caller, method: string, params: Record<string, unknown>, signal: AbortSignal): Promise<Settled> {
    const id = `gw-${randomUUID()}`;
    const res = await this.send(caller, { id, method, params }, signal);
    if (isEventStream(res)) {
      for await (const m of eventMessages(res, this.#maxMessageBytes)) {
        if (responseId(m) === id) {
          res.destroy();
          return { status: res.statusCode, message: m };
        }
      }
      return { status: res.statusCode, message: undefined };
    }
    const text = await readText(res, this.#maxMessageBytes);
    return { status: res.statusCode, message: parseMessage(text) };
  }

  /**
   * Makes sure a tool's declarations are known before it is called: a `tools/call` for a tool never
   * seen listed (a client that cached its list, another replica listed it) would otherwise go without
   * its `Mcp-Param-*` headers and be refused by the upstream. Fetches the list once, however many
   * calls wait for it; an upstream error leaves the tool unknown and the call goes as it is.
   */
  async ensureTool(caller: Caller, session: Session, level: string | undefined, name: string, signal: AbortSignal): Promise<void> {
    if (this.tools.of(name) !== undefined || this.#unlisted.has(name)) return;
    await this.relearn(caller, session, level, signal);
    if (this.tools.of(name) === undefined) this.#unlisted.set(name, true);
  }

  /** After `notifications/tools/list_changed`: what was learned, listed or not, may be stale. */
  forgetTools(): void {
    this.tools.forget();
    this.#unlisted.clear();
  }

  /** Forgets what was learned and lists the tools again (after a header mismatch: the schema changed). */
  async relearn(caller: Caller, session: Session, level: string | undefined, signal: AbortSignal): Promise<void> {
    this.#learning ??= this.#learn(caller, session, level, signal).finally(() => (this.#learning = undefined));
    try {
      await this.#learning;
    } catch {
      // Best effort: the call proceeds and the upstream says what is wrong.
    }
  }

  async #learn(caller: Caller, session: Session, level: string | undefined, signal: AbortSignal): Promise<void> {
    let cursor: unknown;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const params = withEnvelope(cursor === undefined ? {} : { cursor }, session, level);
      const { message } = await this.settle(caller, 'tools/list', params, signal);
      const result = message?.result;
      if (!isObject(result)) return;
      if (page === 0) this.forgetTools();
      this.tools.learn(result);
      cursor = result.nextCursor;
      if (typeof cursor !== 'string' || cursor === '') return;
    }
  }
}
