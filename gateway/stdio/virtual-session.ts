/**
 * One MCP session of a stdio upstream, served inside the gateway's process: bound to the principal that
 * opened it and to the process that serves it, with the streams its client reads (see response.ts).
 *
 * Streamable HTTP: a POST carrying requests gets its own event stream, which carries every message the
 * process sends about those requests and ends once each of them is answered; messages about no open
 * request go to the standalone GET stream (dropped when there is none, as the SDK's transport does).
 * Legacy HTTP+SSE: one stream carries everything, its first event names the POST endpoint, and the
 * session ends when it closes.
 *
 * A session ends on DELETE, when its upstream closes, or after `idleTimeout` with no exchange in
 * progress (no open stream, no initialize being answered): a client that vanished must not keep its
 * process alive forever.
 *
 * Flow control towards the client: a stream's Readable buffers what its client has not read yet (the
 * core pauses it when the client's socket is full). Above QUEUE_HIGH_BYTES buffered over the session's
 * streams, the process stops reading its child's stdout until they are back under QUEUE_LOW_BYTES. The
 * child then blocks on its own writes: a slow client slows its process (its pool key, one tenant by
 * default), and the gateway's memory stays bounded. Nothing is dropped while the client is connected.
 */
import type { Logger } from 'pino';
import type { JSONRPCMessage, JSONRPCRequest, RequestId } from '@modelcontextprotocol/server';
import { coreRefusal, rpcError } from '../errors.ts';
import { idKey, isRequest, isResponse } from '../jsonrpc.ts';
import { messageEvent } from '../messages/sse-codec.ts';
import { STDIO_ERRORS, StdioUpstreamError, stdioRefusal } from './errors.ts';
import type { MultiplexedProcess, SessionPort } from './multiplexed-process.ts';
import { jsonResponse, refusalResponse, StdioResponse, wholeResponse, type StreamHooks } from './response.ts';

/** Bytes buffered for a session's client above which its process stops reading its child's output. */
export const QUEUE_HIGH_BYTES = 1024 * 1024;
/** Buffered bytes at which it reads again. */
const QUEUE_LOW_BYTES = 256 * 1024;
/** Where a legacy client is told to POST (the core rewrites and seals it for the client). */
const LEGACY_ENDPOINT = '/mcp';

export interface VirtualSessionOptions {
  id: string;
  tenant: string;
  sub: string;
  process: MultiplexedProcess;
  log: Logger;
  /** Close the session after this long without an exchange in progress; 0 = never. */
  idleTimeoutMs: number;
  /** A legacy HTTP+SSE session (its stream is opened with openLegacyStream). */
  legacy: boolean;
  /** Called once when the session has ended, whatever the reason. */
  onClosed(session: VirtualSession): void;
}

export class VirtualSession implements SessionPort {
  readonly id: string;
  readonly tenant: string;
  readonly sub: string;
  readonly process: MultiplexedProcess;
  readonly legacy: boolean;
  readonly openedAt = Date.now();
  lastActivity = Date.now();
  #log: Logger;
  #idleTimeoutMs: number;
  #onClosed: (session: VirtualSession) => void;
  /** Open streams; a POST's maps to the ids (idKey) of its requests not answered yet. */
  #streams = new Map<StdioResponse, Set<string> | undefined>();
  /**
   * Request id (idKey) → the POST stream its messages go to; null once that stream is gone but the
   * process still owes the answer. The id stays taken until then: a new request reusing it must not
   * receive the old one's answer.
   */
  #byRequest = new Map<string, StdioResponse | null>();
  /** The standalone GET stream (Streamable HTTP), or the session's one stream (legacy). */
  #standalone: StdioResponse | undefined;
  /** Exchanges in progress: open streams and initializes being answered. Idle at 0. */
  #active = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #congested = false;
  #closed = false;
  /** Shared by this session's streams (one object per session, not closures per stream). */
  #hooks: StreamHooks = { room: () => this.#room(), gone: (res) => this.#settle(res) };

