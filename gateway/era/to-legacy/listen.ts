/**
 * `subscriptions/listen` over a 2025 upstream: the session's GET stream, filtered per listener.
 *
 * A 2025 server sends change notifications (list changes, resource updates) on its session's GET
 * stream, and only for resources the session subscribed to (`resources/subscribe`). A 2026 client
 * opens a listen stream instead, naming what it wants. So each session has at most one `SessionFeed`:
 * one GET stream (a 2025 server allows one per session) shared by every listen stream of that session,
 * each listener getting only what its filter opted in to, tagged with its subscription id (the id of
 * its `subscriptions/listen` request). Resource subscriptions are counted per URI, so the upstream is
 * subscribed while any listener wants a URI and unsubscribed when the last one leaves. The GET stream
 * is closed when its last listener leaves.
 *
 * The acknowledgment is written only once the GET stream is open and the subscriptions are made, so
 * whatever the client is told it is listening to, it does hear.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { isNotification, isRequest } from '../../jsonrpc.ts';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { META } from '../versions.ts';
import { EventStream, json } from './client-answer.ts';
import { sessionGone, UpstreamRefusedError, type LegacySession, type SessionPool } from './sessions.ts';
import { filterAccepts, honoredFilter, paramsOf, parseFilter, tagged, type ClientContext, type RpcId, type SubscriptionFilter } from './translate.ts';
import { readBody } from '../upstream-read.ts';
import { MessageReader } from './wire.ts';

export interface ListenEnv {
  pool: SessionPool;
  log: Logger;
  maxMessageBytes: number;
  keepAliveMs: number;
  /** Most a slow listener's unread buffer may hold before it is cut off. */
  maxBufferedBytes: number;
}

interface Listener {
  id: RpcId;
  filter: SubscriptionFilter;
  stream: EventStream;
  serverInfo: unknown;
  keepAlive: NodeJS.Timeout | undefined;
  /** Its acknowledgment is written: notifications may follow. */
  ready: boolean;
  /** Notifications that came before the acknowledgment was written. */
  early: Record<string, unknown>[];
  /** The URIs it added to the feed's subscription counts. */
  counted: string[];
}

/** The upstream GET stream opened more than this many times in a row without a message: given up. */
const MAX_REOPENS = 3;

/** Notifications kept for a listener between its subscription and its acknowledgment. */
const MAX_EARLY = 64;

/** The session has no GET stream to give (HTTP 405): nothing can be listened to. */
class NoStreamError extends Error {}

class SessionFeed {
  readonly #env: ListenEnv;
  readonly #session: LegacySession;
  readonly #listeners = new Set<Listener>();
  readonly #uris = new Map<string, number>();
  #abort: AbortController | undefined;
  #opening: Promise<void> | undefined;
  #closed = false;
  readonly #onClose: () => void;
  readonly #unhook: () => void;

  constructor(env: ListenEnv, session: LegacySession, onClose: () => void) {
    this.#env = env;
    this.#session = session;
    this.#onClose = onClose;
    session.holds++;
    this.#unhook = session.onEnd(() => this.close(true));
  }

  /**
   * Adds a listener once the GET stream is open and its resources subscribed. It is in the set from
   * the start (so a failure part way is undone by `detach`); what it hears before its acknowledgment
   * is written waits in `early`.
   */
  async attach(listener: Listener, headers: IncomingHttpHeaders): Promise<void> {
    this.#listeners.add(listener);
    this.#opening ??= this.#open(headers, 0);
    await this.#opening;
    for (const uri of listener.filter.resourceSubscriptions ?? []) {
      const n = this.#uris.get(uri) ?? 0;
      // Counted before the call so a concurrent listener for the same URI does not subscribe twice.
      this.#uris.set(uri, n + 1);
      listener.counted.push(uri);
      if (n === 0) await this.#session.request('resources/subscribe', { uri }, headers);
    }
  }

