/**
 * A 2025 session's GET stream, served from a 2026 `subscriptions/listen`.
 *
 * The filter asks for every list change the upstream advertises (`listChanged`) and for the resources
 * the session subscribed to. The client's stream answers only once the upstream acknowledged, so a
 * client holding the stream's headers knows it will see every change from then on. Notifications are
 * relayed without the acknowledgement and without their subscription tag (2025 has neither), and a
 * tools list change also makes the translator forget the tools' header declarations, which may be
 * stale.
 *
 * When the session subscribes or unsubscribes, the upstream is asked again with the new filter; the
 * old listen is closed only once the new one is acknowledged, so no change falls between the two (a
 * change may arrive twice, which list_changed and resources/updated tolerate).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { emptyAnswer, EventAnswer, jsonAnswer, rpcFailure } from './answer.ts';
import { listenFilter, type Discovery } from './discover.ts';
import { isEventStream } from '../upstream-read.ts';
import { eventMessages, readText } from './read.ts';
import { isObject, type ListenHandle, type Session, type SessionMemory } from './session.ts';
import type { ModernUpstream } from './upstream.ts';
import { legacyNotification, withEnvelope } from './wire.ts';

export interface ListenContext {
  upstream: ModernUpstream;
  discovery: Discovery;
  memory: SessionMemory;
  log: Logger;
  closing: AbortSignal;
  maxMessageBytes: number;
}

const ACKNOWLEDGED = 'notifications/subscriptions/acknowledged';

export async function openListen(ctx: ListenContext, call: UpstreamCall, session: Session): Promise<UpstreamResponse> {
  const signal = AbortSignal.any([call.signal, ctx.closing]);
  const found = await ctx.discovery.get(call, withEnvelope({}, session, undefined), signal);
  // 405 is how a 2025 server says it offers no GET stream; clients carry on without one.
  if (!found.ok) return emptyAnswer(405, { allow: 'POST, DELETE' });
  const caps = isObject(found.result.capabilities) ? found.result.capabilities : {};
  const canSubscribe = isObject(caps.resources) && caps.resources.subscribe === true;
  if (Object.keys(listenFilter(found.result, [])).length === 0 && !canSubscribe) return emptyAnswer(405, { allow: 'POST, DELETE' });

  const relay = new ListenRelay(ctx, call, session, found.result, signal);
  if (!ctx.memory.setListen(session.nonce, relay)) {
    return jsonAnswer(409, rpcFailure(null, -32000, 'Conflict: Only one SSE stream is allowed per session'));
  }
  try {
    if (!(await relay.connect())) {
      relay.close();
      return emptyAnswer(405, { allow: 'POST, DELETE' });
    }
  } catch (err) {
    relay.close();
    throw err;
  }
  return relay.stream;
}

class ListenRelay implements ListenHandle {
  readonly stream = new EventAnswer();
  readonly #ctx: ListenContext;
  readonly #call: UpstreamCall;
  readonly #session: Session;
  readonly #discovered: Record<string, unknown>;
  readonly #signal: AbortSignal;
  /** The upstream listen currently relayed, and its generation (newer filters have higher ones). */
  #current: { ac: AbortController; generation: number } | undefined;
  #generations = 0;
  #closed = false;

  constructor(ctx: ListenContext, call: UpstreamCall, session: Session, discovered: Record<string, unknown>, signal: AbortSignal) {
    this.#ctx = ctx;
    this.#call = call;
    this.#session = session;
    this.#discovered = discovered;
    this.#signal = signal;
    signal.addEventListener('abort', () => this.close(), { once: true });
    this.stream.once('close', () => this.close());
  }

  /** Opens an upstream listen with the current filter; true once it is acknowledged and relayed. */
  async connect(): Promise<boolean> {
    const generation = ++this.#generations;
    const ac = new AbortController();
    const signal = AbortSignal.any([this.#signal, ac.signal]);
    const filter = listenFilter(this.#discovered, this.#ctx.memory.uris(this.#session.nonce));
    const params = withEnvelope({ notifications: filter }, this.#session, undefined);
    const res = await this.#ctx.upstream.send(this.#call, { id: `gw-listen-${randomUUID()}`, method: 'subscriptions/listen', params }, signal);
    if (res.statusCode !== 200 || !isEventStream(res)) {
      const body = await readText(res, 64 * 1024).catch(() => '');
      this.#ctx.log.warn({ status: res.statusCode, body: body.slice(0, 500) }, 'to-modern: the upstream refused subscriptions/listen');
      return false;
    }
    const messages = eventMessages(res, this.#ctx.maxMessageBytes);
    const first = await messages.next();
    if (first.done || this.#closed) {
      ac.abort();
      return false;
    }
    if (this.#current && this.#current.generation > generation) {
      // A newer filter was acknowledged meanwhile: this one is already stale.
      ac.abort();
      return true;
    }
    const previous = this.#current;
    this.#current = { ac, generation };
    previous?.ac.abort();
    if (first.value.method !== ACKNOWLEDGED) await this.#relay(first.value);
    void this.#pump(messages, ac);
    return true;
  }

  /** Never rejects: the old listen goes on relaying when the new one cannot be opened. */
  async refresh(): Promise<void> {
    if (this.#closed) return;
    try {
      if (!(await this.connect())) this.#ctx.log.warn('to-modern: subscriptions/listen was not renewed; the previous filter stays');
    } catch (err) {
      this.#ctx.log.warn({ err: { message: (err as Error)?.message } }, 'to-modern: could not renew subscriptions/listen');
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current?.ac.abort();
    this.#current = undefined;
    this.stream.finish();
    this.#ctx.memory.clearListen(this.#session.nonce, this);
  }

  async #pump(messages: AsyncGenerator<Record<string, unknown>>, ac: AbortController): Promise<void> {
    try {
      for await (const m of messages) {
        if (typeof m.method !== 'string') {
          // The listen's own response: the upstream ended the subscription gracefully.
          if (m.id !== undefined) break;
          continue;
        }
        await this.#relay(m);
      }
    } catch {
      // Aborted (a newer listen replaced this one, or the client left) or broken: handled below.
    }
    // The upstream ended the current listen by itself: end the client's stream, which reconnects.
    if (this.#current?.ac === ac && !ac.signal.aborted) this.close();
  }

  async #relay(m: Record<string, unknown>): Promise<void> {
    if (m.id !== undefined || m.method === ACKNOWLEDGED) return;
    if (m.method === 'notifications/tools/list_changed') this.#ctx.upstream.forgetTools();
    if (!this.stream.send(legacyNotification(m))) await this.stream.drained();
  }
}