  constructor(opts: VirtualSessionOptions) {
    this.id = opts.id;
    this.tenant = opts.tenant;
    this.sub = opts.sub;
    this.process = opts.process;
    this.legacy = opts.legacy;
    this.#log = opts.log;
    this.#idleTimeoutMs = opts.idleTimeoutMs;
    this.#onClosed = opts.onClosed;
    this.process.attach(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written for this session's client that it has not read yet. */
  get queuedBytes(): number {
    let n = 0;
    for (const res of this.#streams.keys()) n += res.readableLength;
    return n;
  }

  /** A Streamable HTTP session's `initialize`: answered (JSON, with the session header) once the process is initialized. */
  async initialize(request: JSONRPCRequest, signal: AbortSignal): Promise<StdioResponse> {
    this.#begin();
    try {
      const result = await this.process.initialize(request.params);
      if (this.#closed) return refusalResponse(stdioRefusal('GW_ERR_SHUTTING_DOWN', 'the session was closed while the upstream process started'), request.id);
      // A client that left before its answer never learns the session: nothing could use or end it.
      if (signal.aborted) this.close('the client left before its initialize was answered');
      return jsonResponse(200, { jsonrpc: '2.0', id: request.id, result }, { 'mcp-session-id': this.id });
    } catch (err) {
      const e = err instanceof StdioUpstreamError ? err : new StdioUpstreamError('GW_ERR_UPSTREAM_SPAWN_FAILED', String(err));
      // A session whose initialize failed is of no use; the client must start over.
      this.close('initialize failed');
      return jsonResponse(200, rpcError(request.id, STDIO_ERRORS[e.code].rpc, e.message, { code: e.code }));
    } finally {
      this.#end();
    }
  }

  /** A Streamable HTTP POST: requests get an event stream that ends when all are answered; the rest 202. */
  post(messages: readonly JSONRPCMessage[], signal: AbortSignal): StdioResponse {
    this.lastActivity = Date.now();
    let ids: Set<string> | undefined;
    for (const m of messages) {
      if (!isRequest(m)) continue;
      const key = idKey(m.id);
      // Answers are routed by id: a second request with an id still in flight could not be told apart.
      if (this.#byRequest.has(key) || ids?.has(key)) {
        return refusalResponse(coreRefusal('GW_ERR_DUPLICATE_ID', `request id ${JSON.stringify(m.id)} is already in flight in this session`), m.id);
      }
      (ids ??= new Set()).add(key);
    }
    if (!ids) {
      for (const m of messages) this.#fromClient(m);
      this.#armIdle();
      return wholeResponse(202, '');
    }
    const res = this.#open(ids, signal);
    for (const key of ids) this.#byRequest.set(key, res);
    for (const m of messages) this.#fromClient(m);
    return res;
  }

  /** The standalone GET stream: one per session (409 for a second). */
  openStandalone(signal: AbortSignal): StdioResponse {
    this.lastActivity = Date.now();
    if (this.#standalone) return refusalResponse(stdioRefusal('GW_ERR_STREAM_CONFLICT', 'Conflict: Only one SSE stream is allowed per session'), null);
    return (this.#standalone = this.#open(undefined, signal));
  }

  /** A legacy session's stream; its first event names the endpoint the client POSTs to. */
  openLegacyStream(signal: AbortSignal): StdioResponse {
    const res = this.#open(undefined, signal);
    res.send(`event: endpoint\ndata: ${LEGACY_ENDPOINT}?sessionId=${this.id}\n\n`);
    return (this.#standalone = res);
  }

  /** A legacy POST: every answer travels on the session's stream. */
  legacyPost(messages: readonly JSONRPCMessage[]): StdioResponse {
    this.lastActivity = Date.now();
    for (const m of messages) this.#fromClient(m);
    return wholeResponse(202, 'Accepted');
  }

  deliver(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    if (this.#closed) return;
    // As the SDK's transport: an answer goes where its request came from (its own id), other messages
    // where the request they relate to came from, else on the standalone stream.
    const response = isResponse(message);
    const id = response ? (message as { id?: unknown }).id : relatedRequestId;
    this.#route(response, typeof id === 'string' || typeof id === 'number' ? id : undefined, JSON.stringify(message));
  }

  deliverAnswer(id: RequestId, json: string): void {
    this.#route(true, id, json);
  }

  #route(response: boolean, requestId: RequestId | undefined, json: string): void {
    if (this.#closed) return;
    let target = this.#standalone;
    let answered: Set<string> | undefined;
    if (!this.legacy) {
      if (requestId !== undefined) {
        const key = idKey(requestId);
        target = this.#byRequest.get(key) ?? undefined;
        if (response) {
          this.#byRequest.delete(key);
          answered = target && this.#streams.get(target);
          answered?.delete(key);
        }
      } else if (response) target = undefined; // an answer never goes on the standalone stream
    }
    if (!target) {
      this.#log.debug({ session: this.id }, 'message for no open stream of the session; dropped');
      return;
    }
    target.send(messageEvent(json));
    if (answered?.size === 0) target.finish();
    if (!this.#congested && this.queuedBytes > QUEUE_HIGH_BYTES) {
      this.#congested = true;
      this.#log.debug({ session: this.id, queuedBytes: this.queuedBytes }, 'client is not reading; pausing its process\'s output');
      this.process.setCongested(this, true);
    }
  }


  /** Ends the session: its streams end cleanly, its process forgets it. `reason` is logged. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    const streams = [...this.#streams.keys()];
    this.#streams.clear();
    this.#byRequest.clear();
    this.#standalone = undefined;
    for (const res of streams) res.finish();
    this.#congested = false; // detach() below releases the process's output
    this.#log.debug({ session: this.id, reason }, 'session closed');
    this.process.detach(this);
    this.#onClosed(this);
  }

  #fromClient(m: JSONRPCMessage): void {
    if (isRequest(m) && m.method === 'initialize') {
      // Only a legacy session initializes inside the session (Streamable HTTP: see initialize()).
      this.process.initialize(m.params).then(
        (result) => this.deliver({ jsonrpc: '2.0', id: m.id, result } as JSONRPCMessage, m.id),
        (err: unknown) => {
          const e = err instanceof StdioUpstreamError ? err : new StdioUpstreamError('GW_ERR_UPSTREAM_SPAWN_FAILED', String(err));
          this.deliver(rpcError(m.id, STDIO_ERRORS[e.code].rpc, e.message, { code: e.code }), m.id);
          setImmediate(() => this.close('initialize failed'));
        },
      );
      return;
    }
    this.process.handleClientMessage(this, m);
    // A request the client cancelled gets no answer: its stream must not wait for one.
    const cancelled = (m as { method?: string; params?: { requestId?: unknown } });
    if (cancelled.method !== 'notifications/cancelled') return;
    const requestId = cancelled.params?.requestId;
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    const key = idKey(requestId);
    const res = this.#byRequest.get(key);
    if (res === undefined) return;
    this.#byRequest.delete(key);
    if (res === null) return;
    const pending = this.#streams.get(res);
    pending?.delete(key);
    if (pending?.size === 0) res.finish();
  }

  /** A new event stream of this session; it counts as activity until it closes or its exchange ends. */
  #open(pending: Set<string> | undefined, signal: AbortSignal): StdioResponse {
    const headers = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform' };
    // A legacy stream names its session in the endpoint event; a session header would make the core
    // take it for a Streamable HTTP session.
    const res = new StdioResponse(200, this.legacy ? headers : { ...headers, 'mcp-session-id': this.id }, this.#hooks);
    this.#streams.set(res, pending);
    this.#begin();
    // The exchange ended (the client left, or it is done): a stream still open is released.
    const onAbort = () => {
      if (!res.complete) res.destroy();
      this.#settle(res);
    };
    if (signal.aborted) queueMicrotask(onAbort);
    else signal.addEventListener('abort', onAbort, { once: true });
    return res;
  }

  /**
   * A stream is gone: its requests' later messages have nowhere to go (as with the SDK's transport).
   * Their ids stay taken until the process answers (see #byRequest).
   */
  #settle(res: StdioResponse): void {
    if (!this.#streams.has(res)) return;
    const pending = this.#streams.get(res);
    this.#streams.delete(res);
    if (pending) for (const key of pending) if (this.#byRequest.get(key) === res) this.#byRequest.set(key, null);
    this.#end();
    if (this.#standalone === res) {
      this.#standalone = undefined;
      if (this.legacy) return this.close('the client closed its stream');
    }
    this.#room();
  }

  /** A stream has room again (or is gone): release the process's output once the backlog is small. */
  #room(): void {
    if (!this.#congested || this.queuedBytes > QUEUE_LOW_BYTES) return;
    this.#congested = false;
    this.process.setCongested(this, false);
  }

  #begin(): void {
    this.#active++;
    this.lastActivity = Date.now();
  }

  #end(): void {
    this.#active--;
    this.lastActivity = Date.now();
    this.#armIdle();
  }

  /**
   * One timer per idle period, not one per exchange: when it fires it checks the time of the last
   * activity and waits out the rest, and an exchange in progress disarms it (#end arms it again).
   */
  #armIdle(): void {
    if (this.#closed || this.#active > 0 || this.#idleTimeoutMs <= 0 || this.#idleTimer) return;
    this.#idleTimer = setTimeout(() => this.#idleCheck(), this.#idleTimeoutMs);
  }

  #idleCheck(): void {
    this.#idleTimer = undefined;
    if (this.#closed || this.#active > 0) return;
    const left = this.lastActivity + this.#idleTimeoutMs - Date.now();
    if (left <= 0) return this.close('idle');
    this.#idleTimer = setTimeout(() => this.#idleCheck(), left);
  }
}
