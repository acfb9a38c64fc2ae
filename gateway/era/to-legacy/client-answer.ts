/**
 * The 2026 side of the wire: the HTTP answers a 2026-07-28 server gives, built as the `UpstreamResponse`
 * the core reads (gateway/stdio/response.ts, which the stdio upstream uses the same way).
 *
 * A request's answer is decided as late as a 2026 server decides it. The upstream chose JSON or SSE
 * for its answer and the client gets the same choice, but the head is sent only when there is
 * something to send: the first message worth forwarding (progress, a log message the client asked
 * for) starts the event stream; a final answer that comes first is answered whole. That is what lets
 * an unknown method be a 404 (the 2026 transport's rule) even from an upstream that streams every
 * answer: once a stream has begun, its status is 200 for good.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { UpstreamResponse } from '../../runtime.ts';
import { messageEvent } from '../../messages/sse-codec.ts';
import { refusalMessage, type JsonRpcId, type Refusal } from '../../errors.ts';
import { jsonResponse, StdioResponse, wholeResponse } from '../../stdio/response.ts';
import { statusOfError, type Json } from './translate.ts';

/** What a 2026 server's event streams carry (the SDK v2's headers). */
const SSE_HEADERS: IncomingHttpHeaders = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

export function accepted(): UpstreamResponse {
  return wholeResponse(202, '');
}

export function json(status: number, message: unknown): UpstreamResponse {
  return jsonResponse(status, message);
}

export function refusal(r: Refusal, id: JsonRpcId): UpstreamResponse {
  return jsonResponse(r.status, refusalMessage(r, id), r.headers);
}

export function rpcErrorResponse(status: number, id: JsonRpcId, code: number, message: string, data?: unknown): UpstreamResponse {
  return jsonResponse(status, { jsonrpc: '2.0', id, error: { code, message, ...(data === undefined ? {} : { data }) } });
}

/**
 * An event stream the translator writes to, with flow control: `room()` waits while the client is
 * slower than the upstream, so the upstream is read no faster than the client reads.
 */
export class EventStream {
  readonly res: StdioResponse;
  #waiting: (() => void)[] = [];

  constructor() {
    this.res = new StdioResponse(200, { ...SSE_HEADERS }, {
      room: () => this.#wake(),
      gone: () => this.#wake(),
    });
  }

  write(message: unknown): void {
    this.res.send(messageEvent(JSON.stringify(message)));
  }

  comment(text: string): void {
    this.res.send(`: ${text}\n\n`);
  }

  end(): void {
    this.res.finish();
  }

  get gone(): boolean {
    return this.res.destroyed || this.res.complete;
  }

  /** Resolves once the client's buffer is under its mark again (or the stream is gone). */
  room(): Promise<void> {
    if (this.gone || this.res.readableLength < this.res.readableHighWaterMark) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const fn of w) fn();
  }
}

/** The answer to one client request, JSON or SSE as the upstream chose, its head sent at the last moment. */
export class ClientAnswer {
  /** Resolves with the response once its head is decided. */
  readonly response: Promise<UpstreamResponse>;
  #resolve!: (res: UpstreamResponse) => void;
  readonly #streamed: boolean;
  #stream: EventStream | undefined;
  /** The final message (or a refusal) was given: an exchange that ends now ended normally. */
  finished = false;

  /** @param streamed whether the upstream answered with an event stream */
  constructor(streamed: boolean) {
    this.#streamed = streamed;
    this.response = new Promise((resolve) => { this.#resolve = resolve; });
  }

  /** A message ahead of the final one. Dropped when the upstream answered JSON (nowhere to put it). */
  event(message: Json): void {
    if (this.finished || !this.#streamed) return;
    this.#open().write(message);
  }

  /** The final message; ends the answer. */
  final(message: Json): void {
    if (this.finished) return;
    this.finished = true;
    if (this.#stream) {
      this.#stream.write(message);
      this.#stream.end();
      return;
    }
    const error = message.error as Json | undefined;
    const status = error ? statusOfError(error) : 200;
    if (!this.#streamed || status !== 200) return this.#resolve(jsonResponse(status, message));
    this.#open().write(message);
    this.#stream!.end();
  }

  /** The answer cannot be given: a refusal if nothing was sent yet, else a broken-off stream. */
  fail(r: Refusal, id: JsonRpcId): void {
    if (this.finished) return;
    this.finished = true;
    if (this.#stream) this.#stream.res.destroy();
    else this.#resolve(refusal(r, id));
  }

  /** Waits while the client reads slower than the upstream writes. */
  room(): Promise<void> {
    return this.#stream ? this.#stream.room() : Promise.resolve();
  }

  #open(): EventStream {
    if (!this.#stream) {
      this.#stream = new EventStream();
      this.#resolve(this.#stream.res);
    }
    return this.#stream;
  }
}
