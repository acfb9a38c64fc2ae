/**
 * What a stdio upstream hands the core for one exchange: a Readable with an `http.IncomingMessage`'s
 * shape (`statusCode`, `headers`, `complete`), which stage 6 reads exactly as an HTTP upstream's answer.
 *
 * Event streams are written with `push`; the core pauses the Readable while its client is slow, so
 * what a session pushes meanwhile waits in the Readable's buffer (`readableLength`), where the session
 * measures it (flow control, see virtual-session.ts). `_read` is the core asking for more: room again.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { refusalMessage, type JsonRpcId, type Refusal } from '../errors.ts';

/** What the writer of a stream hears back from its reader. */
export interface StreamHooks {
  /** The reader wants more: its buffer is under the high-water mark again. */
  room(res: StdioResponse): void;
  /** The stream is gone: read to its end, or destroyed (the reader left). */
  gone(res: StdioResponse): void;
}

export class StdioResponse extends Readable {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** True once the body has ended normally (as IncomingMessage.complete): a close before it is a break. */
  complete = false;
  #hooks: StreamHooks | undefined;

  constructor(statusCode: number, headers: IncomingHttpHeaders, hooks?: StreamHooks) {
    super();
    this.statusCode = statusCode;
    this.headers = headers;
    this.#hooks = hooks;
  }

  override _read(): void {
    this.#hooks?.room(this);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#hooks?.gone(this);
    callback(err);
  }

  /** Appends to the body. Ignored once ended or destroyed (the client left: nowhere to go). */
  send(chunk: string): void {
    if (this.complete || this.destroyed) return;
    this.push(chunk);
  }

  /** Ends the body normally. */
  finish(): void {
    if (this.complete || this.destroyed) return;
    this.complete = true;
    this.push(null);
  }
}

/** A whole answer at once; `content-length` is set so the core sees an empty body as bodyless. */
export function wholeResponse(status: number, body: string, headers: IncomingHttpHeaders = {}): StdioResponse {
  const res = new StdioResponse(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
  if (body.length > 0) res.send(body);
  res.finish();
  return res;
}

export function jsonResponse(status: number, message: unknown, headers: IncomingHttpHeaders = {}): StdioResponse {
  return wholeResponse(status, JSON.stringify(message), { 'content-type': 'application/json', ...headers });
}

/** A refusal as the whole answer: the JSON-RPC error with `data.code`, as the core's own refusals. */
export function refusalResponse(r: Refusal, id: JsonRpcId): StdioResponse {
  return jsonResponse(r.status, refusalMessage(r, id), r.headers);
}