  detach(listener: Listener): void {
    if (!this.#listeners.delete(listener)) return;
    if (listener.keepAlive) clearInterval(listener.keepAlive);
    for (const uri of listener.counted) {
      const n = (this.#uris.get(uri) ?? 1) - 1;
      if (n > 0) {
        this.#uris.set(uri, n);
        continue;
      }
      this.#uris.delete(uri);
      if (!this.#session.ended) this.#session.request('resources/unsubscribe', { uri }).catch(() => {});
    }
    if (this.#listeners.size === 0) this.close(false);
  }

  /** Ends the feed; `graceful`: each listener gets the closing result a 2026 server sends on shutdown. */
  close(graceful: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort?.abort();
    for (const l of this.#listeners) {
      if (l.keepAlive) clearInterval(l.keepAlive);
      if (graceful) l.stream.write({ jsonrpc: '2.0', id: l.id, result: { resultType: 'complete', _meta: closingMeta(l) } });
      l.stream.end();
    }
    this.#listeners.clear();
    this.#session.holds--;
    this.#unhook();
    this.#onClose();
  }

  async #open(headers: IncomingHttpHeaders | undefined, attempt: number): Promise<void> {
    const abort = new AbortController();
    this.#abort = abort;
    const res = await this.#session.send('get', undefined, abort.signal, headers);
    if (res.statusCode !== 200) {
      const text = (await readBody(res, 65_536).catch(() => Buffer.alloc(0))).toString('utf8');
      if (res.statusCode === 405) throw new NoStreamError('the upstream has no GET stream');
      throw new UpstreamRefusedError(sessionGone(res.statusCode, text) ? 404 : res.statusCode, `the upstream refused its GET stream with HTTP ${res.statusCode}`);
    }
    void this.#run(new MessageReader(res, this.#env.maxMessageBytes), attempt);
  }

  async #run(reader: MessageReader, attempt: number): Promise<void> {
    try {
      for (;;) {
        const m = await reader.next();
        if (this.#closed) return;
        if (m === undefined) break;
        attempt = 0;
        if (isRequest(m)) this.#refuse(m as { id: RpcId; method: string });
        else if (isNotification(m)) this.#deliver(m as { method: string; params?: unknown });
      }
    } catch (err) {
      if (this.#closed) return;
      this.#env.log.debug({ err: (err as Error).message }, 'upstream GET stream broke off');
    }
    // A 2025-11-25 server may close its GET stream at will; the client (here, the translator) reopens it.
    if (this.#closed || this.#session.ended) return;
    if (attempt >= MAX_REOPENS) return this.#giveUp();
    this.#open(undefined, attempt + 1).catch(() => this.#giveUp());
  }

  /** Listeners end without a closing result: their clients see a dropped stream and may listen again. */
  #giveUp(): void {
    if (this.#closed) return;
    this.#env.log.warn('the upstream GET stream could not be kept open; listen streams end');
    this.close(false);
  }

  #deliver(note: { method: string; params?: unknown }): void {
    for (const l of this.#listeners) {
      if (!filterAccepts(l.filter, note)) continue;
      if (!l.ready) {
        if (l.early.length < MAX_EARLY) l.early.push(tagged(note.method, note.params, l.id));
        continue;
      }
      if (l.stream.res.readableLength > this.#env.maxBufferedBytes) {
        // A client that stopped reading its listen stream: cut off rather than buffered without end.
        l.stream.res.destroy();
        this.detach(l);
        continue;
      }
      l.stream.write(tagged(note.method, note.params, l.id));
    }
  }

  /**
   * A server request on the GET stream is not about any client request, so no 2026 client can be
   * asked it: answered as a client without the feature answers (ping, as any client would).
   */
  #refuse(req: { id: RpcId; method: string }): void {
    const answer = req.method === 'ping'
      ? { jsonrpc: '2.0', id: req.id, result: {} }
      : { jsonrpc: '2.0', id: req.id, error: { code: -32601, message: 'Method not found' } };
    this.#session.post(answer).catch(() => {});
  }
}

function closingMeta(l: Listener): Record<string, unknown> {
  return l.serverInfo === undefined ? { [META.subscriptionId]: l.id } : { [META.subscriptionId]: l.id, [META.serverInfo]: l.serverInfo };
}

export class Listens {
  readonly #env: ListenEnv;
  readonly #feeds = new Map<LegacySession, SessionFeed>();

  constructor(env: ListenEnv) {
    this.#env = env;
  }

  async listen(call: UpstreamCall, message: { id: RpcId; params?: unknown }, client: ClientContext): Promise<UpstreamResponse> {
    const filter = parseFilter(paramsOf(message));
    if (!filter) {
      return json(200, { jsonrpc: '2.0', id: message.id, error: { code: -32602, message: "Invalid params: 'notifications' must be a subscription filter" } });
    }
    for (let attempt = 0; ; attempt++) {
      const session = await this.#env.pool.acquire(call, client);
      const listener: Listener = {
        id: message.id,
        filter: honoredFilter(filter, session.server.capabilities),
        stream: new EventStream(),
        serverInfo: session.server.serverInfo,
        keepAlive: undefined,
        ready: false,
        early: [],
        counted: [],
      };
      if (Object.keys(listener.filter).length === 0) return this.#nothing(listener);
      const feed = this.#feedOf(session);
      try {
        await feed.attach(listener, call.headers);
      } catch (err) {
        feed.detach(listener);
        if (err instanceof NoStreamError) return this.#nothing({ ...listener, filter: {} });
        if (err instanceof UpstreamRefusedError && err.status === 404 && attempt === 0) {
          this.#env.pool.drop(session);
          continue;
        }
        throw err;
      }
      listener.stream.write(acknowledgment(listener));
      for (const note of listener.early) listener.stream.write(note);
      listener.early = [];
      listener.ready = true;
      if (this.#env.keepAliveMs > 0) {
        listener.keepAlive = setInterval(() => listener.stream.comment('keepalive'), this.#env.keepAliveMs);
        listener.keepAlive.unref();
      }
      const leave = () => feed.detach(listener);
      call.signal.addEventListener('abort', leave, { once: true });
      listener.stream.res.once('close', leave);
      if (call.signal.aborted) leave();
      return listener.stream.res;
    }
  }

  /** Ends every listen stream with the closing result (reload, shutdown). */
  close(): void {
    for (const feed of [...this.#feeds.values()]) feed.close(true);
  }

  #feedOf(session: LegacySession): SessionFeed {
    let feed = this.#feeds.get(session);
    if (!feed) {
      const created = new SessionFeed(this.#env, session, () => {
        if (this.#feeds.get(session) === created) this.#feeds.delete(session);
      });
      this.#feeds.set(session, created);
      feed = created;
    }
    return feed;
  }

  /** Nothing the client asked for can be delivered: acknowledged as such and closed, as the SDK v2 does. */
  #nothing(listener: Listener): UpstreamResponse {
    listener.stream.write(acknowledgment(listener));
    listener.stream.write({ jsonrpc: '2.0', id: listener.id, result: { resultType: 'complete', _meta: closingMeta(listener) } });
    listener.stream.end();
    return listener.stream.res;
  }
}

function acknowledgment(l: Listener): Record<string, unknown> {
  return { jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { _meta: { [META.subscriptionId]: l.id }, notifications: l.filter } };
}
