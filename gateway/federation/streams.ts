/**
 * The client's GET stream: one stream made of every visible member's own GET stream.
 *
 * Members' change notifications (`notifications/{tools,prompts,resources}/list_changed`) reach the
 * client once per debounce window whichever members sent them, and make the session's cached listing
 * of that member stale. Everything else a member sends (log messages, resource updates, its requests
 * to the client, ids renamed by relay.ts) passes on as it is. A member whose stream ends is asked again,
 * with growing pauses, for as long as the client stays; one that has no GET stream (405) is left out.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isNotification } from '../jsonrpc.ts';
import { messageEvent } from '../messages/sse-codec.ts';
import { eventData, isEventStream } from '../era/upstream-read.ts';
import type { UpstreamCall, UpstreamResponse } from '../runtime.ts';
import { StdioResponse } from '../stdio/response.ts';
import type { Member, MemberSession } from './members.ts';
import { outward } from './relay.ts';
import type { ClientStream, SessionState } from './session.ts';

export const LIST_CHANGED: Readonly<Record<string, string>> = {
  'notifications/tools/list_changed': 'tools/list',
  'notifications/prompts/list_changed': 'prompts/list',
  'notifications/resources/list_changed': 'resources/list',
};

export interface StreamContext {
  call: UpstreamCall;
  state: SessionState;
  members: readonly Member[];
  sessionFor(member: Member, signal: AbortSignal): Promise<MemberSession>;
  debounceMs: number;
  maxMessageBytes: number;
  /** Federation shutdown. */
  closing: AbortSignal;
}

/** Buffered bytes past which a member's stream waits for the client to read. */
const HIGH_WATER = 1024 * 1024;
const MAX_PAUSE_MS = 30_000;

/**
 * An event stream to the client that messages are pushed into: the GET stream of a session, or a
 * legacy client's one stream. Ends when the client leaves, `close()` is called, or `stop` fires.
 */
export class ClientSink implements ClientStream {
  readonly out: StdioResponse;
  readonly signal: AbortSignal;
  readonly #ended = new AbortController();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #debounceMs: number;
  #waiting: Array<() => void> = [];
  #onGone: (() => void) | undefined;

  constructor(stop: readonly AbortSignal[], debounceMs: number) {
    this.#debounceMs = debounceMs;
    this.signal = AbortSignal.any([...stop, this.#ended.signal]);
    this.out = new StdioResponse(200, {
      'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no',
    }, {
      room: () => this.#wake(),
      gone: () => this.close(),
    });
    this.signal.addEventListener('abort', () => {
      this.out.finish();
      for (const t of this.#timers.values()) clearTimeout(t);
      this.#wake();
      this.#onGone?.();
    }, { once: true });
  }

  /** Runs once when the stream ends, for whatever reason. */
  onGone(f: () => void): void {
    this.#onGone = f;
  }

  close(): void {
    this.#ended.abort();
  }

  /** Writes raw SSE text (a legacy stream's endpoint event). */
  send(text: string): void {
    this.out.send(text);
  }

  push(message: unknown): void {
    this.out.send(messageEvent(JSON.stringify(message)));
  }

  changed(method: string): void {
    if (this.#timers.has(method)) return;
    this.#timers.set(method, setTimeout(() => {
      this.#timers.delete(method);
      this.push({ jsonrpc: '2.0', method });
    }, this.#debounceMs));
  }

  /** Resolves once the client has read enough of what is buffered (or left). */
  room(): Promise<void> {
    if (this.out.readableLength <= HIGH_WATER || this.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => { this.#waiting.push(resolve); });
  }

  /** Joins the session's streams and relays every member's own stream into this one. */
  follow(ctx: StreamContext): void {
    ctx.state.streams.add(this);
    this.signal.addEventListener('abort', () => ctx.state.streams.delete(this), { once: true });
    for (const member of ctx.members) void follow(ctx, member, this);
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const f of w) f();
  }
}

/** A session's GET stream. */
export function openClientStream(ctx: StreamContext): UpstreamResponse {
  const sink = new ClientSink([ctx.call.signal, ctx.closing], ctx.debounceMs);
  sink.follow(ctx);
  return sink.out;
}

/** Relays one member's GET stream until the client leaves, reopening it when it ends. */
async function follow(ctx: StreamContext, member: Member, sink: ClientSink): Promise<void> {
  const { signal } = sink;
  let pause = 1000;
  while (!signal.aborted) {
    try {
      const session = await ctx.sessionFor(member, signal);
      const res = await member.send(ctx.call, 'GET', undefined, session, signal);
      if (res.statusCode === 404 && session.id !== undefined) {
        res.resume();
        ctx.state.forget(member.name);
        continue;
      }
      if (res.statusCode !== 200 || !isEventStream(res)) {
        res.resume();
        // No GET stream on this member (405), or one it will not give: nothing to follow.
        return;
      }
      pause = 1000;
      for await (const data of eventData(res, ctx.maxMessageBytes)) {
        let message: unknown;
        try {
          message = JSON.parse(data);
        } catch {
          continue;
        }
        const changed = isNotification(message) ? LIST_CHANGED[message.method] : undefined;
        if (changed) {
          invalidate(ctx.state, member.name, changed);
          sink.changed((message as { method: string }).method);
        } else {
          sink.push(outward(member.tag, message));
          await sink.room();
        }
      }
    } catch {
      // Unreachable or broken off: try again after a pause, below.
    }
    if (signal.aborted) return;
    await sleep(pause, undefined, { signal }).catch(() => {});
    pause = Math.min(pause * 2, MAX_PAUSE_MS);
  }
}

/** A member's listing of this kind is stale for the session (templates go with resources). */
export function invalidate(state: SessionState, member: string, method: string): void {
  state.listings.delete(`${method}\0${member}`);
  if (method === 'resources/list') state.listings.delete(`resources/templates/list\0${member}`);
}
