/**
 * What the translator hands the core: a Readable with an `IncomingMessage`'s shape (statusCode,
 * headers, complete), which stage 6 reads exactly as an HTTP upstream's answer, plugins included.
 *
 * An event stream is written message by message; `send` reports whether the core is keeping up, so a
 * relay can wait for `drain` instead of buffering an upstream that outpaces a slow client.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { messageEvent } from '../../messages/sse-codec.ts';
import type { UpstreamResponse } from '../../runtime.ts';
import type { JsonRpcId } from '../../errors.ts';

export class Answer extends PassThrough implements UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** True once the body ended normally (as IncomingMessage.complete): a close before it is a break. */
  complete = false;

  constructor(statusCode: number, headers: IncomingHttpHeaders) {
    super();
    this.statusCode = statusCode;
    this.headers = headers;
  }

  /** Ends the body normally. Ignored once ended or destroyed (the client left: nowhere to go). */
  finish(last?: string): void {
    if (this.complete || this.destroyed) return;
    this.complete = true;
    this.end(last);
  }

  get gone(): boolean {
    return this.complete || this.destroyed;
  }
}

/** An event stream towards the client: one JSON-RPC message per `message` event. */
export class EventAnswer extends Answer {
  constructor(headers: IncomingHttpHeaders = {}) {
    super(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', ...headers });
  }

  /** Writes one message; false when the reader is behind (wait with `drained`). */
  send(message: unknown): boolean {
    if (this.gone) return true;
    return this.write(messageEvent(JSON.stringify(message)));
  }

  /** Resolves once the reader caught up, or the stream is gone. */
  async drained(): Promise<void> {
    if (this.gone || !this.writableNeedDrain) return;
    await Promise.race([once(this, 'drain'), once(this, 'close')]);
  }
}

export function jsonAnswer(status: number, message: unknown, headers: IncomingHttpHeaders = {}): Answer {
  const body = JSON.stringify(message);
  const res = new Answer(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.finish(body);
  return res;
}

/** A bodyless answer (202 for a notification or a response, 200 for DELETE, 405…). */
export function emptyAnswer(status: number, headers: IncomingHttpHeaders = {}): Answer {
  const res = new Answer(status, { 'content-length': '0', ...headers });
  res.finish();
  return res;
}

/** A body passed through as the upstream wrote it (an error page, a non-JSON-RPC refusal). */
export function rawAnswer(status: number, headers: IncomingHttpHeaders, body: string): Answer {
  const out: IncomingHttpHeaders = { 'content-length': String(Buffer.byteLength(body)) };
  for (const h of ['content-type', 'www-authenticate', 'retry-after']) if (headers[h] !== undefined) out[h] = headers[h];
  const res = new Answer(status, out);
  res.finish(body);
  return res;
}

export function rpcResult(id: JsonRpcId, result: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id, result };
}

export function rpcFailure(id: JsonRpcId, code: number, message: string, data?: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id, error: { code, message, ...(data !== undefined ? { data } : {}) } };
}
